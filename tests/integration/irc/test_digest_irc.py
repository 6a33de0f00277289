"""The scheduled digest reaches a real IRC channel, in its short form."""

from __future__ import annotations

import time

import pytest

from todobot.storage import digests

from .conftest import channel_name, seed_release

pytestmark = pytest.mark.integration


async def test_digest_is_posted_on_schedule_into_the_channel(ngircd, bot_factory, humans):
    chan = channel_name("dig")
    folded = chan.lower()

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API"),
                               ("hypervisor", "nice", "vMCE save/restore changes")])
        # The bot "was here" a few minutes ago: the minute that ended while it was down is due.
        await s.kv_set(f"digest.since/4.2/irc:{ngircd.network}/{folded}", repr(time.time() - 150))

    watcher = await humans(ngircd, "watcher", channel=chan)
    async with bot_factory(ngircd, channels=[chan], sasl=False, seed=seed,
                           config_kw={"digest": {"every": "* * * * *", "timezone": "UTC"}}) as bot:
        line = await watcher.hear(bot.nick, r"4\.2 TODO digest", timeout=90)
        assert "1 open blocker (1 unclaimed), 1 nice to have" in line
        await watcher.hear(bot.nick, r"\x02#1\x02 libxl stable API", timeout=30)  # bold id
        await watcher.hear(bot.nick, r"!todo", timeout=30)  # the pointer to the full list
        async with bot.repo.session("test", write=False) as s:
            rows = await digests.slots(s, "4.2")
        sent = [r for r in rows if r.status == "sent"]
        assert [(r.key.transport, r.key.room) for r in sent][:1] == [(f"irc:{ngircd.network}", folded)]
