"""todobot on ngIRCd: a plain RFC server (no SASL, no account tags), so every IRC user is an
unauthenticated nick: reading and claiming work, owner-only and admin actions are refused."""

from __future__ import annotations

import pytest

from todobot.storage import Repository

from .conftest import channel_name, seed_release

pytestmark = pytest.mark.integration


async def test_basic_scenario_without_cap_or_sasl(ngircd, bot_factory, humans):
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API"),
                               ("hypervisor", "nice", "vMCE save/restore changes")])

    async with bot_factory(ngircd, channels=[chan], sasl=False, seed=seed) as bot:
        conn = bot.transport._conn
        assert conn is not None and "sasl" not in conn.caps and conn.account is None
        ian = await humans(ngircd, "ian", channel=chan)
        george = await humans(ngircd, "george", channel=chan)

        ian.say(chan, "!whoami")
        said = await ian.hear(bot.nick, r"You are irc:ngnet/~ian")
        assert "not logged in to an account" in said

        george.say(chan, "!add tools blocker xl migrate must not leak fds")
        added = await george.hear(bot.nick, r"#3")
        assert "xl migrate must not leak fds" in added

        ian.say(chan, "!blockers")
        await ian.hear(bot.nick, r"Open blockers for 4.2: 2")
        await ian.hear(bot.nick, r"libxl stable API")

        ian.say(chan, "!show 3")
        await ian.hear(bot.nick, r"xl migrate must not leak fds")
        ian.say(chan, "I can take this one")
        claimed = await ian.hear(bot.nick, r"claimed by ian")
        assert "#3" in claimed
        # Both humans see the same channel answer.
        await george.hear(bot.nick, r"claimed by ian")

        ian.say(chan, "!status 3 patch posted")
        await ian.hear(bot.nick, r"progress: patch posted")

        # Owner-only action from a bare nick: refused, and the reason says why.
        ian.say(chan, "!done 3")
        refused = await ian.hear(bot.nick, r"mark it done")
        assert "Log in to your account" in refused

        repo: Repository = bot.repo
        async with repo.session("test", write=False) as s:
            item = await s.get(3)
        assert (item.owners, item.progress, item.state) == (["ian"], "patch posted", "open")
        assert item.title == "xl migrate must not leak fds"
        assert item.created_by == "irc:ngnet/~george"
        from_bot = [r for r in ian.raw if r.startswith(f":{bot.nick}!".encode())]
        assert from_bot and all(len(r) <= 512 and r.decode("utf-8") for r in from_bot)
