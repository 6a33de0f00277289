"""Room upgrades: a configured room's tombstone is followed only when its sender may upgrade
the room (one of its creators, or at the power level m.room.tombstone needs) and only to a room whose
m.room.create names the old one as its predecessor; the successor is served with the same
settings, also after restarts. Anyone else could otherwise move the bot into a room of theirs.
"""

from __future__ import annotations

import logging
from typing import Any

from nio import JoinResponse, RoomGetStateResponse, RoomUpgradeEvent

from .errors import check_rate_limit

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix


def creators(create: dict[str, Any]) -> set[str]:
    """Who created the room, by its m.room.create event as the room version reads it: the
    `creator` field up to version 10; the event's sender from version 11 (the field is gone,
    and content is the sender's to fill); from version 12 also `additional_creators`, who
    hold unlimited power there without appearing in m.room.power_levels."""
    content = create.get("content")
    content = content if isinstance(content, dict) else {}
    version = str(content.get("room_version", "1"))
    number = int(version) if version.isdigit() else 0  # unknown versions: the oldest rules
    if number <= 10:
        creator = content.get("creator") or create.get("sender")
        return {creator} if isinstance(creator, str) else set()
    found = {create.get("sender")}
    extra = content.get("additional_creators") if number >= 12 else None
    if isinstance(extra, list):
        found |= set(extra)
    return {u for u in found if isinstance(u, str)}


class Upgrades:
    """Room upgrades followed by MatrixTransport (transport.py holds the state)."""

    async def _follow_upgrade(self, room_id: str, ev: RoomUpgradeEvent) -> None:
        """A configured room was upgraded: serve its replacement with the same settings, now
        and after restarts; but only a tombstone from someone who may upgrade the room, to a
        room that says it replaces this one (anyone with enough power could otherwise move the
        bot into a room of their own)."""
        client = self.client
        assert client is not None and self.dispatcher is not None
        settings = self.room_release.get(room_id)
        new = ev.replacement_room
        if settings is None or not new or not new.startswith("!"):
            log.info("matrix: %s was upgraded to %s; not a configured room, not following",
                     room_id, new or "?")
            return
        if new in self.room_release:
            return
        if not await self._may_upgrade(room_id, ev.sender):
            log.warning("matrix: %s sent a tombstone in %s naming %s, but is neither the room's "
                        "creator nor at the power level m.room.tombstone needs; not following",
                        ev.sender, room_id, new)
            return
        log.info("matrix: %s was upgraded to %s (by %s); joining it to check it", room_id, new,
                 ev.sender)
        joined = await client.join(new)
        if not isinstance(joined, JoinResponse):
            check_rate_limit(joined)
            self._upgrades[new] = (room_id, ev.sender)  # checked once an invite lets us in
            log.warning("matrix: cannot join %s yet (%s %s); waiting for an invite", new,
                        joined.status_code, joined.message)
            return
        await self._adopt_successor(room_id, new, ev.sender)

    async def _may_upgrade(self, room_id: str, sender: str) -> bool:
        """The room's creator, or someone whose power level is at least what m.room.tombstone
        needs in it."""
        assert self.client is not None
        room = self.client.rooms.get(room_id)
        if room is not None and room.power_levels.can_user_send_state(sender, "m.room.tombstone"):
            return True
        create = await self._create_event(room_id)
        return create is not None and sender in creators(create)

    async def _create_event(self, room_id: str) -> dict[str, Any] | None:
        """The room's m.room.create event (with its sender), or None when we cannot read it."""
        assert self.client is not None
        resp = await self.client.room_get_state(room_id)
        if not isinstance(resp, RoomGetStateResponse):
            check_rate_limit(resp)
            log.warning("matrix: cannot read the state of %s: %s %s", room_id,
                        resp.status_code, resp.message)
            return None
        return next((e for e in resp.events if isinstance(e, dict)
                     and e.get("type") == "m.room.create" and e.get("state_key") == ""), None)

    async def _replaces(self, new: str, old: str) -> bool | None:
        """Whether room `new` was made as `old`'s successor: its m.room.create names `old` as
        its predecessor. None when its state cannot be read."""
        create = await self._create_event(new)
        if create is None:
            return None
        predecessor = create.get("content", {}).get("predecessor")
        return isinstance(predecessor, dict) and predecessor.get("room_id") == old

    async def _adopt_successor(self, old: str, new: str, by: str) -> None:
        """Joined `new`, named by a tombstone in `old`: serve it with `old`'s settings (also after
        restarts) when its m.room.create names `old` as its predecessor; else leave it."""
        assert self.client is not None and self.dispatcher is not None
        self._upgrades.pop(new, None)
        settings = self.room_release.get(old)
        if settings is None or not await self._replaces(new, old):
            log.warning("matrix: %s, named by %s's tombstone in %s, does not say it replaces "
                        "%s; leaving it and staying in %s", new, by, old, old, old)
            await self.client.room_leave(new)
            self._present.discard(new)
            return
        self.room_release[new] = settings
        self._successor[old] = new
        self.dispatcher.bind_room(self.name, new, settings)
        self._present.add(new)
        await self._kv_set(f"upgraded:{old}", new)
        log.info("matrix: serving %s in place of %s with the same settings", new, old)
