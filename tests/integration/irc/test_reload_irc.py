"""A reload (SIGHUP) on a live IRC connection: a channel's release changes, a channel added is
joined and answered in, a channel removed is parted — and the link stays (no re-registration)."""

from __future__ import annotations

import logging

import pytest
import yaml

from ..reloading import sighup
from .conftest import channel_name

pytestmark = pytest.mark.integration


@pytest.fixture(params=["ngircd", "inspircd"])
def server(request):
    """The plain-RFC server and the IRCv3 one with services (the bot logs in by SASL there)."""
    return request.getfixturevalue(request.param)


async def test_reload_joins_parts_and_rebinds_without_reconnecting(server, bot_factory, humans,
                                                                   tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server_name = "inspircd" if server.services else "ngircd"
    kept, dropped, added = channel_name("keep"), channel_name("drop"), channel_name("add")

    async def seed(s):
        await s.create_release("4.2")
        await s.create_release("4.3")

    async with bot_factory(server, channels=[kept, dropped], sasl=server_name == "inspircd",
                           seed=seed) as bot:
        ian = await humans(server, f"reloader{server_name[:3]}", channel=kept)
        await ian.join(dropped)
        await ian.join(added)
        ian.say(kept, "!release")
        await ian.hear(bot.nick, r"^\x02?Release 4\.2\b")
        data = bot.app.config.model_dump()
        data["irc"][0]["channels"] = [{"name": kept, "release": "4.3"}, added]
        cfg = tmp_path / "bot.yaml"
        cfg.write_text(yaml.safe_dump(data))
        bot.app.config_path = str(cfg)
        changes = await sighup(bot.app, caplog)
        net = f"irc:{server.network}"
        assert f"{net}: joining {added}" in changes and f"{net}: leaving {dropped}" in changes
        assert any(c.startswith(f"{net} {kept.lower()}: release 4.2 -> 4.3") for c in changes), changes
        assert not [c for c in changes if "restart" in c], changes
        # The bot left the channel removed and came into the one added ...
        await ian.expect(lambda ln: ln.command == "PART" and ln.nick == bot.nick
                         and ln.param(0).lower() == dropped.lower())
        await ian.expect(lambda ln: ln.command == "JOIN" and ln.nick == bot.nick
                         and ln.param(0).lower() == added.lower())
        # ... answers there (the default release), and in the kept channel with its new one.
        ian.say(added, "!release")
        await ian.hear(bot.nick, r"^\x02?Release 4\.2\b")
        ian.say(kept, "!release")
        await ian.hear(bot.nick, r"^\x02?Release 4\.3\b")
        assert sorted(bot.transport.rooms()) == sorted([kept.lower(), added.lower()])
        # One connection all along: never re-registered, never quit.
        assert bot.transport.sessions == 1 and bot.transport.attempts == 1
        assert not [ln for ln in ian.lines if ln.command == "QUIT" and ln.nick == bot.nick]
