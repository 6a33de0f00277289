"""Turning sync events into Messages: only what was said after the bot joined, never the
bot's own; the sender is the user id (`matrix:@user:server`, authenticated by the homeserver),
the display name only a label to show; edits ignored (the command ran as first written);
replies and threads kept for what a claim means (claims.py); tombstones to upgrades.py; an
encrypted event the bot cannot read answered once with CANNOT_READ.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from nio import MatrixRoom, MegolmEvent, RoomMemberEvent, RoomMessageText, RoomUpgradeEvent

from ...commands.messages import Message, Sender
from ...storage.names import clean
from ..logs import log_failure
from .errors import TRANSIENT
from .render import strip_reply_fallback
from .sending import Where

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix


def sender_of(room: MatrixRoom, user_id: str) -> Sender:
    """Who sent an event: the user id, always (the homeserver vouches for it); the display
    name is only a label to show."""
    display = clean(room.user_name(user_id) or "") or None  # (bidi overrides, controls)
    return Sender(identity=f"matrix:{user_id}", nick=display or user_id,
                  authenticated=True, display_name=display)


class Events:
    """Events read by MatrixTransport (transport.py holds the state)."""

    async def _handle_timeline(self, room_id: str, events: list[Any]) -> None:
        client = self.client
        assert client is not None
        # Only what was said after we joined: cut at our own join in this batch, and skip a
        # room that is new to us when the batch does not show our join.
        start = None
        for i, ev in enumerate(events):
            if (isinstance(ev, RoomMemberEvent) and ev.state_key == client.user_id
                    and ev.membership == "join" and ev.prev_membership != "join"):
                start = i + 1
        if start is None:
            if room_id not in self._known_rooms:
                return
            start = 0
        room = client.rooms.get(room_id)
        for ev in events[start:]:
            if self._stopping.is_set() or room is None:
                return
            log.debug("matrix: %s %s from %s", type(ev).__name__, getattr(ev, "event_id", "?"),
                      getattr(ev, "sender", "?"))
            try:
                await self._handle_event(room, ev)
            except asyncio.CancelledError:
                raise
            except TRANSIENT:
                raise
            except Exception:
                log_failure(log, "matrix: event %s in %s failed", getattr(ev, "event_id", "?"),
                            room_id)

    async def _handle_event(self, room: MatrixRoom, ev: Any) -> None:
        client = self.client
        assert client is not None and self.dispatcher is not None
        if getattr(ev, "sender", None) == client.user_id:
            return
        if isinstance(ev, RoomUpgradeEvent):
            await self._follow_upgrade(room.room_id, ev)
            return
        if isinstance(ev, MegolmEvent):
            if not self.e2ee:
                await self._say_cannot_read(room.room_id)
            else:
                log.warning("matrix: cannot decrypt %s from %s in %s (no room key)",
                            ev.event_id, ev.sender, room.room_id)
            return
        if not isinstance(ev, RoomMessageText):  # m.notice (other bots), emotes, media, state
            return
        content = ev.source.get("content", {})
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace":
            return  # an edit: the command already ran (or was ignored) as first written
        thread = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
        in_reply = (relation.get("m.in_reply_to") or {}).get("event_id")
        # In a thread, m.in_reply_to is only the fallback for older clients unless it says not.
        reply_to = None if thread and relation.get("is_falling_back") is True else in_reply
        body = strip_reply_fallback(ev.body) if in_reply else ev.body
        msg = Message(transport=self.name, room=room.room_id, sender=sender_of(room, ev.sender),
                      text=body, msg_id=ev.event_id, thread=thread, actions=frozenset({"leave"}),
                      private=room.member_count <= 2 and room.room_id not in self.room_release,
                      at=ev.server_timestamp / 1000)
        where = Where(room.room_id, ev.event_id, thread)
        if body.strip().casefold() == f"{self.dispatcher.prefix}more".casefold():
            await self._more(msg, where)
            return
        msg = await self._read_claim(msg, ev.sender, content, reply_to)
        reply = await self.dispatcher.handle(msg)
        if reply is not None:
            await self._answer(msg, where, reply)
