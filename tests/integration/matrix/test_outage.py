"""The homeserver goes away for 30 s or 60 s and comes back: the bot waits quietly, then resumes."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import (PASSWORD, Human, bot_config, start_bot, start_synapse, unique,
                       wait_bot_synced)

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("outage", [30.0, 60.0])
async def test_outage_backoff_and_resume(tmp_path, outage):
    server = start_synapse(tmp_path / "synapse")  # our own: stopping it disturbs no one else
    alice = None
    app = None
    try:
        alice = await Human(server, unique("alice"), tmp_path / "alice").start()
        bot_user = server.register(unique("todobot"), PASSWORD)
        room = await alice.create_room([bot_user])
        config = bot_config(server, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
        app = await start_bot(config)
        transport = app.transports[-1]
        await wait_bot_synced(config.database, bot_user)
        ev = await alice.say(room, "!todo")
        await alice.reply_to(ev, bot_user)

        server.stop()
        down_at = time.monotonic()
        before = transport.requests
        await asyncio.sleep(outage)  # deliberately: the outage whose request rate is measured
        during = transport.requests - before
        down_for = time.monotonic() - down_at
        # At most one request (HTTP or connection probe) per second while it is down.
        assert during <= down_for, f"{during} requests in {down_for:.0f} s of outage"

        transport.synced.clear()
        server.start()
        back_at = time.monotonic()
        await asyncio.wait_for(transport.synced.wait(), 60)
        resumed_after = time.monotonic() - back_at
        assert resumed_after <= 10, f"resumed {resumed_after:.1f} s after the server came back"

        ev = await alice.say(room, "!add tools nice after the outage")
        added = await alice.reply_to(ev, bot_user, timeout=60)
        assert added.body.startswith("Added #"), added.body
    finally:
        if app is not None:
            await app.stop()
        if alice is not None:
            await alice.close()
        server.stop()
