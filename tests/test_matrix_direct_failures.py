"""Change notices on Matrix when the homeserver is in the way: m.direct unreadable, a direct
room that cannot be created (outage or refusal), notices to nobody we can write to. Each is
a logged warning and `notify` saying False (the notice is a courtesy), never an exception."""

from __future__ import annotations

from typing import Any

from nio import RoomCreateError

from todobot.commands.messages import text

from . import test_matrix_direct, test_matrix_transport
from .test_matrix_transport import ALICE, BOT

matrix = test_matrix_transport.matrix  # the fixture
DmClient = test_matrix_direct.DmClient


def make(matrix, answers: list[Any] | None = None, **kw: Any):  # noqa: F811
    """A transport whose room_create answers from `answers` first (exceptions raised)."""
    t = matrix(e2ee=False, olm=False, **kw)
    client = t.client = DmClient(olm=False)
    pending = list(answers or [])
    create = client.room_create

    async def room_create(**kw: Any) -> Any:
        if pending:
            answer = pending.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return await create(**kw)
    client.room_create = room_create
    return t


async def test_an_unreadable_m_direct_still_gets_the_notice_through_a_new_room(matrix, caplog):
    t = make(matrix)

    async def down() -> Any:
        raise ConnectionResetError("reset")
    t.client.list_direct_rooms = down
    assert await t.notify(f"matrix:{ALICE}", text("#1 done"))
    assert t.client.bodies("!dm1:localhost") == ["#1 done"]  # unencrypted: sent at once
    assert "matrix: cannot read m.direct (reset)" in [r.getMessage() for r in caplog.records]


async def test_a_direct_room_that_cannot_be_created_drops_the_notice_with_a_warning(matrix,
                                                                                    caplog):
    t = make(matrix, [ConnectionResetError("reset"),
                      RoomCreateError("You cannot invite that user", "M_FORBIDDEN")])
    assert await t.notify(f"matrix:{ALICE}", text("#1 done")) is False
    assert await t.notify(f"matrix:{ALICE}", text("#2 done")) is False
    assert t.client.sent == []
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [f"matrix: cannot create a direct room with {ALICE} (reset)",
                        f"matrix: cannot create a direct room with {ALICE}: You cannot invite "
                        "that user"]
    # Once the server lets it, the next notice goes through.
    assert await t.notify(f"matrix:{ALICE}", text("#3 done"))
    assert t.client.bodies("!dm1:localhost") == ["#3 done"]


async def test_notices_to_no_matrix_user_or_to_ourselves_are_not_sent(matrix):
    t = make(matrix)
    for identity in ("irc:oftc/alice", "matrix:alice", f"matrix:{BOT}"):
        assert await t.notify(identity, text("#1 done")) is False
    assert t.client.created == [] and t.client.sent == []


async def test_a_refused_notice_says_false(matrix):
    t = make(matrix)
    t.client.too_large = lambda content, size: True  # every message refused
    assert await t.notify(f"matrix:{ALICE}", text("#1 done")) is False
