"""Room upgrades the Matrix transport does not simply follow: a tombstone in a room that is not
configured, or naming a room already served; a successor that will not let us in yet (joined
when its invite comes, then checked); a successor whose state cannot be read (left)."""

from __future__ import annotations

import logging
from typing import Any

from nio import JoinError, RoomGetStateError, SyncResponse

from . import test_matrix_transport
from .test_matrix_transport import ALICE, BOT, NEW, ROOM, create, tombstone

matrix = test_matrix_transport.matrix  # the fixtures
upgraded = test_matrix_transport.upgraded


async def test_a_tombstone_in_a_room_that_is_not_configured_is_not_followed(matrix, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t = matrix(rooms=[])
    room = t.client.room("!chat:localhost")
    await t._handle_event(room, tombstone(ALICE))
    assert t.client.joins == [] and NEW not in t.room_release
    assert (f"matrix: !chat:localhost was upgraded to {NEW}; not a configured room, not "
            "following") in [r.getMessage() for r in caplog.records]


async def test_a_tombstone_naming_a_room_already_served_changes_nothing(upgraded):
    t = upgraded
    t.room_release[NEW] = t.room_release[ROOM]
    await t._handle_event(t.client.rooms[ROOM], tombstone(ALICE))
    assert t.client.joins == []


async def test_a_successor_that_refuses_us_is_joined_when_its_invite_comes(upgraded, caplog):
    t = upgraded
    t.client.state[NEW] = [create(NEW, ALICE, predecessor=ROOM)]
    join = t.client.join
    answers = [JoinError("You are not invited to this room.", "M_FORBIDDEN")]

    async def refusing_once(room_id: str) -> Any:
        if answers:
            t.client.joins.append(room_id)
            return answers.pop(0)
        return await join(room_id)
    t.client.join = refusing_once
    await t._handle_event(t.client.rooms[ROOM], tombstone(ALICE))
    assert NEW not in t.room_release
    assert (f"matrix: cannot join {NEW} yet (M_FORBIDDEN You are not invited to this room.); "
            "waiting for an invite") in [r.getMessage() for r in caplog.records]
    # The invite, from anyone: the room is one we were told about, and it is checked on joining.
    await t._handle_invites(SyncResponse.from_dict({"next_batch": "s", "rooms": {"invite": {
        NEW: {"invite_state": {"events": [{"type": "m.room.member", "sender": ALICE,
                                           "state_key": BOT, "content": {"membership": "invite"}}]}}}}}))
    assert t.client.joins == [NEW, NEW] and t.room_release[NEW] == t.room_release[ROOM]
    assert await t._kv_get(f"upgraded:{ROOM}") == NEW


async def test_a_successor_whose_state_cannot_be_read_is_left(upgraded, caplog):
    t = upgraded
    get_state = t.client.room_get_state

    async def unreadable(room_id: str) -> Any:
        if room_id == NEW:
            return RoomGetStateError("Internal server error", "M_UNKNOWN")
        return await get_state(room_id)
    t.client.room_get_state = unreadable
    await t._handle_event(t.client.rooms[ROOM], tombstone(ALICE))
    assert t.client.joins == [NEW] and t.client.leaves == [NEW] and NEW not in t.room_release
    logs = [r.getMessage() for r in caplog.records]
    assert f"matrix: cannot read the state of {NEW}: M_UNKNOWN Internal server error" in logs
    assert await t._kv_get(f"upgraded:{ROOM}") is None
