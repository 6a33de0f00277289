""""I can take this one" in threads and in replies the bot cannot or must not read: what the
bot said last in the thread, the thread's root, the bot's own answer as recorded, and the
person asked which item when the replied-to message is gone, too old or its edits unreadable."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from nio import RoomGetEventError, RoomMessageText

from . import test_matrix_transport
from .test_matrix_transport import BOT, ROOM, claims, posted, reply_to, said  # noqa: F401

matrix = test_matrix_transport.matrix  # the fixture claims needs
GEORGE = test_matrix_transport.GEORGE
ASKED = "Which one? Say !claim ID."


def in_thread(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


async def say(t, text: str, sender: str = GEORGE, **content: Any) -> str:
    await t._handle_event(t.client.rooms[ROOM], said(text, sender, **content))
    return t.client.bodies()[-1]


async def test_in_a_thread_this_one_is_what_the_bot_named_last_there(claims, chat):  # noqa: F811
    t = claims
    root = posted(t, "#1 and #3 need looking at")
    await say(t, "!show 2", test_matrix_transport.ALICE, **in_thread(root.event_id))
    assert (await say(t, "I can take this one", **in_thread(root.event_id))).startswith(
        "#2 claimed by George")
    assert (await chat.item(1)).owners == []


async def test_in_a_thread_the_bot_has_not_answered_in_this_one_is_what_the_root_names(
        claims, chat):  # noqa: F811
    t = claims
    root = posted(t, "#2 needs an owner")
    assert (await say(t, "I can take this one", **in_thread(root.event_id))).startswith(
        "#2 claimed by George")


async def test_a_reply_to_the_bots_own_answer_claims_the_item_it_showed(claims, chat):  # noqa: F811
    t = claims
    await say(t, "!show 2", test_matrix_transport.ALICE)
    answer = t.client.sent[-1]
    event_id = f"$sent{len(t.client.sent)}"
    t.client.timeline[event_id] = RoomMessageText.from_dict({
        "type": "m.room.message", "event_id": event_id, "sender": BOT,
        "origin_server_ts": int(time.time() * 1000), "content": answer["content"]})
    await say(t, "!show 1", test_matrix_transport.ALICE)  # the bot names another item since
    reply = await say(t, "I can take this one", **{"m.relates_to": {"m.in_reply_to": {
        "event_id": event_id}}})
    assert reply.startswith("#2 claimed by George")


async def test_a_reply_to_an_event_the_server_does_not_find_is_asked_about(claims, chat,  # noqa: F811
                                                                          caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t = claims

    async def not_found(room_id: str, event_id: str) -> Any:
        return RoomGetEventError("Event not found", "M_NOT_FOUND")
    t.client.room_get_event = not_found
    reply = await say(t, "I can take this one", **{"m.relates_to": {"m.in_reply_to": {
        "event_id": "$elsewhere"}}})
    assert reply == ASKED and (await chat.item(1)).owners == []
    assert f"matrix: $elsewhere is not an event of {ROOM} (M_NOT_FOUND)" in [
        r.getMessage() for r in caplog.records]


async def test_a_reply_to_a_message_older_than_the_limit_is_asked_about(claims, chat):  # noqa: F811
    t = claims
    old = posted(t, "#2 needs an owner")
    old.source["origin_server_ts"] -= int((t.mcfg.reply_claim_max_age + 60) * 1000)
    assert await say(t, "I can take this one", **reply_to(old)) == ASKED
    assert (await chat.item(2)).owners == []


async def test_a_reply_to_a_message_whose_edits_cannot_be_read_is_asked_about(claims, chat,  # noqa: F811
                                                                             caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t = claims
    them = posted(t, "#2 needs an owner")

    async def broken(*args: Any, **kw: Any) -> Any:
        raise ValueError("cannot decrypt the edit")
        yield  # (an async generator, as matrix-nio's)
    t.client.room_get_event_relations = broken
    assert await say(t, "I can take this one", **reply_to(them)) == ASKED
    assert (await chat.item(2)).owners == []
    assert any(m.startswith(f"matrix: cannot read the edits of {them.event_id}")
               and "cannot decrypt the edit" in m for m in [r.getMessage() for r in caplog.records])


@pytest.mark.parametrize("timeline", ["thread", "room"])
async def test_what_was_named_is_remembered_for_a_bounded_number_of_rooms_and_threads(
        claims, chat, monkeypatch, timeline):  # noqa: F811
    t = claims
    monkeypatch.setattr("todobot.bot.matrix.claims.MAX_THREADS", 2)
    for n in range(3):
        thread = f"$root{n}" if timeline == "thread" else None
        t._note_answered(f"!r{n}:localhost", thread, (n + 1,))
    kept = t._thread_named if timeline == "thread" else t._room_named
    assert len(kept) == 2 and not any("!r0:localhost" in str(k) for k in kept)
