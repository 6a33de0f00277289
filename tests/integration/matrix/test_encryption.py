"""Encrypted rooms: commands are decrypted and answered encrypted; without E2EE, no leaks."""

from __future__ import annotations

import asyncio

import pytest

from todobot.bot.matrix.sending import CANNOT_READ

from .conftest import bot_config, items_titled, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def test_encrypted_command_gets_encrypted_answer(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user], encrypted=True)
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: bot_user in alice.client.rooms[room].users)
        ev = await alice.say(room, "!add tools blocker secret plans")
        added = await alice.reply_to(ev, bot_user, timeout=90)
        assert added.decrypted, "the answer was not encrypted"
        assert added.body.startswith("Added #") and added.body.endswith("secret plans")
        assert added.source["content"]["msgtype"] == "m.notice"
        assert "<b>#" in added.source["content"]["formatted_body"]
        [item] = await items_titled(config.database, "secret plans")
        assert item.severity == "blocker"
        # A claim would get a ✅ reaction; here it cannot be encrypted, so there is none.
        ev = await alice.say(room, f"!claim {item.id}")
        claimed = await alice.reply_to(ev, bot_user, timeout=90)
        assert claimed.decrypted and claimed.body.startswith(f"#{item.id} claimed by")
        await alice.barrier(room, bot_user, timeout=90)  # a reaction would have come before
        assert alice.reactions_to(ev, bot_user) == []
        # Nothing the bot sent into this room travelled in the clear.
        plain = [e for e in alice.from_user(bot_user, room)
                 if e.source.get("type") in ("m.room.message", "m.reaction")
                 and not getattr(e, "decrypted", False)]
        assert plain == []
    finally:
        await app.stop()


async def test_without_e2ee_the_bot_says_once_it_cannot_read(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user], encrypted=True)
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id],
                        e2ee=False)
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: bot_user in alice.client.rooms[room].users)
        await alice.say(room, "!add tools blocker secret plans")
        await alice.say(room, "!todo")
        await alice.wait_until(lambda: alice.from_user(bot_user, room) and any(
            getattr(e, "body", None) == CANNOT_READ for e in alice.from_user(bot_user, room)))
        await alice.say(room, "!blockers")
        # No barrier can show that nothing more comes: the bot reads nothing in this room, so
        # no later command of ours gets an answer to wait for. A pause it is.
        await asyncio.sleep(3)
        said = [e for e in alice.from_user(bot_user, room) if hasattr(e, "body")]
        assert [e.body for e in said] == [CANNOT_READ]
        assert not said[0].decrypted
        assert await items_titled(config.database, "secret plans") == []
    finally:
        await app.stop()
