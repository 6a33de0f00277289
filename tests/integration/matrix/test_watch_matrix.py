"""Change notices on Synapse: a watcher is invited to a direct room with the bot and finds the
notice there, as an m.notice; a second notice reuses the room."""

from __future__ import annotations

import re

import pytest

from .conftest import bot_config, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def test_a_watcher_gets_a_direct_notice(humans, synapse, tmp_path, bot_user):
    # Without E2EE: the notice goes at once into the plain direct room (an encrypted one holds
    # it until the invitee joins: tests/test_matrix_direct.py).
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


async def test_an_encrypted_direct_room_holds_the_notice_until_the_watcher_joins(
        humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    bob = await humans("bob")
    room = await alice.create_room([bob.user_id, bot_user], encrypted=True)
    await bob.join(room)
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: bot_user in alice.client.rooms[room].users)
        ev = await alice.say(room, "!add tools nice secret plans")
        added = await alice.reply_to(ev, bot_user, timeout=90)
        item = int(re.match(r"Added #(\d+)", added.body).group(1))
        ev = await alice.say(room, f"!watch {item}")
        await alice.reply_to(ev, bot_user, timeout=90)
        ev = await bob.say(room, f"!claim {item}")
        await bob.reply_to(ev, bot_user, timeout=90)
        dm = await alice.wait_until(lambda: next(iter(set(alice.client.invited_rooms) - {room}),
                                                 None))
        [matrix] = [t for t in app.transports if t.name == "matrix"]
        await alice.wait_until(lambda: alice.user_id in matrix._held)  # not sent: held
        await alice.join(dm)

        def notices() -> list:
            return [e for e in alice.from_user(bot_user, dm) if e.source.get("type") in
                    ("m.room.message", "m.room.encrypted")]
        [notice] = await alice.wait_until(notices, timeout=90)
        assert getattr(notice, "decrypted", False), f"unreadable: {notice}"
        assert f"#{item}" in notice.body and bob.name in notice.body
        assert notice.source["content"]["msgtype"] == "m.notice"
    finally:
        await app.stop()
