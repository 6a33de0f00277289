"""Fixtures for the Matrix tests: a real Synapse, people as matrix-nio clients, the bot.

The Synapse is session-scoped (one per test run); every test registers its own users, so
tests do not see each other's rooms or devices.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from nio import (AsyncClient, AsyncClientConfig, Event, LoginResponse, RoomCreateResponse,
                 RoomSendResponse)

from todobot.bot.app import App
from todobot.bot.config import Config, parse_config
from todobot.storage import Database, Repository
from tests.servers.synapse import Synapse, SynapseUnavailable

PASSWORD = "correct horse battery staple"
PASSWORD_ENV = "TODOBOT_TEST_MATRIX_PASSWORD"
RELEASE = "4.2"
_names = itertools.count(1)


def _unavailable(reason: str) -> None:
    if os.environ.get("TODOBOT_REQUIRE_SERVERS") == "1":
        pytest.fail(f"Synapse is required (TODOBOT_REQUIRE_SERVERS=1) but {reason}")
    pytest.skip(reason)


def start_synapse(directory: Path, **kwargs: Any) -> Synapse:
    try:
        server = Synapse(directory, **kwargs)
    except SynapseUnavailable as exc:
        _unavailable(str(exc))
    server.start()
    return server


@pytest.fixture(scope="session")
def synapse(tmp_path_factory: pytest.TempPathFactory) -> Any:
    server = start_synapse(tmp_path_factory.mktemp("synapse"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid()}x{next(_names)}"


class Human:
    """A person in a Matrix client: says things, sees everything in their rooms."""

    def __init__(self, server: Synapse, name: str, store: Path) -> None:
        self.name = name
        self.user_id = server.register(name, PASSWORD)
        store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(server.url, self.user_id, store_path=str(store),
                                  config=AsyncClientConfig(store_sync_tokens=False,
                                                           encryption_enabled=True,
                                                           max_timeout_retry_wait_time=1))
        self.events: list[tuple[str, Event]] = []
        self._task: asyncio.Task[None] | None = None
        self._seen = asyncio.Event()

    async def start(self) -> "Human":
        resp = await self.client.login(PASSWORD, device_name="test")
        assert isinstance(resp, LoginResponse), resp
        self.client.add_event_callback(self._on_event, Event)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=500, full_state=True))
        return self

    async def _on_event(self, room: Any, event: Event) -> None:
        self.events.append((room.room_id, event))
        self._seen.set()

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.close()

    async def create_room(self, invite: list[str], *, encrypted: bool = False) -> str:
        initial = [{"type": "m.room.encryption", "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"}}] if encrypted else []
        resp = await self.client.room_create(invite=invite, initial_state=initial,
                                             preset=None)
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
        resp = await self.client.room_send(room_id, "m.room.message", content,
                                           ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), resp
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

    async def wait_until(self, cond: Callable[[], Any], timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: timed out waiting for {cond}")
            await asyncio.sleep(0.1)

    async def reply_to(self, event_id: str, bot: str, timeout: float = 60.0) -> Any:
        found = await self.wait_until(lambda: self.replies_to(event_id, bot), timeout)
        return found[0]


@pytest.fixture
async def humans(synapse: Synapse, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    made: list[Human] = []

    async def make(prefix: str = "human") -> Human:
        name = unique(prefix)
        h = await Human(synapse, name, tmp_path / "clients" / name).start()
        made.append(h)
        return h

    yield make
    for h in made:
        await h.close()


def bot_config(synapse: Synapse, tmp_path: Path, bot_user: str, *, rooms: list[Any] = (),
               admins: list[str] = (), inviters: list[str] = (), e2ee: bool = True,
               homeserver: str | None = None, token_env: str | None = None,
               cooldown: dict[str, Any] | None = None, **matrix: Any) -> Config:
    """`matrix` adds keys of the `matrix:` section (max_events=2, ...)."""
    secret = {"access_token_env": token_env} if token_env else {"password_env": PASSWORD_ENV}
    return parse_config({
        "database": str(tmp_path / "todo.sqlite3"),
        "default_release": RELEASE,
        "admins": [f"matrix:{a}" for a in admins],
        "log_level": "DEBUG",
        # Bursts here test the transport, not flood control (unless a test says otherwise).
        "cooldown": cooldown or {"burst": 1000, "rate": 1000},
        "max_adds_per_hour": None,
        "matrix": {"homeserver": homeserver or synapse.url, "user_id": bot_user, **secret,
                   "rooms": list(rooms),
                   "allowed_inviters": list(inviters), "data_dir": str(tmp_path / "matrix-data"),
                   "e2ee": e2ee, **matrix},
    })


async def prepare_db(path: str, extra_release: str | None = None) -> None:
    db = await Database.open(path)
    try:
        async with Repository(db).session("test") as s:
            await s.ensure_release(RELEASE)
            if extra_release:
                await s.ensure_release(extra_release)
    finally:
        await db.close()


async def start_bot(config: Config) -> App:
    await prepare_db(config.database)
    app = App(config)
    await app.initialize()
    await app.start()
    return app


async def open_repo(path: str) -> tuple[Database, Repository]:
    db = await Database.open(path)
    return db, Repository(db)


async def items_titled(path: str, fragment: str, release: str = RELEASE) -> list[Any]:
    db, repo = await open_repo(path)
    try:
        async with repo.session("test", write=False) as s:
            rel = await s.require_release(release)
            return [i for i in await s.items(rel, states=None) if fragment in i.title]
    finally:
        await db.close()


async def wait_bot_synced(db_path: str, bot_user: str, timeout: float = 90.0) -> None:
    """Until the bot has stored a sync token: from then on, what people say is not backlog."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db, repo = await open_repo(db_path)
        try:
            async with repo.session("test", write=False) as s:
                if await s.kv_get(f"matrix:{bot_user}:next_batch"):
                    return
        finally:
            await db.close()
        await asyncio.sleep(0.2)
    raise AssertionError("the bot never completed a sync")


@pytest.fixture
def bot_user(synapse: Synapse) -> str:
    return synapse.register(unique("todobot"), PASSWORD)
