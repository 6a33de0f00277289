"""Faults on real IRC servers: kicked again and again (ngIRCd), services down while a release
manager works (InspIRCd + Anope, ngIRCd + Anope), and the TLS certificate replaced by one the
bot does not trust mid-run (InspIRCd). A WHOIS that is never answered cannot be had from a real server:
tests/test_irc_transport.py covers it with a scripted one."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import time

import pytest

from todobot.bot.backoff import Backoff
from tests.servers.ircd import IrcServer, make_certificate, probe_nick, start_inspircd

from .conftest import (BOT_PASSWORD_ENV, WAIT, _launch, channel_name,
                       password_for, seed_release)

pytestmark = pytest.mark.integration


def joined_by(nick: str, chan: str):
    return lambda ln: (ln.command == "JOIN" and (ln.nick or "").lower() == nick.lower()
                       and ln.param(0).lower() == chan.lower())


async def test_kicked_again_and_again_rejoins_after_growing_waits(ngircd, bot_factory, humans,
                                                                  monkeypatch, caplog):
    monkeypatch.setattr("todobot.bot.irc.channels.REJOIN_AFTER_KICK", 0.5)
    chan = channel_name("kick")
    op = await humans(ngircd, "chanop", channel=chan)  # first in: channel operator
    async with bot_factory(ngircd, channels=[chan], sasl=False) as bot:
        await op.expect(joined_by(bot.nick, chan))
        gaps = []
        for _ in range(4):
            op.send(f"KICK {chan} {bot.nick} :kick loop")
            await op.expect(lambda ln: ln.command == "KICK")
            kicked = time.monotonic()
            await op.expect(joined_by(bot.nick, chan))
            gaps.append(time.monotonic() - kicked)
        waits = [float(w) for w in re.findall(
            rf"kicked from {re.escape(chan)} by chanop: kick loop; rejoining in ([\d.]+)s",
            caplog.text, re.IGNORECASE)]
        assert waits == [0.5, 1.0, 2.0, 4.0]  # doubled each time, and said in the log
        assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, waits)), gaps
        print(f"rejoin after kick: waits {waits}, seen after {[round(g, 2) for g in gaps]} s")
        op.say(chan, "!whoami")
        await op.hear(bot.nick, r"You are")


async def test_services_down_then_back(inspircd_private, bot_factory, humans):
    server = inspircd_private
    chan = channel_name("svc")

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(server, channels=[chan], seed=seed) as bot:
        ian = await humans(server, "Ian", account="ijc", channel=chan)
        ian.say(chan, "!blocker 1")
        await ian.hear(bot.nick, r"#1.*blocker")

        anope = next(d for d in server.daemons if d.name == "anope")
        await asyncio.to_thread(anope.stop)  # by the pid we started it with
        await services_gone(ian)
        # A release manager logged in before: the server still knows the account.
        ian.say(chan, "!nice 1")
        said = await ian.hear(bot.nick, r"#1")
        print(f"services down, logged in before: {said!r}")
        # One who arrives now cannot log in: a one-line refusal saying why.
        late = await humans(server, "ijc", channel=chan)
        late.say("NickServ", f"IDENTIFY ijc {password_for('ijc')}")
        nosvc = await late.expect(lambda ln: ln.command == "401")
        late.say(chan, "!blocker 1")
        refused = await late.hear(bot.nick, r"Only release managers")
        assert "not logged in to an account" in refused
        print(f"services down, IDENTIFY: {nosvc.params[-1]!r}; then: {refused!r}")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).severity == "nice"

        await asyncio.to_thread(anope.start)
        await asyncio.to_thread(probe_nick, server.port, "NickServ", timeout=WAIT)
        late.say("NickServ", f"IDENTIFY ijc {password_for('ijc')}")
        assert "accepted" in (await late.hear("NickServ", r"(?i)password", command="NOTICE")).lower()
        late.say(chan, "!blocker 1")
        await late.hear(bot.nick, r"#1.*blocker")
        assert bot.transport.sessions == 1  # the bot itself never noticed more than a split


@pytest.fixture
def inspircd_tls(tmp_path) -> IrcServer:
    """InspIRCd with a TLS listener, no services (restarted mid-test with another certificate)."""
    server = _launch(start_inspircd, tmp_path / "inspircd", "inspircd", "openssl", tls=True,
                     services=False)
    try:
        yield server
    finally:
        server.stop()


async def test_untrusted_certificate_mid_run_is_refused_then_trusted_again(
        inspircd_tls, bot_factory, humans, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.irc")
    server = inspircd_tls
    assert server.cert is not None
    cert, key = server.cert, server.cert[:-len(".pem")] + ".key"
    trusted = shutil.copy(cert, tmp_path / "trusted-ca.pem")  # what the bot trusts
    saved = {p: open(p, "rb").read() for p in (cert, key)}
    (tmp_path / "impostor").mkdir()
    impostor = make_certificate(tmp_path / "impostor", "server")
    monkeypatch.setattr("todobot.bot.irc.session.reconnect_backoff",
                        lambda: Backoff(0.5, 4.0, jitter=True))
    chan = channel_name("tls")
    async with bot_factory(server, channels=[chan], sasl=False, tls=True,
                           tls_ca=str(trusted)) as bot:
        ian = await humans(server, "ian", channel=chan)
        ian.say(chan, "!whoami")
        await ian.hear(bot.nick, r"You are")

        for path, new in zip((cert, key), impostor):
            shutil.copy(new, path)
        await asyncio.to_thread(server.restart)
        refused_from = bot.transport.attempts
        async with asyncio.timeout(WAIT):
            while bot.transport.attempts < refused_from + 3:
                await asyncio.sleep(0.1)
        assert bot.transport.failed is not None and "did not verify" in bot.transport.failed
        assert bot.transport.sessions == 1 and not bot.transport.ready.is_set()
        assert caplog.text.count("refusing to connect") >= 2
        assert "Traceback" not in caplog.text and "giving up" not in caplog.text

        for path, data in saved.items():
            open(path, "wb").write(data)
        await asyncio.to_thread(server.restart)
        async with asyncio.timeout(WAIT):
            while not (bot.transport.sessions == 2 and bot.transport.ready.is_set()):
                await asyncio.sleep(0.1)
        assert bot.transport.failed is None
        waits = [float(w) for w in re.findall(r"reconnecting in ([\d.]+)s", caplog.text)]
        print(f"certificate refused {caplog.text.count('refusing to connect')} times; "
              f"waits {waits}")
        ian2 = await humans(server, "ian2", channel=chan)
        ian2.say(chan, "!whoami")
        await ian2.hear(bot.nick, r"You are")


async def services_gone(human) -> None:
    """Ask WHOIS NickServ until the server says there is no such nick: the ircd learns of the
    services' exit when their link closes, which on a busy machine is after `stop()` returns."""
    async with asyncio.timeout(WAIT):
        while True:
            human.send("WHOIS NickServ")
            ln = await human.expect(lambda ln: ln.command in ("401", "318"))
            if ln.command == "401":
                return
            await asyncio.sleep(0.2)  # the split is still on its way: ask again


