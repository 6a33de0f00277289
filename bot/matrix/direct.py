"""Change notices (`!watch`) as direct messages: one room with each watcher, found or made once.

A notice goes only to a room the bot shares with that user alone: one the bot remembered
(kv) or its own `m.direct` account data names, still holding nobody but the two of them.
Otherwise the bot creates one (`is_direct`, the user invited; encrypted when E2EE is on) and
remembers it. A room where a third person came in is not used again: a notice about
someone's items is for them only.

In an encrypted room the notices wait until the user has joined: before, their devices are
unknown, and a message encrypted then would be for nobody. The sync that shows them joined
sends what waits (after asking for their devices' keys); at most `MAX_HELD` notices wait per
user, and one who has not joined after `JOIN_WAIT` is named once in the log (the room is kept).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from nio import DirectRoomsResponse, RoomCreateResponse

from ...commands.messages import Reply
from .errors import TRANSIENT
from .render import split_reply
from .sending import Where

log = logging.getLogger(__package__)

ROOM_SEEN_WAIT = 30.0  # seconds a new DM waits for the sync that shows its state
_POLL = 0.5
MAX_HELD = 20  # notices kept per user while an encrypted direct room waits for them to join
JOIN_WAIT = 86400.0  # seconds after which a user who has not joined is named in the log


@dataclass
class Held:
    """Notices waiting for `room_id`'s invitee to join."""
    room_id: str
    since: float
    replies: list[Reply] = field(default_factory=list)
    dropped: int = 0
    warned: bool = False


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
        if self._waits_for_join(room_id, user):
            self._hold(user, room_id, reply)
            return True
        return await self._send_notice(room_id, reply)

    async def _send_notice(self, room_id: str, reply: Reply) -> bool:
        where = Where(room_id)
        sent = False
        for part in split_reply(reply, measure=self._measure(where)):
            # m.notice (render): a bot's words, which no other bot answers.
            sent = await self._send(room_id, "m.room.message", self._content(where, part)) \
                is not None or sent
        return sent

    def _waits_for_join(self, room_id: str, user: str) -> bool:
        """An encrypted room `user` has not joined (invited, or their invite not synced yet):
        their devices are not known, so nothing can be encrypted for them."""
        room = self.client.rooms.get(room_id)
        return bool(room is not None and room.encrypted
                    and (user not in room.users or user in room.invited_users))

    def _third_person(self, room_id: str, user: str) -> bool:
        """Whether `room_id` is gone from us or holds (joined or invited) someone besides the
        bot and `user`."""
        room = self.client.rooms.get(room_id)
        if room is None or room_id not in self._present:
            return True
        return bool((set(room.users) | set(room.invited_users)) - {self.client.user_id, user})

    def _hold(self, user: str, room_id: str, reply: Reply) -> None:
        held = self._held.get(user)
        if held is None or held.room_id != room_id:
            if held is not None:
                self._drop_held(user, "its direct room changed")
            held = self._held[user] = Held(room_id, asyncio.get_running_loop().time())
        held.replies.append(reply)
        if len(held.replies) > MAX_HELD:  # the newest are worth more than the oldest
            held.replies.pop(0)
            held.dropped += 1

    def _drop_held(self, user: str, why: str) -> None:
        held = self._held.pop(user)
        log.warning("matrix: %d change notices for %s dropped: %s", len(held.replies)
                    + held.dropped, user, why)

    async def _send_held(self) -> None:
        """After each sync: the notices held for users who have joined now go out; those of
        rooms no longer theirs alone are dropped; a user long awaited is named once."""
        now = asyncio.get_running_loop().time()
        for user, held in list(self._held.items()):
            if self._third_person(held.room_id, user):
                self._drop_held(user, f"{held.room_id} no longer holds only the two of us")
            elif not self._waits_for_join(held.room_id, user):
                # Their devices, met only now, must have the key of what follows.
                await self._crypto_housekeeping()
                del self._held[user]
                for reply in held.replies:
                    await self._send_notice(held.room_id, reply)
                log.info("matrix: %s joined %s; sent %d held change notices%s", user,
                         held.room_id, len(held.replies),
                         f" ({held.dropped} older ones dropped)" if held.dropped else "")
            elif now - held.since >= JOIN_WAIT and not held.warned:
                held.warned = True
                log.warning("matrix: %s has not joined the encrypted direct room %s in %g h; "
                            "keeping it and the last %d change notices for when they do",
                            user, held.room_id, JOIN_WAIT / 3600, MAX_HELD)

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
        log.info("matrix: created direct room %s with %s", room_id, user)
        return room_id
