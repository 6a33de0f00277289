"""todobot on InspIRCd with Anope services: SASL, account identities, a release scenario,
flood limits, a server restart, nick collisions and text that tries to inject commands."""

from __future__ import annotations

import asyncio

import pytest

from todobot.bot.config import Throttle

from .conftest import WAIT, channel_name, seed_release

pytestmark = pytest.mark.integration


async def test_sasl_login_and_account_identity(inspircd, bot_factory, humans):
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        conn = bot.transport._conn
        assert conn is not None and conn.account == "todobot"
        assert {"sasl", "account-tag", "extended-join", "message-tags"} <= conn.caps
        # A person logged in to account ijc under another nick is the release manager ijc.
        ian = await humans(inspircd, "Ian", account="ijc", channel=chan)
        ian.say(chan, "!whoami")
        said = await ian.hear(bot.nick, r"You are irc:testnet/ijc")
        assert "not logged in" not in said and "release manager" in said
        ian.say(chan, "!blocker 1")
        await ian.hear(bot.nick, r"#1")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).severity == "blocker"


async def test_nick_spoofing_an_admin_is_refused(inspircd, bot_factory, humans):
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        spoof = await humans(inspircd, "ijc", channel=chan)  # the admin's name, no account
        spoof.say(chan, "!whoami")
        said = await spoof.hear(bot.nick, r"You are irc:testnet/~ijc")
        assert "(not logged in to an account)" in said and "release manager" not in said
        spoof.say(chan, "!blocker 1")
        refused = await spoof.hear(bot.nick, r"Only release managers")
        assert "not logged in to an account" in refused
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).severity == "nice"


async def test_release_scenario_with_two_people(inspircd, bot_factory, humans):
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API"),
                               ("hypervisor", "nice", "vMCE save/restore changes")])

    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        ian = await humans(inspircd, "Ian", account="ijc", channel=chan)
        george = await humans(inspircd, "george", account="george", channel=chan)

        ian.say(chan, "!add tools blocker xl migrate must not leak fds")
        await ian.hear(bot.nick, r"Added .*#3.*xl migrate must not leak fds")
        george.say(chan, "!blockers")
        await george.hear(bot.nick, r"Open blockers for 4.2: 2 \(2 unclaimed\)")
        await george.hear(bot.nick, r"#3.* xl migrate must not leak fds")
        # "This one" is the item the bot named last in this channel: #3.
        george.say(chan, "!show 3")
        await george.hear(bot.nick, r"Owners: unclaimed")
        george.say(chan, "I can take this one")
        await george.hear(bot.nick, r"#3.* claimed by george")
        await ian.hear(bot.nick, r"#3.* claimed by george")  # the channel sees it too
        george.say(chan, "!status 3 patch v2 posted")
        await george.hear(bot.nick, r"progress: patch v2 posted")
        george.say(chan, "!done 3 fixed in 1b3d3c7")
        await george.hear(bot.nick, r"#3.* done")

        async with bot.repo.session("test", write=False) as s:
            item = await s.get(3)
            notes = await s.notes(3)
        assert (item.state, item.owners, item.progress) == ("done", ["george"], "patch v2 posted")
        assert item.created_by == "irc:testnet/ijc" and item.updated_by == "irc:testnet/george"
        assert any("1b3d3c7" in n["text"] for n in notes)


