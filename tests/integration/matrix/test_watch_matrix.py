"""Change notices on Synapse (without E2EE): a watcher is invited to a direct room with the bot and finds the
notice there, as an m.notice; a second notice reuses the room."""

from __future__ import annotations

import re

import pytest

from .conftest import bot_config, start_bot

pytestmark = pytest.mark.integration


async def test_a_watcher_gets_a_direct_notice(humans, synapse, tmp_path, bot_user):
    # Without E2EE: a freshly created encrypted room's first notice may reach the invitee
    # before their devices have its key (see the CHANGELOG); the plain room is tested here.
    alice = await humans("alice")
    bob = await humans("bob")
    room = await alice.create_room([bob.user_id, bot_user])
    await bob.join(room)
    app = await start_bot(bot_config(synapse, tmp_path, bot_user, rooms=[room],
                                     admins=[alice.user_id], e2ee=False))
    await alice.wait_membership(room, bot_user, "join")
    try:
        ev = await alice.say(room, "!add tools nice libxl leaks a fd")
        added = await alice.reply_to(ev, bot_user)
        item = int(re.match(r"Added #(\d+)", added.body).group(1))
        ev = await alice.say(room, f"!watch {item}")
        await alice.reply_to(ev, bot_user)
        ev = await bob.say(room, f"!claim {item}")
        await bob.reply_to(ev, bot_user)
        dm = await alice.wait_until(lambda: next(iter(set(alice.client.invited_rooms) - {room}),
                                                 None))
        await alice.join(dm)

        def notices() -> list:
            return [e for e in alice.from_user(bot_user, dm) if hasattr(e, "body")]
        [notice] = await alice.wait_until(notices)
        assert notice.source["content"]["msgtype"] == "m.notice"
        assert f"#{item}" in notice.body and bob.name in notice.body
        assert alice.client.rooms[dm].member_count == 2
        # A later change reaches the same room (the window between batches is waited out
        # by flushing now: no sleep).
        notifier = app.notifier
        notifier._sent.clear()
        ev = await bob.say(room, f"!status {item} patch posted")
        await bob.reply_to(ev, bot_user)
        await alice.wait_until(lambda: len(notices()) == 2)
        assert set(alice.client.rooms) == {room, dm}
    finally:
        await app.stop()
