"""`todobot init` and `todobot release new` as a newcomer runs them: flags, answers piped on
stdin, a file the config loader takes, and a first day with no other project's name in it."""

from __future__ import annotations

import getpass
import re

from todobot.bot.config import load_config
from tests.test_cli import todobot

FLAGS = ("init", "--project", "Acme", "--irc", "irc.example.org:6697/#acme",
         "--admin", "irc:example/alice", "--admin", "console:ops", "--list",
         "acme-devel@lists.example.org", "--yes")


def test_init_from_flags_writes_a_config_the_loader_takes(tmp_path):
    out = todobot(*FLAGS, cwd=tmp_path).stdout
    assert out.splitlines() == [
        "Wrote bot.yaml. Next:",
        "  todobot release new 1.0 -c bot.yaml   # or say !release new 1.0 in the room",
        "  todobot run -c bot.yaml"]
    text = (tmp_path / "bot.yaml").read_text(encoding="utf-8")
    assert text.startswith("# todobot configuration")
    config = load_config(tmp_path / "bot.yaml")
    assert config.project == "Acme"
    assert config.admins == ["irc:example/alice", "console:ops"]
    net = config.irc[0]
    assert (net.network, net.host, net.port, net.tls, net.channels) == \
        ("example", "irc.example.org", 6697, True, ["#acme"])
    assert config.mail[0].list == "acme-devel@lists.example.org" and config.mail[0].subject is None
    assert config.database == str(tmp_path / "todobot.sqlite3")


def test_init_refuses_to_overwrite_without_force(tmp_path):
    (tmp_path / "bot.yaml").write_text("admins: []\n", encoding="utf-8")
    proc = todobot(*FLAGS, cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr == "todobot: bot.yaml exists; `todobot init --force` replaces it\n"
    assert (tmp_path / "bot.yaml").read_text(encoding="utf-8") == "admins: []\n"
    todobot(*FLAGS, "--force", cwd=tmp_path)
    assert load_config(tmp_path / "bot.yaml").project == "Acme"


def test_init_asks_on_stdin_and_asks_again_after_a_bad_answer(tmp_path):
    answers = "\n".join([
        "Acme",                              # project
        "irc.example.org/acme",              # no channel sign: asked again
        "irc.example.org:6697/#acme",
        "",                                  # network: the default, "example"
        "irc:other/alice",                   # a network not configured: asked again
        "irc:example/alice, console:ops",
        "not-an-address",                    # asked again
        "acme-devel@lists.example.org"]) + "\n"
    proc = todobot("init", "-o", "acme.yaml", stdin=answers, cwd=tmp_path)
    assert "HOST[:PORT]/#CHANNEL, like irc.libera.chat:6697/#acme" in proc.stdout
    assert "no IRC network 'other' is configured" in proc.stdout
    assert "the list's address is like" in proc.stdout
    assert "Wrote acme.yaml. Next:" in proc.stdout
    config = load_config(tmp_path / "acme.yaml")
    assert config.project == "Acme" and config.irc[0].network == "example"
    assert config.admins == ["irc:example/alice", "console:ops"]
    assert config.mail[0].list == "acme-devel@lists.example.org"


def test_init_takes_defaults_at_the_end_of_input(tmp_path):
    proc = todobot("init", "--matrix", "https://matrix.example.org", stdin="", cwd=tmp_path)
    assert "Wrote bot.yaml" in proc.stdout
    config = load_config(tmp_path / "bot.yaml")
    assert config.project is None and config.irc == [] and config.mail == []
    assert config.matrix.user_id == "@todobot:example.org"
    assert config.matrix.rooms == ["#release:example.org"]
    assert config.admins == [f"console:{_login()}"]


def test_init_bad_flag_is_one_line(tmp_path):
    proc = todobot("init", "--admin", "alice", "--yes", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "'alice' is not an identity" in proc.stderr
    assert not (tmp_path / "bot.yaml").exists()


def _login() -> str:
    return "".join(ch for ch in getpass.getuser() if ch.isalnum() or ch in "-_") or "me"


def test_a_first_day_says_no_other_projects_name(tmp_path):
    """init, a release started on the command line and one in chat, items, a milestone, the
    digest in chat and on the command line, the export: nothing says Xen."""
    outputs = [todobot("init", "--project", "Acme", "--yes", cwd=tmp_path).stdout,
               (tmp_path / "bot.yaml").read_text(encoding="utf-8")]
    outputs.append(todobot("release", "new", "1.0", "-c", "bot.yaml", cwd=tmp_path).stdout)
    chat = ("!releases\n!release new 2.0\n!add core blocker boot hangs\n"
            "!milestone 30 July First RC\n!release\n!blockers\n!digest\n!help release\n")
    outputs.append(todobot("console", "-c", "bot.yaml", stdin=chat, cwd=tmp_path).stdout)
    for fmt in ("mail", "markdown", "html"):
        outputs.append(todobot("digest", "--release", "2.0", "--format", fmt, "-c", "bot.yaml",
                               cwd=tmp_path).stdout)
    outputs.append(todobot("export", "--release", "2.0", "-c", "bot.yaml", cwd=tmp_path).stdout)
    said = "\n".join(outputs)
    assert "<todobot> Started release 2.0; this room's release now" in said
    assert "Acme 2.0 TODO digest" in said
    assert "boot hangs" in said
    assert not re.search(r"xen", said, re.IGNORECASE), [
        line for line in said.splitlines() if re.search("xen", line, re.IGNORECASE)]
