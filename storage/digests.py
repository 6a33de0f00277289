"""Bookkeeping of scheduled digests, and open-item counts over time for the burndown chart.

A digest slot is one (release, transport, room, period start in UTC). The scheduler inserts
the slot with INSERT OR IGNORE before it posts (whoever inserts it first owns it; anyone else
sees it taken) and marks it sent afterwards. Every slot that was due ends in one row:
`sent`, `skipped` (too late, or superseded by a later slot), `failed` (the transport raised),
or `abandoned` (claimed by a process that died before recording the send). Functions here run
inside a repository session (one transaction), like the Session methods.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass

from .models import Release
from .repository import Session

STATUSES = ("claimed", "sent", "skipped", "failed", "abandoned")


@dataclass(frozen=True)
class SlotKey:
    release: str
    transport: str
    room: str
    slot_at: int  # the scheduled instant, whole seconds since the epoch (UTC)


@dataclass(frozen=True)
class Slot:
    key: SlotKey
    status: str
    claimed_at: float
    sent_at: float | None
    detail: str


def _slot(row) -> Slot:
    return Slot(SlotKey(row["release"], row["transport"], row["room"], row["slot_at"]),
                row["status"], row["claimed_at"], row["sent_at"], row["detail"])


async def claim(s: Session, key: SlotKey, status: str = "claimed", detail: str = "") -> bool:
    """Take the slot; False when a row for it already exists (claimed, sent or given up).

    `status` other than "claimed" records a slot that was given up without posting."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    cur = await s.execute(
        "INSERT OR IGNORE INTO digest_slots (release, transport, room, slot_at, status,"
        " claimed_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key.release, key.transport, key.room, key.slot_at, status, s.now, detail))
    return cur.rowcount == 1


async def mark(s: Session, key: SlotKey, status: str, detail: str | None = None) -> None:
    """Move a slot to its final status; `sent` also stamps sent_at."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    await s.execute(
        "UPDATE digest_slots SET status = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END,"
        " detail = COALESCE(?, detail)"
        " WHERE release = ? AND transport = ? AND room = ? AND slot_at = ?",
        (status, status, s.now, detail, key.release, key.transport, key.room, key.slot_at))


async def last_slot_at(s: Session, release: str, transport: str, room: str) -> int | None:
    """The newest slot this target has a row for, whatever its status."""
    row = await s._one(
        "SELECT MAX(slot_at) FROM digest_slots WHERE release = ? AND transport = ? AND room = ?",
        release, transport, room)
    return row[0]


async def last_sent_at(s: Session, release: str, transport: str | None = None,
                       room: str | None = None) -> float | None:
    """When the newest digest that went out was built (its claim time): "changes since" starts
    there. Without transport/room: the newest digest of the release in any room."""
    sql = "SELECT MAX(claimed_at) FROM digest_slots WHERE release = ? AND status = 'sent'"
    args: list = [release]
    if transport is not None:
        sql += " AND transport = ? AND room = ?"
        args += [transport, room]
    row = await s._one(sql, *args)
    return row[0]


async def stuck_claims(s: Session, claimed_before: float) -> list[Slot]:
    """Slots claimed before `claimed_before` and never marked sent or failed."""
    return [_slot(r) for r in await s._all(
        "SELECT * FROM digest_slots WHERE status = 'claimed' AND claimed_at < ?"
        " ORDER BY slot_at", claimed_before)]


async def slots(s: Session, release: str | None = None) -> list[Slot]:
    sql, args = "SELECT * FROM digest_slots", []
    if release is not None:
        sql, args = sql + " WHERE release = ?", [release]
    return [_slot(r) for r in await s._all(sql + " ORDER BY slot_at, transport, room", *args)]


# -- stale-claim pings -----------------------------------------------------------------------


async def pinged(s: Session, transport: str, room: str,
                 claims: Iterable[tuple[int, float]]) -> set[tuple[int, float]]:
    """Which (item id, updated_at) pairs were already pinged in this room."""
    out = set()
    for item_id, updated_at in claims:
        if await s._one(
                "SELECT 1 FROM digest_pings WHERE transport = ? AND room = ? AND item_id = ?"
                " AND updated_at = ?", transport, room, item_id, updated_at):
            out.add((item_id, updated_at))
    return out


async def record_pings(s: Session, transport: str, room: str,
                       claims: Iterable[tuple[int, float]]) -> None:
    await s.executemany(
        "INSERT OR IGNORE INTO digest_pings (transport, room, item_id, updated_at, at)"
        " VALUES (?, ?, ?, ?, ?)", [(transport, room, item_id, updated_at, s.now)
                                    for item_id, updated_at in claims])


# -- open items over time (burndown) -----------------------------------------------------------

_TRACKED = ("state", "severity", "release")


@dataclass
class _Timeline:
    """One item's (state, severity, release) from its creation on, as change points."""

    ats: list[float]
    values: list[tuple[str, str, str]]

    def at(self, t: float) -> tuple[str, str, str] | None:
        i = bisect_right(self.ats, t) - 1
        return self.values[i] if i >= 0 else None


