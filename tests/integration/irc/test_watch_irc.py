"""Change notices on InspIRCd + Anope: a watcher logged in to an account gets a NOTICE when
someone else changes the item they watch."""

from __future__ import annotations

import pytest

from .conftest import channel_name, seed_release

pytestmark = pytest.mark.integration


async def _ian_watches_and_george_claims(server, bot, humans, chan):
    """Ian (account ijc) watches #1; George (account george) claims it."""
    ian = await humans(server, "Ian", account="ijc", channel=chan)
    george = await humans(server, "george", account="george", channel=chan)
    ian.say(chan, "!watch 1")
    await ian.hear(bot.nick, r"#1")
    george.say(chan, "!claim 1")
    await george.hear(bot.nick, r"#1.* claimed by george")
    return ian, george


async def _notice_to_ian(ian, bot):
    """The bot's NOTICE about #1 addressed to the nick Ian (in private, not the channel)."""
    return await ian.expect(lambda ln: ln.command == "NOTICE"
                            and (ln.nick or "").lower() == bot.nick.lower()
                            and ln.param(0).lower() == "ian" and "#1" in ln.param(1))


async def test_a_watcher_gets_a_notice_when_someone_else_claims(inspircd, bot_factory, humans):
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        ian, george = await _ian_watches_and_george_claims(inspircd, bot, humans, chan)
        # Privately, to the nick logged in as ijc: a NOTICE addressed to Ian, not the channel.
        assert "george" in (await _notice_to_ian(ian, bot)).param(1)
        # The one who made the change is not told of it.
        assert not [ln for ln in george.lines if ln.command == "NOTICE"
                    and (ln.nick or "").lower() == bot.nick.lower() and "#1" in ln.param(1)]


async def test_with_account_tag_alone_the_watcher_is_known_by_what_they_said(
        inspircd_account_tag_only, bot_factory, humans):
    server = inspircd_account_tag_only
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(server, channels=[chan], seed=seed) as bot:
        caps = bot.transport._conn.caps
        assert "account-tag" in caps and not {"account-notify", "extended-join"} & set(caps)
        # Ian's !watch carries his account tag: that tells the bot that Ian is ijc.
        ian, george = await _ian_watches_and_george_claims(server, bot, humans, chan)
        assert "george" in (await _notice_to_ian(ian, bot)).param(1)
