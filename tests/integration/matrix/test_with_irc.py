"""One process, one database, two networks: a claim made on Matrix shows on IRC."""

from __future__ import annotations

import re

import pytest

from todobot.bot.config import IrcNetwork, Throttle
from tests.integration.irc.conftest import Human as IrcHuman
from tests.integration.irc.conftest import channel_name
from tests.integration.irc.conftest import ngircd  # noqa: F401  (the IRC server fixture)

from .conftest import bot_config, items_titled, start_bot

pytestmark = pytest.mark.integration


async def test_claim_on_matrix_shows_in_blockers_on_irc(humans, synapse, tmp_path, bot_user, ngircd):  # noqa: F811
    chan = channel_name("both")
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    net = IrcNetwork(network=ngircd.network, host=ngircd.host, port=ngircd.port, tls=False,
                     nick="todobot", alternates=["todobot2"], channels=[chan],
                     throttle=Throttle(burst=20, rate=20))
    app = await start_bot(config.model_copy(update={"irc": [net]}))
    irc_user = await IrcHuman.connect(ngircd, "ian")
    try:
        await irc_user.join(chan)
        matrix = next(t for t in app.transports if t.name == "matrix")
        irc = next(t for t in app.transports if t.name.startswith("irc:"))
        await alice.wait_until(lambda: matrix.synced.is_set() and irc.ready.is_set(), timeout=90)

        ev = await alice.say(room, "!add tools blocker cross-network regression in xl")
        added = await alice.reply_to(ev, bot_user)
        item_id = int(re.match(r"Added #(\d+)", added.body).group(1))
        ev = await alice.say(room, f"!claim {item_id}")
        claimed = await alice.reply_to(ev, bot_user)
        owner = re.search(r"claimed by (.+?) \(was unclaimed\)", claimed.body).group(1)

        irc_user.say(chan, "!blockers")
        nick = irc._conn.nick if irc._conn else net.nick
        line = await irc_user.hear(nick, rf"#{item_id}\x02? cross-network regression in xl", timeout=60)
        assert f"({owner})" in line
        (item,) = await items_titled(config.database, "cross-network regression")
        assert item.owners == [owner] and item.id == item_id
    finally:
        await irc_user.quit()
        await app.stop()
