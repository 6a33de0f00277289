"""Two people and the bot in a room: the release scenario as they see it."""

from __future__ import annotations

import re

import pytest

from .conftest import bot_config, items_titled, start_bot

pytestmark = pytest.mark.integration


async def _room_with_bot(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    bob = await humans("bob")
    room = await alice.create_room([bob.user_id, bot_user])
    await bob.join(room)
    app = await start_bot(bot_config(synapse, tmp_path, bot_user, rooms=[room],
                                     admins=[alice.user_id]))
    transport = app.transports[-1]
    await alice.wait_until(lambda: any(getattr(e, "membership", None) == "join"
                                       and e.state_key == bot_user
                                       for r, e in alice.events if r == room))
    await alice.wait_until(lambda: transport.synced.is_set())
    return alice, bob, room, app


async def test_release_scenario(humans, synapse, tmp_path, bot_user):
    alice, bob, room, app = await _room_with_bot(humans, synapse, tmp_path, bot_user)
    try:
        ev = await alice.say(room, "!add tools blocker [BUG] libxl leaks a fd on migrate")
        added = await alice.reply_to(ev, bot_user)
        m = re.match(r"Added #(\d+) \(tools, blockers\): \[BUG\] libxl leaks a fd on migrate$",
                     added.body)
        assert m, added.body
        item_id = int(m.group(1))
        content = added.source["content"]
        assert content["msgtype"] == "m.notice"
        assert content["format"] == "org.matrix.custom.html"
        assert f"<b>#{item_id}</b>" in content["formatted_body"]

        ev = await bob.say(room, "!blockers")
        listing = await bob.reply_to(ev, bot_user)
        assert f"#{item_id} [BUG] libxl leaks a fd on migrate" in listing.body
        html = listing.source["content"]["formatted_body"]
        assert "<ul>" in html and "<li>" in html and f"<b>#{item_id}</b>" in html

        ev = await bob.say(room, f"!claim {item_id}")
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{item_id} claimed by {bob.name}"), claimed.body
        await bob.wait_until(lambda: bob.reactions_to(ev, bot_user) == ["✅"])

        ev = await bob.say(room, f"!status {item_id} patch posted")
        status = await bob.reply_to(ev, bot_user)
        assert status.body == f"#{item_id} progress: patch posted (was: none)."

        ev = await bob.say(room, f"!done {item_id} fixed in abc123")
        done = await bob.reply_to(ev, bot_user)
        assert done.body.startswith(f"#{item_id} done: "), done.body
        await bob.wait_until(lambda: bob.reactions_to(ev, bot_user) == ["✅"])

        [item] = await items_titled(app.config.database, "libxl leaks a fd")
        assert item.id == item_id
        assert item.state == "done"
        assert item.owners == [bob.name]
        assert item.progress == "patch posted"
        # Every bot message is a notice and a reply; alice saw the same ones bob did.
        bot_msgs = [e for e in alice.from_user(bot_user, room) if hasattr(e, "body")]
        assert len(bot_msgs) == 5
        assert all(e.source["content"]["msgtype"] == "m.notice" for e in bot_msgs)
    finally:
        await app.stop()


async def test_reply_claims_the_item_named(humans, synapse, tmp_path, bot_user):
    alice, bob, room, app = await _room_with_bot(humans, synapse, tmp_path, bot_user)
    try:
        ev = await alice.say(room, "!add hypervisor nice vMCE save/restore")
        added = await alice.reply_to(ev, bot_user)
        item_id = int(re.match(r"Added #(\d+)", added.body).group(1))
        # Something else gets named in between, so "this one" can only come from the reply.
        ev2 = await alice.say(room, "!add docs nice unrelated item")
        await alice.reply_to(ev2, bot_user)

        quoted = f"> <{bot_user}> {added.body}\n\nI can take this one"
        ev = await bob.say(room, quoted, reply_to=added.event_id)
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{item_id} claimed by {bob.name}"), claimed.body
        [item] = await items_titled(app.config.database, "vMCE save/restore")
        assert item.owners == [bob.name]
        [other] = await items_titled(app.config.database, "unrelated item")
        assert other.owners == []
    finally:
        await app.stop()


async def test_hostile_text_is_escaped(humans, synapse, tmp_path, bot_user):
    alice, bob, room, app = await _room_with_bot(humans, synapse, tmp_path, bot_user)
    try:
        hostile = "<script>alert(1)</script> </code> javascript:alert(1)"
        ev = await alice.say(room, f"!add tools nice {hostile}")
        added = await alice.reply_to(ev, bot_user)
        assert added.body.endswith(hostile)
        html = added.source["content"]["formatted_body"]
        assert "<script" not in html and "</code>" not in html and "<a" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;/code&gt; javascript:alert(1)" in html
        [item] = await items_titled(app.config.database, "javascript:")
        assert item.title == hostile
    finally:
        await app.stop()


async def test_ignores_own_notices_and_edits(humans, synapse, tmp_path, bot_user):
    alice, bob, room, app = await _room_with_bot(humans, synapse, tmp_path, bot_user)
    try:
        notice = await alice.client.room_send(room, "m.room.message",
                                              {"msgtype": "m.notice", "body": "!add tools nice x1"})
        ev = await alice.say(room, "!add tools nice first")
        await alice.reply_to(ev, bot_user)
        edit = await alice.client.room_send(room, "m.room.message", {
            "msgtype": "m.text", "body": " * !add tools nice edited",
            "m.new_content": {"msgtype": "m.text", "body": "!add tools nice edited"},
            "m.relates_to": {"rel_type": "m.replace", "event_id": ev}})
        ev = await alice.say(room, "!todo")
        await alice.reply_to(ev, bot_user)
        assert not alice.replies_to(notice.event_id, bot_user)
        assert not alice.replies_to(edit.event_id, bot_user)
        assert await items_titled(app.config.database, "x1") == []
        assert await items_titled(app.config.database, "edited") == []
    finally:
        await app.stop()
