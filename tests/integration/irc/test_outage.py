"""The IRC server goes away for 5 s and for 60 s: the bot comes back by itself, in its channel,
with nothing lost, and does not hammer the server while it is down."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import channel_name, seed_release

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("down_for,back_within", [(5, 15), (60, 90)])
async def test_server_down_and_back(ngircd_private, bot_factory, humans, down_for, back_within):
    server = ngircd_private
    chan = channel_name("out")

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API")])

    async with bot_factory(server, channels=[chan], sasl=False, seed=seed) as bot:
        ian = await humans(server, "ian", channel=chan)
        ian.say(chan, "!status 1 patch posted")
        await ian.hear(bot.nick, r"progress: patch posted")
        assert bot.transport.sessions == 1
        before = bot.transport.attempts

        await asyncio.to_thread(server.stop)
        await asyncio.sleep(down_for)
        await asyncio.to_thread(server.start)
        back = time.monotonic()
        async with asyncio.timeout(back_within):
            while not (bot.transport.sessions >= 2 and bot.transport.ready.is_set()):
                await asyncio.sleep(0.2)
        # Reconnect attempts while down follow the exponential backoff: a handful, not a storm.
        assert bot.transport.attempts - before <= 8

        ian2 = await humans(server, "ian2", channel=chan)
        ian2.say(chan, "!show 1")
        await ian2.hear(bot.nick, r"patch posted")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).progress == "patch posted"
        assert time.monotonic() - back < back_within + 30
