"""The repository: every read and write of the list, with history, inside one transaction.

    async with repo.session(actor="console:ijc") as s:
        item = await s.get(12)
        await s.update(item, progress="patch posted")

A session is one transaction (see `Database.transaction`); every change it makes is written
to the history table with who, when, which item, field, before and after.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, TypeVar

from .db import Database
from .models import (MAX_DEPTH, SEVERITIES, STATES, Change, Item, ListItem, Milestone, Release,
                     ReleaseList)
from .names import clean, name_key
from .people import PeopleSession
from .search import SearchSession
from .watches import WatchSession


class NotFound(LookupError):
    """An id or name that does not exist; the message is fit for a user."""


T = TypeVar("T")
_JSON_FIELDS = ("tags", "owners", "links")
_ITEM_FIELDS = ("area", "severity", "tags", "title", "details", "owners", "progress", "state",
                "parent", "duplicate_of", "links", "section")
_COLUMN = {"parent": "parent_id"}


def _dump(value: Any) -> str | None:
    if value is None:
        return None
    if not value and isinstance(value, (list, tuple)):
        return "[]"  # most lists are empty: skip the encoder
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


def _list(raw: str) -> list[str]:
    return [] if raw == "[]" else json.loads(raw)  # most lists are empty: skip the decoder


# Item rows, in the order `_item` unpacks them: by position, which costs a third of reading
# by name. `owners` holds person ids, in order; `_named` adds their names.
ITEM_COLUMNS = ("items.id, items.area, items.severity, items.title, items.tags, items.details,"
                " items.owners, items.progress, items.state, items.parent_id, items.duplicate_of,"
                " items.links, items.section, items.created_by, items.created_at, items.updated_by,"
                " items.updated_at")
# Lists deeper than this are shown flattened at this depth: every walk over the tree
# (mail, JSON, the digest, the status page) stays far from Python's recursion limit, whatever
# an older version let into the database.
RENDER_DEPTH = 12


def _item(row: sqlite3.Row | tuple, release: str, notes: list[str] | None = None) -> Item:
    """A row selected with ITEM_COLUMNS first (further columns are ignored) as an Item whose
    owners' names are still to be added (`Session._named`)."""
    (item_id, area, severity, title, tags, details, owners, progress, state, parent, duplicate_of,
     links, section, created_by, created_at, updated_by, updated_at) = row[:17]
    # Positional, in Item's field order: a listing builds thousands of these.
    return Item(item_id, release, area, severity, title, _list(tags), details, [], _list(owners),
                progress, state, parent, duplicate_of, _list(links), notes or [], section,
                created_by, created_at, updated_by, updated_at)


def _release(row: sqlite3.Row) -> Release:
    return Release(row["id"], row["name"], row["intro"], row["created_at"], row["layout"],
                   row["subject"])


def title_key(title: str) -> str:
    """The form under which two titles are the same item's on re-import (and in a reply that
    pastes the list back). Cleaned: one stored before titles were cleaned still matches."""
    return clean(title).casefold()


def section_key(it: Item | ListItem) -> tuple[str, str, str]:
    """Which section of the list an item is in, for matching on re-import: the named heading
    where the layout has one, else (severity, area) as in the 4.2 layout."""
    return (it.section.casefold(), "" if it.section else it.severity, it.area.casefold())


def list_tree(items: list[Item], notes: dict[int, list[str]] | None = None) -> list[ListItem]:
    """Stored items (in list order) as the nested form the formats carry."""
    notes = notes or {}
    nodes = {it.id: ListItem(
        area=it.area, severity=it.severity, title=it.title, tags=it.tags, details=it.details,
        owners=it.owners, progress=it.progress, state=it.state, links=it.links,
        notes=notes.get(it.id, []), id=it.id, duplicate_of=it.duplicate_of, section=it.section)
        for it in items}
    roots: list[ListItem] = []
    depth: dict[int, int] = {}
    parent_of = {it.id: it.parent for it in items}
    for it in items:
        parent_id = it.parent if it.parent in nodes else None
        # Past RENDER_DEPTH an item hangs under its ancestor at that depth.
        while parent_id is not None and depth.get(parent_id, 0) >= RENDER_DEPTH:
            parent_id = parent_of.get(parent_id)
        depth[it.id] = depth[parent_id] + 1 if parent_id is not None and parent_id in depth else 1
        (nodes[parent_id].children if parent_id is not None else roots).append(nodes[it.id])
    return roots


def list_depth(nodes: list[ListItem]) -> int:
    """How deep a list's items nest (1: no sub-items), walked without recursion."""
    deepest, stack = 0, [(n, 1) for n in nodes]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((c, depth + 1) for c in node.children)
    return deepest


