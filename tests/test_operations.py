"""What an operator meets running todobot as a service: `--version`, `todobot check`, ports
checked before the database, the upgrade's `pre-vN.bak` and rolling back with it, and every
mistake answered in one line that says what to do."""

from __future__ import annotations

import errno
import gc
import logging
import shutil
import socket
import sqlite3
import warnings
from pathlib import Path

import aiohttp
import pytest

from tests.test_cli import SEED, todobot
from todobot.bot.app import App
from todobot.bot.config import ConfigError, load_config, parse_config
from todobot.bot.listening import bind, listen_problems
from todobot.storage import Database
from todobot.storage.migrations import LATEST

SCHEMAS = Path(__file__).parent / "data" / "schemas"
# The newest schema a fixture was made for by its own code: the previous todobot's.
OLD = max(int(p.stem[1:]) for p in SCHEMAS.glob("v*.sqlite3"))


def _one_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Errno" not in proc.stderr
    return lines[0]


def test_version_names_the_schema():
    from importlib.metadata import version
    proc = todobot("--version", cwd=Path.cwd())
    assert proc.stdout.strip() == f"todobot {version('release-todobot')} (schema {LATEST})"


# -- todobot check --------------------------------------------------------------------------------

def test_check_a_good_config_and_database_changes_nothing(tmp_path):
    (tmp_path / "bot.yaml").write_text("admins: [console:rm]\n")
    shutil.copy(SCHEMAS / f"v{OLD}.sqlite3", tmp_path / "t.sqlite3")
    before = (tmp_path / "t.sqlite3").read_bytes()
    proc = todobot("check", "-c", "bot.yaml", "--db", "t.sqlite3", cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        "bot.yaml: ok",
        f"t.sqlite3: schema {OLD}, an upgrade to {LATEST} is due at the next start (a copy is "
        f"saved first as t.sqlite3.pre-v{LATEST}.bak); integrity ok"]
    assert (tmp_path / "t.sqlite3").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bot.yaml", "t.sqlite3"]


