"""Change notices (`!watch`) as direct messages: one room with each watcher, found or made once.

A notice goes only to a room the bot shares with that user alone: one the bot remembered
(kv) or its own `m.direct` account data names, still holding nobody but the two of them.
Otherwise the bot creates one (`is_direct`, the user invited; encrypted when E2EE is on) and
remembers it. A room where a third person came in is not used again: a notice about
someone's items is for them only.
"""

from __future__ import annotations

import asyncio
import logging

from nio import DirectRoomsResponse, RoomCreateResponse

from ...commands.messages import Reply
from .errors import TRANSIENT
from .render import split_reply
from .sending import Where

log = logging.getLogger(__package__)

ROOM_SEEN_WAIT = 30.0  # seconds a new DM waits for the sync that shows its state
_POLL = 0.5


class Direct:
    """`notify` of MatrixTransport (transport.py holds the state)."""

    async def notify(self, identity: str, reply: Reply) -> bool:
        user = identity.removeprefix(f"{self.name}:")
        client = self.client
        if user == identity or not user.startswith("@") or client is None or user == client.user_id:
            return False
        room_id = await self._direct_room(user)
        if room_id is None:
            return False
        where = Where(room_id)
        sent = False
        for part in split_reply(reply, measure=self._measure(where)):
            # m.notice (render): a bot's words, which no other bot answers.
            sent = await self._send(room_id, "m.room.message", self._content(where, part)) \
                is not None or sent
        return sent

    def _only_us(self, room_id: str, user: str) -> bool:
        """Whether `room_id` holds (joined or invited) the bot and `user`, and nobody else."""
        room = self.client.rooms.get(room_id)
        if room is None or room_id not in self._present:
            return False
        people = set(room.users) | set(room.invited_users)
        return user in people and people <= {self.client.user_id, user}

    async def _direct_room(self, user: str) -> str | None:
        key = f"dm:{user}"
        remembered = await self._kv_get(key)
        if remembered and self._only_us(remembered, user):
            return remembered
        try:
            resp = await self.client.list_direct_rooms()
        except TRANSIENT as exc:
            log.warning("matrix: cannot read m.direct (%s)", exc)
            resp = None
        if isinstance(resp, DirectRoomsResponse):
            for room_id in resp.rooms.get(user, []):
                if self._only_us(room_id, user):
                    await self._kv_set(key, room_id)
                    return room_id
        room_id = await self._create_direct(user)
        if room_id is not None:
            await self._kv_set(key, room_id)
        return room_id

    async def _create_direct(self, user: str) -> str | None:
        encrypted = bool(self.e2ee and self.client.olm is not None)
        state = ([{"type": "m.room.encryption", "state_key": "",
                   "content": {"algorithm": "m.megolm.v1.aes-sha2"}}] if encrypted else [])
        try:
            resp = await self.client.room_create(is_direct=True, invite=[user],
                                                 initial_state=state)
        except TRANSIENT as exc:
            log.warning("matrix: cannot create a direct room with %s (%s)", user, exc)
            return None
        if not isinstance(resp, RoomCreateResponse):
            log.warning("matrix: cannot create a direct room with %s: %s", user,
                        getattr(resp, "message", resp))
            return None
        room_id = resp.room_id
        self._present.add(room_id)
        # Its state (encrypted or not) comes with a sync; the guard sends nothing before.
        loop = asyncio.get_running_loop()
        until = loop.time() + ROOM_SEEN_WAIT
        while room_id not in self.client.rooms and loop.time() < until:
            await asyncio.sleep(_POLL)
        if encrypted and room_id in self.client.rooms:
            # The user's devices, met only now, must have the room key of the first notice.
            await self._crypto_housekeeping()
        log.info("matrix: created direct room %s with %s", room_id, user)
        return room_id