async def open_counts(s: Session, release: Release, instants: list[float]) -> list[tuple[int, int]]:
    """(open blockers, open nice-to-haves) of the release at each instant."""
    return [(b, n) for b, n, _ in await burndown_counts(s, release, instants)]


async def burndown_counts(s: Session, release: Release,
                          instants: list[float]) -> list[tuple[int, int, int]]:
    """(open blockers, open nice-to-haves, scope) of the release at each instant, replayed from
    the history table: each item's current values, undone change by change back to its
    creation. Scope counts every item in the release then, whatever its state: the items
    added so far, less those moved to another release."""
    items = await s._all(
        "SELECT items.id, items.state, items.severity, items.created_at, releases.name AS rel"
        " FROM items JOIN releases ON releases.id = items.release_id"
        " WHERE items.release_id = ? OR items.id IN (SELECT item_id FROM history"
        "   WHERE field = 'release' AND before = ? AND item_id IS NOT NULL)",
        release.id, release.name)
    if not items:
        return [(0, 0, 0) for _ in instants]
    ids = [r["id"] for r in items]
    changes: dict[int, list] = {i: [] for i in ids}
    created: dict[int, float] = {r["id"]: r["created_at"] for r in items}
    for chunk in range(0, len(ids), 500):
        part = ids[chunk:chunk + 500]
        for row in await s._all(
                f"SELECT item_id, at, field, before FROM history WHERE item_id IN"
                f" ({','.join('?' * len(part))}) AND field IN ('created', 'state', 'severity',"
                " 'release') ORDER BY id", *part):
            if row["field"] == "created":
                created[row["item_id"]] = row["at"]
            else:
                changes[row["item_id"]].append(row)
    timelines = []
    for r in items:
        cur_values = {"state": r["state"], "severity": r["severity"], "release": r["rel"]}
        points: list[tuple[float, tuple[str, str, str]]] = []
        for row in reversed(changes[r["id"]]):
            points.append((row["at"], tuple(cur_values[f] for f in _TRACKED)))
            before = row["before"]
            cur_values[row["field"]] = json.loads(before) if before and before[0] == "[" else before
        points.append((created[r["id"]], tuple(cur_values[f] for f in _TRACKED)))
        points.reverse()
        timelines.append(_Timeline([p[0] for p in points], [p[1] for p in points]))  # type: ignore[misc]
    out = []
    for t in instants:
        blockers = nice = scope = 0
        for tl in timelines:
            v = tl.at(t)
            if v is None or v[2] != release.name:
                continue
            scope += 1
            if v[0] != "open":
                continue
            if v[1] == "blocker":
                blockers += 1
            else:
                nice += 1
        out.append((blockers, nice, scope))
    return out
