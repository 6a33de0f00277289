"""Numbered schema steps, tracked in `PRAGMA user_version`.

Step N upgrades a database at version N-1 to version N inside one transaction (SQLite's
DDL and user_version are both transactional), so a crash mid-upgrade leaves the previous
version intact. Steps are append-only: never edit one that has shipped.
"""

from __future__ import annotations

import logging

import aiosqlite

log = logging.getLogger(__name__)

STEPS: list[str] = [
    # 1: the list, people and history
    """
    CREATE TABLE releases (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        intro       TEXT NOT NULL DEFAULT '',
        created_by  TEXT NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE milestones (
        id          INTEGER PRIMARY KEY,
        release_id  INTEGER NOT NULL REFERENCES releases(id) ON DELETE CASCADE,
        position    INTEGER NOT NULL,
        when_text   TEXT NOT NULL,
        name        TEXT NOT NULL,
        done        INTEGER NOT NULL DEFAULT 0,
        current     INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX milestones_release ON milestones(release_id, position);
    -- AUTOINCREMENT: item ids are never reused, even after the newest item is deleted.
    CREATE TABLE items (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        release_id   INTEGER NOT NULL REFERENCES releases(id),
        area         TEXT NOT NULL,
        severity     TEXT NOT NULL CHECK (severity IN ('blocker', 'nice')),
        tags         TEXT NOT NULL DEFAULT '[]',
        title        TEXT NOT NULL,
        details      TEXT NOT NULL DEFAULT '',
        owners       TEXT NOT NULL DEFAULT '[]',
        progress     TEXT NOT NULL DEFAULT '',
        state        TEXT NOT NULL DEFAULT 'open'
                     CHECK (state IN ('open', 'done', 'duplicate', 'deferred', 'dropped')),
        parent_id    INTEGER REFERENCES items(id),
        duplicate_of INTEGER REFERENCES items(id),
        links        TEXT NOT NULL DEFAULT '[]',
        created_by   TEXT NOT NULL,
        created_at   REAL NOT NULL,
        updated_by   TEXT NOT NULL,
        updated_at   REAL NOT NULL
    );
    CREATE INDEX items_release ON items(release_id, state);
    CREATE INDEX items_parent ON items(parent_id);
    CREATE TABLE notes (
        id       INTEGER PRIMARY KEY,
        item_id  INTEGER NOT NULL REFERENCES items(id),
        author   TEXT NOT NULL,
        at       REAL NOT NULL,
        text     TEXT NOT NULL
    );
    CREATE INDEX notes_item ON notes(item_id);
    CREATE TABLE people (
        identity      TEXT PRIMARY KEY,
        display_name  TEXT NOT NULL
    );
    CREATE UNIQUE INDEX people_display_name ON people(display_name COLLATE NOCASE);
    CREATE TABLE history (
        id          INTEGER PRIMARY KEY,
        at          REAL NOT NULL,
        actor       TEXT NOT NULL,
        release_id  INTEGER REFERENCES releases(id),
        item_id     INTEGER REFERENCES items(id),
        field       TEXT NOT NULL,
        before      TEXT,
        after       TEXT
    );
    CREATE INDEX history_item ON history(item_id, id);
    CREATE INDEX history_release ON history(release_id, at);
    """,
    # 2: transport bookkeeping — events handled at most once, sync tokens, what the bot said
    """
    CREATE TABLE processed_events (
        transport  TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        at         REAL NOT NULL,
        PRIMARY KEY (transport, event_id)
    ) WITHOUT ROWID;
    CREATE TABLE kv (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE sent_messages (
        transport  TEXT NOT NULL,
        msg_id     TEXT NOT NULL,
        room       TEXT NOT NULL,
        items      TEXT NOT NULL,
        at         REAL NOT NULL,
        PRIMARY KEY (transport, msg_id)
    ) WITHOUT ROWID;
    """,
    # 3: scheduled digests — one slot per (release, transport, room, period start in UTC), claimed
    # before posting and marked sent after; stale-claim pings already made in a room
    """
    CREATE TABLE digest_slots (
        release     TEXT NOT NULL,
        transport   TEXT NOT NULL,
        room        TEXT NOT NULL,
        slot_at     INTEGER NOT NULL,
        status      TEXT NOT NULL
                    CHECK (status IN ('claimed', 'sent', 'skipped', 'failed', 'abandoned')),
        claimed_at  REAL NOT NULL,
        sent_at     REAL,
        detail      TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (release, transport, room, slot_at)
    ) WITHOUT ROWID;
    CREATE INDEX digest_slots_status ON digest_slots(status, claimed_at);
    CREATE TABLE digest_pings (
        transport   TEXT NOT NULL,
        room        TEXT NOT NULL,
        item_id     INTEGER NOT NULL,
        updated_at  REAL NOT NULL,
        at          REAL NOT NULL,
        PRIMARY KEY (transport, room, item_id, updated_at)
    ) WITHOUT ROWID;
    """,
    # 4: mail layouts — the layout a release is exported in, and the heading an item was listed
    # under in layouts that name their sections ("Completed", "Bugs"); '' in the 4.2 layout
    """
    ALTER TABLE releases ADD COLUMN layout TEXT NOT NULL DEFAULT 'xen-4.2';
    ALTER TABLE items ADD COLUMN section TEXT NOT NULL DEFAULT '';
    """,
]

LATEST = len(STEPS)


async def version(conn: aiosqlite.Connection) -> int:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    return int(row[0])


async def migrate(conn: aiosqlite.Connection, target: int = LATEST) -> int:
    """Bring the schema up to `target`; returns the version it ended at."""
    current = await version(conn)
    if current > LATEST:
        raise RuntimeError(
            f"database schema version {current} is newer than this todobot ({LATEST}); upgrade todobot")
    for number in range(current + 1, target + 1):
        log.info("migrating database schema to version %d", number)
        await conn.execute("BEGIN IMMEDIATE")
        try:
            # executescript would COMMIT first; run the statements one by one instead.
            for stmt in _statements(STEPS[number - 1]):
                await conn.execute(stmt)
            await conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    return await version(conn)


def _statements(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
