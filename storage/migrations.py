"""Numbered schema steps, tracked in `PRAGMA user_version`.

Step N upgrades a database at version N-1 to version N inside one transaction (SQLite's
DDL and user_version are both transactional), so a crash mid-upgrade leaves the previous
version intact. Steps are append-only: never edit one that has shipped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

import aiosqlite

from .names import clean, name_key

log = logging.getLogger(__name__)

class SchemaTooNew(RuntimeError):
    """The database was written by a newer todobot."""


Step = str | Callable[[aiosqlite.Connection], Awaitable[None]]


async def _people(conn: aiosqlite.Connection) -> None:
    """4: people as persons with identities; item owners as person ids.

    A person has one display name (unique under `name_key`) and any number of identities
    (`irc:oftc/ijc`, `matrix:@ijc:example.org`, ...); a person without one is a placeholder
    (an owner named in an imported mail). Every name that owned an item becomes a person: the
    one `people` already bound to an identity, else a placeholder.
    """
    for stmt in _statements("""
    CREATE TABLE persons (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        name_key    TEXT NOT NULL UNIQUE,
        created_at  REAL NOT NULL
    );
    CREATE TABLE identities (
        identity   TEXT PRIMARY KEY,
        person_id  INTEGER NOT NULL REFERENCES persons(id)
    ) WITHOUT ROWID;
    CREATE INDEX identities_person ON identities(person_id);
    -- `!iam NAME` for a name a placeholder holds waits here for a release manager.
    CREATE TABLE name_requests (
        identity   TEXT PRIMARY KEY,
        person_id  INTEGER NOT NULL REFERENCES persons(id),
        at         REAL NOT NULL
    ) WITHOUT ROWID;
    """):
        await conn.execute(stmt)
    by_key: dict[str, int] = {}

    async def person(name: str) -> int:
        name = clean(name) or "?"
        key = name_key(name)
        if key not in by_key:
            cur = await conn.execute(
                "INSERT INTO persons (name, name_key, created_at) VALUES (?, ?, strftime('%s'))",
                (name, key))
            by_key[key] = cur.lastrowid  # type: ignore[assignment]
        return by_key[key]

    async with conn.execute("SELECT identity, display_name FROM people ORDER BY rowid") as cur:
        for identity, display_name in await cur.fetchall():
            await conn.execute("INSERT INTO identities (identity, person_id) VALUES (?, ?)",
                               (identity, await person(display_name)))
    async with conn.execute("SELECT id, owners FROM items WHERE owners != '[]'") as cur:
        rows = await cur.fetchall()
    for item_id, owners in rows:
        ids = list(dict.fromkeys([await person(str(n)) for n in json.loads(owners)]))
        await conn.execute("UPDATE items SET owners = ? WHERE id = ?", (json.dumps(ids), item_id))
    await conn.execute("DROP TABLE people")


async def _confirmed_names(conn: aiosqlite.Connection) -> None:
    """7: names a release manager confirmed, and names compared as people see them.

    `confirmed_key` is the name (as `name_key`) a release manager bound to the person; an
    import gives items only to a name's confirmed holder. Persons bound by `!person link`
    before (an identity's history row written by someone other than that identity) count as
    confirmed. Keys are computed again under the stricter `clean`; a key another person
    already has keeps its old form (a release manager merges the two).
    """
    await conn.execute("ALTER TABLE persons ADD COLUMN confirmed_key TEXT")
    async with conn.execute("SELECT id, name, name_key FROM persons ORDER BY id") as cur:
        rows = await cur.fetchall()
    keys = {row[2] for row in rows}
    for person_id, name, old in rows:
        new = name_key(name)
        if new != old and new not in keys:
            await conn.execute("UPDATE persons SET name_key = ? WHERE id = ?", (new, person_id))
            keys.discard(old)
            keys.add(new)
    await conn.execute(
        "UPDATE persons SET confirmed_key = name_key WHERE EXISTS (SELECT 1 FROM identities"
        " JOIN history ON history.field = 'identity ' || identities.identity"
        " AND history.actor != identities.identity AND history.before IS NULL"
        " WHERE identities.person_id = persons.id)")


def _default_names(identity: str) -> set[str]:
    """The names an identity without `!iam` was shown as before schema 4: its nick or account
    (`console:george`, `irc:oftc/george`) or a Matrix id's localpart."""
    tail = identity.split(":", 1)[-1].rsplit("/", 1)[-1]
    return {name_key(n) for n in (tail, tail.lstrip("@").split(":", 1)[0]) if clean(n)}


async def _rebind_claims(conn: aiosqlite.Connection) -> None:
    """9: owners the schema 4 step left unbound get their identity back.

    Before schema 4 owners were names, and someone who never said `!iam` owned items under
    the name the transport showed (`console:george` as "george"); the schema 4 step bound only
    `!iam` names, so such an owner became a placeholder nobody could act for. History says who
    it was: an `owners` change, written before the placeholder existed, in which an identity
    added its own shown name. Only placeholders the schema 4 step made qualify (any made
    since have a `person` history row written with them). If the identity has spoken since
    and got a person of its own, the two are merged: into the placeholder when the newer
    person only carries the automatic "name (identity)", else into the person it chose.
    """
    async with conn.execute(
            "SELECT id, name, name_key, created_at FROM persons WHERE NOT EXISTS"
            " (SELECT 1 FROM identities WHERE person_id = persons.id) AND NOT EXISTS"
            " (SELECT 1 FROM history WHERE field = 'person' AND before IS NULL"
            "  AND at = persons.created_at) ORDER BY id") as cur:
        placeholders = await cur.fetchall()
    for person_id, name, key, created_at in placeholders:
        async with conn.execute(
                "SELECT DISTINCT actor, before, after FROM history WHERE field = 'owners'"
                " AND at < ? AND after IS NOT NULL ORDER BY id", (created_at,)) as cur:
            rows = await cur.fetchall()
        claimers = []
        for actor, before, after in rows:
            added = {name_key(str(n)) for n in _names(after)} - {
                name_key(str(n)) for n in _names(before)}
            if key in added and key in _default_names(actor) and actor not in claimers:
                claimers.append(actor)
        for identity in claimers:
            await _bind(conn, person_id, name, identity)


def _names(value: str | None) -> list[object]:
    try:
        names = json.loads(value) if value else []
    except ValueError:
        return []
    return names if isinstance(names, list) else []


async def _bind(conn: aiosqlite.Connection, person_id: int, name: str, identity: str) -> None:
    async with conn.execute("SELECT persons.id, persons.name FROM identities JOIN persons"
                            " ON persons.id = identities.person_id WHERE identity = ?",
                            (identity,)) as cur:
        other = await cur.fetchone()
    keep, gone = person_id, None
    if other is not None:
        auto = other[1].startswith(f"{name} (")
        keep, gone = (person_id, other[0]) if auto else (other[0], person_id)
        async with conn.execute("SELECT items.id, items.owners FROM items, json_each("
                                "items.owners) AS o WHERE o.value = ?", (gone,)) as cur:
            for item_id, owners in await cur.fetchall():
                moved = [keep if o == gone else o for o in json.loads(owners)]
                await conn.execute("UPDATE items SET owners = ? WHERE id = ?",
                                   (json.dumps(list(dict.fromkeys(moved))), item_id))
        await conn.execute("UPDATE identities SET person_id = ? WHERE person_id = ?",
                           (keep, gone))
        await conn.execute("DELETE FROM name_requests WHERE person_id = ?", (gone,))
        await conn.execute("DELETE FROM persons WHERE id = ?", (gone,))
    else:
        await conn.execute("INSERT INTO identities (identity, person_id) VALUES (?, ?)",
                           (identity, person_id))
    await conn.execute("DELETE FROM name_requests WHERE identity = ?", (identity,))
    await conn.execute(
        "INSERT INTO history (at, actor, field, before, after) VALUES"
        " (strftime('%s'), 'upgrade', ?, NULL, ?)", (f"identity {identity}", name))
    log.info("upgrade: %s owns again what it claimed as %s", identity, name)


async def _search(conn: aiosqlite.Connection) -> None:
    """10: full-text search and watches. Search: an FTS5 index of each item's tags and title,
    details, notes and links (rowid = item id), kept current by triggers on `items` and `notes` so that no write
    path can forget it, and built here for the items already there. unicode61 with diacritics
    removed: "Roger Pau Monné" is found as "monne". `rel` holds the release as one token
    (`r12`): a search in one release intersects with its posting list inside FTS5 instead of
    ranking every release's matches. (Triggers hold `;`: run one by one.) Watches: who
    follows which item, and who turned all of it off."""
    notes_of = "coalesce((SELECT group_concat(text, ' ') FROM notes WHERE item_id = {}), '')"
    for stmt in (
        "CREATE VIRTUAL TABLE items_fts USING fts5(title, details, notes, links, rel,"
        " tokenize = 'unicode61 remove_diacritics 2')",
        "CREATE TRIGGER items_fts_insert AFTER INSERT ON items BEGIN"
        " INSERT INTO items_fts (rowid, title, details, notes, links, rel)"
        " VALUES (new.id, new.tags || ' ' || new.title, new.details, '', new.links,"
        " 'r' || new.release_id); END",
        "CREATE TRIGGER items_fts_update AFTER UPDATE OF tags, title, details, links, release_id"
        " ON items BEGIN UPDATE items_fts SET title = new.tags || ' ' || new.title,"
        " details = new.details, links = new.links, rel = 'r' || new.release_id"
        " WHERE rowid = new.id; END",
        "CREATE TRIGGER items_fts_delete AFTER DELETE ON items BEGIN"
        " DELETE FROM items_fts WHERE rowid = old.id; END",
        "CREATE TRIGGER notes_fts_insert AFTER INSERT ON notes BEGIN"
        f" UPDATE items_fts SET notes = {notes_of.format('new.item_id')} WHERE rowid = new.item_id; END",
        # `!dup` moves notes to another item: both items' notes change.
        "CREATE TRIGGER notes_fts_update AFTER UPDATE ON notes BEGIN"
        f" UPDATE items_fts SET notes = {notes_of.format('old.item_id')} WHERE rowid = old.item_id;"
        f" UPDATE items_fts SET notes = {notes_of.format('new.item_id')} WHERE rowid = new.item_id; END",
        "CREATE TRIGGER notes_fts_delete AFTER DELETE ON notes BEGIN"
        f" UPDATE items_fts SET notes = {notes_of.format('old.item_id')} WHERE rowid = old.item_id; END",
        "INSERT INTO items_fts (rowid, title, details, notes, links, rel)"
        f" SELECT id, tags || ' ' || title, details, {notes_of.format('items.id')}, links,"
        " 'r' || release_id FROM items",
        # Watches: `watching` 1 is `!watch ID`, 0 is `!unwatch ID` (which also silences the
        # default watch of an item's owners); a person in `watch_off` is told nothing.
        "CREATE TABLE watches (person_id INTEGER NOT NULL REFERENCES persons(id),"
        " item_id INTEGER NOT NULL REFERENCES items(id), watching INTEGER NOT NULL,"
        " at REAL NOT NULL, PRIMARY KEY (person_id, item_id)) WITHOUT ROWID",
        "CREATE INDEX watches_item ON watches(item_id)",
        "CREATE TABLE watch_off (person_id INTEGER PRIMARY KEY REFERENCES persons(id),"
        " at REAL NOT NULL)",
    ):
        await conn.execute(stmt)

STEPS: list[Step] = [
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
    _people,
    # 5: mail layouts — the layout a release is exported in, and the heading an item was listed
    # under in layouts that name their sections ("Completed", "Bugs"); '' in the 4.2 layout
    """
    ALTER TABLE releases ADD COLUMN layout TEXT NOT NULL DEFAULT 'xen-4.2';
    ALTER TABLE items ADD COLUMN section TEXT NOT NULL DEFAULT '';
    """,
    # 6: listings on large lists — a release's open items in list order (blockers first, then
    # by id) come straight from this index, the first page without sorting the release, and
    # its counts (how many, how many unclaimed) from the index alone. It covers what
    # items_release(release_id, state) served, which goes.
    """
    CREATE INDEX items_listing ON items(release_id, state, severity, id, owners);
    DROP INDEX items_release;
    """,
    _confirmed_names,
    # 8: starting a release in chat — the subject of the mail a release was imported from (its
    # weekly mail keeps it; '' when none), and the release a room chose with `!release new`
    # (the config's release for a room still wins over it)
    """
    ALTER TABLE releases ADD COLUMN subject TEXT NOT NULL DEFAULT '';
    CREATE TABLE room_releases (
        transport   TEXT NOT NULL,
        room        TEXT NOT NULL,
        release_id  INTEGER NOT NULL REFERENCES releases(id),
        at          REAL NOT NULL,
        PRIMARY KEY (transport, room)
    ) WITHOUT ROWID;
    """,
    _rebind_claims,
    _search,
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
        raise SchemaTooNew(f"the database's schema (version {current}) is newer than this "
                           f"todobot's ({LATEST}); upgrade todobot")
    for number in range(current + 1, target + 1):
        log.info("migrating database schema to version %d", number)
        await conn.execute("BEGIN IMMEDIATE")
        try:
            step = STEPS[number - 1]
            if isinstance(step, str):
                # executescript would COMMIT first; run the statements one by one instead.
                for stmt in _statements(step):
                    await conn.execute(stmt)
            else:
                await step(conn)
            await conn.execute(f"PRAGMA user_version = {number}")
        except BaseException:
            await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")
    return await version(conn)


def _statements(script: str) -> list[str]:
    lines = [ln for ln in script.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
