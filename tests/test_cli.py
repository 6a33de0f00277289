"""The command line as a user runs it: demo, console (piped), import, export, backup."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from todobot.storage.layouts import LAYOUTS

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


def todobot(*args: str, stdin: str = "", cwd: Path, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "todobot", *args], input=stdin, text=True,
                          capture_output=True, cwd=cwd, timeout=60,
                          env={**os.environ, "TODOBOT_LOG": str(cwd / "todobot.log"), **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "todobot"
    assert exe.exists()


def test_demo_from_a_clean_directory(tmp_path):
    out = todobot("demo", "--as", "ijc", stdin="!blockers\n<george> !claim 1\n", cwd=tmp_path).stdout
    lines = out.splitlines()
    assert lines[0].startswith("todobot demo: the Xen 4.2 TODO list in todobot-demo.sqlite3")
    assert "!help" in lines[1]
    assert "<todobot> Open blockers for 4.2: 6 (6 unclaimed)" in lines
    assert "<todobot> tools, blockers:" in lines
    assert "<todobot> * #1 libxl stable API" in lines
    assert "<todobot> * #5 [CHECK] More formally deprecate xm/xend." in lines
    assert "<todobot> #1 claimed by george (was unclaimed): libxl stable API" in lines
    assert (tmp_path / "todobot-demo.sqlite3").exists()
    # A second run keeps the database: the claim is still there.
    again = todobot("demo", "--as", "ijc", stdin="!show 1\n", cwd=tmp_path).stdout
    assert "<todobot> Owners: george · Progress: none" in again.splitlines()


def test_console_piped_processes_every_line_in_order(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    script = ("".join(f"!add tools nice item {i}\n" for i in range(20))
              + "\n<jan> !claim 21\n<jan> !todo mine\n!nosuch\n")
    proc = todobot("console", "--db", "t.sqlite3", "--as", "ijc", "--release", "4.2", stdin=script,
                   cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:20] == [f"<todobot> Added #{20 + i} (tools, nice to have): item {i}" for i in range(20)]
    assert lines[20] == "<todobot> #21 claimed by jan (was unclaimed): item 1"
    assert lines[21] == "<todobot> Open items owned by jan for 4.2: 1"
    assert lines[-1] == "<todobot> Unknown command !nosuch. Say !help for the list."


def test_console_without_a_release_says_how_to_get_one(tmp_path):
    proc = todobot("console", "--db", "t.sqlite3", "--as", "ijc", "--release", "4.2",
                   stdin="!todo\n", cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        "<todobot> Release 4.2 does not exist yet: a release manager starts it with !release new "
        "4.2, or imports a list with `todobot import FILE --release 4.2`."]


def test_import_console_export_round_trip(tmp_path):
    proc = todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        "Created release 4.2", "Imported into 4.2: 19 added, 0 updated, 0 unchanged, 0 dropped",
        f"Database: {tmp_path / 't.sqlite3'}"]
    script = ("<george> !iam George Dunlap\n"
              "!add tools nice [BUG] vcpu-set doesn't take effect on guest\n"
              "<george> I can take this one\n"
              "!status 20 patch posted\n")
    out = todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin=script, cwd=tmp_path).stdout
    assert out.splitlines() == [
        "<todobot> You are now George Dunlap (was george).",
        "<todobot> Added #20 (tools, nice to have): [BUG] vcpu-set doesn't take effect on guest",
        "<todobot> #20 claimed by George Dunlap (was unclaimed): [BUG] vcpu-set doesn't take effect on guest",
        "<todobot> #20 progress: patch posted (was: none).",
        "-> george: #20 progress: patch posted (by ijc)",  # the owner, told privately
    ]
    mail = todobot("export", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "[BUG] vcpu-set doesn't take effect on guest (George Dunlap, patch posted)" in " ".join(mail.split())
    doc = json.loads(todobot("export", "--release", "4.2", "--format", "json", "--db", "t.sqlite3",
                             cwd=tmp_path).stdout)
    assert set(doc) == {"release", "intro", "milestones", "items"}
    assert doc["milestones"][3] == {"when": "Weekly", "name": "RCN+1 until release", "done": False,
                                    "current": True}
    item = next(i for i in doc["items"] if i["id"] == 20)
    assert item == {"id": 20, "area": "tools", "severity": "nice", "tags": ["BUG"],
                    "title": "vcpu-set doesn't take effect on guest", "details": "", "owners": ["George Dunlap"],
                    "progress": "patch posted", "state": "open", "parent": None, "duplicate_of": None,
                    "links": [], "notes": []}
    md = todobot("export", "--release", "4.2", "--format", "markdown", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert md.startswith("# 4.2 TODO")
    # Re-import the exported mail into a new database: the same list comes back.
    (tmp_path / "export.txt").write_text(mail)
    todobot("import", "export.txt", "--release", "4.2", "--db", "u.sqlite3", cwd=tmp_path)
    doc2 = json.loads(todobot("export", "--release", "4.2", "--format", "json", "--db", "u.sqlite3",
                              cwd=tmp_path).stdout)
    assert doc2 == doc
    # And into the same database: everything matches by id, nothing changes.
    proc = todobot("import", "export.txt", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    assert proc.stdout.splitlines()[0] == "Imported into 4.2: 0 added, 0 updated, 20 unchanged, 0 dropped"


def test_backup_cli(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    out = todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path).stdout.strip()
    assert re.fullmatch(r"Backed up to b\.sqlite3 \(\d+\.\d KiB, integrity check ok\)", out), out
    out = todobot("export", "--release", "4.2", "--db", "b.sqlite3", cwd=tmp_path).stdout
    assert "libxl stable API" in out
    # An existing file is replaced whole by the newer copy.
    todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin="!add tools nice after the first backup\n",
            cwd=tmp_path)
    todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path)
    assert "after the first backup" in todobot("export", "--release", "4.2", "--db", "b.sqlite3",
                                                cwd=tmp_path).stdout


def test_backup_into_a_directory_keeps_the_newest(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    (tmp_path / "backups").mkdir()
    old = ["t-20200101T000000Z.sqlite3", "t-20200102T000000Z.sqlite3", "t-20200103T000000Z.sqlite3"]
    for name in old + ["notes.txt"]:
        (tmp_path / "backups" / name).write_text("x")
    out = todobot("backup", "backups", "--keep", "2", "--db", "t.sqlite3", cwd=tmp_path).stdout.splitlines()
    made = re.fullmatch(r"Backed up to backups/(t-\d{8}T\d{6}Z\.sqlite3) \(.* KiB, integrity check ok\)", out[0])
    assert made, out
    assert out[1:] == [f"Removed the older backup backups/{n}" for n in old[:2]]
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == sorted([old[2], made.group(1), "notes.txt"])
    proc = todobot("backup", "b.sqlite3", "--keep", "2", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "b.sqlite3: no such directory: --keep" in proc.stderr
    proc = todobot("backup", "nosuch/", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("todobot: nosuch: no such directory")
    assert not (tmp_path / "nosuch").exists()


def test_backup_and_restore_refuse_the_databases_own_files(tmp_path):
    """A usage mistake (exit 2, one line saying what to do), not a copy over the live files."""
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path)
    (tmp_path / "t.sqlite3-wal").write_bytes(b"")  # as a running bot has them
    (tmp_path / "t.sqlite3-shm").write_bytes(b"")
    (tmp_path / "link.sqlite3").symlink_to("t.sqlite3")
    before = (tmp_path / "t.sqlite3").read_bytes()
    for dest, what in (("./t.sqlite3", "the database itself"), ("link.sqlite3", "the database itself"),
                       ("t.sqlite3-wal", "the database's write-ahead log"),
                       ("t.sqlite3-shm", "the database's shared-memory index"),
                       ("t.sqlite3-journal", "the database's rollback journal"),
                       ("t.sqlite3.lock", "the database's lock file")):
        proc = todobot("backup", dest, "--db", "t.sqlite3", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and proc.stderr == (
            f"todobot: {dest.removeprefix('./')} is {what}: back it up to another file, or to a directory for a "
            "dated copy\n"), proc.stderr
    for src in ("t.sqlite3", "t.sqlite3-wal"):
        proc = todobot("restore", src, "--db", "t.sqlite3", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and proc.stderr.startswith(f"todobot: {src} is the database")
        assert proc.stderr.endswith(", not a backup: name a copy made by `todobot backup`\n")
    assert (tmp_path / "t.sqlite3").read_bytes() == before
    assert (tmp_path / "t.sqlite3-wal").read_bytes() == b""
    assert not (tmp_path / "t.sqlite3-journal").exists()
    assert not list(tmp_path.glob("*.replaced-*"))


def test_backup_into_a_directory_never_lands_on_the_databases_own_files(tmp_path, monkeypatch,
                                                                      capsys):
    """DEST a directory: the dated copy's own path is what is checked (a dated name cannot be
    one of these files by construction, so the name is forced here)."""
    from todobot.bot import cli
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    (tmp_path / "t.sqlite3-wal").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_setup_logging", lambda *args: None)
    monkeypatch.setattr(cli.backups, "dated_name", lambda db, now=None: "t.sqlite3-wal")
    assert cli.main(["backup", ".", "--db", "t.sqlite3"]) == 2
    assert capsys.readouterr().err == ("todobot: t.sqlite3-wal is the database's write-ahead log: "
                                       "back it up to another file, or to a directory for a "
                                       "dated copy\n")
    assert (tmp_path / "t.sqlite3-wal").read_bytes() == b""


def test_restore_cli(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path)
    todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin="!add tools nice added later\n", cwd=tmp_path)
    out = todobot("restore", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path).stdout.strip()
    kept = re.fullmatch(r"Restored t\.sqlite3 from b\.sqlite3; the replaced database is kept at (\S+)", out)
    assert kept, out
    assert "added later" not in todobot("export", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "added later" in todobot("export", "--release", "4.2", "--db", kept.group(1), cwd=tmp_path).stdout
    (tmp_path / "junk.sqlite3").write_text("junk")
    proc = todobot("restore", "junk.sqlite3", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("todobot: junk.sqlite3: ") and "Traceback" not in proc.stderr


def test_bad_config_fails_at_start_naming_the_key(tmp_path):
    (tmp_path / "bot.yaml").write_text("admins: []\nprefx: '!'\n")
    proc = todobot("console", "-c", "bot.yaml", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "bot.yaml: prefx: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_unknown_release_or_database(tmp_path):
    proc = todobot("export", "--release", "9.9", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "todobot: No database at t.sqlite3"
    assert not (tmp_path / "t.sqlite3").exists()
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    proc = todobot("export", "--release", "9.9", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "todobot: No release 9.9"


@pytest.mark.parametrize("content", ["", "\x00\x01binary"])
def test_import_garbage_is_refused_cleanly(tmp_path, content):
    (tmp_path / "junk.txt").write_text(content)
    proc = todobot("import", "junk.txt", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("todobot: no TODO list found")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "t.sqlite3").exists()


def test_version():
    from importlib.metadata import version
    proc = subprocess.run([sys.executable, "-m", "todobot", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip().startswith(
        f"todobot {version('release-todobot')} (schema ")


def test_every_option_of_every_subcommand_has_help():
    import argparse

    from todobot.bot.cli import build_parser
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in subs._choices_actions} == set(subs.choices)
    assert all(c.help for c in subs._choices_actions)
    for name, sp in [("todobot", parser), *subs.choices.items()]:
        for action in sp._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"


# ---------------------------------------------------------------- mail files and a safe import

DATA = Path(__file__).resolve().parent / "data"


def export_json(tmp_path: Path, db: str, release: str) -> dict:
    return json.loads(todobot("export", "--release", release, "--format", "json", "--db", db,
                              cwd=tmp_path).stdout)


def history(tmp_path: Path, db: str, where: str = "1") -> list[tuple]:
    import sqlite3
    with sqlite3.connect(tmp_path / db) as conn:
        return conn.execute(f"SELECT actor, field, after FROM history WHERE {where} ORDER BY id").fetchall()


def test_quoted_printable_eml_imports_exactly_like_the_plain_text(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "plain.sqlite3", cwd=tmp_path)
    todobot("import", str(DATA / "xen-4.2-todo.eml"), "--release", "4.2", "--db", "eml.sqlite3",
            cwd=tmp_path)
    assert b"=C3=A9" in (DATA / "xen-4.2-todo.eml").read_bytes()
    doc = export_json(tmp_path, "eml.sqlite3", "4.2")
    assert doc == export_json(tmp_path, "plain.sqlite3", "4.2")
    assert any(it["owners"] == ["Roger Pau Monné"] for it in doc["items"])
    # The message is the import's source in the history.
    mid = "<1344243480.24568.14.camel@zakaz.uk.xensource.com>"
    rows = history(tmp_path, "eml.sqlite3")
    assert all(actor == f"mail-import:{mid}" for actor, _, _ in rows)
    assert ("mail-import:" + mid, "import",
            f"Message-ID {mid}, Date Mon, 06 Aug 2012 09:58:00 +0100") in rows


def test_mbox_takes_the_newest_list_mail_or_the_one_named(tmp_path):
    # The newest messages are a reply quoting the list and an unrelated one: neither is taken.
    proc = todobot("import", str(DATA / "xen-devel.mbox"), "--release", "4.3", "--db", "t.sqlite3",
                   cwd=tmp_path)
    assert proc.stdout.splitlines()[:2] == [
        "Created release 4.3", "Imported into 4.3: 10 added, 0 updated, 0 unchanged, 0 dropped"]
    doc = export_json(tmp_path, "t.sqlite3", "4.3")
    # base64 in ISO-8859-1 inside multipart/alternative: the text part, decoded.
    assert any(it["owners"] == ["Roger Pau Monné"] for it in doc["items"])
    assert ("mail-import:<new@example.org>", "import",
            "Message-ID <new@example.org>, Date Mon, 13 May 2013 12:00:00 +0100") in history(tmp_path, "t.sqlite3")
    proc = todobot("import", str(DATA / "xen-devel.mbox"), "--release", "old", "--db", "t.sqlite3",
                   "--message-id", "old@example.org", cwd=tmp_path)
    assert [it["title"] for it in export_json(tmp_path, "t.sqlite3", "old")["items"]] == [
        "an item of the old week"]
    proc = todobot("import", str(DATA / "xen-devel.mbox"), "--release", "x", "--db", "t.sqlite3",
                   "--message-id", "<nope@x>", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "todobot: no message <nope@x> in the mbox"


def test_format_flowed_is_unwrapped(tmp_path):
    todobot("import", str(DATA / "xen-4.3-flowed.eml"), "--release", "4.3", "--db", "t.sqlite3",
            cwd=tmp_path)
    titles = [it["title"] for it in export_json(tmp_path, "t.sqlite3", "4.3")["items"]]
    assert "Race condition in claim hypercall between the toolstack and the (Linux)" in titles


def test_a_release_is_exported_and_digested_in_its_own_layout(tmp_path):
    dev = (DATA / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    todobot("import", "-", "--release", "4.3", "--db", "t.sqlite3", stdin=dev, cwd=tmp_path)
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    mail = todobot("export", "--release", "4.3", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "= Timeline =" in mail and "== Bugs ==" in mail and "tools, blockers:" not in mail
    # export -> import into a fresh database -> export: the same bytes.
    (tmp_path / "e.txt").write_text(mail)
    todobot("import", "e.txt", "--release", "4.3", "--db", "u.sqlite3", cwd=tmp_path)
    assert todobot("export", "--release", "4.3", "--db", "u.sqlite3", cwd=tmp_path).stdout == mail
    digest = todobot("digest", "--release", "4.3", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "= Timeline =\n\n* Feature freeze: 25 March 2013\n" in digest
    assert "The open items:\n\n== Bugs ==\n\n* #6 xl, compat mode, and older kernels\n" in digest
    assert "tools, blockers:" in todobot("export", "--release", "4.2", "--db", "t.sqlite3",
                                         cwd=tmp_path).stdout
    # --layout forces one, on import and on export.
    forced = todobot("export", "--release", "4.2", "--layout", "xen-dev-update", "--db", "t.sqlite3",
                     cwd=tmp_path).stdout
    assert "== Bugs ==" in forced
    proc = todobot("import", str(SEED), "--layout", "xen-dev-update", "--release", "9",
                   "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "no TODO list found" in proc.stderr


def test_dry_run_says_what_would_change_and_writes_nothing(tmp_path):
    dev = (DATA / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    proc = todobot("import", "-", "--release", "4.3", "--db", "t.sqlite3", "--dry-run", stdin=dev,
                   cwd=tmp_path)
    assert proc.stdout.splitlines()[:4] == [
        "Would create release 4.3",
        f"Dry run, nothing written to {tmp_path / 't.sqlite3'}: 10 added, 0 updated, 0 unchanged, 0 dropped",
        "  release timeline changed",
        "  add #1: Serial console improvements"]
    assert not (tmp_path / "t.sqlite3").exists()
    todobot("import", "-", "--release", "4.3", "--db", "t.sqlite3", stdin=dev, cwd=tmp_path)
    before = export_json(tmp_path, "t.sqlite3", "4.3")
    rows = len(history(tmp_path, "t.sqlite3"))
    edited = dev.replace("owner: Ian Campbell", "owner: Ian Jackson").replace(
        "* ARM v7 server port (>10 individuals)\n  owner: ?\n", "* A new one\n")
    proc = todobot("import", "-", "--release", "4.3", "--db", "t.sqlite3", "--dry-run", "--replace",
                   stdin=edited, cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        f"Dry run, nothing written to {tmp_path / 't.sqlite3'}: 1 added, 1 updated, 8 unchanged, 1 dropped",
        "  change #1 owners: Ian Campbell -> Ian Jackson",
        "  add #11: A new one",
        "  drop #10: ARM v7 server port (>10 individuals)"]
    assert export_json(tmp_path, "t.sqlite3", "4.3") == before
    assert len(history(tmp_path, "t.sqlite3")) == rows


def test_prose_is_refused_and_leaves_nothing_behind(tmp_path):
    prose = "Hi all -- a quick note.\n\nThe release is close -- thanks for the testing.\n"
    proc = todobot("import", "-", "--release", "4.3", "--db", "t.sqlite3", stdin=prose,
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    # One line: the layouts tried and the first lines, none of them part of a list.
    assert proc.stderr.splitlines() == [
        "todobot: no TODO list found in any known layout (tried "
        + ", ".join(LAYOUTS) + '); the first lines: line 1: "Hi all -- a quick note."; '
        'line 3: "The release is close -- thanks for the testing."']
    assert not (tmp_path / "t.sqlite3").exists()


def test_partly_understood_import_warns_with_line_numbers_and_exits_0(tmp_path):
    text = "tools, blockers:\n\n    * real item\n\n#368544, #368667\n    xl does something odd\n"
    proc = todobot("import", "-", "--release", "4.2", "--db", "t.sqlite3", stdin=text, cwd=tmp_path)
    assert proc.stdout.splitlines()[-1] == f"Database: {tmp_path / 't.sqlite3'}"
    assert proc.stderr.splitlines() == [
        "todobot: 2 warning(s), these lines were not imported:",
        '  line 5: not understood: "#368544, #368667"',
        '  line 6: not understood: "xl does something odd"']


def test_headings_without_items_or_timeline_are_refused(tmp_path):
    text = "tools, blockers:\n\n  some words under it\n\n    * None\n"
    proc = todobot("import", "-", "--release", "4.2", "--db", "t.sqlite3", stdin=text, cwd=tmp_path,
                   check=False)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["todobot: no TODO list found: no items and no timeline",
                                        '  line 3: not understood: "some words under it"']
    assert not (tmp_path / "t.sqlite3").exists()
    proc = todobot("import", "-", "--layout", "xen-dev-update", "--release", "4.3", "--db", "t.sqlite3",
                   stdin="Just prose.\n", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.splitlines()[-1] == "  line 1: Just prose."


def test_config_adds_section_headings(tmp_path):
    (tmp_path / "bot.yaml").write_text("mail_sections: {Regressions: blocker, Fixed: done}\n")
    text = "== Regressions ==\n\n* S3 resume hangs\n\n== Fixed ==\n\n* Old bug\n"
    proc = todobot("import", "-", "-c", "bot.yaml", "--release", "4.3", "--db", "t.sqlite3",
                   stdin=text, cwd=tmp_path)
    assert proc.stderr == ""
    items = export_json(tmp_path, "t.sqlite3", "4.3")["items"]
    assert [(it["section"], it["severity"], it["state"]) for it in items] == [
        ("Regressions", "blocker", "open"), ("Fixed", "nice", "done")]
    mail = todobot("export", "-c", "bot.yaml", "--release", "4.3", "--no-ids", "--db", "t.sqlite3",
                   cwd=tmp_path).stdout
    assert mail == text
    (tmp_path / "bad.yaml").write_text("mail_sections: {Wishlist: later}\n")
    proc = todobot("import", "-", "-c", "bad.yaml", "--release", "4.3", stdin=text, cwd=tmp_path,
                   check=False)
    assert proc.returncode == 2 and "mail_sections.Wishlist" in proc.stderr
