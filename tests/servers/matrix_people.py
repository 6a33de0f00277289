"""People on a test Synapse, and the bot's config for it: shared by the Matrix tests
(tests/integration/matrix/conftest.py) and the latency benchmark (bench/matrix_latency.py).

A `Person` is a matrix-nio client in a sync loop that keeps every event it sees, stamped on
arrival (`time.perf_counter()`), so the tests can look for replies and reactions and the
benchmark can time them with the same code.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nio import (AsyncClient, AsyncClientConfig, Event, LoginResponse, RoomCreateResponse,
                 RoomSendResponse)

from tests.servers.synapse import Synapse

PASSWORD = "correct horse battery staple"
RELEASE = "4.2"


class Person:
    """A person in a Matrix client: says things, sees everything in their rooms.

    `replies` maps an event id to (arrival time, sender) of the first Matrix reply to it,
    `joined` a user id to when their join arrived, `sent` an event id this person sent to
    the time just before sending; `on_message` (async, room id and event) is called for
    every message from someone else."""

    def __init__(self, server: Synapse, name: str, store: Path, *, password: str = PASSWORD,
                 encryption: bool = True, device: str = "test", sync_timeout_ms: int = 500,
                 full_state: bool | None = True) -> None:
        self.name = name
        self.password = password
        self.device = device
        self.sync_timeout_ms = sync_timeout_ms
        self.full_state = full_state
        self.user_id = server.register(name, password)
        store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(server.url, self.user_id, store_path=str(store),
                                  config=AsyncClientConfig(store_sync_tokens=False,
                                                           encryption_enabled=encryption,
                                                           max_timeout_retry_wait_time=1))
        self.events: list[tuple[str, Event]] = []
        self.replies: dict[str, tuple[float, str]] = {}
        self.joined: dict[str, float] = {}
        self.sent: dict[str, float] = {}
        self.on_message: Callable[[str, Any], Awaitable[None]] | None = None
        self.arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "Person":
        resp = await self.client.login(self.password, device_name=self.device)
        assert isinstance(resp, LoginResponse), resp
        self.client.add_event_callback(self._on_event, Event)
        self._task = asyncio.create_task(self.client.sync_forever(
            timeout=self.sync_timeout_ms, full_state=self.full_state))
        return self

    async def _on_event(self, room: Any, event: Event) -> None:
        now = time.perf_counter()
        self.events.append((room.room_id, event))
        source = event.source
        content = source.get("content", {})
        if source.get("type") == "m.room.member" and content.get("membership") == "join":
            self.joined.setdefault(source.get("state_key"), now)
        rel = (content.get("m.relates_to") or {}).get("m.in_reply_to") or {}
        if rel.get("event_id"):
            self.replies.setdefault(rel["event_id"], (now, getattr(event, "sender", "")))
        if self.on_message is not None and source.get("type") == "m.room.message" \
                and getattr(event, "sender", None) != self.user_id:
            await self.on_message(room.room_id, event)
        self.arrived.set()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.close()

    async def create_room(self, invite: list[str], *, encrypted: bool = False,
                          preset: Any = None) -> str:
        initial = [{"type": "m.room.encryption", "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"}}] if encrypted else []
        resp = await self.client.room_create(invite=invite, initial_state=initial, preset=preset)
        assert isinstance(resp, RoomCreateResponse), resp
        await self.wait_until(lambda: resp.room_id in self.client.rooms)
        return resp.room_id

    async def join(self, room_id: str) -> None:
        await self.wait_until(lambda: room_id in self.client.invited_rooms
                              or room_id in self.client.rooms)
        await self.client.join(room_id)
        await self.wait_until(lambda: room_id in self.client.rooms)

    async def say(self, room_id: str, text: str, reply_to: str | None = None) -> str:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        t0 = time.perf_counter()
        resp = await self.client.room_send(room_id, "m.room.message", content,
                                           ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), resp
        self.sent[resp.event_id] = t0
        return resp.event_id

    def from_user(self, user_id: str, room_id: str | None = None) -> list[Event]:
        return [ev for r, ev in self.events
                if getattr(ev, "sender", None) == user_id and (room_id is None or r == room_id)]

    def replies_to(self, event_id: str, bot: str) -> list[Event]:
        """The bot's messages that are Matrix replies to `event_id`."""
        out = []
        for ev in self.from_user(bot):
            rel = ev.source.get("content", {}).get("m.relates_to") or {}
            if (rel.get("m.in_reply_to") or {}).get("event_id") == event_id and hasattr(ev, "body"):
                out.append(ev)
        return out

    def reactions_to(self, event_id: str, bot: str) -> list[str]:
        out = []
        for ev in self.from_user(bot):
            content = ev.source.get("content", {})
            rel = content.get("m.relates_to") or {}
            if ev.source.get("type") == "m.reaction" and rel.get("event_id") == event_id:
                out.append(rel.get("key"))
        return out

    async def wait(self, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Until `cond()` is true (its value), checked as events arrive and every 50 ms (invites
        come without an event callback); TimeoutError after `timeout` seconds."""
        async with asyncio.timeout(timeout):
            while not (value := cond()):
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), 0.05)
                except TimeoutError:
                    pass
        return value

    async def wait_until(self, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
        """`wait`, failing the test with an AssertionError that names this person."""
        try:
            return await self.wait(cond, timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name}: timed out waiting for {cond}") from None

    async def wait_membership(self, room_id: str, user_id: str, membership: str,
                              timeout: float = 60.0) -> None:
        """Until this person has seen `user_id`'s membership in `room_id` become `membership`."""
        await self.wait_until(lambda: any(
            getattr(e, "state_key", None) == user_id and getattr(e, "membership", None) == membership
            for r, e in self.events if r == room_id), timeout)

    async def reply_to(self, event_id: str, bot: str, timeout: float = 60.0) -> Any:
        found = await self.wait_until(lambda: self.replies_to(event_id, bot), timeout)
        return found[0]

    async def barrier(self, room_id: str, bot: str, timeout: float = 60.0, *,
                      by: "Person | None" = None) -> None:
        """Whatever the bot was going to send in `room_id` for what was said before is here:
        it handles a room's events in order, so once the answer to a later `!whoami` (said by
        `by`, default this person) has arrived in this person's timeline, everything before
        it has too. In place of a sleep before asserting that nothing (more) came."""
        ev = await (by or self).say(room_id, "!whoami")
        await self.reply_to(ev, bot, timeout)

    async def set_name(self, room_id: str, name: str) -> None:
        """Change the display name and wait until the room carries it: the bot sees the
        member event before anything said after it."""
        await self.client.set_displayname(name)
        await self.wait_until(lambda: any(
            r == room_id and e.source.get("type") == "m.room.member"
            and e.source.get("state_key") == self.user_id
            and e.source.get("content", {}).get("displayname") == name for r, e in self.events))


def bot_settings(homeserver: str, bot_user: str, *, database: Path | str, data_dir: Path | str,
                 password_env: str | None = None, token_env: str | None = None,
                 rooms: list[Any] | tuple = (), admins: list[str] | tuple = (),
                 inviters: list[str] | tuple = (), e2ee: bool = True, log_level: str = "DEBUG",
                 cooldown: dict[str, Any] | None = None, **matrix: Any) -> dict[str, Any]:
    """The bot's config for one Matrix account, as the dict a YAML config file holds.
    `matrix` adds keys of the `matrix:` section (max_events=2, ...)."""
    secret = {"access_token_env": token_env} if token_env else {"password_env": password_env}
    return {
        "database": str(database),
        "default_release": RELEASE,
        "admins": [f"matrix:{a}" for a in admins],
        "log_level": log_level,
        # Bursts here measure the transport, not flood control (unless a caller says otherwise).
        "cooldown": cooldown or {"burst": 1000, "rate": 1000},
        "max_adds_per_hour": None,
        "matrix": {"homeserver": homeserver, "user_id": bot_user, **secret,
                   "rooms": list(rooms), "allowed_inviters": list(inviters),
                   "data_dir": str(data_dir), "e2ee": e2ee, **matrix},
    }