class Repository:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    @asynccontextmanager
    async def session(self, actor: str, write: bool = True) -> AsyncIterator["Session"]:
        """A transaction whose statements each go to the database thread and back: for
        work that awaits other things between them (the network, a renderer's thread)."""
        async with self.db.transaction(write=write):
            yield Session(actor, self.clock(), db=self.db)

    async def run(self, actor: str, work: Callable[["Session"], Coroutine[Any, Any, T]], *,
                  write: bool = True) -> T:
        """`await work(session)` as one transaction in ONE hand-off to the database thread:
        the session's methods run their SQL right there, so the coroutine never suspends and
        is driven to its end in that thread. `work` may await the session (and code that
        only awaits the session) but nothing else: anything that would suspend it is a
        programming error, refused with a RuntimeError (the transaction rolls back)."""
        now = self.clock()

        def whole(conn: sqlite3.Connection) -> T:
            return _drive(work(Session(actor, now, raw=conn)))
        return await self.db.run_transaction(whole, write=write)


def _drive(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, here and now."""
    try:
        waited = coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError(f"{coro.__qualname__} waited for {waited!r} inside a database "
                       "session run in one hand-off (Repository.run); only the session may be "
                       "awaited there")


class Session(PeopleSession, SearchSession, WatchSession):
    """One transaction's reads and writes. Built by `Repository.session` (each statement a
    hand-off to the database thread: `db`) or by `Repository.run` (already in that thread,
    on the plain connection: `raw`)."""

    def __init__(self, actor: str, now: float, *, db: Database | None = None,
                 raw: sqlite3.Connection | None = None) -> None:
        self._db = db
        self._raw = raw
        # aiosqlite's connection (or, in the database thread, sqlite3's): for tests that
        # poke the database directly. Storage code uses the helpers below.
        self.conn: Any = raw if raw is not None else db.conn if db is not None else None
        self.actor = actor
        self.now = now

    # -- small helpers: every statement of the repository goes through `_sql` -----------------
    async def _sql(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._raw is not None:
            return work(self._raw)  # in the database thread already (`Repository.run`)
        assert self._db is not None
        return await self._db.run(work)

    async def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        return await self._sql(lambda c: c.execute(sql, args).fetchone())

    async def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        return await self._sql(lambda c: c.execute(sql, args).fetchall())

    async def _each(self, sql: str, fn: Callable[[tuple], T], *args: Any) -> list[T]:
        """`fn` of each row, the row a plain tuple dropped as soon as it is used: for reads
        of thousands of rows, where holding them all as sqlite3.Rows costs twice the memory
        and keeps the garbage collector busy."""
        def work(c: sqlite3.Connection) -> list[T]:
            cur = c.cursor()
            cur.row_factory = None
            return [fn(row) for row in cur.execute(sql, args)]
        return await self._sql(work)

    async def _named(self, items: list[Item]) -> list[Item]:
        """Give items just read their owners' names, in their order (an id with no person is
        left out), with one query for all of them: naming them row by row in SQL cost a
        5,000-item read a quarter of its time."""
        ids = sorted({i for it in items for i in it.owner_ids if type(i) is int})
        names: dict[int, str] = {}
        for start in range(0, len(ids), 500):  # stay under SQLite's variable limit
            chunk = ids[start:start + 500]
            names.update(await self._each(
                f"SELECT id, name FROM persons WHERE id IN ({','.join('?' * len(chunk))})", tuple, *chunk))
        for it in items:
            if it.owner_ids:
                it.owners = [names[i] for i in it.owner_ids if i in names]
        return items

    async def execute(self, sql: str, args: Iterable[Any] = ()) -> sqlite3.Cursor:
        """One statement; the cursor tells `rowcount` and `lastrowid`."""
        args = tuple(args)
        return await self._sql(lambda c: c.execute(sql, args))

    async def executemany(self, sql: str, rows: Iterable[Iterable[Any]]) -> sqlite3.Cursor:
        rows = [tuple(r) for r in rows]
        return await self._sql(lambda c: c.executemany(sql, rows))

    async def _history(self, release_id: int | None, item_id: int | None, field: str,
                       before: Any, after: Any) -> None:
        await self.execute(
            "INSERT INTO history (at, actor, release_id, item_id, field, before, after)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.now, self.actor, release_id, item_id, field, _dump(before), _dump(after)))

    # -- releases -------------------------------------------------------------------------------
    async def release(self, name: str) -> Release | None:
        row = await self._one("SELECT * FROM releases WHERE name = ?", name)
        return _release(row) if row else None

    async def require_release(self, name: str) -> Release:
        rel = await self.release(name)
        if rel is None:
            raise NotFound(f"No release {name}")
        return rel

    async def releases(self) -> list[Release]:
        rows = await self._all("SELECT * FROM releases ORDER BY created_at DESC, id DESC")
        return [_release(r) for r in rows]

    async def latest_release(self) -> Release | None:
        rels = await self.releases()
        return rels[0] if rels else None

    async def create_release(self, name: str, intro: str = "", layout: str = "xen-4.2") -> Release:
        cur = await self.execute(
            "INSERT INTO releases (name, intro, created_by, created_at, layout) VALUES (?, ?, ?, ?, ?)",
            (name, intro, self.actor, self.now, layout))
        await self._history(cur.lastrowid, None, "release", None, name)
        return Release(cur.lastrowid, name, intro, self.now, layout)

    async def set_layout(self, release: Release, layout: str) -> Release:
        if layout != release.layout:
            await self.execute("UPDATE releases SET layout = ? WHERE id = ?", (layout, release.id))
            await self._history(release.id, None, "layout", release.layout, layout)
        return replace(release, layout=layout)

    async def ensure_release(self, name: str) -> Release:
        return await self.release(name) or await self.create_release(name)

    async def release_like(self, name: str) -> Release | None:
        """The release whose name reads as `name` (case aside): "2.0RC" is taken by "2.0rc"."""
        row = await self._one("SELECT * FROM releases WHERE name = ? COLLATE NOCASE", name)
        return _release(row) if row else None

    async def room_release(self, transport: str, room: str) -> Release | None:
        """The release a room chose (`!release new`), or None."""
        row = await self._one(
            "SELECT releases.* FROM room_releases JOIN releases ON releases.id = release_id"
            " WHERE transport = ? AND room = ?", transport, room)
        return _release(row) if row else None

    async def bind_room(self, transport: str, room: str, release: Release) -> None:
        await self.execute(
            "INSERT INTO room_releases (transport, room, release_id, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (transport, room) DO UPDATE SET release_id = excluded.release_id,"
            " at = excluded.at", (transport, room, release.id, self.now))
        # The history (which the public status page's feed shows) names the transport, not
        # the room: a Matrix room's id is not for everyone; room_releases holds it.
        await self._history(release.id, None, "room", None, f"a {transport} room")

    async def last_import(self, release: Release) -> int:
        """The history id of the release's latest import (0: never imported): the digest's
        baseline, since an imported list is what the readers already have."""
        row = await self._one("SELECT COALESCE(MAX(id), 0) FROM history WHERE release_id = ?"
                              " AND field = 'import'", release.id)
        return int(row[0])

    # -- milestones -----------------------------------------------------------------------------
    async def milestones(self, release: Release) -> list[Milestone]:
        rows = await self._all(
            "SELECT * FROM milestones WHERE release_id = ? ORDER BY position", release.id)
        return [Milestone(r["when_text"], r["name"], bool(r["done"]), bool(r["current"]))
                for r in rows]

    async def set_milestones(self, release: Release, milestones: Iterable[Milestone]) -> None:
        before = [m.__dict__ for m in await self.milestones(release)]
        await self.execute("DELETE FROM milestones WHERE release_id = ?", (release.id,))
        after = []
        for pos, m in enumerate(milestones):
            await self.execute(
                "INSERT INTO milestones (release_id, position, when_text, name, done, current)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (release.id, pos, m.when, m.name, int(m.done), int(m.current)))
            after.append(m.__dict__)
        if before != after:
            await self._history(release.id, None, "milestones", json.dumps(before, ensure_ascii=False),
                                json.dumps(after, ensure_ascii=False))

    # -- items ----------------------------------------------------------------------------------
    async def get(self, item_id: int, *, with_notes: bool = False) -> Item:
        row = await self._one(
            f"SELECT {ITEM_COLUMNS}, releases.name AS release_name FROM items"
            " JOIN releases ON releases.id = items.release_id WHERE items.id = ?", item_id)
        if row is None:
            raise NotFound(f"No item #{item_id}")
        notes = [n["text"] for n in await self.notes(item_id)] if with_notes else None
        return (await self._named([_item(row, row["release_name"], notes)]))[0]

    @staticmethod
    def _filters(release: Release, states: Iterable[str] | None, severity: str | None,
                 area: str | None, owner: int | None, unclaimed: bool) -> tuple[str, list[Any]]:
        where, args = ["release_id = ?"], [release.id]
        if states is not None:
            st = tuple(states)
            where.append(f"state IN ({','.join('?' * len(st))})")
            args += st
        if severity is not None:
            where.append("severity = ?")
            args.append(severity)
        if area is not None:
            where.append("area = ? COLLATE NOCASE")
            args.append(area)
        if owner is not None:
            where.append("EXISTS (SELECT 1 FROM json_each(items.owners) WHERE value = ?)")
            args.append(owner)
        if unclaimed:
            where.append("owners = '[]'")
        return " AND ".join(where), args

    async def get_many(self, ids: Iterable[int]) -> dict[int, Item]:
        """Several items in one query (ids that do not exist are left out)."""
        wanted = sorted(set(ids))
        out: dict[int, Item] = {}
        for start in range(0, len(wanted), 500):  # stay under SQLite's variable limit
            chunk = wanted[start:start + 500]
            rows = await self._all(
                f"SELECT {ITEM_COLUMNS}, releases.name AS release_name FROM items JOIN releases"
                f" ON releases.id = items.release_id WHERE items.id IN ({','.join('?' * len(chunk))})",
                *chunk)
            out.update((r["id"], _item(r, r["release_name"])) for r in rows)
        await self._named(list(out.values()))
        return out

    async def items(self, release: Release, *, states: Iterable[str] | None = ("open",),
                    severity: str | None = None, area: str | None = None, owner: int | None = None,
                    unclaimed: bool = False, limit: int | None = None) -> list[Item]:
        """Items of a release, filtered in SQL. In list (creation) order; with a `limit`,
        blockers come first so the most important part of a long list is what is shown."""
        where, args = self._filters(release, states, severity, area, owner, unclaimed)
        # Severity is 'blocker' or 'nice' (a CHECK), so `severity, id` is blockers first: the
        # order of the items_listing index, whose first rows of one state are the page, unsorted.
        order = "id" if limit is None else f"severity, id LIMIT {int(limit)}"
        sql = f"SELECT {ITEM_COLUMNS} FROM items WHERE {where} ORDER BY {order}"
        name = release.name
        return await self._named(await self._each(sql, lambda row: _item(row, name), *args))

    async def page(self, release: Release, *, limit: int, states: Iterable[str] | None = ("open",),
                   severity: str | None = None, area: str | None = None, owner: int | None = None,
                   unclaimed: bool = False, count_unclaimed: bool = True,
                   ) -> tuple[list[Item], int, int | None]:
        """What a listing shows: the first `limit` items as `items(..., limit=...)` gives
        them, how many match in all, and how many of those are unclaimed (None unless
        `count_unclaimed`). A page that is not full counts itself; a full one adds one COUNT
        over the index (items_listing), which reads each owners value only when asked to."""
        items = await self.items(release, states=states, severity=severity, area=area, owner=owner,
                                 unclaimed=unclaimed, limit=limit)
        if len(items) < limit:
            return (items, len(items),
                    sum(not it.owner_ids for it in items) if count_unclaimed else None)
        where, args = self._filters(release, states, severity, area, owner, unclaimed)
        if not count_unclaimed:
            row = await self._one(f"SELECT COUNT(*) FROM items WHERE {where}", *args)
            return items, int(row[0]), None
        row = await self._one(f"SELECT COUNT(*), COALESCE(SUM(owners = '[]'), 0) FROM items WHERE {where}",
                              *args)
        return items, int(row[0]), int(row[1])

    async def count_items(self, release: Release, *, states: Iterable[str] | None = ("open",),
                          severity: str | None = None, area: str | None = None,
                          owner: int | None = None, unclaimed: bool = False) -> int:
        where, args = self._filters(release, states, severity, area, owner, unclaimed)
        row = await self._one(f"SELECT COUNT(*) FROM items WHERE {where}", *args)
        return int(row[0])

    async def summary(self, release: Release) -> dict[str, int]:
        """Open blockers, unclaimed open blockers and open nice-to-haves, counted in SQL."""
        row = await self._one(
            "SELECT COALESCE(SUM(severity = 'blocker'), 0),"
            " COALESCE(SUM(severity = 'blocker' AND owners = '[]'), 0),"
            " COALESCE(SUM(severity = 'nice'), 0)"
            " FROM items WHERE release_id = ? AND state = 'open'", release.id)
        return {"blockers": row[0], "unclaimed": row[1], "nice": row[2]}

    async def children(self, item_id: int) -> list[Item]:
        rows = await self._all(
            f"SELECT {ITEM_COLUMNS}, releases.name AS release_name FROM items"
            " JOIN releases ON releases.id = items.release_id WHERE parent_id = ? ORDER BY items.id",
            item_id)
        return await self._named([_item(r, r["release_name"]) for r in rows])

    async def descendants(self, item_id: int) -> list[Item]:
        """Sub-items at any depth, parents before their children (iterative: chains may be
        deep in a database an older version wrote)."""
        out: list[Item] = []
        seen = {item_id}
        stack = [item_id]
        while stack:
            for child in reversed(await self.children(stack.pop())):
                if child.id not in seen:  # a cycle in a damaged database ends here
                    seen.add(child.id)
                    out.append(child)
                    stack.append(child.id)
        return out

    async def depth(self, item_id: int) -> int:
        """How deep an item sits: 1 for a top-level item."""
        row = await self._one(
            "WITH RECURSIVE up(id, parent_id, n) AS (SELECT id, parent_id, 1 FROM items WHERE id = ?"
            " UNION ALL SELECT items.id, items.parent_id, up.n + 1 FROM items JOIN up"
            " ON items.id = up.parent_id WHERE up.n < 10000) SELECT MAX(n) FROM up", item_id)
        return int(row[0] or 0)

    async def add_item(self, release: Release, *, area: str, severity: str, title: str,
                       tags: Iterable[str] = (), details: str = "", owners: Iterable[int] = (),
                       progress: str = "", state: str = "open", parent: int | None = None,
                       links: Iterable[str] = (), duplicate_of: int | None = None,
                       item_id: int | None = None, section: str = "") -> Item:
        new_id = await self._insert_item(release, area=area, severity=severity, title=title,
                                         tags=tags, details=details, owners=owners,
                                         progress=progress, state=state, parent=parent,
                                         links=links, duplicate_of=duplicate_of, item_id=item_id,
                                         section=section)
        return await self.get(new_id)

    async def _insert_item(self, release: Release, *, area: str, severity: str, title: str,
                           tags: Iterable[str], details: str, owners: Iterable[int], progress: str,
                           state: str, parent: int | None, links: Iterable[str],
                           duplicate_of: int | None, item_id: int | None, section: str) -> int:
        """The new item's row and its history row; its id (`add_item` reads the item back)."""
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}")
        if state not in STATES:
            raise ValueError(f"state must be one of {STATES}")
        cur = await self.execute(
            "INSERT INTO items (id, release_id, area, severity, tags, title, details, owners,"
            " progress, state, parent_id, duplicate_of, links, section, created_by, created_at,"
            " updated_by, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, release.id, area, severity, _dump(list(tags)), title, details,
             _dump(list(owners)), progress, state, parent, duplicate_of, _dump(list(links)),
             section, self.actor, self.now, self.actor, self.now))
        new_id = int(cur.lastrowid or 0)
        await self._history(release.id, new_id, "created", None, title)
        return new_id

    async def update(self, item: Item, **changes: Any) -> Item:
        """Set fields of an item; history gets one row per field that really changed.
        `owners` is a list of person ids (history records their names). Three statements
        whatever the number of fields: this runs on every write command."""
        changed: dict[str, tuple[Any, Any]] = {}
        logged: dict[str, tuple[Any, Any]] = {}  # what history shows: owners by name
        extra: dict[str, Any] = {}
        for field, value in changes.items():
            if field not in _ITEM_FIELDS:
                raise ValueError(f"unknown item field {field}")
            if field == "owners":
                value = list(dict.fromkeys(int(v) for v in value))
                if value != item.owner_ids:
                    names = await self._names_of(value)
                    changed[field] = (item.owner_ids, value)
                    logged[field] = (item.owners, names)
                    extra = {"owner_ids": value, "owners": names}
                continue
            if field in _JSON_FIELDS:
                value = list(value)
            if getattr(item, field) != value:
                changed[field] = logged[field] = (getattr(item, field), value)
        if not changed:
            return item
        await self.executemany(
            "INSERT INTO history (at, actor, release_id, item_id, field, before, after) VALUES"
            " (?, ?, (SELECT release_id FROM items WHERE id = ?), ?, ?, ?, ?)",
            [(self.now, self.actor, item.id, item.id, field, _dump(before), _dump(after))
             for field, (before, after) in logged.items()])
        sets = ", ".join(f"{_COLUMN.get(field, field)} = ?" for field in changed)
        args = [_dump(after) if field in _JSON_FIELDS else after for field, (_, after) in changed.items()]
        await self.execute(f"UPDATE items SET {sets}, updated_by = ?, updated_at = ? WHERE id = ?",
                                (*args, self.actor, self.now, item.id))
        plain = {field: after for field, (_, after) in changed.items() if field != "owners"}
        return replace(item, **plain, **extra, updated_by=self.actor, updated_at=self.now)

    async def _names_of(self, person_ids: list[int]) -> list[str]:
        if not person_ids:
            return []
        rows = await self._all(f"SELECT id, name FROM persons WHERE id IN ({','.join('?' * len(person_ids))})",
                               *person_ids)
        names = {r["id"]: r["name"] for r in rows}
        return [names[i] for i in person_ids if i in names]

    async def _release_id(self, item: Item) -> int:
        row = await self._one("SELECT release_id FROM items WHERE id = ?", item.id)
        return row["release_id"]

    # -- notes ----------------------------------------------------------------------------------
    async def notes(self, item_id: int) -> list[sqlite3.Row]:
        return await self._all("SELECT * FROM notes WHERE item_id = ? ORDER BY id", item_id)

    async def add_note(self, item: Item, text: str, author: str | None = None) -> None:
        await self._add_note(item.id, await self._release_id(item), text, author)

    async def _add_note(self, item_id: int, release_id: int, text: str,
                        author: str | None = None) -> None:
        await self.execute(
            "INSERT INTO notes (item_id, author, at, text) VALUES (?, ?, ?, ?)",
            (item_id, author or self.actor, self.now, text))
        await self._history(release_id, item_id, "note", None, text)
        await self.execute("UPDATE items SET updated_by = ?, updated_at = ? WHERE id = ?",
                           (self.actor, self.now, item_id))

    async def move_notes(self, src: Item, dst: Item) -> int:
        cur = await self.execute("UPDATE notes SET item_id = ? WHERE item_id = ?",
                                      (dst.id, src.id))
        if cur.rowcount:
            await self._history(await self._release_id(dst), dst.id, "notes",
                                f"{cur.rowcount} on #{src.id}", f"moved to #{dst.id}")
        return cur.rowcount

    async def prune_events(self, older_than: float) -> int:
        """Forget handled event ids older than `older_than` (no protocol replays them then)."""
        cur = await self.execute("DELETE FROM processed_events WHERE at < ?", (older_than,))
        return cur.rowcount

    # -- history --------------------------------------------------------------------------------
    async def history(self, item_id: int, limit: int = 50) -> list[Change]:
        rows = await self._all(
            "SELECT * FROM history WHERE item_id = ? ORDER BY id DESC LIMIT ?", item_id, limit)
        return [Change(r["id"], r["at"], r["actor"], r["item_id"], r["field"], r["before"],
                       r["after"]) for r in reversed(rows)]

    async def changes_since(self, release: Release, since: float) -> list[Change]:
        rows = await self._all(
            "SELECT * FROM history WHERE release_id = ? AND at > ? ORDER BY id", release.id, since)
        return [Change(r["id"], r["at"], r["actor"], r["item_id"], r["field"], r["before"],
                       r["after"]) for r in rows]

    async def recent_changes(self, release: Release, limit: int = 50) -> list[Change]:
        """The release's newest changes, newest first (the status page's feed)."""
        rows = await self._all(
            "SELECT * FROM history WHERE release_id = ? ORDER BY id DESC LIMIT ?", release.id, limit)
        return [Change(r["id"], r["at"], r["actor"], r["item_id"], r["field"], r["before"],
                       r["after"]) for r in rows]

    async def last_change(self, release: Release | None = None) -> tuple[int, float]:
        """(id, time) of the newest history row of the release (of any release: None), or
        (0, 0.0): what a cached copy of a page about it is checked against."""
        if release is None:
            row = await self._one("SELECT MAX(id), MAX(at) FROM history")
        else:
            row = await self._one("SELECT MAX(id), MAX(at) FROM history WHERE release_id = ?",
                                  release.id)
        return (row[0] or 0, row[1] or 0.0)

    # -- transport bookkeeping ------------------------------------------------------------------
    async def seen_event(self, transport: str, event_id: str) -> bool:
        """Whether an event was handled already (without recording it)."""
        return await self._one("SELECT 1 FROM processed_events WHERE transport = ? AND event_id = ?",
                               transport, event_id) is not None

    async def record_event(self, transport: str, event_id: str) -> bool:
        """Mark an event handled; False when it already was (the caller must not act again)."""
        cur = await self.execute(
            "INSERT OR IGNORE INTO processed_events (transport, event_id, at) VALUES (?, ?, ?)",
            (transport, event_id, self.now))
        return cur.rowcount == 1

    async def kv_get(self, key: str) -> str | None:
        row = await self._one("SELECT value FROM kv WHERE key = ?", key)
        return row["value"] if row else None

    async def kv_set(self, key: str, value: str) -> None:
        await self.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key)"
                                " DO UPDATE SET value = excluded.value", (key, value))

    async def kv_prefixed(self, prefix: str) -> list[tuple[str, str]]:
        rows = await self._all("SELECT key, value FROM kv WHERE key >= ? AND key < ? ORDER BY key",
                               prefix, prefix + "\U0010ffff")
        return [(r["key"], r["value"]) for r in rows]

    async def kv_delete(self, key: str) -> None:
        await self.execute("DELETE FROM kv WHERE key = ?", (key,))

    async def record_sent(self, transport: str, room: str, msg_id: str, items: Iterable[int]) -> None:
        await self.execute(
            "INSERT OR REPLACE INTO sent_messages (transport, msg_id, room, items, at)"
            " VALUES (?, ?, ?, ?, ?)", (transport, msg_id, room, _dump(list(items)), self.now))

    async def sent_items(self, transport: str, msg_id: str) -> tuple[int, ...]:
        row = await self._one("SELECT items FROM sent_messages WHERE transport = ? AND msg_id = ?",
                              transport, msg_id)
        return tuple(json.loads(row["items"])) if row else ()

    # -- whole lists: import and export ---------------------------------------------------------
    async def export_list(self, release: Release) -> ReleaseList:
        items = await self.items(release, states=None)
        notes: dict[int, list[str]] = {}
        for row in await self._all(
                "SELECT notes.item_id, notes.text FROM notes JOIN items ON items.id = notes.item_id"
                " WHERE items.release_id = ? ORDER BY notes.id", release.id):
            notes.setdefault(row["item_id"], []).append(row["text"])
        return ReleaseList(release.name, await self.milestones(release), list_tree(items, notes),
                           release.intro, layout=release.layout)

    async def import_list(self, name: str, lst: ReleaseList, *, replace: bool = False,
                          source: str | None = None, max_depth: int = MAX_DEPTH) -> dict[str, int]:
        """Merge a list into release `name`, creating it when new.

        Items are matched by id when the list carries ids (and the id belongs to this
        release); the others by stable identity, in passes that each take the first unmatched
        candidate in list order: same title, section, details and owners; same title and
        section; same title anywhere (an item moved from "Open" to "Completed"). So two items
        with one title keep their own owners when the mail reorders them. Matched items are
        updated, the rest added. Nothing is deleted unless `replace`, which drops (state
        `dropped`) the release's items the list no longer names. The release takes the list's
        layout when it has one; `source` (the mail's Message-ID and date) goes to the history.

        Owners are bound by `import_owner`: never to someone merely because they chose the
        name. An owner a matched item has already stays (the list's own export read back
        gives nobody anything). `to confirm` in the counts (present when not 0) is how many
        names someone had chosen and yielded to a placeholder, each waiting in `!person
        pending`.
        """
        deepest = list_depth(lst.items)
        if deepest > max_depth:
            raise ValueError(f"sub-items nest {deepest} deep in this list; the limit is {max_depth}")
        for li in _flat(lst.items):
            # Titles as people see them, like a title typed in chat (one that shows nothing
            # once cleaned is kept as written rather than lost).
            li.title = clean(li.title) or li.title
        release = await self.release(name)
        stats = {"added": 0, "updated": 0, "unchanged": 0, "dropped": 0}
        if release is None:
            release = await self.create_release(name, lst.intro, lst.layout or "xen-4.2")
        else:
            if lst.intro and lst.intro != release.intro:
                await self.execute("UPDATE releases SET intro = ? WHERE id = ?",
                                        (lst.intro, release.id))
                await self._history(release.id, None, "intro", release.intro, lst.intro)
            if lst.layout:
                release = await self.set_layout(release, lst.layout)
        if lst.subject and lst.subject != release.subject:
            await self.execute("UPDATE releases SET subject = ? WHERE id = ?",
                               (lst.subject, release.id))
            await self._history(release.id, None, "subject", release.subject, lst.subject)
        if lst.milestones:
            await self.set_milestones(release, lst.milestones)
        existing = await self.items(release, states=None)
        matches = _match_items(existing, lst.items)
        have_notes: dict[int, list[str]] = {}  # the notes matched items had before this import
        if matches:
            for row in await self._all(
                    "SELECT notes.item_id, notes.text FROM notes JOIN items ON items.id = notes.item_id"
                    " WHERE items.release_id = ? ORDER BY notes.id", release.id):
                have_notes.setdefault(row["item_id"], []).append(row["text"])
        seen: set[int] = set()
        pending_dups: list[tuple[int, int]] = []
        id_map: dict[int, int] = {}  # ids as the file names them -> ids in this database
        owner_ids: dict[str, int | None] = {}  # each name as written, looked up once
        to_confirm = 0

        async def owner_id(name: str) -> int | None:
            nonlocal to_confirm
            if name not in owner_ids:
                owner_ids[name] = None  # a name that is nothing once cleaned names nobody
                if clean(name):
                    person, yielded = await self.import_owner(name)
                    owner_ids[name], to_confirm = person.id, to_confirm + yielded
            return owner_ids[name]

        async def owners_of(li: ListItem, found: Item | None) -> list[int]:
            have = ({name_key(n): i for n, i in zip(found.owners, found.owner_ids)}
                    if found is not None and len(found.owners) == len(found.owner_ids) else {})
            out = []
            for name in li.owners:
                pid = have.get(name_key(name)) or await owner_id(name)
                if pid is not None:
                    out.append(pid)
            return out

        async def walk(nodes: list[ListItem], parent: int | None) -> None:
            for li in nodes:
                found = matches.get(id(li))
                owners = await owners_of(li, found)
                fields = dict(area=li.area, severity=li.severity, title=li.title, tags=li.tags,
                              details=li.details, owners=owners, progress=li.progress,
                              state=li.state, links=li.links, section=li.section, parent=parent)
                if found is None:
                    free_id = li.id if li.id is not None and not await self._id_taken(li.id) else None
                    fields.pop("parent")
                    item_id = await self._insert_item(release, parent=parent, item_id=free_id,
                                                      duplicate_of=None, **fields)
                    stats["added"] += 1
                    for note in li.notes:
                        await self._add_note(item_id, release.id, note)
                else:
                    item = await self.update(found, **fields)
                    item_id = item.id
                    stats["updated" if item is not found else "unchanged"] += 1
                    have = have_notes.get(item_id, [])
                    for note in li.notes:
                        if note not in have:
                            await self._add_note(item_id, release.id, note)
                seen.add(item_id)
                if li.id is not None:
                    id_map[li.id] = item_id
                if li.duplicate_of is not None:
                    pending_dups.append((item_id, li.duplicate_of))
                await walk(li.children, item_id)

        await walk(lst.items, None)
        for item_id, target in pending_dups:
            target = id_map.get(target, target)
            if await self._id_taken(target):
                await self.update(await self.get(item_id), duplicate_of=target)
        if replace:
            for it in existing:
                if it.id not in seen and it.state != "dropped":
                    await self.update(it, state="dropped")
                    stats["dropped"] += 1
        if to_confirm:
            stats["to confirm"] = to_confirm
        # Last, after what it wrote: the digest's changes start after this row (`last_import`).
        await self._history(release.id, None, "import", None, source or "a list file")
        return stats

    async def history_mark(self) -> int:
        """The newest history row id: `history_after(mark)` is then what happened since."""
        row = await self._one("SELECT COALESCE(MAX(id), 0) FROM history")
        return int(row[0])

    async def history_after(self, mark: int) -> list[Change]:
        rows = await self._all("SELECT * FROM history WHERE id > ? ORDER BY id", mark)
        return [Change(r["id"], r["at"], r["actor"], r["item_id"], r["field"], r["before"],
                       r["after"]) for r in rows]

    async def _id_taken(self, item_id: int) -> bool:
        # sqlite_sequence also covers ids of deleted rows: ids are never reused.
        if await self._one("SELECT 1 FROM items WHERE id = ?", item_id):
            return True
        return False


