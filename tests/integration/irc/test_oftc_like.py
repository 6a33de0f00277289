"""todobot on a network shaped like OFTC: InspIRCd + Anope with NickServ accounts but no
SASL and none of the IRCv3 account capabilities, reached over TLS verified against the
server's own certificate, at the server's default flood limits and the bot's default
throttle. Identity comes from WHOIS; the bot logs in with NickServ IDENTIFY."""

from __future__ import annotations

import asyncio

import pytest

from todobot.bot.cli import seed_text
from todobot.bot.config import Throttle
from todobot.storage.layouts.xen42 import parse_mail
from tests.servers.ircd import make_certificate

from .conftest import BOT_PASSWORD_ENV, WAIT, channel_name

pytestmark = pytest.mark.integration


async def seed_xen(s) -> None:
    await s.import_list("4.2", parse_mail(seed_text(), "4.2"))


async def test_release_manager_by_nickserv_over_verified_tls(oftc_like, bot_factory, humans):
    server = oftc_like
    chan = channel_name("xen")
    async with bot_factory(server, channels=[chan], sasl=False, tls=True, throttle=Throttle(),
                           nickserv_password_env=BOT_PASSWORD_ENV, seed=seed_xen) as bot:
        conn = bot.transport._conn
        assert conn is not None and conn.account == "todobot"
        assert not {"sasl", "account-tag", "extended-join", "account-notify"} & set(conn.offered)

        ian = await humans(server, "Ian", identify="ijc", channel=chan)
        # The server, too, says the bot is logged in.
        ian.send(f"WHOIS {bot.nick}")
        whois = await ian.expect(lambda ln: ln.command in ("330", "318"))
        assert whois.command == "330" and whois.param(2) == "todobot"

        # All six open blockers, without !more, in at most three lines.
        ian.say(chan, "!blockers")
        await ian.hear(bot.nick, r"Open blockers for 4.2: 6")
        last = await ian.hear(bot.nick, r"#10\b")
        # The bot answers the channel in order: anything more came before this answer.
        ian.say(chan, "!whoami")
        await ian.hear(bot.nick, r"You are ")
        said = ian.heard(bot.nick)[:-1]
        assert len(said) <= 3 and not [t for t in said if "more" in t.lower() and "!more" in t]
        for item_id in (1, 2, 4, 5, 8, 10):
            assert f"#{item_id}\x02" in " ".join(said)
        assert "#10" in last

        # The release manager, identified to NickServ under another nick, moves #11.
        ian.say(chan, "!blocker 11")
        await ian.hear(bot.nick, r"#11.*blocker")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(11)).severity == "blocker"

        # A namesake with the release manager's nick but no login is refused; nothing changes.
        namesake = await humans(server, "ijc", channel=chan)
        namesake.say(chan, "!nice 11")
        refused = await namesake.hear(bot.nick, r"Only release managers")
        assert "not logged in to an account" in refused
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(11)).severity == "blocker"

        ian.say(chan, "!whoami")
        said = await ian.hear(bot.nick, r"You are irc:oftcnet/ijc")
        assert "release manager" in said


async def test_certificate_from_another_ca_is_refused(oftc_like, bot_factory, tmp_path):
    wrong_ca, _ = make_certificate(tmp_path, "other-ca")
    async with bot_factory(oftc_like, channels=[channel_name()], sasl=False, tls=True,
                           tls_ca=wrong_ca, wait=False) as bot:
        async with asyncio.timeout(WAIT):
            while bot.transport.failed is None:
                await asyncio.sleep(0.1)
        assert f"{oftc_like.host}:{oftc_like.tls_port}" in bot.transport.failed
        assert "did not verify" in bot.transport.failed
        assert bot.transport.sessions == 0 and not bot.transport.ready.is_set()


async def test_registered_only_channel_is_joined_after_identifying(oftc_like, bot_factory, humans):
    chan = channel_name("regonly")
    ian = await humans(oftc_like, "Ian", identify="ijc", channel=chan)  # first in: operator
    ian.send(f"MODE {chan} +R")
    await ian.expect(lambda ln: ln.command == "MODE" and ln.param(1) == "+R")
    # The server counts the bot as logged in by the time it joins. (That the joins wait for
    # NickServ's answer is shown at the wire level in tests/test_irc_transport.py: here
    # services answer faster than the MOTD ends.)
    async with bot_factory(oftc_like, channels=[chan], sasl=False, tls=True,
                           nickserv_password_env=BOT_PASSWORD_ENV) as bot:
        assert bot.transport.joined == {chan.lower()}
        await ian.expect(lambda ln: ln.command == "JOIN" and ln.nick == bot.nick)


# -- identity bound to the exact source of a command -------------------------------------------


async def offers_monitor(bot) -> bool:
    conn = bot.transport._conn
    assert conn is not None
    return bool(getattr(conn.features, "monitor", None))