async def test_long_todo_at_default_flood_limits(inspircd_default_limits, bot_factory, humans):
    server = inspircd_default_limits
    chan = channel_name()

    async def seed(s):
        rel = await s.create_release("4.2")
        for i in range(200):
            await s.add_item(rel, area=f"area{i % 7}", severity="blocker" if i % 3 else "nice",
                             title=f"item number {i} " + "with a title long enough to fill " * 8)

    # The bot's own default throttle (burst 4, then 1 line/s) against InspIRCd's defaults.
    # Titles of ~270 bytes: even packed, one item a line, so the answer needs !more.
    async with bot_factory(server, channels=[chan], sasl=False, throttle=Throttle(),
                           seed=seed) as bot:
        ian = await humans(server, "ian", channel=chan)
        sessions = bot.transport.sessions
        ian.say(chan, "!todo")
        await ian.hear(bot.nick, r"Open items for 4.2: 200", timeout=WAIT)
        offer = await ian.hear(bot.nick, r"more lines: say .*!more", timeout=WAIT)
        shown = [t for t in ian.heard(bot.nick)]
        assert len(shown) == bot.net.max_lines + 1
        left = int(offer.split("(")[1].split()[0])
        for _ in range(3):
            ian.say(chan, "!more")
            offer = await ian.hear(bot.nick, r"more lines: say .*!more", timeout=WAIT)
            now_left = int(offer.split("(")[1].split()[0])
            assert now_left == left - bot.net.max_lines
            left = now_left
        assert len(ian.heard(bot.nick)) == 4 * (bot.net.max_lines + 1)
        # Still the same session: the server never disconnected the bot for flooding.
        assert bot.transport.sessions == sessions and bot.transport.ready.is_set()
        ian.say(chan, "!whoami")
        await ian.hear(bot.nick, r"You are irc:testnet/~ian")


async def test_server_restart_mid_session(inspircd_private, bot_factory, humans):
    server = inspircd_private
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API")])

    async with bot_factory(server, channels=[chan], seed=seed) as bot:
        ian = await humans(server, "Ian", account="ijc", channel=chan)
        ian.say(chan, "!claim 1")
        await ian.hear(bot.nick, r"#1.* claimed by ijc")  # named by the account, not the nick
        assert bot.transport.sessions == 1

        await asyncio.to_thread(server.restart)  # every client drops; the server comes back
        async with asyncio.timeout(WAIT * 2):
            while not (bot.transport.sessions >= 2 and bot.transport.ready.is_set()):
                await asyncio.sleep(0.2)
        assert bot.transport._conn is not None and bot.transport._conn.account == "todobot"

        ian2 = await humans(server, "Ian", account="ijc", channel=chan)
        ian2.say(chan, "!show 1")
        await ian2.hear(bot.nick, r"Owners: ijc")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).owners == ["ijc"]


async def test_nick_collision_and_regain(inspircd, bot_factory, humans):
    chan = channel_name()
    squatter = await humans(inspircd, "todobot", channel=chan)
    watcher = await humans(inspircd, "watcher", channel=chan)

    async def seed(s):
        await seed_release(s, [("tools", "blocker", "libxl stable API")])

    async with bot_factory(inspircd, channels=[chan], seed=seed,
                           alternates=["todobot2"]) as bot:
        bot.transport.regain_interval = 2.0
        assert bot.nick == "todobot2"
        watcher.say(chan, "!blockers")
        await watcher.hear("todobot2", r"Open blockers for 4.2: 1")
        await squatter.quit()
        # The bot takes its nick back and keeps answering under it.
        await watcher.expect(lambda ln: ln.command == "NICK" and ln.nick == "todobot2"
                             and ln.param(0) == "todobot")
        watcher.say(chan, "!blockers")
        await watcher.hear("todobot", r"Open blockers for 4.2: 1")
        assert bot.nick == "todobot"


async def test_item_title_cannot_inject_commands(inspircd, bot_factory, humans):
    chan = channel_name()
    evil = channel_name("evil")

    async def seed(s):
        rel = await s.create_release("4.2")
        await s.add_item(rel, area="tools", severity="blocker",
                         title=f"harmless\r\nJOIN {evil}\r\nPRIVMSG {chan} :pwned")

    async with bot_factory(inspircd, channels=[chan], seed=seed) as bot:
        ian = await humans(inspircd, "ian", channel=chan)
        lurker = await humans(inspircd, "lurker", channel=evil)
        ian.say(chan, "!show 1")
        shown = await ian.hear(bot.nick, r"harmless")
        assert f"JOIN {evil}" in shown and "pwned" in shown  # shown as text, on one line
        ian.say(chan, "!blockers")
        await ian.hear(bot.nick, r"harmless")
        ian.say(chan, "!whoami")
        await ian.hear(bot.nick, r"You are")
        assert not [t for t in ian.heard(bot.nick) if t.startswith(":pwned") or t == "pwned"]
        assert not [ln for ln in lurker.lines if ln.command == "JOIN" and ln.nick == bot.nick]
        assert bot.transport.joined == {chan.lower()}
