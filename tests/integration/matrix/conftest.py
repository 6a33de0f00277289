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

from todobot.bot.app import App
from todobot.bot.config import Config, parse_config
from todobot.storage import Database, Repository
from tests.servers.matrix_people import PASSWORD, RELEASE, Person, bot_settings
from tests.servers.synapse import Synapse, SynapseUnavailable

PASSWORD_ENV = "TODOBOT_TEST_MATRIX_PASSWORD"
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


class Human(Person):
    """A person in a Matrix client (tests/servers/matrix_people.py, shared with bench/)."""


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


def bot_config(synapse: Synapse, tmp_path: Path, bot_user: str, *, homeserver: str | None = None,
               **kwargs: Any) -> Config:
    """The bot on `synapse` (or `homeserver`, e.g. a proxy in front of it); keyword arguments
    as `bot_settings` takes them (rooms, admins, inviters, e2ee, token_env, cooldown, and keys
    of the `matrix:` section such as max_events=2)."""
    kwargs.setdefault("password_env", PASSWORD_ENV)
    return parse_config(bot_settings(homeserver or synapse.url, bot_user,
                                     database=tmp_path / "todo.sqlite3",
                                     data_dir=tmp_path / "matrix-data", **kwargs))


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
