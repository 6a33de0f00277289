"""Sending to Matrix when the homeserver is in the way, against the fake client of
test_matrix_transport.py: an outage or a rate limit retried with the same transaction id (never
posted twice), a refusal logged and nothing else, a post waiting for the first sync, `!more`
with nothing left, a room we cannot read told so once, and the transport's start and stop
against a homeserver that is not there."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from nio import MegolmEvent, RoomSendError
from nio.exceptions import LocalProtocolError

from todobot.bot.backoff import Backoff
from todobot.bot.matrix import sending as sending_mod
from todobot.bot.matrix.sending import CANNOT_READ, SEND_ATTEMPTS, Where
from todobot.commands.messages import text
from . import test_matrix_transport
from .test_matrix_transport import ALICE, ROOM, FakeClient, said

matrix = test_matrix_transport.matrix  # the fixture


class Flaky(FakeClient):
    """room_send answers from `answers` first (an exception is raised), then as FakeClient;
    each attempt's transaction id is kept."""

    def __init__(self, answers: list[Any]) -> None:
        super().__init__(olm=False)
        self.answers = answers
        self.txns: list[str | None] = []

    async def room_send(self, room_id: str, message_type: str, content: dict[str, Any],
                        tx_id: str | None = None, ignore_unverified_devices: bool = False) -> Any:
        self.txns.append(tx_id)
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        return await super().room_send(room_id, message_type, content, tx_id)


def limited(ms: int = 1) -> RoomSendError:
    return RoomSendError("Too Many Requests", "M_LIMIT_EXCEEDED", ms)


@pytest.fixture
def flaky(matrix, monkeypatch):
    monkeypatch.setattr(sending_mod, "Backoff", lambda first, cap: Backoff(0.001, 0.001))

    def make(answers: list[Any]):
        t = matrix(e2ee=False, olm=False)
        t.client = client = Flaky(answers)  # type: ignore[assignment]
        client.room(ROOM)
        return t, client
    return make


async def test_an_outage_and_rate_limits_are_retried_with_the_same_transaction(flaky, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t, client = flaky([ConnectionResetError("reset"), limited(), limited()])
    await t.post(ROOM, text("the digest"))
    assert client.bodies() == ["the digest"]  # once, though four attempts were made
    assert len(client.txns) == 4 and len(set(client.txns)) == 1
    assert t.rate_limited == 2
    logs = [r.getMessage() for r in caplog.records]
    assert f"matrix: send to {ROOM} failed (reset); retrying in 0 s" in logs
    assert f"matrix: rate-limited in {ROOM}; waiting 0.0 s" in logs


async def test_a_refused_send_is_logged_and_not_retried(flaky, caplog):
    t, client = flaky([RoomSendError("You are not allowed", "M_FORBIDDEN")])
    await t.post(ROOM, text("the digest"))
    assert client.bodies() == [] and len(client.txns) == 1
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        f"matrix: send to {ROOM} refused: M_FORBIDDEN You are not allowed"]


async def test_an_endless_rate_limit_is_given_up_on(flaky, caplog):
    t, client = flaky([limited() for _ in range(SEND_ATTEMPTS)])
    await t.post(ROOM, text("the digest"))
    assert client.bodies() == [] and len(client.txns) == SEND_ATTEMPTS
    assert f"matrix: gave up sending to {ROOM} after {SEND_ATTEMPTS} attempts" in [
        r.getMessage() for r in caplog.records]


async def test_a_client_that_cannot_send_says_so_in_the_log(flaky, caplog):
    t, client = flaky([LocalProtocolError("Not logged in.")])
    await t.post(ROOM, text("the digest"))
    assert client.bodies() == []
    assert f"matrix: cannot send to {ROOM}: Not logged in." in [r.getMessage()
                                                               for r in caplog.records]


