"""The database: pragmas, migrations, ids, history, events, backup."""

from __future__ import annotations

import sqlite3

import aiosqlite
import pytest

from todobot.storage import Database, DatabaseProblem, Repository
from todobot.storage.migrations import LATEST, STEPS, migrate, version


async def test_pragmas(tmp_path):
    db = await Database.open(tmp_path / "a.sqlite3")
    try:
        async with db.conn.execute("PRAGMA journal_mode") as cur:
            assert (await cur.fetchone())[0] == "wal"
        async with db.conn.execute("PRAGMA foreign_keys") as cur:
            assert (await cur.fetchone())[0] == 1
        async with db.conn.execute("PRAGMA busy_timeout") as cur:
            assert (await cur.fetchone())[0] >= 5000
        assert await version(db.conn) == LATEST
    finally:
        await db.close()


async def test_migrates_from_a_previous_schema_keeping_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = await aiosqlite.connect(path, isolation_level=None)
    assert await migrate(conn, target=1) == 1
    await conn.execute("INSERT INTO releases (name, created_by, created_at) VALUES ('4.1', 'x', 0)")
    await conn.execute("INSERT INTO items (release_id, area, severity, title, created_by, created_at,"
                       " updated_by, updated_at) VALUES (1, 'tools', 'blocker', 'old item', 'x', 0, 'x', 0)")
    await conn.close()
    db = await Database.open(path)
    try:
        assert await version(db.conn) == LATEST
        async with Repository(db).session("t") as s:
            assert (await s.get(1)).title == "old item"
            assert await s.record_event("matrix", "$ev1")  # a table from step 2
    finally:
        await db.close()


async def test_failed_step_rolls_back_whole(tmp_path, monkeypatch):
    import todobot.storage.migrations as m
    monkeypatch.setattr(m, "STEPS", STEPS + ["CREATE TABLE ok_table (x); THIS IS NOT SQL"])
    conn = await aiosqlite.connect(tmp_path / "b.sqlite3", isolation_level=None)
    try:
        with pytest.raises(sqlite3.OperationalError):
            await m.migrate(conn, target=len(m.STEPS))
        assert await version(conn) == LATEST
        async with conn.execute("SELECT name FROM sqlite_master WHERE name = 'ok_table'") as cur:
            assert await cur.fetchone() is None
    finally:
        await conn.close()


async def test_refuses_a_newer_schema(tmp_path):
    path = tmp_path / "new.sqlite3"
    conn = await aiosqlite.connect(path, isolation_level=None)
    await conn.execute(f"PRAGMA user_version = {LATEST + 1}")
    await conn.close()
    with pytest.raises(DatabaseProblem, match="newer than this todobot"):
        await Database.open(path)


async def test_ids_are_never_reused(tmp_path):
    db = await Database.open(tmp_path / "c.sqlite3")
    repo = Repository(db)
    try:
        async with repo.session("t") as s:
            rel = await s.create_release("4.2")
            a = await s.add_item(rel, area="a", severity="nice", title="one")
            b = await s.add_item(rel, area="a", severity="nice", title="two")
            await s.conn.execute("DELETE FROM history WHERE item_id = ?", (b.id,))
            await s.conn.execute("DELETE FROM items WHERE id = ?", (b.id,))
            c = await s.add_item(rel, area="a", severity="nice", title="three")
        assert (a.id, b.id, c.id) == (1, 2, 3)
    finally:
        await db.close()


async def test_foreign_keys_enforced(tmp_path):
    db = await Database.open(tmp_path / "d.sqlite3")
    try:
        async with Repository(db).session("t") as s:
            rel = await s.create_release("4.2")
            with pytest.raises(sqlite3.IntegrityError):
                await s.add_item(rel, area="a", severity="nice", title="orphan", parent=999)
    finally:
        await db.close()


async def test_events_are_recorded_once(tmp_path):
    db = await Database.open(tmp_path / "e.sqlite3")
    try:
        async with Repository(db).session("t") as s:
            assert await s.record_event("matrix", "$1") is True
            assert await s.record_event("matrix", "$1") is False
            assert await s.record_event("irc:x", "$1") is True
    finally:
        await db.close()


async def test_command_and_event_share_a_transaction(chat):
    """The event id is recorded with the command's effect: a replay is skipped silently."""
    assert (await chat.say("!status 1 posted", msg_id="$abc")).startswith("#1 progress")
    assert await chat.say("!status 1 again", msg_id="$abc") is None
    assert (await chat.item(1)).progress == "posted"
    assert (await chat.say("!done 99", msg_id="$err")) == "No item #99: !todo lists the open ones, !find TEXT finds any."
    assert await chat.say("!done 99", msg_id="$err") is None


async def test_backup_is_a_consistent_copy(tmp_path, chat):
    dest = tmp_path / "copy.sqlite3"
    await chat.db.backup(dest)
    copy = await Database.open(dest)
    try:
        async with Repository(copy).session("t", write=False) as s:
            assert (await s.get(3)).owners == ["Jinsong Liu"]
        async with copy.conn.execute("PRAGMA integrity_check") as cur:
            assert (await cur.fetchone())[0] == "ok"
    finally:
        await copy.close()
    # An existing file is replaced whole (through a checked temporary copy), never appended to.
    dest.write_bytes(b"an older backup")
    assert await chat.db.backup(dest) == dest.stat().st_size
    assert sqlite3.connect(dest).execute("SELECT title FROM items WHERE id = 3").fetchone()[0] == \
        "vMCE save/restore changes"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".copy")] == []


async def test_a_rename_rolled_back_leaves_the_name(chat):
    assert await chat.say("!iam Ian Campbell") == "You are now Ian Campbell (was ijc)."
    with pytest.raises(RuntimeError):
        async with chat.repo.session("console:ijc") as s:
            person = await s.person_of("console:ijc")
            await s.rename_person(person, "Somebody Else")
            assert (await s.person_of("console:ijc")).name == "Somebody Else"
            raise RuntimeError("rolled back")
    assert (await chat.say("!whoami")).startswith("You are console:ijc, shown as Ian Campbell")
    # Nobody takes a name another person holds, release managers included.
    await chat.say("!iam Tim Deegan", "tim")
    assert await chat.say("!iam Tim Deegan") == "Tim Deegan is taken by console:tim."
    assert "shown as Tim Deegan." in await chat.say("!whoami", "tim")


async def test_old_event_ids_are_pruned(tmp_path):
    db = await Database.open(tmp_path / "p.sqlite3")
    try:
        async with Repository(db, clock=lambda: 1000.0).session("t") as s:
            await s.record_event("matrix", "$old")
        async with Repository(db, clock=lambda: 5000.0).session("t") as s:
            await s.record_event("matrix", "$new")
            assert await s.prune_events(older_than=2000.0) == 1
            # A pruned id is new again; a kept one is still known.
            assert await s.record_event("matrix", "$old") and not await s.record_event("matrix", "$new")
    finally:
        await db.close()
