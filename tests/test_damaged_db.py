"""Damaged and foreign databases, and JSON imports that are not what they claim: one line on
stderr, a non-zero exit, nothing written — never a traceback."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from pathlib import Path

import pytest

from todobot.storage import Database

from tests.test_cli import SEED
from tests.test_cli import todobot as _todobot


def todobot(*args: str, check: bool = True):
    return _todobot(*args, cwd=_CWD[0], check=check)


_CWD: list[Path] = []


@pytest.fixture(autouse=True)
def _cwd(tmp_path):
    _CWD[:] = [tmp_path]


def _seeded(tmp_path: Path) -> Path:
    db = tmp_path / "t.sqlite3"
    todobot("import", str(SEED), "--release", "4.2", "--db", str(db))
    return db


def _refused(proc, *needles: str) -> None:
    assert proc.returncode == 1, proc
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_a_truncated_database_is_refused_and_left_alone(tmp_path):
    db = _seeded(tmp_path)
    todobot("export", "--release", "4.2", "--db", str(db))  # checkpoints the WAL into the file
    size = db.stat().st_size
    with open(db, "r+b") as f:
        f.truncate(size // 2)
    before = db.read_bytes()
    for args in (("export", "--release", "4.2"), ("digest", "--release", "4.2"),
                 ("backup", str(tmp_path / "copy.sqlite3")), ("export", "--release", "4.2", "--check")):
        proc = todobot(*args, "--db", str(db), check=False)
        _refused(proc, str(db), "damaged")
    assert db.read_bytes() == before
    assert not (tmp_path / "copy.sqlite3").exists()


def test_a_file_that_is_not_a_database(tmp_path):
    junk = tmp_path / "notes.sqlite3"
    junk.write_text("these are my notes, not a database\n" * 100)
    before = junk.read_bytes()
    _refused(todobot("export", "--release", "4.2", "--db", str(junk), check=False), "damaged")
    _refused(todobot("import", str(SEED), "--release", "4.2", "--db", str(junk), check=False),
             "damaged")
    assert junk.read_bytes() == before


def test_a_newer_schema_is_refused(tmp_path):
    db = _seeded(tmp_path)
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 999")
    _refused(todobot("export", "--release", "4.2", "--db", str(db), check=False),
             "newer than this todobot")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only files")
def test_a_read_only_location(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        _refused(todobot("import", str(SEED), "--release", "4.2", "--db", str(folder / "x.sqlite3"),
                         check=False), "cannot be opened")
    finally:
        folder.chmod(0o700)


def test_a_read_only_database_even_as_root(tmp_path):
    """Root ignores file modes, so the read-only case is made with SQLite's own flag."""
    db = _seeded(tmp_path)
    uri = f"file:{db}?mode=ro"
    from todobot.storage.db import _problem
    with pytest.raises(sqlite3.OperationalError) as info:
        with sqlite3.connect(uri, uri=True) as conn:
            conn.execute("INSERT INTO kv VALUES ('a', 'b')")
    assert "cannot be opened for writing" in str(_problem(str(db), info.value))


def _json_doc(**item) -> str:
    base = {"id": 5, "area": "tools", "severity": "blocker", "title": "ok", "parent": None}
    base.update(item)
    return json.dumps({"release": "4.2", "milestones": [], "items": [base]})


@pytest.mark.parametrize("item, message", [
    ({"id": 10**15}, "item 1: id must be a whole number from 1 to"),
    ({"id": -3}, "item 1: id must be a whole number"),
    ({"id": "7"}, "item 1: id must be a whole number"),
    ({"title": ""}, "item 1 (#5): title is empty"),
    ({"title": "\u200b"}, "item 1 (#5): title is empty"),
    ({"title": "a\r\nJOIN #evil"}, "item 1 (#5): title holds a line break or NUL"),
    ({"parent": 5}, "item 1 (#5): an item cannot be its own parent or duplicate"),
    ({"duplicate_of": 5}, "item 1 (#5): an item cannot be its own parent or duplicate"),
    ({"parent": 4}, "item 1 (#5): its parent #4 does not come before it"),
    ({"links": ["javascript:alert(1)"]}, "item 1 (#5): 'javascript:alert(1)' is not an http(s)/ftp URL"),
    ({"severity": "urgent"}, "item 1 (#5): severity must be one of blocker, nice"),
])
def test_json_import_checks_like_chat_does(tmp_path, item, message):
    doc = tmp_path / "list.json"
    doc.write_text(_json_doc(**item))
    db = tmp_path / "j.sqlite3"
    proc = todobot("import", str(doc), "--release", "4.2", "--db", str(db), check=False)
    _refused(proc, message)


def test_json_duplicate_cycles_are_refused(tmp_path):
    items = [{"id": 1, "area": "a", "severity": "nice", "title": "x", "duplicate_of": 2},
             {"id": 2, "area": "a", "severity": "nice", "title": "y", "duplicate_of": 1}]
    doc = tmp_path / "list.json"
    doc.write_text(json.dumps({"release": "4.2", "items": items}))
    proc = todobot("import", str(doc), "--release", "4.2", "--db", str(tmp_path / "c.sqlite3"),
                   check=False)
    _refused(proc, "duplicate_of chain loops")


