"""Services come and go on InspIRCd + Anope: the bot gets its account back by itself."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import WAIT, BOT_PASSWORD_ENV, channel_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def logged_in(bot, account: str = "todobot") -> None:
    async with asyncio.timeout(WAIT * 2):
        while not (bot.transport._conn is not None and bot.transport._conn.account == account):
            await asyncio.sleep(0.2)


async def whois_account(human, nick: str) -> str | None:
    """The account WHOIS shows for `nick` (330), None when it shows none."""
    human.send(f"WHOIS {nick}")
    account = None
    while True:
        ln = await human.expect(lambda ln: ln.command in ("330", "318"))
        if ln.command == "318":
            return account
        account = ln.param(2)


async def test_server_restart_with_services_linking_late(inspircd_private, bot_factory, humans):
    """The bot is back on the server before services link: no account then; once they link,
    it logs in again (SASL after registration) without a restart of its own."""
    server = inspircd_private
    chan = channel_name("relog")
    async with bot_factory(server, channels=[chan]) as bot:
        await logged_in(bot)
        await asyncio.to_thread(server.restart, services=False)
        async with asyncio.timeout(WAIT * 2):
            while not (bot.transport.sessions >= 2 and bot.transport.ready.is_set()):
                await asyncio.sleep(0.2)
        assert bot.transport._conn is not None and bot.transport._conn.account is None
        assert bot.transport.health() == "connected but not logged in to its account"
        await asyncio.to_thread(server.start_services)
        await logged_in(bot)
        assert bot.transport.health() is None
        ijc = await humans(server, "ijc", account="ijc")
        assert await whois_account(ijc, bot.nick) == "todobot"


async def test_services_restarted_alone_nickserv(inspircd_private, bot_factory, humans,
                                                 monkeypatch):
    """NickServ-only login: services restart while the bot stays connected; afterwards it is
    logged in to its account again (WHOIS shows it)."""
    server = inspircd_private
    chan = channel_name("relogns")
    async with bot_factory(server, channels=[chan], sasl=False,
                           nickserv_password_env=BOT_PASSWORD_ENV) as bot:
        await logged_in(bot)
        await asyncio.to_thread(server.stop_services)
        await asyncio.to_thread(server.start_services)
        ijc = await humans(server, "ijc", account="ijc")
        async with asyncio.timeout(WAIT * 3):
            while await whois_account(ijc, bot.nick) != "todobot":
                await asyncio.sleep(1)
        await logged_in(bot)
        assert bot.transport.sessions == 1