async def test_when_even_the_one_line_is_too_large_it_is_logged_not_raised(matrix, caplog):
    t = matrix(e2ee=False, olm=False)
    t.client.room(ROOM)
    t.client.too_large = lambda content, size: True  # a homeserver that takes no message
    await t.post(ROOM, text("anything"))
    assert t.client.sent == [] and t.client.refused
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors[-2].endswith("it cannot be cut further; said so instead")
    # ... and the one line saying so was refused too: logged, nothing raised.
    assert errors[-1] == f"matrix: {ROOM} refused a m.room.message event as too large"


async def test_a_post_to_a_room_not_synced_yet_waits_then_sends_nothing_in_the_dark(
        matrix, caplog, monkeypatch):
    monkeypatch.setattr(sending_mod, "FIRST_SYNC_WAIT", 0.01)
    t = matrix(e2ee=False, olm=False)
    await t.post("!unknown:localhost", text("the digest"))
    assert t.client.sent == []
    assert ("matrix: not sending to !unknown:localhost: its state (encrypted or not) is not "
            "known yet") in [r.getMessage() for r in caplog.records]


async def test_more_with_nothing_pending_says_so_and_a_replayed_more_is_ignored(matrix):
    t = matrix(e2ee=False, olm=False)
    t.client.room(ROOM)
    more = said("!more")
    await t._handle_event(t.client.rooms[ROOM], more)
    assert t.client.bodies() == ["There is nothing more to show."]
    await t._handle_event(t.client.rooms[ROOM], more)  # the same event again (a sync replay)
    assert t.client.bodies() == ["There is nothing more to show."]


async def test_a_thread_answer_is_in_the_thread_with_a_fallback_reply(matrix):
    t = matrix(e2ee=False, olm=False)
    t.client.room(ROOM)
    await t._send_part(Where(ROOM, "$q", thread="$root"), text("in the thread"))
    [event] = t.client.sent
    assert event["content"]["m.relates_to"] == {
        "rel_type": "m.thread", "event_id": "$root", "is_falling_back": True,
        "m.in_reply_to": {"event_id": "$q"}}


def encrypted_event(n: int) -> MegolmEvent:
    return MegolmEvent.from_dict({
        "type": "m.room.encrypted", "event_id": f"$enc{n}", "sender": ALICE,
        "origin_server_ts": 1, "content": {"algorithm": "m.megolm.v1.aes-sha2",
                                           "ciphertext": "x", "sender_key": "k",
                                           "device_id": "D", "session_id": "s"}})


async def test_a_room_we_cannot_read_is_told_so_once_in_the_clear(matrix):
    t = matrix(e2ee=False, olm=False)
    room = t.client.room(ROOM, encrypted=True)
    await t._handle_event(room, encrypted_event(1))
    await t._handle_event(room, encrypted_event(2))
    assert [(e["content"]["body"], e["encrypted"]) for e in t.client.sent] == [(CANNOT_READ, False)]


async def test_an_event_without_its_room_key_is_logged(matrix, caplog):
    t = matrix(e2ee=True, olm=True)
    room = t.client.room(ROOM, encrypted=True)
    await t._handle_event(room, encrypted_event(3))
    assert t.client.sent == []
    assert f"matrix: cannot decrypt $enc3 from {ALICE} in {ROOM} (no room key)" in [
        r.getMessage() for r in caplog.records]


async def test_a_start_with_the_homeserver_down_keeps_trying_and_stops_cleanly(matrix, chat,
                                                                              caplog):
    t = matrix(e2ee=False)
    t.client = None
    assert t.health() == "not logged in" and t.requests == 0
    await t.start(chat.dispatcher)  # http://127.0.0.1:9: nothing listens there
    assert any(r.getMessage().startswith("matrix: homeserver http://127.0.0.1:9 unreachable")
               and "will keep trying" in r.getMessage() for r in caplog.records)
    assert t._task is not None and t.health() == "not logged in"
    await t.stop()
    assert t._task is None and t.client.client_session is None  # the HTTP session closed
    assert not any("offline" in r.getMessage() for r in caplog.records)  # no goodbye to nobody
    t._logged_in = True
    assert t.health() == "not synced yet"
    t._synced_once = True
    assert t.health() is None
