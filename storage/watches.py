"""Who is told when an item changes (the repository's `Session` includes this).

A person watches an item they said `!watch ID` for, and, by default, the items they own;
`!unwatch ID` ends either. `!watch off` silences all of it until `!watch on`. Watches are
kept by person, so they follow the person across identities and transports.
"""

from __future__ import annotations

import json
from typing import Any


class WatchSession:
    """Mixed into `repository.Session`, whose helpers it uses."""

    now: float
    _one: Any
    _all: Any
    execute: Any

    async def set_watch(self, person_id: int, item_id: int, watching: bool) -> None:
        await self.execute(
            "INSERT INTO watches (person_id, item_id, watching, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (person_id, item_id) DO UPDATE SET watching = excluded.watching,"
            " at = excluded.at", (person_id, item_id, int(watching), self.now))

    async def watched(self, person_id: int) -> list[int]:
        """The ids of the items a person said `!watch` for, oldest first."""
        rows = await self._all("SELECT item_id FROM watches WHERE person_id = ? AND watching = 1"
                               " ORDER BY at, item_id", person_id)
        return [r[0] for r in rows]

    async def set_watch_off(self, person_id: int, off: bool) -> None:
        if off:
            await self.execute("INSERT OR IGNORE INTO watch_off (person_id, at) VALUES (?, ?)",
                               (person_id, self.now))
        else:
            await self.execute("DELETE FROM watch_off WHERE person_id = ?", (person_id,))

    async def watch_is_off(self, person_id: int) -> bool:
        return await self._one("SELECT 1 FROM watch_off WHERE person_id = ?", person_id) is not None

    async def watchers(self, item_ids: list[int], *, owners: bool) -> dict[int, set[int]]:
        """For each item, the persons to tell of a change to it: those watching it, and its
        owners when `owners` (unless they unwatched it); none who turned watching off."""
        out: dict[int, set[int]] = {}
        for item_id in dict.fromkeys(item_ids):
            rows = await self._all(
                "SELECT person_id, watching FROM watches WHERE item_id = ?", item_id)
            said = {r[0]: bool(r[1]) for r in rows}
            who = {p for p, on in said.items() if on}
            if owners:
                row = await self._one("SELECT owners FROM items WHERE id = ?", item_id)
                if row is not None:
                    who |= {p for p in json.loads(row[0]) if type(p) is int and said.get(p, True)}
            if who:
                off = await self._all(
                    f"SELECT person_id FROM watch_off WHERE person_id IN ({','.join('?' * len(who))})",
                    *who)
                who -= {r[0] for r in off}
            out[item_id] = who
        return out
