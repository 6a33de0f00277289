"""Copies of the database: before a schema upgrade, `Database.backup`, restore, the lock."""

from __future__ import annotations

import sqlite3

import aiosqlite
import pytest

from todobot.storage import Database, Repository
from todobot.storage import backups
from todobot.storage.migrations import LATEST, migrate, version


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
