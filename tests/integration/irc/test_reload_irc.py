"""A reload (SIGHUP) on a live IRC connection: the channel's release changes, the link stays."""

from __future__ import annotations

import pytest
import yaml

from .conftest import channel_name

pytestmark = pytest.mark.integration


async def test_reload_rebinds_a_channel_without_reconnecting(ngircd, bot_factory, humans, tmp_path):
    chan = channel_name("reload")

    async def seed(s):
        await s.create_release("4.2")
        await s.create_release("4.3")

    async with bot_factory(ngircd, channels=[chan], sasl=False, seed=seed) as bot:
        ian = await humans(ngircd, "reloader", channel=chan)
        ian.say(chan, "!release")
        await ian.hear(bot.nick, r"^\x02?Release 4\.2\b")
        cfg = tmp_path / "bot.yaml"
        net = {"network": ngircd.network, "host": ngircd.host, "port": ngircd.port, "tls": False,
               "nick": bot.net.nick, "alternates": bot.net.alternates,
               "throttle": bot.net.throttle.model_dump(),
               "channels": [{"name": chan, "release": "4.3"}]}
        cfg.write_text(yaml.safe_dump({"database": bot.app.config.database, "default_release": "4.2",
                                       "admins": bot.app.config.admins, "irc": [net]}))
        bot.app.config_path = str(cfg)
        changes = bot.app.reload()
        assert any(c.startswith(f"irc:{ngircd.network} {chan.lower()}: release 4.2 -> 4.3") for c in changes), changes
        ian.say(chan, "!release")
        await ian.hear(bot.nick, r"^\x02?Release 4\.3\b")
        assert bot.transport.sessions == 1 and bot.transport.attempts == 1