def test_check_reports_each_problem_on_its_own_line_and_exits_2(tmp_path):
    (tmp_path / "bot.yaml").write_text("admins: [george]\nprefx: '!'\n")
    proc = todobot("check", "-c", "bot.yaml", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines and all(line.startswith("todobot: bot.yaml: ") for line in lines), lines
    assert any("prefx: unknown key" in line for line in lines)
    # The database: damaged, newer, missing.
    (tmp_path / "bot.yaml").write_text("admins: [console:rm]\n")
    (tmp_path / "junk.sqlite3").write_bytes(b"not a database" * 100)
    proc = todobot("check", "-c", "bot.yaml", "--db", "junk.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "restore a copy made with `todobot backup`" in _one_line(proc)
    with sqlite3.connect(tmp_path / "new.sqlite3") as conn:
        conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    proc = todobot("check", "-c", "bot.yaml", "--db", "new.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and _one_line(proc).endswith("upgrade todobot")
    proc = todobot("check", "-c", "bot.yaml", "--db", "none.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "check --db" in _one_line(proc)


# -- listening sockets before the database --------------------------------------------------------

def test_a_web_port_in_use_stops_run_before_the_database_is_touched(tmp_path):
    held = socket.create_server(("127.0.0.1", 0))
    port = held.getsockname()[1]
    try:
        (tmp_path / "bot.yaml").write_text(f'database: t.sqlite3\nweb: {{listen: "127.0.0.1:{port}"}}\n')
        shutil.copy(SCHEMAS / f"v{OLD}.sqlite3", tmp_path / "t.sqlite3")
        before = (tmp_path / "t.sqlite3").read_bytes()
        for command in ("run", "check"):
            proc = todobot(command, "-c", "bot.yaml", cwd=tmp_path, check=False)
            assert proc.returncode == 2
            assert _one_line(proc) == (f"todobot: bot.yaml: web.listen 127.0.0.1:"
                                       f"{port} is in use: stop what holds it or choose another port")
        assert (tmp_path / "t.sqlite3").read_bytes() == before  # not migrated
        assert not list(tmp_path.glob("*.bak"))
    finally:
        held.close()


# -- upgrade and roll back ------------------------------------------------------------------------

async def test_upgrade_saves_pre_vN_bak_that_rolls_back_to_the_old_schema(tmp_path):
    """docs/deploying.md's roll back: stop, copy the automatic pre-vN.bak back, start the old version.
    The copy is the old schema's database as its code left it (the fixture was written by it)."""
    db = tmp_path / "todo.sqlite3"
    shutil.copy(SCHEMAS / f"v{OLD}.sqlite3", db)
    await (await Database.open(db)).close()
    bak = tmp_path / f"todo.sqlite3.pre-v{LATEST}.bak"
    assert bak.exists()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == LATEST
    shutil.copy(bak, db)  # the roll back

    def dump(path: Path) -> tuple[int, list[str]]:
        with sqlite3.connect(path) as conn:
            return (conn.execute("PRAGMA user_version").fetchone()[0],
                    [line for line in conn.iterdump() if "sqlite_sequence" not in line])

    assert dump(db) == dump(SCHEMAS / f"v{OLD}.sqlite3")


# -- one line that says what to do ----------------------------------------------------------------

def test_backup_keep_mistakes(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    for keep in ("0", "-1"):
        proc = todobot("backup", "--keep", keep, "backups", "--db", "t.sqlite3", cwd=tmp_path,
                       check=False)
        assert proc.returncode == 1
        assert _one_line(proc) == (f"todobot: --keep {keep}: keep at least 1 backup (--keep 14 "
                                   "keeps the newest 14)")
    proc = todobot("backup", "--keep", "14", "backups", "--db", "t.sqlite3", cwd=tmp_path,
                   check=False)
    assert proc.returncode == 1 and _one_line(proc).endswith("create it first (mkdir -p backups)")
    assert not (tmp_path / "backups").exists()


def test_digest_since_a_word(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    proc = todobot("digest", "--release", "4.2", "--since", "yesterday", "--db", "t.sqlite3",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert _one_line(proc).startswith("todobot: --since yesterday: give a day as YYYY-MM-DD")


def test_import_of_a_missing_file(tmp_path):
    proc = todobot("import", "nosuch.txt", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path,
                   check=False)
    assert proc.returncode == 1
    assert _one_line(proc) == "todobot: nosuch.txt: no such file: check the path"


@pytest.mark.parametrize("text,where", [
    ('web:\n  listen: "127.0.0.1:8080\n', "line 3, column 1"),
    ("admins: [a\nweb: {listen: x}\n", "line 2, column 4"),
    ("admins:\n  - a\n - b\n", "line 3, column 2"),
])
def test_yaml_syntax_errors_are_one_line_with_the_place(tmp_path, text, where):
    (tmp_path / "bot.yaml").write_text(text)
    proc = todobot("console", "-c", "bot.yaml", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    line = _one_line(proc)
    assert line.startswith(f"todobot: bot.yaml: {where}: not valid YAML (")
    assert line.endswith("fix the file there (check indentation, colons and quotes)")


def test_plain_smtp_only_to_this_machine():
    entry = {"list": "l@x.org", "from": "bot@x.org"}
    for host in ("127.0.0.1", "localhost", "::1"):
        parse_config({"mail": [{**entry, "smtp": {"host": host, "starttls": False}}]})
    parse_config({"mail": [{**entry, "smtp": {"host": "smtp.example.org"}}]})  # starttls
    with pytest.raises(ConfigError) as err:
        parse_config({"mail": [{**entry, "smtp": {"host": "smtp.example.org", "starttls": False}}]},
                     "cfg")
    assert "plain SMTP to smtp.example.org would send mail and password in clear: set " \
           "starttls: true" in str(err.value)


async def test_reload_errors_are_one_log_line_and_a_reverted_restart_change_is_not_pending(
        tmp_path, caplog):
    caplog.set_level(logging.INFO)
    cfg = tmp_path / "bot.yaml"
    cfg.write_text('database: todo.sqlite3\nweb: {listen: "127.0.0.1:0"}\n')
    app = App(load_config(cfg), config_path=str(cfg), serve=False)
    await app.initialize()
    try:
        cfg.write_text("admins: [george]\nprefx: '!'\n")
        caplog.clear()
        assert app.reload() == []
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1 and "\n" not in errors[0], errors
        assert errors[0].startswith(f"reload: keeping the running configuration: fix {cfg} and "
                                    "reload again: ")
        cfg.write_text('database: todo.sqlite3\nweb: {listen: "127.0.0.1:1"}\n')
        assert app.reload() == ["web: at restart"]
        caplog.clear()
        cfg.write_text('database: todo.sqlite3\nweb: {listen: "127.0.0.1:0"}\n')
        assert app.reload() == []
        assert "takes a restart" not in caplog.text
        assert "nothing changed and nothing waits for a restart" in caplog.text
    finally:
        await app.stop()


async def test_the_app_binds_its_port_before_the_database_and_serves_on_that_very_socket(
        tmp_path, monkeypatch):
    held = socket.create_server(("127.0.0.1", 0))
    port = held.getsockname()[1]
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(f'database: todo.sqlite3\nweb: {{listen: "127.0.0.1:{port}"}}\n')
    expected = f"{cfg}: web.listen 127.0.0.1:{port} is in use: stop what holds it or choose another port"
    app = App(load_config(cfg), config_path=str(cfg))
    with pytest.raises(ConfigError) as err:
        await app.initialize()
    assert str(err.value) == expected
    assert not (tmp_path / "todo.sqlite3").exists()
    held.close()
    # While the database opens (and would be upgraded), another process cannot take the port.
    taken: list[int | None] = []
    real_open = Database.open

    async def opening(*args, **kwargs):
        try:
            socket.create_server(("127.0.0.1", port)).close()
            taken.append(None)
        except OSError as exc:
            taken.append(exc.errno)
        return await real_open(*args, **kwargs)
    monkeypatch.setattr(Database, "open", opening)
    await app.initialize()
    assert taken == [errno.EADDRINUSE]
    bound = [(sock.fileno(), sock.getsockname()) for sock in app.listening]
    assert [name for _, name in bound] == [("127.0.0.1", port)]
    try:
        await app.start()  # no second bind: the status page serves the socket bound first
        assert [(sock.fileno(), sock.getsockname()) for sock in app.web.listening] == bound
        assert app.listening == [] and app.web.port == port
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                assert resp.status == 200
    finally:
        await app.stop()
    socket.create_server(("127.0.0.1", port)).close()  # released on stop


async def test_sockets_bound_for_a_status_page_that_never_starts_are_released(tmp_path):
    port = _free_port()
    config = parse_config({"database": str(tmp_path / "missing" / "t.sqlite3"),
                           "web": {"listen": f"127.0.0.1:{port}"}})
    app = App(config)
    with pytest.raises(FileNotFoundError):
        await app.initialize()  # the database cannot be created there
    assert app.listening == []
    socket.create_server(("127.0.0.1", port)).close()


def test_check_binds_and_releases():
    port = _free_port()
    config = parse_config({"web": {"listen": f"127.0.0.1:{port}"}})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        assert listen_problems(config) == []
        gc.collect()
    # Closed by check itself, not left to the garbage collector.
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
    socket.create_server(("127.0.0.1", port)).close()  # free again: check only looks
    sockets = bind(config)
    try:
        assert listen_problems(config) == [f"{config.source}: web.listen 127.0.0.1:{port} is in "
                                           "use: stop what holds it or choose another port"]
    finally:
        for sock in sockets:
            sock.close()


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return sock.getsockname()[1]


def test_run_serves_on_the_sockets_its_config_check_bound(tmp_path, monkeypatch):
    """`todobot run` binds once, before anything else (cli.check_run), and the app it starts
    serves those sockets rather than binding its own."""
    from todobot.bot import app as app_module, cli
    bound: list[list] = []

    def binding(config):
        sockets = bind(config)
        bound.append([(s.fileno(), s.getsockname()) for s in sockets])
        return sockets
    monkeypatch.setattr(cli, "bind", binding)
    monkeypatch.setattr(app_module, "bind", binding)
    monkeypatch.setattr(cli, "_setup_logging", lambda *args: None)
    served: list[list] = []

    async def run(self) -> None:  # as App.run, stopping once the status page serves
        await self.initialize()
        try:
            await self.start()
            served.append([(s.fileno(), s.getsockname()) for s in self.web.listening])
        finally:
            await self.stop()
    monkeypatch.setattr(App, "run", run)
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(f'database: {tmp_path / "t.sqlite3"}\nweb: {{listen: "127.0.0.1:0"}}\n')
    assert cli.main(["run", "-c", str(cfg)]) == 0
    assert len(bound) == 1 and served == bound