async def next_holder_of_a_nick(server, bot_factory, humans, *, monitor: bool) -> None:
    """The release manager, as "bob", identifies, asks `!whoami` in private and quits; an
    unidentified client from the same user@host takes "bob" and sends `!done 11` in private:
    the bot shares no channel with either, so it asks again (or, with MONITOR, has seen bob
    go) and #11 stays open."""
    async with bot_factory(server, channels=[channel_name("xen")], sasl=False, tls=monitor,
                           throttle=Throttle(), nickserv_password_env=BOT_PASSWORD_ENV,
                           seed=seed_xen) as bot:
        assert await offers_monitor(bot) == monitor
        bob = await humans(server, "bob", identify="ijc", user="bob")
        bob.say(bot.nick, "!whoami")
        said = await bob.hear(bot.nick, r"You are ", command="NOTICE")
        assert "irc:oftcnet/ijc" in said and "release manager" in said
        await bob.quit()
        taker = await humans(server, "bob", user="bob")  # the same user@host, no login
        async with bot.repo.session("test", write=False) as s:
            before = (await s.get(11)).state
        assert before != "done"
        taker.say(bot.nick, "!done 11")
        refused = await taker.hear(bot.nick, r"#11", command="NOTICE")
        assert "Log in to your account" in refused or "Only the owners" in refused
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(11)).state == before
        taker.say(bot.nick, "!whoami")
        said = await taker.hear(bot.nick, r"You are ", command="NOTICE")
        assert "not logged in" in said and "irc:oftcnet/ijc" not in said


async def test_a_kept_answer_is_not_given_to_the_next_holder_of_the_nick(oftc_like, bot_factory,
                                                                         humans):
    """InspIRCd 3 with its `monitor` module offers MONITOR: the bot watches bob, and forgets
    him when MONITOR says he went offline."""
    await next_holder_of_a_nick(oftc_like, bot_factory, humans, monitor=True)


async def test_without_monitor_no_kept_answer_for_a_nick_out_of_sight(oftc_like_no_monitor,
                                                                      bot_factory, humans):
    await next_holder_of_a_nick(oftc_like_no_monitor, bot_factory, humans, monitor=False)


async def test_a_nick_swapped_while_its_whois_waits_refuses_the_command(oftc_like, bot_factory,
                                                                        humans):
    """An unidentified "bob" sends `!done 10` in private and at once renames; the release
    manager takes his nick "bob" back before the bot's throttled WHOIS goes out. The WHOIS
    answer is about the release manager's connection, not the sender's: refused, #10 open."""
    server = oftc_like
    async with bot_factory(server, channels=[channel_name("xen")], sasl=False, tls=True,
                           throttle=Throttle(), nickserv_password_env=BOT_PASSWORD_ENV,
                           seed=seed_xen) as bot:
        owner = await humans(server, "bob_", identify="ijc", user="ijc")
        attacker = await humans(server, "bob", user="mallory")
        async with bot.repo.session("test", write=False) as s:
            before = (await s.get(10)).state
        # The throttle is spent (as after a burst of answers): the WHOIS waits a few seconds,
        # less than the command waits for it.
        bucket = bot.transport._bucket
        bucket.tokens = -3 * bucket.rate
        attacker.say(bot.nick, "!done 10")
        attacker.send("NICK mallory")
        await attacker.expect(lambda ln: ln.command == "NICK" and ln.param(0) == "mallory")
        owner.send("NICK bob")
        await owner.expect(lambda ln: ln.command == "NICK" and ln.param(0) == "bob")
        said = await owner.hear(bot.nick, r"changed hands", command="NOTICE")
        assert said == "bob: your nick changed hands while I checked your account: send the command again"
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(10)).state == before
        # The release manager's own command, sent again, is his.
        owner.say(bot.nick, "!whoami")
        said = await owner.hear(bot.nick, r"You are ", command="NOTICE")
        assert "irc:oftcnet/ijc" in said


async def test_a_release_manager_behind_forty_clones_is_recognised(oftc_like, bot_factory, humans):
    """40 unidentified clones (one user@host) send `!whoami` in private, then the release
    manager does: at the server's default flood limits and the bot's default throttle, he is
    answered as the release manager, not "could not confirm", and not after their answers."""
    server = oftc_like
    async with bot_factory(server, channels=[channel_name("xen")], sasl=False, tls=True,
                           throttle=Throttle(), nickserv_password_env=BOT_PASSWORD_ENV) as bot:
        clones = await asyncio.gather(*(humans(server, f"clone{i}", user="clone")
                                        for i in range(40)))
        ian = await humans(server, "Ian", identify="ijc", user="ian")
        for clone in clones:
            clone.say(bot.nick, "!whoami")
        # The clones' lines reach the server first.
        await asyncio.gather(*(clone.writer.drain() for clone in clones))
        ian.say(bot.nick, "!whoami")
        said = await ian.hear(bot.nick, r"You are ", command="NOTICE")
        assert "irc:oftcnet/ijc" in said and "release manager" in said
        assert "could not confirm" not in said
        # Nor was his answer behind theirs: the clones are one requester, with one backlog.
        answered = sum(bool(clone.heard(bot.nick)) for clone in clones)
        assert answered < 30, answered