def _flat(nodes: list[ListItem]) -> list[ListItem]:
    out: list[ListItem] = []
    for li in nodes:
        out.append(li)
        out.extend(_flat(li.children))
    return out


def _match_items(existing: list[Item], incoming: list[ListItem]) -> dict[int, Item]:
    """id(list item) -> the stored item it updates (see `Session.import_list`)."""
    if not existing:
        return {}  # a new release: nothing to match
    by_id = {it.id: it for it in existing}
    flat = _flat(incoming)
    found: dict[int, Item] = {}
    used: set[int] = set()
    for li in flat:
        if li.id is not None and li.id in by_id and li.id not in used:
            found[id(li)] = by_id[li.id]
            used.add(li.id)
    passes: list[Callable[[Any], tuple]] = [
        lambda x: (title_key(x.title), section_key(x), x.details, tuple(x.owners)),
        lambda x: (title_key(x.title), section_key(x)),
        lambda x: (title_key(x.title),),
    ]
    for key in passes:
        buckets: dict[tuple, list[Item]] = {}
        for it in existing:
            if it.id not in used:
                buckets.setdefault(key(it), []).append(it)
        if not buckets:
            break  # every stored item is matched already
        for li in flat:
            if id(li) in found:
                continue
            candidates = [c for c in buckets.get(key(li), []) if c.id not in used]
            if candidates:
                found[id(li)] = candidates[0]
                used.add(candidates[0].id)
    return found
