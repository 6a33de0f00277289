"""Change notices on Matrix: a direct room with the watcher, created once and reused while it
holds only the two of them; the notice an m.notice."""

from __future__ import annotations

from typing import Any

from nio import DirectRoomsErrorResponse, DirectRoomsResponse, RoomCreateResponse

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

    async def send_to_device_messages(self) -> None:
        self.housekeeping += 1

    async def room_create(self, **kw: Any) -> Any:
        self.created.append(kw)
        room_id = f"!dm{len(self.created)}:localhost"
        encrypted = any(ev["type"] == "m.room.encryption" for ev in kw.get("initial_state", ()))
        room = self.room(room_id, encrypted=encrypted, members=())
        for user in kw.get("invite", ()):
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


async def test_a_direct_room_is_created_once_and_reused(matrix):  # noqa: F811
    t = _make(matrix)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done by bob"))
    assert await t.notify(f"matrix:{ALICE}", text("#2 done by bob"))
    [create] = t.client.created
    assert create["is_direct"] and create["invite"] == [ALICE]
    sent = [e for e in t.client.sent if e["room"] == "!dm1:localhost"]
    assert [e["content"]["body"] for e in sent] == ["#1 done by bob", "#2 done by bob"]
    assert all(e["content"]["msgtype"] == "m.notice" and e["encrypted"] for e in sent)
    assert t.client.housekeeping == 1  # the new member's devices are asked for before sending


async def test_an_existing_direct_room_from_m_direct_is_used(matrix):  # noqa: F811
    t = _make(matrix, e2ee=False)
    t.client.room("!old:localhost", members=((ALICE, "Alice"),))
    t._present.add("!old:localhost")
    t.client.direct = {ALICE: ["!old:localhost"]}
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    assert t.client.created == []
    assert t.client.bodies("!old:localhost") == ["#1 done"]


async def test_a_room_someone_else_joined_is_not_used_again(matrix):  # noqa: F811
    t = _make(matrix)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    t.client.rooms["!dm1:localhost"].add_member(EVE, "Eve", None)
    assert await t.notify(f"matrix:{ALICE}", text("#2 done"))
    assert t.client.bodies("!dm1:localhost") == ["#1 done"]
    assert t.client.bodies("!dm2:localhost") == ["#2 done"]


async def test_without_e2ee_the_room_is_plain_and_nobody_else_is_reached(matrix):  # noqa: F811
    t = _make(matrix, e2ee=False)
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    assert t.client.created[0]["initial_state"] == []
    assert not await t.notify(f"matrix:{BOT}", text("x"))
    assert not await t.notify("irc:testnet/alice", text("x"))
    assert len(t.client.created) == 1