def test_json_export_keeps_the_intro(tmp_path):
    db = _seeded(tmp_path)
    exported = todobot("export", "--release", "4.2", "--format", "json", "--db", str(db)).stdout
    assert json.loads(exported)["intro"].startswith("Plan for a 4.2 release")
    doc = tmp_path / "e.json"
    doc.write_text(exported)
    other = tmp_path / "o.sqlite3"
    todobot("import", str(doc), "--release", "4.2", "--db", str(other))
    mail = todobot("export", "--release", "4.2", "--db", str(db)).stdout
    assert todobot("export", "--release", "4.2", "--db", str(other)).stdout == mail


@pytest.mark.parametrize("doc", ["[" * 100_000, '{"items": ' + "[" * 100_000 + "]" * 100_000 + "}",
                                 '{"a": ' * 100_000])
def test_json_nested_too_deep_is_refused_in_one_line(tmp_path, doc):
    from todobot.storage.formats import JsonImportError, from_json
    with pytest.raises(JsonImportError, match="^not a todobot JSON export: nested too deep$"):
        from_json(doc)
    path = tmp_path / "deep.json"
    path.write_text(doc)
    db = tmp_path / "d.sqlite3"
    proc = todobot("import", str(path), "--release", "4.2", "--db", str(db), check=False)
    _refused(proc)
    assert proc.stderr == "todobot: not a todobot JSON export: nested too deep\n"
    assert not db.exists()


CHANGED = ("The database file changed underneath the bot: nothing was changed; a release manager "
           "must restart it.")


def _replace(db: Path) -> None:
    other = db.with_name("other.sqlite3")
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE mine (x)")
    conn.close()
    os.replace(other, db)


def _truncate(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(0)


@pytest.mark.parametrize("change, what", [(_replace, "replaced"), (_truncate, "truncated"),
                                          (Path.unlink, "removed")])
async def test_a_database_file_changed_under_the_bot_stops_its_writes(chat, tmp_path, caplog,
                                                                      change, what):
    from todobot.storage import DatabaseChanged
    db = tmp_path / "todo.sqlite3"
    assert (await chat.say("!add tools nice before")).startswith("Added #4")
    change(db)
    wal = Path(f"{db}-wal")
    logged = wal.read_bytes()
    caplog.clear()
    # Commands (one hand-off, or with a wire id and its own record of the event), then a
    # session statement by statement: each refused in one line, nothing written.
    assert await chat.say("!add tools nice after") == CHANGED
    assert await chat.say("!claim 1", msg_id="$event1") == CHANGED
    with pytest.raises(DatabaseChanged):
        async with chat.repo.session("t"):
            pass
    errors = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert [r.getMessage() for r in errors] == [
        f"database file {db} was {what} while open: stopping writes; restore it from a backup "
        "and restart"]
    assert not [r for r in caplog.records if r.exc_info]
    assert wal.read_bytes() == logged  # not a byte more in the log


@pytest.mark.parametrize("change, what", [(_replace, "replaced"), (_truncate, "truncated")])
async def test_a_change_with_no_write_after_it_is_logged_at_close(chat, tmp_path, caplog,
                                                                   change, what):
    db = tmp_path / "todo.sqlite3"
    change(db)
    if what == "replaced":
        assert (await chat.say("!show 1")).startswith("#1 ")  # reads go on from the open file
    await chat.db.close()
    # One line, and not a second one about a checkpoint into the truncated file.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        f"database file {db} was {what} while open: stopping writes; restore it from a backup "
        "and restart"]
    chat.db = await Database.open(tmp_path / "fresh.sqlite3")  # the fixture closes it


def test_a_console_bot_whose_database_is_truncated_says_so_once(tmp_path):
    """The operator's `: > todobot.sqlite3` under a running bot: the next write is refused in
    one line, the log holds one ERROR line (no traceback, no checkpoint warning at the stop),
    and nothing more lands in the file."""
    import subprocess
    import sys
    db = _seeded(tmp_path)
    log_file = tmp_path / "todobot.log"
    bot = subprocess.Popen(
        [sys.executable, "-m", "todobot", "console", "--db", str(db), "--as", "ijc", "--release", "4.2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
        cwd=tmp_path, env={**os.environ, "TODOBOT_LOG": str(log_file)})
    try:
        bot.stdin.write("!add tools nice before\n")
        bot.stdin.flush()
        assert bot.stdout.readline().startswith("<todobot> Added #20")
        db.write_bytes(b"")  # truncated in place: the same inode
        out, err = bot.communicate("!add tools nice after\n!show 1\n", timeout=60)
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    assert bot.returncode == 0, err
    assert out.splitlines()[0] == f"<todobot> {CHANGED}"
    assert db.stat().st_size == 0
    logged = [line for line in log_file.read_text().splitlines() if " INFO " not in line]
    assert len(logged) == 1 and logged[0].endswith(
        f" ERROR todobot.storage.db: database file {db} was truncated while open: stopping "
        "writes; restore it from a backup and restart"), logged
    assert "Traceback" not in err
