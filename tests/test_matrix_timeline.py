"""A sync's timeline read by the Matrix transport (bot/matrix/events.py), against the fake
client of test_matrix_transport.py: in a room new to us only what was said after our join,
our own messages and edits not obeyed, and one event that fails logged without losing the
rest of the batch (an outage passed up, so the sync is tried again)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from nio import Event

from . import test_matrix_transport
from .test_matrix_transport import ALICE, BOT, ROOM, posted, said

matrix = test_matrix_transport.matrix  # the fixture


def joined(user: str = BOT) -> Any:
    return Event.parse_event({
        "type": "m.room.member", "event_id": f"$join{time.monotonic_ns()}", "sender": user,
        "state_key": user, "origin_server_ts": int(time.time() * 1000),
        "content": {"membership": "join"}, "unsigned": {"prev_content": {"membership": "invite"}}})


@pytest.fixture
def timeline(matrix):
    t = matrix(e2ee=False, olm=False)
    t.client.room(ROOM)
    return t


async def test_in_a_room_new_to_us_only_what_follows_our_join_is_obeyed(timeline, chat):
    t = timeline
    await t._handle_timeline(ROOM, [said("!claim 1")])  # before we were there: not for us
    assert t.client.sent == [] and (await chat.item(1)).owners == []
    await t._handle_timeline(ROOM, [said("!claim 1"), joined(), said("!claim 2")])
    assert (await chat.item(1)).owners == [] and (await chat.item(2)).owners == ["Alice"]


async def test_our_own_messages_and_edits_are_not_obeyed(timeline, chat):
    t = timeline
    t._known_rooms.add(ROOM)
    edit = said("!claim 1", **{"m.relates_to": {"rel_type": "m.replace", "event_id": "$x"}})
    await t._handle_timeline(ROOM, [said("!claim 1", BOT), edit])
    assert t.client.sent == [] and (await chat.item(1)).owners == []


async def test_one_failing_event_is_logged_and_the_batch_goes_on(timeline, chat, caplog,
                                                                 monkeypatch):
    t = timeline
    t._known_rooms.add(ROOM)
    handle = chat.dispatcher.handle
    bad = said("!claim 1")

    async def failing_once(msg):
        if msg.msg_id == bad.event_id:
            raise RuntimeError("a bug")
        return await handle(msg)
    monkeypatch.setattr(chat.dispatcher, "handle", failing_once)
    await t._handle_timeline(ROOM, [bad, said("!claim 2")])
    assert (await chat.item(2)).owners == ["Alice"]
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert error.getMessage().startswith(f"matrix: event {bad.event_id} in {ROOM} failed")


async def test_an_outage_while_answering_is_passed_up_for_the_sync_to_retry(timeline, chat,
                                                                            monkeypatch):
    t = timeline
    t._known_rooms.add(ROOM)

    async def down(msg):
        raise ConnectionResetError("reset")
    monkeypatch.setattr(chat.dispatcher, "handle", down)
    with pytest.raises(ConnectionResetError):
        await t._handle_timeline(ROOM, [said("!claim 1")])


async def test_a_stop_ends_the_batch(timeline, chat):
    t = timeline
    t._known_rooms.add(ROOM)
    t._stopping.set()
    await t._handle_timeline(ROOM, [said("!claim 1")])
    assert t.client.sent == [] and (await chat.item(1)).owners == []


@pytest.mark.parametrize("falling_back, claimed", [(False, 2), (True, 1)])
async def test_in_a_thread_a_real_reply_means_the_replied_message_a_fallback_the_thread(
        timeline, chat, falling_back, claimed):
    t = timeline
    t._known_rooms.add(ROOM)
    root = posted(t, "#1 needs an owner", "@bob:localhost")
    asked = posted(t, "#2 needs an owner", "@bob:localhost")
    ev = said("I can take this one", ALICE, **{"m.relates_to": {
        "rel_type": "m.thread", "event_id": root.event_id, "is_falling_back": falling_back,
        "m.in_reply_to": {"event_id": asked.event_id}}})
    await t._handle_timeline(ROOM, [ev])
    assert (await chat.item(claimed)).owners == ["Alice"]
    assert (await chat.item(3 - claimed)).owners == []
