"""Copies of the database: before a schema upgrade, `Database.backup`, restore, the lock."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys

import aiosqlite
import pytest

from todobot.storage import Database, Repository
from todobot.storage import backups
from todobot.storage.migrations import LATEST, migrate, version
from tests.test_faults import _create, _env


async def _old_database(path, schema=1):
    conn = await aiosqlite.connect(path, isolation_level=None)
    assert await migrate(conn, target=schema) == schema
    await conn.execute("INSERT INTO releases (name, created_by, created_at) VALUES ('4.1', 'x', 0)")
    await conn.close()


async def test_an_upgrade_keeps_a_copy_of_the_old_database(tmp_path, caplog):
    path = tmp_path / "todobot.sqlite3"
    await _old_database(path)
    db = await Database.open(path)
    await db.close()
    saved = tmp_path / f"todobot.sqlite3.pre-v{LATEST}.bak"
    assert f"saved a copy at {saved}" in caplog.text
    conn = sqlite3.connect(saved)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT name FROM releases").fetchall() == [("4.1",)]
    conn.close()
    # Current databases and new ones get no copy.
    saved.unlink()
    db = await Database.open(path)
    await db.close()
    db = await Database.open(tmp_path / "new.sqlite3")
    await db.close()
    assert not list(tmp_path.glob("*.bak"))


async def test_close_checkpoints_the_write_ahead_log(tmp_path, chat):
    async with chat.repo.session("t") as s:
        rel = await s.require_release("4.2")
        await s.add_item(rel, area="tools", severity="nice", title="written before close")
    wal = tmp_path / "todo.sqlite3-wal"
    assert wal.exists() and wal.stat().st_size > 0
    # Another process has the file open (so closing the last connection is not what folds it).
    other = sqlite3.connect(tmp_path / "todo.sqlite3")
    other.execute("SELECT COUNT(*) FROM items").fetchone()
    await chat.db.close()
    assert wal.stat().st_size == 0
    other.close()
    # The main file alone holds everything.
    conn = sqlite3.connect(f"file:{tmp_path / 'todo.sqlite3'}?mode=ro&immutable=1", uri=True)
    assert conn.execute("SELECT COUNT(*) FROM items WHERE title = 'written before close'").fetchone()[0] == 1
    conn.close()
    chat.db = await Database.open(tmp_path / "todo.sqlite3")  # the fixture closes it again


async def test_a_missing_directory_is_refused_not_created(tmp_path):
    with pytest.raises(FileNotFoundError, match="nosuch: no such directory"):
        await Database.open(tmp_path / "nosuch" / "x.sqlite3")
    assert not (tmp_path / "nosuch").exists()


async def test_restore_refuses_while_the_database_is_open(tmp_path):
    live = tmp_path / "live.sqlite3"
    db = await Database.open(live)
    async with Repository(db).session("t") as s:
        await s.create_release("4.2")
    backup = tmp_path / "b.sqlite3"
    await db.backup(backup)
    with pytest.raises(backups.DatabaseInUse, match="in use by a running todobot"):
        backups.restore(backup, live)
    await db.close()
    # And a bot cannot open it while a restore holds it.
    with backups.exclusive(live):
        with pytest.raises(backups.DatabaseInUse, match="being restored"):
            await Database.open(live)


async def test_restore_replaces_the_database_and_keeps_the_old_one(tmp_path):
    live = tmp_path / "live.sqlite3"
    db = await Database.open(live)
    async with Repository(db).session("t") as s:
        await s.create_release("4.2")
    backup = tmp_path / "b.sqlite3"
    await db.backup(backup)
    async with Repository(db).session("t") as s:
        await s.create_release("after the backup")
    await db.close()
    kept = backups.restore(backup, live)
    assert kept is not None and kept.name.startswith("live.sqlite3.replaced-")
    names = lambda p: [r[0] for r in sqlite3.connect(p).execute("SELECT name FROM releases ORDER BY id")]  # noqa: E731
    assert names(live) == ["4.2"]
    assert names(kept) == ["4.2", "after the backup"]
    db = await Database.open(live)
    assert await version(db.conn) == LATEST
    await db.close()


@pytest.mark.parametrize("content", [b"", b"not a database at all" * 100])
def test_restore_checks_the_file(tmp_path, content):
    live = tmp_path / "live.sqlite3"
    sqlite3.connect(live).execute("CREATE TABLE x (y)").connection.close()
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(content)
    with pytest.raises(backups.BackupError):
        backups.restore(bad, live)
    assert sqlite3.connect(live).execute("SELECT name FROM sqlite_master").fetchall() == [("x",)]
    with pytest.raises(backups.BackupError, match="no such file"):
        backups.restore(tmp_path / "missing.sqlite3", live)


def test_dated_backups_and_pruning(tmp_path):
    from datetime import datetime, timezone
    made = []
    for day in range(1, 5):
        name = backups.dated_name("todobot.sqlite3", datetime(2026, 12, day, 9, 0, tzinfo=timezone.utc))
        (tmp_path / name).write_text("x")
        made.append(name)
    assert made[0] == "todobot-20261201T090000Z.sqlite3"
    (tmp_path / "todobot-mine.sqlite3").write_text("not one of ours")
    gone = backups.prune(tmp_path, "todobot.sqlite3", keep=2)
    assert [p.name for p in gone] == made[:2]
    assert sorted(p.name for p in tmp_path.iterdir()) == made[2:] + ["todobot-mine.sqlite3"]


def _fingerprint(paths):
    """What a copy written over one of these files would change: inode and bytes."""
    return {p: (p.stat().st_ino, p.read_bytes()) for p in paths if p.exists()}


async def test_a_copy_never_lands_on_the_databases_own_files(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    live = real / "live.sqlite3"
    db = await Database.open(live)
    try:
        async with Repository(db).session("t") as s:
            await s.create_release("4.2")
        own = [live] + [real / f"live.sqlite3{side}" for side in ("-wal", "-shm", "-journal", ".lock")]
        (real / "live.sqlite3-journal").write_bytes(b"")  # as a rollback-mode writer leaves it
        assert all(p.exists() for p in own)
        before = _fingerprint(own)
        # The database reached through a symlink: SQLite keeps its side files by the target.
        (tmp_path / "other").mkdir()
        by_link = tmp_path / "other" / "link.sqlite3"
        by_link.symlink_to(live)
        (tmp_path / "to-wal").symlink_to(real / "live.sqlite3-wal")
        os.link(live, tmp_path / "hard.sqlite3")
        for dest in own + [tmp_path / "to-wal", tmp_path / "hard.sqlite3"]:
            with pytest.raises(backups.OwnFile, match=r"is the database( itself|'s )"):
                backups.copy(live, dest)
            with pytest.raises(backups.OwnFile):
                backups.copy(by_link, dest)
            with pytest.raises(backups.OwnFile):
                await db.backup(dest)
        with pytest.raises(backups.OwnFile, match="live.sqlite3-wal is the database's write-ahead "
                           "log: back it up to another file, or to a directory"):
            backups.copy(live, real / "live.sqlite3-wal")
        assert _fingerprint(own) == before
        # A name that merely starts like the database's is a file like any other.
        assert backups.copy(live, real / "live.sqlite3-walnut") > 0
    finally:
        await db.close()


def test_restore_refuses_the_databases_own_files_as_its_source(tmp_path):
    live = tmp_path / "live.sqlite3"
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE items (x)")
    before = _fingerprint([live])
    for side in ("", "-wal", "-shm"):
        with pytest.raises(backups.OwnFile, match=f"live.sqlite3{side} is the database.*, not a "
                           "backup: name a copy made by `todobot backup`"):
            backups.restore(f"{live}{side}", live)
    assert _fingerprint([live]) == before
    conn.close()
    assert not list(tmp_path.glob("*.replaced-*"))


@pytest.mark.slow
def test_backup_onto_the_live_write_ahead_log_is_refused_while_a_bot_writes(tmp_path):
    """A console bot writes; `todobot backup DB-wal` (or -shm, or through a symlink) from a
    second process is refused and touches nothing: other processes read every acknowledged
    item, and after a kill -9 of the bot they are all still in the file."""
    db = tmp_path / "t.sqlite3"
    asyncio.run(_create(db))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "wal-link").symlink_to(f"{db}-wal")
    bot = subprocess.Popen(
        [sys.executable, "-m", "todobot", "console", "--db", str(db), "--as", "ijc", "--release", "4.2"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=tmp_path,
        env=_env(tmp_path))
    acknowledged = []

    def add(title: str) -> None:
        bot.stdin.write(f"!add tools nice {title}\n")
        bot.stdin.flush()
        line = bot.stdout.readline()
        assert line.startswith("<todobot> Added #"), line
        acknowledged.append(title)

    def titles() -> set[str]:
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            return {r[0] for r in conn.execute("SELECT title FROM items")}
        finally:
            conn.close()

    try:
        add("written before the backup")
        for dest in (f"{db}-wal", f"{db}-shm", "elsewhere/wal-link"):
            proc = subprocess.run([sys.executable, "-m", "todobot", "backup", dest, "--db", str(db)],
                                  capture_output=True, text=True, cwd=tmp_path, env=_env(tmp_path),
                                  timeout=60)
            assert proc.returncode == 2, proc.stderr
            assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
            assert proc.stderr.startswith(f"todobot: {dest} is the database's "), proc.stderr
            assert "back it up to another file, or to a directory" in proc.stderr
        add("written after the backup was refused")
        assert set(acknowledged) <= titles()  # read by another process while the bot runs
    finally:
        bot.send_signal(signal.SIGKILL)
        bot.wait(timeout=20)
        bot.stdin.close()
        bot.stdout.close()
    assert set(acknowledged) <= titles()