async def test_services_down_then_back_on_ngircd(ngircd_anope, bot_factory, humans):
    """The same on the RFC-only variant, where accounts are learnt by WHOIS."""
    server = ngircd_anope
    chan = channel_name("svcng")

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(server, channels=[chan], sasl=False, seed=seed,
                           nickserv_password_env=BOT_PASSWORD_ENV) as bot:
        ian = await humans(server, "Ian", identify="ijc", channel=chan)
        ian.say(chan, "!blocker 1")
        await ian.hear(bot.nick, r"#1.*blocker")

        anope = next(d for d in server.daemons if d.name == "anope")
        await asyncio.to_thread(anope.stop)
        await services_gone(ian)
        ian.say(chan, "!nice 1")
        said = await ian.hear(bot.nick, r"#1|Only release managers")
        print(f"ngIRCd, services down, identified before: {said!r}")
        assert "nice to have" in said  # ngIRCd still shows them identified (307)

        late = await humans(server, "ijc", channel=chan)
        late.say(chan, "!blocker 1")
        refused = await late.hear(bot.nick, r"Only release managers")
        print(f"ngIRCd, services down, arriving now: {refused!r}")
        assert "not logged in to an account" in refused

        await asyncio.to_thread(anope.start)
        await asyncio.to_thread(probe_nick, server.port, "NickServ", timeout=WAIT)
        late.say("NickServ", f"IDENTIFY ijc {password_for('ijc')}")
        assert "accepted" in (await late.hear("NickServ", r"(?i)password", command="NOTICE")).lower()
        late.say(chan, "!blocker 1")
        said = await late.hear(bot.nick, r"#1|Only release managers")
        print(f"ngIRCd, services back, identified now: {said!r}")
        # Refused a moment ago, identified since: asked again, not refused from a cache.
        assert "moved to blockers" in said
