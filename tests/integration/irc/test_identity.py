"""Rights follow accounts, never names, on a real InspIRCd with Anope accounts."""

from __future__ import annotations

import pytest

from .conftest import channel_name, register_account, seed_release

pytestmark = pytest.mark.integration


async def test_a_name_or_a_nick_is_not_an_account(inspircd, bot_factory, humans):
    chan = channel_name("who")

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API"),
                               ("tools", "nice", "xl compatibility with xm")])

    for account in ("alice", "bob"):
        await register_account(inspircd, account)
    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        alice = await humans(inspircd, "alice_away", account="alice", channel=chan)
        alice.say(chan, "!claim 1")
        await alice.hear(bot.nick, r"#1.* claimed by alice ")  # named by the account
        await alice.quit()
        # Account bob takes the nick alice used, then alice's name: neither gives rights.
        bob = await humans(inspircd, "alice_away", account="bob", channel=chan)
        bob.say(chan, "!iam alice")
        await bob.hear(bot.nick, r"alice is taken by irc:testnet/alice")
        bob.say(chan, "!done 1")
        await bob.hear(bot.nick, r"Only the owners of #1")
        # A namesake with no account at all is told to log in.
        drive_by = await humans(inspircd, "alice", channel=chan)
        drive_by.say(chan, "!unclaim 1")
        await drive_by.hear(bot.nick, r"Log in to your account to unclaim it")
        async with bot.repo.session("test", write=False) as s:
            item = await s.get(1)
            assert (item.owners, item.state) == (["alice"], "open")
        # The real alice, under yet another nick, still owns it.
        back = await humans(inspircd, "ali", account="alice", channel=chan)
        back.say(chan, "!done 1")
        await back.hear(bot.nick, r"#1.* done")


async def test_a_name_chosen_before_an_import_gets_none_of_its_items(inspircd, bot_factory, humans):
    """A logged-in user takes a name nobody has yet; `todobot import` (another connection to
    the database, as the command line makes) then names that name as an owner."""
    from todobot.bot.mail_import import import_list
    from todobot.storage import layouts

    chan = channel_name("squat")

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API")])

    await register_account(inspircd, "mal")
    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        mal = await humans(inspircd, "mal", account="mal", channel=chan)
        mal.say(chan, "!iam George Dunlap")
        await mal.hear(bot.nick, r"You are now George Dunlap \(was mal\)")
        lst = layouts.parse("tools, blockers:\n\n    * xl shutdown hangs (George Dunlap)\n\n",
                            "4.2", None)
        result = await import_list(bot.app.config.database, lst, "4.2", actor="cli:import")
        mal.say(chan, "!done 2")
        await mal.hear(bot.nick, r"Only the owners of #2 or a release manager may mark it done; "
                                 r"it is owned by George Dunlap\.")
        mal.say(chan, "!whoami")
        await mal.hear(bot.nick, r"shown as George Dunlap \(testnet/mal\)")
        async with bot.repo.session("test", write=False) as s:
            item = await s.get(2)
            george = await s.person_named("George Dunlap")
            assert (item.owners, item.state, george.placeholder) == (["George Dunlap"], "open", True)
        assert result.stats["to confirm"] == 1
