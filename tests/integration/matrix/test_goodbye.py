"""The Matrix goodbye on stop (SIGTERM): the sync stops, the token is kept, the bot's presence
goes offline at once (others see it), the HTTP session closes — and the device is not logged
out: a restart carries on with the same device and token."""

from __future__ import annotations

import asyncio
import json

import pytest
from nio import AsyncClient, PresenceGetResponse, WhoamiResponse

from .conftest import (PASSWORD, Human, bot_config, open_repo, start_bot, start_synapse, unique,
                       wait_bot_synced)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def presence_synapse(tmp_path_factory):
    """A Synapse with presence on (the shared one has it off)."""
    server = start_synapse(tmp_path_factory.mktemp("synapse-presence"), presence=True)
    try:
        yield server
    finally:
        server.stop()


async def _presence(person: Human, user_id: str) -> str:
    resp = await person.client.get_presence(user_id)
    assert isinstance(resp, PresenceGetResponse), resp
    return resp.presence


async def test_stop_says_offline_keeps_the_token_and_does_not_log_out(presence_synapse, tmp_path):
    server = presence_synapse
    alice = await Human(server, unique("alice"), tmp_path / "alice").start()
    app = None
    try:
        bot_user = server.register(unique("todobot"), PASSWORD)
        room = await alice.create_room([bot_user])
        config = bot_config(server, tmp_path, bot_user, rooms=[room])
        app = await start_bot(config)
        bot = app.transports[-1]
        await wait_bot_synced(config.database, bot_user)
        # Syncing makes the bot "online" (nio asks for no other state).
        async with asyncio.timeout(30):
            while await _presence(alice, bot_user) != "online":
                await asyncio.sleep(0.2)
        client = bot.client
        await app.stop()
        app = None
        # Offline at once — the server's own timeout would keep it online for 30 s more.
        assert await _presence(alice, bot_user) == "offline"
        assert client.client_session is None  # the HTTP session is closed
        db, repo = await open_repo(config.database)
        try:
            async with repo.session("test", write=False) as s:
                assert await s.kv_get(f"matrix:{bot_user}:next_batch") == bot._next_batch
        finally:
            await db.close()
        # Not logged out: the saved token still works, for the same device.
        saved = json.loads((tmp_path / "matrix-data" / "credentials.json").read_text())
        probe = AsyncClient(server.url, bot_user)
        try:
            probe.restore_login(bot_user, saved["device_id"], saved["access_token"])
            who = await probe.whoami()
            assert isinstance(who, WhoamiResponse) and who.device_id == saved["device_id"], who
        finally:
            await probe.close()
        # A restart carries on on that device and comes back online.
        app = await start_bot(config)
        async with asyncio.timeout(30):
            while await _presence(alice, bot_user) != "online":
                await asyncio.sleep(0.2)
        assert app.transports[-1].client.device_id == saved["device_id"]
    finally:
        if app is not None:
            await app.stop()
        await alice.close()
