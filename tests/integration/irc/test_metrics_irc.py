"""`/metrics` of a whole bot on a real IRC server: the status page's port bound before the
database, the digest it posted in the channel counted, the network's output queue reported."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.scrape import scrape

from .conftest import WAIT, channel_name, seed_release

pytestmark = pytest.mark.integration


async def test_metrics_count_the_digest_posted_in_a_real_channel(ngircd, bot_factory, humans):
    chan = channel_name("met")
    folded = chan.lower()
    transport = f"irc:{ngircd.network}"

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API")])
        # The bot "was here" a few minutes ago: the minute that ended while it was down is due.
        await s.kv_set(f"digest.since/4.2/{transport}/{folded}", repr(time.time() - 150))

    watcher = await humans(ngircd, "metwatch", channel=chan)
    async with bot_factory(ngircd, channels=[chan], sasl=False, seed=seed,
                           config_kw={"digest": {"every": "* * * * *", "timezone": "UTC"},
                                      "web": {"listen": "127.0.0.1:0"}}) as bot:
        web = bot.app.web
        assert web is not None and bot.app.listening == []  # served what initialize bound
        await watcher.hear(bot.nick, r"4\.2 TODO digest", timeout=90)
        url = web.url + "/metrics"
        key = ("todobot_digests_sent_total", (("room", folded), ("transport", transport)))
        # Counted once the slot is recorded as sent, just after the post: wait for that.
        async with asyncio.timeout(WAIT):
            while (samples := await scrape(url)).get(key) != 1:
                await asyncio.sleep(0.1)
        assert samples[("todobot_transport_up", (("transport", transport),))] == 1
        assert (("todobot_queue_length", (("queue", "output"), ("source", transport)))
                in samples)
        assert samples[("todobot_queue_length", (("queue", "batches"), ("source", "notify")))] == 0
