"""Sending: answers cut into events under the size limit (measured as sent: in an encrypted
room, the ciphertext), `max_events` of them at a time and the rest on `!more`; an event the
server still refuses as too large sent again cut smaller, else one line that says so;
reactions; retries of 429s and outages under one transaction id; and the guard that sends
nothing in the clear into an encrypted room (CANNOT_READ, once, is the one exception).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from nio import MatrixRoom, RoomSendResponse
from nio.api import Api
from nio.exceptions import LocalProtocolError

from ...commands.messages import Message, Reply, Span, text
from ..backoff import Backoff
from .errors import TRANSIENT
from .render import Measure, content_bytes, encrypted_bytes, render, split_reply

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix

SEND_ATTEMPTS = 30
RESPLITS = 3  # times a refused event is cut smaller before the one-line answer
FIRST_SYNC_WAIT = 120.0  # seconds a post waits for the first sync to show its room
MAX_PENDING = 1000  # answers kept for "!more" (bot/pending.py)
CANNOT_READ = ("I cannot read encrypted messages (end-to-end encryption support is not "
               "installed), so I cannot answer in this room.")
TOO_LARGE = ("Part of this answer was too large for a Matrix event and could not be sent; "
             "ask for less (one area, or !show ID).")


@dataclass
@dataclass(frozen=True)
class Where:
    """Where an answer goes: the room, the event it answers, the thread that event is in."""

    room: str
    event_id: str | None = None
    thread: str | None = None

    def relation(self) -> dict[str, Any] | None:
        if self.thread:  # in the thread, and a reply for clients without threads
            return {"rel_type": "m.thread", "event_id": self.thread, "is_falling_back": True,
                    "m.in_reply_to": {"event_id": self.event_id or self.thread}}
        if self.event_id:
            return {"m.in_reply_to": {"event_id": self.event_id}}
        return None


class TooLarge(Exception):
    """The homeserver refused an event as too large (M_TOO_LARGE, HTTP 413)."""



class Sending:
    """Answers and posts of MatrixTransport (transport.py holds the state)."""

    async def post(self, room: str, reply: Reply) -> None:
        """An unsolicited answer (the digest): in as many events as it takes, no `!more`."""
        if self.client is not None and room not in self.client.rooms:
            try:  # (a digest due at start: whether the room is encrypted comes with the sync)
                await asyncio.wait_for(self.synced.wait(), FIRST_SYNC_WAIT)
            except asyncio.TimeoutError:
                pass
        where = Where(room)
        for part in split_reply(reply, measure=self._measure(where)):
            await self._send_part(where, part)

    async def _answer(self, msg: Message, where: Where, reply: Reply) -> None:
        """Send an answer in events under the size limit: `max_events` of them now, the rest
        when the person says `!more`. Then the reaction and the reply's action, if any."""
        assert self.client is not None
        parts = split_reply(reply, measure=self._measure(where))
        limit = self.mcfg.max_events
        if len(parts) > limit:
            rest = parts[limit:]
            self._pending.remember((msg.room, msg.sender.identity), rest)
            parts = parts[:limit - 1] + [self._with_tail(parts[limit - 1], rest)]
        for part in parts:
            await self._send_part(where, part)
        if reply.reaction and where.event_id:  # (never in an encrypted room: see _would_leak)
            await self._send(msg.room, "m.reaction", {"m.relates_to": {
                "rel_type": "m.annotation", "event_id": where.event_id, "key": reply.reaction}})
        if reply.action == "leave":
            await self.client.room_leave(msg.room)
            self._present.discard(msg.room)
            log.info("matrix: left %s as %s asked", msg.room, msg.sender.identity)

    def _with_tail(self, part: Reply, rest: list[Reply]) -> Reply:
        assert self.dispatcher is not None
        left = sum(len(p.lines) for p in rest)
        tail = Reply(lines=list(part.lines), outcome=part.outcome, items=part.items)
        return tail.add(f"({left} more line{'s' * (left != 1)}: say ",
                        Span(f"{self.dispatcher.prefix}more", bold=True), ")")

    async def _more(self, msg: Message, where: Where) -> None:
        """`!more`: the next parts of this person's last long answer in this room."""
        assert self.dispatcher is not None
        flood = self.dispatcher.throttle(msg)
        if flood is not False:
            if flood is not None:
                await self._answer(msg, where, flood)  # type: ignore[arg-type]
            return
        if self.repo is not None and msg.msg_id:
            async with self.repo.session(msg.sender.identity) as s:
                if not await s.record_event(self.name, msg.msg_id):
                    return
        key = (msg.room, msg.sender.identity)
        pending = self._pending.get(key)
        if pending is None:
            await self._send_part(where, text("There is nothing more to show."))
            return
        limit = self.mcfg.max_events
        parts = pending.parts[:limit]
        if rest := self._pending.advance(key, limit):
            parts[-1] = self._with_tail(parts[-1], rest)
        for part in parts:
            await self._send_part(where, part)

    @staticmethod
    def _content(where: Where, part: Reply) -> dict[str, Any]:
        content: dict[str, Any] = render(part)
        relation = where.relation()
        if relation:
            content["m.relates_to"] = relation
        return content

    def _measure(self, where: Where) -> Measure:
        """How many bytes a part takes as sent to this room: the ciphertext matrix-nio makes of
        it in an encrypted room (several times the text for emoji), else its JSON."""
        room = self.client.rooms.get(where.room) if self.client is not None else None
        if room is not None and room.encrypted:
            return lambda part: encrypted_bytes(self._content(where, part), where.room)
        return lambda part: content_bytes(self._content(where, part))

    async def _send_part(self, where: Where, part: Reply, resplits: int = RESPLITS) -> None:
        """One event: the rendered part, related to what it answers; its items recorded so
        that a reply to it can claim them. An event refused as too large is sent again cut in
        smaller ones; one that cannot be cut gets the one-line TOO_LARGE in its place."""
        try:
            event_id = await self._send(where.room, "m.room.message", self._content(where, part),
                                        splittable=True)
        except TooLarge:
            measure = self._measure(where)
            size, base = measure(part), measure(Reply())
            smaller = (split_reply(part, base + (size - base) // 2, measure) if resplits > 0
                       else [part])
            if len(smaller) > 1:
                log.warning("matrix: %s refused an event of %d bytes as too large; sending it "
                            "as %d smaller ones", where.room, size, len(smaller))
                for piece in smaller:
                    await self._send_part(where, piece, resplits - 1)
            else:
                log.error("matrix: %s refused an event of %d bytes as too large; it cannot be "
                          "cut further; said so instead", where.room, size)
                await self._send(where.room, "m.room.message", self._content(where, text(TOO_LARGE)))
            return
        if event_id is None:
            return
        self._note_answered(where.room, where.thread, part.items)
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.record_sent(self.name, where.room, event_id, part.items)

    async def _send(self, room_id: str, event_type: str, content: dict[str, Any], *,
                    in_the_clear: bool = False, splittable: bool = False) -> str | None:
        """Send one event, retrying 429s (as long as the server asks) and brief outages with the
        same transaction id, so a retry never posts twice. `in_the_clear` skips encryption
        (only for the notice that we cannot read a room). An event refused as too large raises
        TooLarge when `splittable` (the caller cuts it), else is logged."""
        client = self.client
        assert client is not None
        room = client.rooms.get(room_id)
        if not in_the_clear and self._would_leak(room_id, room, event_type):
            return None
        txn = str(uuid.uuid4())
        backoff = Backoff(1.0, 30.0)
        for _ in range(SEND_ATTEMPTS):
            try:
                if in_the_clear:
                    method, path, data = Api.room_send(client.access_token, room_id, event_type,
                                                       content, txn)
                    resp = await client._send(RoomSendResponse, method, path, data, (room_id,))
                else:
                    resp = await client.room_send(room_id, event_type, content, tx_id=txn,
                                                  ignore_unverified_devices=True)
            except TRANSIENT as exc:
                self._recovering = True
                delay = backoff.next()
                log.warning("matrix: send to %s failed (%s); retrying in %.0f s", room_id, exc,
                            delay)
                await asyncio.sleep(delay)
                continue
            except LocalProtocolError as exc:
                log.error("matrix: cannot send to %s: %s", room_id, exc)
                return None
            if isinstance(resp, RoomSendResponse):
                return resp.event_id
            if (resp.status_code == "M_TOO_LARGE"
                    or getattr(resp.transport_response, "status", None) == 413):
                if splittable:
                    raise TooLarge(resp.message)
                log.error("matrix: %s refused a %s event as too large", room_id, event_type)
                return None
            if resp.status_code == "M_LIMIT_EXCEEDED":
                self.rate_limited += 1
                delay = (resp.retry_after_ms or 1000) / 1000
                log.info("matrix: rate-limited in %s; waiting %.1f s", room_id, delay)
                await asyncio.sleep(delay)
                continue
            log.error("matrix: send to %s refused: %s %s", room_id, resp.status_code, resp.message)
            return None
        log.error("matrix: gave up sending to %s after %d attempts", room_id, SEND_ATTEMPTS)
        return None

    def _would_leak(self, room_id: str, room: MatrixRoom | None, event_type: str) -> bool:
        """Whether this event would go in the clear into an encrypted room (or one whose state
        we have not seen): matrix-nio sends plaintext when it has no E2EE support or store, and
        reactions are never encrypted. Such an event is not sent."""
        if room is None:
            log.warning("matrix: not sending to %s: its state (encrypted or not) is not known yet",
                        room_id)
            return True
        if not room.encrypted:
            return False
        if not self.e2ee or self.client is None or self.client.olm is None:
            log.warning("matrix: not sending to encrypted room %s without E2EE support", room_id)
            return True
        if event_type == "m.reaction":
            # That would tell which commands succeeded; the answer itself says it.
            log.debug("matrix: no reaction in encrypted room %s", room_id)
            return True
        return False

    async def _say_cannot_read(self, room_id: str) -> None:
        """Once per room: an unencrypted notice that we cannot read it, and nothing else."""
        assert self.client is not None
        key = self._kv(f"cannot-read:{room_id}")
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                if await s.kv_get(key):
                    return
                await s.kv_set(key, "1")
        content = {"msgtype": "m.notice", "body": CANNOT_READ}
        await self._send(room_id, "m.room.message", content, in_the_clear=True)
