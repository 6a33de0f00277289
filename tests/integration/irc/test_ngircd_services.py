"""The RFC-only variant of an OFTC-like network: ngIRCd (no CAP beyond multi-prefix, no SASL)
with Anope's NickServ linked. The bot identifies with NickServ IDENTIFY; who is logged in
is learnt by WHOIS."""

from __future__ import annotations

import pytest


from .conftest import BOT_PASSWORD_ENV, channel_name, seed_release

pytestmark = pytest.mark.integration


async def test_nickserv_identities_on_ngircd(ngircd_anope, bot_factory, humans):
    server = ngircd_anope
    chan = channel_name()

    async def seed(s):
        await seed_release(s, [("tools", "nice", "libxl stable API")])

    async with bot_factory(server, channels=[chan], sasl=False, seed=seed,
                           nickserv_password_env=BOT_PASSWORD_ENV) as bot:
        conn = bot.transport._conn
        assert conn is not None and conn.account == "todobot" and "sasl" not in conn.offered

        ian = await humans(server, "Ian", identify="ijc", channel=chan)
        # The server shows the bot as identified: an account (330) or a registered nick (307).
        ian.send(f"WHOIS {bot.nick}")
        seen = await ian.expect(lambda ln: ln.command in ("330", "307", "318"))
        assert seen.command in ("330", "307"), seen
        ian.say(chan, "!blocker 1")
        await ian.hear(bot.nick, r"#1.*blocker")

        namesake = await humans(server, "ijc", channel=chan)
        namesake.say(chan, "!nice 1")
        refused = await namesake.hear(bot.nick, r"Only release managers")
        assert "not logged in to an account" in refused
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).severity == "blocker"
