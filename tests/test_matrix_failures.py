"""The Matrix transport when the homeserver says no or goes away, against the fake client of
test_matrix_transport.py taught the rest of the session: a saved login reused or refused
(with what to do), a password or token login refused or rate-limited, the sync loop's waits
(rate limit, outage, failure) and the stop a revoked token means, a sync gap paged back and
where that stops, and the configured rooms' joins, leaves and invites when refused."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any

import pytest
from nio import (ErrorResponse, JoinError, LoginError, LoginResponse, RoomLeaveError,
                 RoomMessagesError, RoomMessagesResponse, RoomResolveAliasError,
                 RoomResolveAliasResponse, SyncError, SyncResponse, WhoamiError, WhoamiResponse)

from todobot.bot.config import Matrix
from todobot.bot.matrix import MatrixTransport
from todobot.bot.matrix.errors import MatrixLoginError, ServerError
from todobot.bot.matrix import sync as sync_mod
from . import test_matrix_transport
from .test_matrix_transport import ALICE, BOT, ROOM, FakeClient, said

matrix = test_matrix_transport.matrix  # the fixture


def refused(cls, code: str, message: str = "no", retry_after_ms: int | None = None):
    return cls(message, code, retry_after_ms)


class Homeserver(FakeClient):
    """FakeClient with logins, whoami, aliases, syncs and /messages scripted per test: each
    `script[name]` is a list of answers taken in turn (an exception is raised)."""

    def __init__(self) -> None:
        super().__init__()
        self.script: dict[str, list[Any]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.closed = 0
        self.device_id = ""

    def _next(self, name: str, arg: Any = None) -> Any:
        self.calls.append((name, arg))
        answer = self.script[name].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def restore_login(self, user_id: str, device_id: str, token: str) -> None:
        self.calls.append(("restore", (user_id, device_id, token)))
        self.user_id, self.device_id, self.access_token = user_id, device_id, token

    async def whoami(self) -> Any:
        return self._next("whoami")

    async def login(self, password: str, device_name: str = "") -> Any:
        resp = self._next("login", password)
        if isinstance(resp, LoginResponse):
            self.device_id, self.access_token = resp.device_id, resp.access_token
        return resp

    async def sync(self, **kw: Any) -> Any:
        return self._next("sync", kw)

    async def room_messages(self, room_id: str, start: str, end: str, direction: Any,
                            limit: int) -> Any:
        return self._next("messages", (start, limit))

    async def room_resolve_alias(self, alias: str) -> Any:
        return self._next("alias", alias)

    async def join(self, room_id: str) -> Any:
        if self.script.get("join"):
            return self._next("join", room_id)
        return await super().join(room_id)

    async def room_leave(self, room_id: str) -> Any:
        if self.script.get("leave"):
            return self._next("leave", room_id)
        return await super().room_leave(room_id)

    async def close(self) -> None:
        self.closed += 1


@pytest.fixture
def hs(matrix):
    """make(**matrix settings): (transport, its Homeserver), not started."""
    def make(**kw: Any) -> tuple[MatrixTransport, Homeserver]:
        t = matrix(e2ee=False, **kw)
        t.client = Homeserver()  # type: ignore[assignment]
        t.data_dir.mkdir(parents=True, exist_ok=True)
        return t, t.client
    return make


def save_credentials(t: MatrixTransport, **over: str) -> None:
    data = {"homeserver": t.mcfg.homeserver, "user_id": BOT, "device_id": "DEV1",
            "access_token": "saved-token", **over}
    t._credentials_file.write_text(json.dumps(data))


# -- logging in -----------------------------------------------------------------------------------
async def test_a_saved_login_is_reused_without_a_new_device(hs):
    t, client = hs()
    save_credentials(t)
    client.script["whoami"] = [WhoamiResponse(BOT, "DEV1", False)]
    await t._login()
    assert t._logged_in and ("restore", (BOT, "DEV1", "saved-token")) in client.calls
    assert not [c for c in client.calls if c[0] == "login"]


async def test_a_revoked_saved_login_stops_and_says_which_file_to_delete(hs):
    t, client = hs()
    save_credentials(t)
    client.script["whoami"] = [refused(WhoamiError, "M_UNKNOWN_TOKEN", "Invalid token")]
    with pytest.raises(MatrixLoginError) as exc:
        await t._login()
    assert "refused the saved access token" in str(exc.value)
    assert f"Delete {t._credentials_file} to log in again" in str(exc.value)
    assert not t._logged_in


async def test_a_failing_whoami_is_waited_out_as_long_as_the_server_asks(hs):
    t, client = hs()
    save_credentials(t)
    client.script["whoami"] = [refused(WhoamiError, "M_LIMIT_EXCEEDED", "slow down", 2500),
                               refused(WhoamiError, "M_UNKNOWN", "internal error")]
    with pytest.raises(ServerError) as exc:
        await t._login()
    assert exc.value.retry_after == 2.5
    with pytest.raises(ServerError) as exc:
        await t._login()
    assert exc.value.retry_after is None and "whoami failed: M_UNKNOWN internal error" in str(exc.value)


async def test_unreadable_credentials_stop_with_the_file_named(hs):
    t, client = hs()
    t._credentials_file.write_text("{not json")
    with pytest.raises(MatrixLoginError, match="cannot read .*credentials.json"):
        await t._login()
    assert client.calls == []


async def test_another_accounts_credentials_are_not_used_a_password_login_replaces_them(hs, caplog):
    t, client = hs()
    save_credentials(t, user_id="@someone-else:localhost", access_token="theirs")
    client.script["login"] = [LoginResponse(BOT, "NEWDEV", "new-token")]
    await t._login()
    assert ("login", "pw") in client.calls and t._logged_in
    assert any("is for another account; logging in afresh" in r.getMessage() for r in caplog.records)
    saved = json.loads(t._credentials_file.read_text())
    assert (saved["user_id"], saved["device_id"], saved["access_token"]) == (BOT, "NEWDEV",
                                                                          "new-token")
    assert os.stat(t._credentials_file).st_mode & 0o777 == 0o600  # a secret: the owner's only


async def test_a_refused_password_login_stops_and_a_rate_limited_one_waits(hs):
    t, client = hs()
    client.script["login"] = [refused(LoginError, "M_LIMIT_EXCEEDED", "wait", None),
                              refused(LoginError, "M_FORBIDDEN", "Invalid password")]
    with pytest.raises(ServerError) as exc:
        await t._login()
    assert exc.value.retry_after == 1.0  # no wait named: a second
    with pytest.raises(MatrixLoginError) as exc:
        await t._login()
    assert str(exc.value) == f"matrix: login as {BOT} failed (M_FORBIDDEN: Invalid password)."
    assert not t._credentials_file.exists()


async def test_an_access_token_from_the_environment_is_checked_and_kept(chat, tmp_path,
                                                                        monkeypatch):
    monkeypatch.setenv("TODOBOT_TEST_MATRIX_TOKEN", "env-token")
    mcfg = Matrix(homeserver="http://127.0.0.1:9", user_id=BOT, data_dir=str(tmp_path / "m"),
                  access_token_env="TODOBOT_TEST_MATRIX_TOKEN", e2ee=False)
    t = MatrixTransport(mcfg, chat.config, chat.repo)
    t.client = client = Homeserver()  # type: ignore[assignment]
    t.data_dir.mkdir(parents=True)
    client.script["whoami"] = [refused(WhoamiError, "M_UNKNOWN_TOKEN", "Invalid token"),
                               WhoamiResponse("@other:localhost", "D", False),
                               WhoamiResponse(BOT, "TOKDEV", False)]
    with pytest.raises(MatrixLoginError, match=r"the access token in \$TODOBOT_TEST_MATRIX_TOKEN "
                                               r"was refused \(M_UNKNOWN_TOKEN: Invalid token\)"):
        await t._login()
    with pytest.raises(MatrixLoginError, match="belongs to @other:localhost, not @todobot"):
        await t._login()
    await t._login()
    saved = json.loads(t._credentials_file.read_text())
    assert (saved["device_id"], saved["access_token"]) == ("TOKDEV", "env-token")


# -- the sync loop ----------------------------------------------------------------------------------
def sync_response(batch: str, timeline: dict[str, Any] | None = None,
                  leave: tuple[str, ...] = ()) -> SyncResponse:
    join = {room: {"timeline": tl, "state": {"events": []}} for room, tl in (timeline or {}).items()}
    return SyncResponse.from_dict({"next_batch": batch, "rooms": {
        "join": join, "invite": {}, "leave": {r: {"timeline": {"events": []}} for r in leave}}})


def loop_rig(hs, syncs: list[Any]):
    """A logged-in transport whose rooms are joined, with scripted `syncs`; `waits` records
    each pause of the loop (delay, probe) instead of waiting, and `health` what the status
    page said meanwhile."""
    t, client = hs()
    t._logged_in = True
    t._rooms_joined = True
    client.script["sync"] = list(syncs)
    waits: list[tuple[float, bool]] = []
    health: list[str | None] = []

    async def pause(delay: float, *, probe: bool) -> None:
        waits.append((delay, probe))
        health.append(t.health())
    t._pause = pause  # type: ignore[method-assign]
    return t, client, waits, health


async def test_sync_failures_are_waited_out_the_outage_probed_and_a_good_sync_resets_it(hs, caplog):
    t, client, waits, health = loop_rig(hs, [
        refused(SyncError, "M_UNKNOWN", "internal error"),
        refused(SyncError, "M_LIMIT_EXCEEDED", "slow down", 7000),
        ConnectionRefusedError("refused"),
        RuntimeError("a bug"),
        sync_response("s1"),
        asyncio.CancelledError(),  # the stop, while waiting in the next sync
    ])
    with pytest.raises(asyncio.CancelledError):
        await t._run()
    assert waits == [(5.0, False), (7.0, False), (10.0, True), (20.0, False)]
    assert health == ["the homeserver is unreachable or failing; retrying"] * 4
    assert client.closed == 1  # the outage dropped the pooled connections
    logs = [r.getMessage() for r in caplog.records]
    assert "matrix: sync failed: M_UNKNOWN internal error; retrying in 5.0 s" in logs
    assert "matrix: sync rate-limited; retrying in 7.0 s" in logs
    assert "matrix: homeserver unreachable (refused); retrying within 10 s" in logs
    assert any(m.startswith("matrix: sync failed; retrying in 20 s") for m in logs)
    # Back: the first sync after the failures returns at once, and the token is kept.
    assert client.calls[-2][1]["timeout"] == 0 and client.calls[-1][1]["timeout"] > 0
    assert t._next_batch == "s1" and t.health() is None and t.synced.is_set()
    assert await t._kv_get("next_batch") == "s1"


async def test_a_revoked_token_stops_the_transport_with_one_critical_line(hs, caplog):
    t, client, waits, _ = loop_rig(hs, [refused(SyncError, "M_UNKNOWN_TOKEN", "Invalid token"),
                                       sync_response("never")])
    await t._run()  # returns: no retry loop on a token that will never work again
    [line] = [r for r in caplog.records if r.levelname == "CRITICAL"]
    assert "no longer accepts the access token" in line.getMessage()
    assert "The Matrix transport has stopped." in line.getMessage()
    assert waits == [] and len(client.script["sync"]) == 1


async def test_an_unreachable_homeserver_is_probed_and_the_wait_ends_when_it_is_back(
        hs, monkeypatch):
    monkeypatch.setattr(sync_mod, "PROBE_INTERVAL", 0.01)
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    t, _ = hs()
    t.mcfg = t.mcfg.model_copy(update={"homeserver": f"http://127.0.0.1:{port}"})
    assert await t._reachable() is False
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port)
    try:
        await t._pause(3600, probe=True)  # would be an hour without the probe
    finally:
        server.close()
        await server.wait_closed()
    assert t.probes >= 2
    t._stopping.set()
    await t._pause(3600, probe=False)  # a stop ends any wait


def message(body: str, age: float = 0) -> dict[str, Any]:
    ev = said(body).source
    ev["origin_server_ts"] = int((time.time() - age) * 1000)
    return ev


def gap_rig(hs, chat, pages: list[Any], **kw: Any):
    t, client = hs(**kw)
    client.room(ROOM)
    t._known_rooms = {ROOM}
    t._next_batch = "s0"
    t._synced_once = True
    limited = {"events": [message("!show 3")], "limited": True, "prev_batch": "p1"}
    client.script["sync"] = [sync_response("s1", {ROOM: limited})]
    client.script["messages"] = pages
    return t, client


def answered(client: FakeClient) -> list[str]:
    return [("libxl" if "libxl" in b else "vMCE" if "vMCE" in b else b) for b in client.bodies()]


async def test_a_gap_is_paged_back_and_handled_oldest_first(hs, chat, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    page1 = RoomMessagesResponse(ROOM, [], "p1", "p2")
    page1.chunk = [RoomMessagesResponse.from_dict(
        {"chunk": [message("!show 1")], "start": "p1", "end": "p2"}, ROOM).chunk[0]]
    page2 = RoomMessagesResponse.from_dict(
        {"chunk": [message("!show 3"), message("!show 1")], "start": "p2", "end": "p3"}, ROOM)
    t, client = gap_rig(hs, chat, [page1, page2, refused(RoomMessagesError, "M_UNKNOWN", "oops")])
    await t._sync_once()
    # The oldest missed message first, the timeline's own last.
    assert answered(client) == ["libxl", "vMCE", "libxl", "vMCE"]
    assert t.gap_fetched == 3 and t._next_batch == "s1"
    logs = [r.getMessage() for r in caplog.records]
    assert f"matrix: gap in {ROOM}: fetched 3 missed events" in logs
    assert (f"matrix: gap in {ROOM}: stopped at an error (M_UNKNOWN oops); anything said earlier "
            "in the gap is not handled") in logs


async def test_a_gap_stops_at_its_limit_and_a_day_back(hs, chat, caplog):
    full = RoomMessagesResponse.from_dict(
        {"chunk": [message("!show 1"), message("!show 3")], "start": "p1", "end": "p2"}, ROOM)
    t, client = gap_rig(hs, chat, [full], gap_fetch_max=2)
    await t._sync_once()
    assert t.gap_fetched == 2 and client.calls[-1] == ("messages", ("p1", 2))
    assert any("stopped at the limit of 2 events" in r.getMessage() for r in caplog.records)
    old = RoomMessagesResponse.from_dict(
        {"chunk": [message("!show 1"), message("!show 3", age=2 * 86400)], "start": "p1",
         "end": "p2"}, ROOM)
    t, client = gap_rig(hs, chat, [old])
    await t._sync_once()
    assert t.gap_fetched == 1 and answered(client) == ["libxl", "vMCE"]
    assert any("stopped at 24 h back" in r.getMessage() for r in caplog.records)


async def test_a_rate_limited_gap_fetch_keeps_the_old_token_for_a_retry(hs, chat):
    t, client = gap_rig(hs, chat, [refused(RoomMessagesError, "M_LIMIT_EXCEEDED", "wait", 3000)])
    with pytest.raises(ServerError) as exc:
        await t._sync_once()
    assert exc.value.retry_after == 3.0
    assert t._next_batch == "s0" and client.bodies() == []  # the next sync starts from s0 again


# -- rooms --------------------------------------------------------------------------------------------
async def test_an_alias_that_cannot_be_resolved_or_a_room_that_refuses_waits_for_an_invite(
        hs, caplog):
    t, client = hs(rooms=["#gone:localhost", "!closed:localhost"])
    client.script["alias"] = [refused(RoomResolveAliasError, "M_NOT_FOUND", "Room alias not found")]
    client.script["join"] = [refused(JoinError, "M_FORBIDDEN", "You are not invited")]
    await t._join_configured()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [
        "matrix: cannot resolve #gone:localhost: M_NOT_FOUND Room alias not found",
        "matrix: cannot join !closed:localhost (!closed:localhost): M_FORBIDDEN You are not "
        "invited; waiting for an invite"]
    assert t.rooms() == [] and t._rooms_ready.is_set()
    # The invite comes: it is for a configured room, so it is taken.
    invite = SyncResponse.from_dict({"next_batch": "s1", "rooms": {"invite": {
        "!closed:localhost": {"invite_state": {"events": [
            {"type": "m.room.member", "sender": ALICE, "state_key": BOT,
             "content": {"membership": "invite"}}]}}}}})
    await t._handle_invites(invite)
    assert client.joins == ["!closed:localhost"]


async def test_an_alias_resolved_is_joined_and_bound(hs):
    t, client = hs(rooms=["#todo:localhost"])
    client.script["alias"] = [RoomResolveAliasResponse("#todo:localhost", ROOM, ["localhost"])]
    await t._join_configured()
    assert client.joins == [ROOM] and t.rooms() == [ROOM] and ROOM in t.room_release


async def test_a_rate_limited_join_at_start_is_retried_by_the_sync_loop(hs):
    t, client = hs(rooms=[ROOM])
    client.script["join"] = [refused(JoinError, "M_LIMIT_EXCEEDED", "wait", 4000)]
    with pytest.raises(ServerError) as exc:
        await t._join_configured()
    assert exc.value.retry_after == 4.0 and not t._rooms_joined  # the loop joins again


async def test_an_invite_from_a_stranger_is_declined_and_a_refused_join_is_logged(hs, caplog):
    t, client = hs(rooms=[ROOM], allowed_inviters=[ALICE])

    def invited(room: str, by: str) -> SyncResponse:
        return SyncResponse.from_dict({"next_batch": "s", "rooms": {"invite": {room: {
            "invite_state": {"events": [{"type": "m.room.member", "sender": by,
                                         "state_key": BOT, "content": {"membership": "invite"}}]}}}}})
    await t._handle_invites(invited("!spam:localhost", "@stranger:localhost"))
    assert client.leaves == ["!spam:localhost"] and client.joins == []
    client.script["join"] = [refused(JoinError, "M_FORBIDDEN", "banned")]
    await t._handle_invites(invited("!alice:localhost", ALICE))
    assert any(r.getMessage() == "matrix: cannot join !alice:localhost: M_FORBIDDEN banned"
               for r in caplog.records)


def reload(t: MatrixTransport, chat, rooms: list[str]):
    config = chat.config.model_copy(update={"matrix": t.mcfg.model_copy(update={"rooms": rooms})})
    return t.apply_config(config)


async def test_a_reload_joins_and_leaves_through_rate_limits_and_outages(hs, chat, caplog,
                                                                         monkeypatch):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    monkeypatch.setattr("todobot.bot.matrix.rooms.BACKOFF_FIRST", 0.0)
    t, client = hs(rooms=[ROOM])
    await t._join_configured()
    client.script["join"] = [refused(JoinError, "M_LIMIT_EXCEEDED", "wait", 1),
                             ConnectionResetError("reset")]  # then the join goes through
    out = reload(t, chat, ["!new:localhost"])
    assert out.changes == ["matrix: joining !new:localhost", f"matrix: leaving {ROOM}"]
    client.script["leave"] = [refused(RoomLeaveError, "M_UNKNOWN", "oops")]
    await t.settled()
    assert client.joins == [ROOM, "!new:localhost"] and client.script["join"] == []
    logs = [r.getMessage() for r in caplog.records]
    assert "matrix: cannot join !new:localhost now (rate-limited); trying again in 0 s" in logs
    assert "matrix: cannot join !new:localhost now (reset); trying again in 0 s" in logs
    assert "matrix: joined !new:localhost" in logs
    assert f"matrix: cannot leave {ROOM}: M_UNKNOWN oops" in logs
    assert t.rooms() == ["!new:localhost", ROOM]  # the leave failed: still there
    # Removing it again: this time the leave works.
    reload(t, chat, [])
    await t.settled()
    assert "matrix: left !new:localhost (no longer in the configuration)" in [
        r.getMessage() for r in caplog.records]
    assert t.rooms() == [ROOM]


async def test_a_join_that_keeps_failing_is_given_up_until_a_restart(hs, chat, caplog, monkeypatch):
    monkeypatch.setattr("todobot.bot.matrix.rooms.BACKOFF_FIRST", 0.0)
    t, client = hs(rooms=[])
    await t._join_configured()
    client.script["join"] = [ConnectionResetError("reset")] * 5
    reload(t, chat, ["!new:localhost"])
    await t.settled()
    assert client.script["join"] == [] and t.rooms() == []
    assert "matrix: gave up trying to join !new:localhost; a restart tries again" in [
        r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


async def test_a_room_never_joined_is_not_left(hs, chat, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.matrix")
    t, client = hs(rooms=["!closed:localhost"])
    client.script["join"] = [refused(JoinError, "M_FORBIDDEN", "not invited")]
    await t._join_configured()
    reload(t, chat, [])
    await t.settled()
    assert client.leaves == []
    assert "matrix: not in !closed:localhost; nothing to leave" in [r.getMessage()
                                                                     for r in caplog.records]


async def test_removing_the_matrix_section_takes_a_restart(hs, chat):
    t, _ = hs(rooms=[ROOM])
    out = t.apply_config(chat.config.model_copy(update={"matrix": None}))
    assert out.restart == ["matrix: removed from the configuration; still syncing until a restart"]
    assert ROOM in t.room_release


async def test_the_goodbye_says_offline_or_logs_why_not(hs, caplog):
    caplog.set_level(logging.DEBUG, logger="todobot.bot.matrix")
    t, client = hs()
    answers = [ConnectionRefusedError("down"), ErrorResponse("no presence here", "M_UNKNOWN")]

    async def set_presence(state: str) -> Any:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer
    client.set_presence = set_presence  # type: ignore[attr-defined]
    await t._say_offline()
    await t._say_offline()
    logs = [r.getMessage() for r in caplog.records]
    assert "matrix: could not set presence offline: down" in logs
    assert "matrix: presence offline refused: M_UNKNOWN no presence here" in logs
