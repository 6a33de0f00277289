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
