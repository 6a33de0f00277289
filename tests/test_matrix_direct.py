"""Change notices on Matrix: a direct room with the watcher, created once and reused while it
holds only the two of them; the notice an m.notice."""

from __future__ import annotations

import logging
from typing import Any

from nio import DirectRoomsErrorResponse, DirectRoomsResponse, RoomCreateResponse, RoomMemberEvent

import todobot.bot.matrix.direct as direct

from todobot.commands.messages import text

from .test_matrix_transport import ALICE, BOT, FakeClient, matrix  # noqa: F401  (fixture)

EVE = "@eve:localhost"


class DmClient(FakeClient):
    """Creating a room shows it at once (as the next sync would), with the user invited."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.created: list[dict[str, Any]] = []
        self.direct: dict[str, list[str]] = {}
        self.should_upload_keys = self.should_query_keys = self.should_claim_keys = False
        self.housekeeping = 0
        self.shows_invite = True  # Synapse: the invite may come with a later sync than the room

    async def send_to_device_messages(self) -> None:
        self.housekeeping += 1

    async def room_create(self, **kw: Any) -> Any:
        self.created.append(kw)
        room_id = f"!dm{len(self.created)}:localhost"
        encrypted = any(ev["type"] == "m.room.encryption" for ev in kw.get("initial_state", ()))
        room = self.room(room_id, encrypted=encrypted, members=())
        for user in kw.get("invite", ()) if self.shows_invite else ():
            room.add_member(user, None, None, "invite")
        return RoomCreateResponse(room_id)

    async def list_direct_rooms(self) -> Any:
        if not self.direct:
            return DirectRoomsErrorResponse("no m.direct", "M_NOT_FOUND")
        return DirectRoomsResponse(self.direct)


def _make(matrix, **kw):  # noqa: F811
    t = matrix(**kw)
    t.client = DmClient(olm=kw.get("olm", True))
    return t


def joins(t, room_id: str, user: str = ALICE) -> None:
    """What a sync that shows `user`'s join does to nio's room."""
    t.client.rooms[room_id].handle_membership(RoomMemberEvent.from_dict({
        "type": "m.room.member", "event_id": f"$join{room_id}", "sender": user,
        "state_key": user, "origin_server_ts": 1, "content": {"membership": "join"}}))


async def test_a_direct_room_is_created_once_and_reused(matrix):  # noqa: F811
    t = _make(matrix)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done by bob"))
    assert await t.notify(f"matrix:{ALICE}", text("#2 done by bob"))
    [create] = t.client.created
    assert create["is_direct"] and create["invite"] == [ALICE]
    assert t.client.sent == [] and t.client.housekeeping == 0  # held until Alice joins
    await t._send_held()
    assert t.client.sent == []  # a sync without her join
    joins(t, "!dm1:localhost")
    await t._send_held()
    sent = [e for e in t.client.sent if e["room"] == "!dm1:localhost"]
    assert [e["content"]["body"] for e in sent] == ["#1 done by bob", "#2 done by bob"]
    assert all(e["content"]["msgtype"] == "m.notice" and e["encrypted"] for e in sent)
    assert t.client.housekeeping == 1  # the new member's devices are asked for before sending
    assert await t.notify(f"matrix:{ALICE}", text("#3 done by bob"))  # joined: at once
    assert t.client.bodies("!dm1:localhost")[-1] == "#3 done by bob"
    assert len(t.client.created) == 1


async def test_the_sync_that_shows_the_join_sends_what_was_held(matrix):  # noqa: F811
    from nio import DeviceList, DeviceOneTimeKeyCount, Rooms, SyncResponse

    t = _make(matrix)
    t._synced_once = True
    t._next_batch = "s0"
    assert await t.notify(f"matrix:{ALICE}", text("#1 done by bob"))
    shows: list = []

    async def sync(**kw: Any) -> SyncResponse:
        for change in shows:  # what nio does with the response's state
            change()
        return SyncResponse(f"s{len(shows) + 1}", Rooms({}, {}, {}), DeviceOneTimeKeyCount(0, 0),
                            DeviceList([], []), [], [])
    t.client.sync = sync
    await t._sync_once()
    assert t.client.sent == []
    shows.append(lambda: joins(t, "!dm1:localhost"))
    await t._sync_once()
    assert t.client.bodies("!dm1:localhost") == ["#1 done by bob"]
    assert t.client.sent[0]["encrypted"]


async def test_a_room_whose_invite_is_not_synced_yet_holds_too(matrix):  # noqa: F811
    t = _make(matrix)
    t.client.shows_invite = False
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    await t._send_held()
    assert t.client.sent == [] and ALICE in t._held
    joins(t, "!dm1:localhost")
    await t._send_held()
    assert t.client.bodies("!dm1:localhost") == ["#1 done"]


async def test_held_notices_are_bounded_and_a_user_who_never_joins_is_logged_once(
        matrix, monkeypatch, caplog):  # noqa: F811
    monkeypatch.setattr(direct, "MAX_HELD", 3)
    monkeypatch.setattr(direct, "JOIN_WAIT", 0.0)
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t = _make(matrix)
    for n in range(5):
        assert await t.notify(f"matrix:{ALICE}", text(f"#{n} done"))
    await t._send_held()
    await t._send_held()
    assert caplog.text.count("has not joined the encrypted direct room !dm1:localhost") == 1
    assert t.client.sent == [] and len(t.client.created) == 1  # the room is kept
    joins(t, "!dm1:localhost")
    await t._send_held()
    assert t.client.bodies("!dm1:localhost") == ["#2 done", "#3 done", "#4 done"]
    assert "sent 3 held change notices (2 older ones dropped)" in caplog.text


async def test_notices_held_for_a_room_someone_else_joined_are_dropped(matrix, caplog):  # noqa: F811
    t = _make(matrix)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    t.client.rooms["!dm1:localhost"].add_member(EVE, "Eve", None)
    joins(t, "!dm1:localhost")
    await t._send_held()
    assert t.client.sent == [] and t._held == {}
    assert "1 change notices for @alice:localhost dropped" in caplog.text


async def test_an_existing_direct_room_from_m_direct_is_used(matrix):  # noqa: F811
    t = _make(matrix, e2ee=False)
    t.client.room("!old:localhost", members=((ALICE, "Alice"),))
    t._present.add("!old:localhost")
    t.client.direct = {ALICE: ["!old:localhost"]}
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    assert t.client.created == []
    assert t.client.bodies("!old:localhost") == ["#1 done"]


async def test_a_room_someone_else_joined_is_not_used_again(matrix):  # noqa: F811
    t = _make(matrix, e2ee=False)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    t.client.rooms["!dm1:localhost"].add_member(EVE, "Eve", None)
    assert await t.notify(f"matrix:{ALICE}", text("#2 done"))
    assert t.client.bodies("!dm1:localhost") == ["#1 done"]
    assert t.client.bodies("!dm2:localhost") == ["#2 done"]


async def test_without_e2ee_the_room_is_plain_and_nobody_else_is_reached(matrix):  # noqa: F811
    t = _make(matrix, e2ee=False)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    assert t.client.created[0]["initial_state"] == []
    assert t.client.bodies("!dm1:localhost") == ["#1 done"]  # at once: Alice is only invited
    assert not await t.notify(f"matrix:{BOT}", text("x"))
    assert not await t.notify("irc:testnet/alice", text("x"))
    assert len(t.client.created) == 1
