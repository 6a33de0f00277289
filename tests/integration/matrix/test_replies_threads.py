"""Which item "I can take this one" means in a reply or a thread, and where answers go."""

from __future__ import annotations

import asyncio
import re

import pytest

from .conftest import bot_config, items_titled, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def _add(alice, room: str, bot_user: str, title: str):
    ev = await alice.say(room, f"!add tools nice {title}")
    answer = await alice.reply_to(ev, bot_user)
    return int(re.match(r"Added #(\d+)", answer.body)[1]), answer


async def _in_thread(person, room: str, root: str, body: str) -> str:
    resp = await person.client.room_send(room, "m.room.message", {
        "msgtype": "m.text", "body": body,
        "m.relates_to": {"rel_type": "m.thread", "event_id": root, "is_falling_back": True,
                         "m.in_reply_to": {"event_id": root}}}, ignore_unverified_devices=True)
    return resp.event_id


async def _owners(database: str, title: str) -> list[str]:
    [item] = await items_titled(database, title)
    return item.owners


async def _setup(humans, synapse, tmp_path, bot_user, rooms: int = 1, **matrix):
    alice = await humans("alice")
    bob = await humans("bob")
    made = []
    for _ in range(rooms):
        room = await alice.create_room([bob.user_id, bot_user])
        await bob.join(room)
        made.append(room)
    config = bot_config(synapse, tmp_path, bot_user, rooms=made, admins=[alice.user_id], **matrix)
    app = await start_bot(config)
    await wait_bot_synced(config.database, bot_user)
    for room in made:
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
    return alice, bob, made, app


async def test_replies_to_people_and_to_another_rooms_message(humans, synapse, tmp_path,
                                                              bot_user):
    alice, bob, (room, other), app = await _setup(humans, synapse, tmp_path, bot_user, rooms=2)
    db = app.config.database
    try:
        a, _ = await _add(alice, room, bot_user, "item-a")
        b, _ = await _add(alice, room, bot_user, "item-b")  # the bot named #b last
        # A reply to a person's message that names one item claims that item.
        worse = await alice.say(room, f"#{a} is worse than we thought")
        ev = await bob.say(room, "I can take this one", reply_to=worse)
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{a} claimed by"), claimed.body
        assert await _owners(db, "item-b") == []
        # Two items named: which one? None named: which one?
        both = await alice.say(room, f"#{a} and #{b} look related")
        ev = await bob.say(room, "I can take this one", reply_to=both)
        assert (await bob.reply_to(ev, bot_user)).body == (
            f"Which one: #{a} or #{b}? Say !claim ID.")
        plain = await alice.say(room, "this one is nasty")
        ev = await bob.say(room, "I can take this one", reply_to=plain)
        assert (await bob.reply_to(ev, bot_user)).body == "Which one? Say !claim ID."
        # A reply in another room to the bot's message here claims nothing.
        c, named_c = await _add(alice, room, bot_user, "item-c")
        ev = await bob.say(other, "I can take this one", reply_to=named_c.event_id)
        assert (await bob.reply_to(ev, bot_user)).body == "Which one? Say !claim ID."
        assert await _owners(db, "item-b") == []
        assert await _owners(db, "item-c") == []
    finally:
        await app.stop()


async def test_threads_are_answered_in_the_thread_and_mean_the_threads_item(
        humans, synapse, tmp_path, bot_user):
    alice, bob, (room,), app = await _setup(humans, synapse, tmp_path, bot_user)
    db = app.config.database
    try:
        a, _ = await _add(alice, room, bot_user, "item-a")
        b, _ = await _add(alice, room, bot_user, "item-b")  # the main timeline named #b last
        root = await alice.say(room, f"#{a} needs an owner")
        ev = await _in_thread(bob, room, root, "I can take this one")
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{a} claimed by"), claimed.body
        rel = claimed.source["content"]["m.relates_to"]
        assert (rel["rel_type"], rel["event_id"], rel["is_falling_back"]) == (
            "m.thread", root, True)
        assert await _owners(db, "item-b") == []
        # The bot's latest answer in the thread names #b: now "this one" is #b.
        ev = await _in_thread(alice, room, root, f"!show {b}")
        shown = await alice.reply_to(ev, bot_user)
        assert shown.source["content"]["m.relates_to"]["rel_type"] == "m.thread"
        ev = await _in_thread(alice, room, root, "I can take this one")
        claimed = await alice.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{b} claimed by"), claimed.body
    finally:
        await app.stop()


async def test_a_reply_to_an_old_message_asks_for_the_id(humans, synapse, tmp_path, bot_user):
    alice, bob, (room,), app = await _setup(humans, synapse, tmp_path, bot_user,
                                            reply_claim_max_age=2)
    try:
        _, named = await _add(alice, room, bot_user, "item-old")
        await asyncio.sleep(3)  # deliberately: the named message must grow older than 2 s
        ev = await bob.say(room, "I can take this one", reply_to=named.event_id)
        assert (await bob.reply_to(ev, bot_user)).body == "Which one? Say !claim ID."
        assert await _owners(app.config.database, "item-old") == []
    finally:
        await app.stop()


async def _send(person, room: str, content: dict) -> str:
    resp = await person.client.room_send(room, "m.room.message", content,
                                         ignore_unverified_devices=True)
    return resp.event_id


async def test_a_reply_claims_what_the_message_showed_after_its_edits(humans, synapse, tmp_path,
                                                                      bot_user):
    """What people saw is the latest edit (by its author) and the HTML: a reply to an edited
    message claims the item the edit names; one whose HTML and plain text name different items
    gets a question."""
    alice, bob, (room,), app = await _setup(humans, synapse, tmp_path, bot_user)
    db = app.config.database
    try:
        a, _ = await _add(alice, room, bot_user, "item-a")
        b, _ = await _add(alice, room, bot_user, "item-b")
        said = await alice.say(room, f"#{a} needs an owner")
        for text in (f"#{a} or so needs an owner", f"#{b} needs an owner"):
            await _send(alice, room, {
                "msgtype": "m.text", "body": f"* {text}",
                "m.new_content": {"msgtype": "m.text", "body": text},
                "m.relates_to": {"rel_type": "m.replace", "event_id": said}})
        ev = await bob.say(room, "I can take this one", reply_to=said)
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{b} claimed by"), claimed.body
        assert await _owners(db, "item-a") == []
        two_faced = await _send(alice, room, {
            "msgtype": "m.text", "body": f"#{a} is easy", "format": "org.matrix.custom.html",
            "formatted_body": f"<b>#{b}</b> is easy"})
        ev = await bob.say(room, "I can take this one", reply_to=two_faced)
        assert (await bob.reply_to(ev, bot_user)).body == (
            f"Which one: #{a} or #{b}? Say !claim ID.")
        assert await _owners(db, "item-a") == []
    finally:
        await app.stop()
