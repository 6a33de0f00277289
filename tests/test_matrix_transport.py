"""The Matrix transport against a fake matrix-nio client: what it sends where, and how big.

The fake behaves like matrix-nio where it matters here: `room_send` encrypts (records the
event as encrypted) when the client has an Olm machine and the room is encrypted, except
reactions, which matrix-nio always sends in the clear; anything else goes in the clear. It
refuses events the way Synapse does (M_TOO_LARGE) when a test says which.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import pytest
from nio import (Event, JoinResponse, MatrixRoom, RoomGetEventResponse, RoomGetStateResponse,
                 RoomLeaveResponse, RoomMessageText, RoomSendError, RoomSendResponse,
                 RoomUpgradeEvent)
from nio.events.room_events import PowerLevels

from todobot.bot.config import Matrix
from todobot.bot.matrix import MatrixTransport
from todobot.bot.matrix.sending import CANNOT_READ, TOO_LARGE, Where
from todobot.bot.matrix.render import MAX_EVENT_BYTES, content_bytes, encrypted_bytes
from todobot.bot.matrix.upgrades import creators
from todobot.commands.messages import Message, Reply, Sender, item_ref

BOT = "@todobot:localhost"
ALICE = "@alice:localhost"
ROOM = "!room:localhost"
SECRET = "secret plans for 4.2"
SERVER_LIMIT = 65536


class FakeClient:
    def __init__(self, *, olm: bool = True) -> None:
        self.user_id = BOT
        self.access_token = "token"
        self.olm = object() if olm else None
        self.rooms: dict[str, MatrixRoom] = {}
        self.sent: list[dict[str, Any]] = []  # room, type, content, encrypted, size
        self.refused: list[int] = []  # sizes of events refused as too large
        # Which events the server refuses as too large (by default: over 64 KiB as stored).
        self.too_large: Callable[[dict[str, Any], int], bool] = lambda content, size: (
            size > SERVER_LIMIT)
        self.requests = 0
        self._n = 0
        self.state: dict[str, list[dict[str, Any]]] = {}  # room id -> its state events
        self.joins: list[str] = []
        self.leaves: list[str] = []

        self.timeline: dict[str, Any] = {}  # event id -> event (room_get_event)
        self.edits: dict[str, list[Any]] = {}  # event id -> its m.replace relations

    async def room_get_event(self, room_id: str, event_id: str) -> Any:
        return RoomGetEventResponse.from_dict(self.timeline[event_id].source)

    async def room_get_event_relations(self, room_id: str, event_id: str, rel_type: Any = None,
                                       limit: int | None = None, **kw: Any) -> Any:
        for edit in self.edits.get(event_id, []):
            yield edit

    async def join(self, room_id: str) -> Any:
        self.joins.append(room_id)
        return JoinResponse(room_id)

    async def room_leave(self, room_id: str) -> Any:
        self.leaves.append(room_id)
        return RoomLeaveResponse()

    async def room_get_state(self, room_id: str) -> Any:
        return RoomGetStateResponse(self.state.get(room_id, []), room_id)

    def room(self, room_id: str = ROOM, *, encrypted: bool = False,
             members: tuple[tuple[str, str | None], ...] = ((ALICE, "Alice"),
                                                            ("@bob:localhost", "Bob"))) -> MatrixRoom:
        room = MatrixRoom(room_id, self.user_id, encrypted)
        room.add_member(self.user_id, "todobot", None)
        for user, name in members:
            room.add_member(user, name, None)
        self.rooms[room_id] = room
        return room

    async def room_send(self, room_id: str, message_type: str, content: dict[str, Any],
                        tx_id: str | None = None, ignore_unverified_devices: bool = False) -> Any:
        room = self.rooms[room_id]
        encrypted = self.olm is not None and room.encrypted and message_type != "m.reaction"
        return self._deliver(room_id, message_type, content, encrypted)

    async def _send(self, response_class: Any, method: str, path: str, data: str,
                    args: tuple[str, ...]) -> Any:  # what `in_the_clear` uses: never encrypted
        event_type = unquote(path.split("/send/")[1].split("/")[0].split("?")[0])
        return self._deliver(args[0], event_type, json.loads(data), False)

    def _deliver(self, room_id: str, event_type: str, content: dict[str, Any],
                 encrypted: bool) -> Any:
        size = (encrypted_bytes(content, room_id, event_type) if encrypted
                else content_bytes(content))
        if event_type == "m.room.message" and self.too_large(content, size):
            self.refused.append(size)
            return RoomSendError.from_dict({"errcode": "M_TOO_LARGE", "error": "too large"},
                                           room_id)
        self._n += 1
        self.sent.append({"room": room_id, "type": event_type, "content": content,
                          "encrypted": encrypted, "size": size})
        return RoomSendResponse(f"$sent{self._n}", room_id)

    def bodies(self, room_id: str = ROOM) -> list[str]:
        return [e["content"]["body"] for e in self.sent
                if e["room"] == room_id and e["type"] == "m.room.message"]


@pytest.fixture
def matrix(chat, monkeypatch, tmp_path):
    """make(e2ee=..., olm=...): the transport on `chat`'s database and dispatcher, with a fake
    client (not started: no sync loop)."""
    monkeypatch.setenv("TODOBOT_TEST_MATRIX_PASSWORD", "pw")

    def make(*, e2ee: bool = True, olm: bool = True, **kw: Any) -> MatrixTransport:
        mcfg = Matrix(homeserver="http://127.0.0.1:9", user_id=BOT,
                      password_env="TODOBOT_TEST_MATRIX_PASSWORD", data_dir=str(tmp_path / "m"),
                      **kw)
        t = MatrixTransport(mcfg, chat.config, chat.repo)
        t.e2ee = e2ee
        t.client = FakeClient(olm=olm)  # type: ignore[assignment]
        t.dispatcher = chat.dispatcher
        return t
    return make


_events = iter(range(1, 1_000_000))


def said(text: str, sender: str = ALICE, **content: Any) -> RoomMessageText:
    """A message event as a sync delivers it."""
    return RoomMessageText.from_dict({
        "type": "m.room.message", "event_id": f"$in{next(_events)}", "sender": sender,
        "origin_server_ts": int(time.time() * 1000),
        "content": {"msgtype": "m.text", "body": text, **content}})


def leaked(client: FakeClient, room_id: str = ROOM) -> list[dict[str, Any]]:
    """What went in the clear into the room, but the one notice that we cannot read it."""
    return [e for e in client.sent if e["room"] == room_id and not e["encrypted"]
            and e["content"].get("body") != CANNOT_READ]


def emoji_list(n: int, per_title: int = 300) -> Reply:
    """A `!todo`-like list whose titles are 4-byte characters (`per_title` of them each)."""
    reply = Reply(items=tuple(range(1, n + 1)))
    reply.heading("Open items for 4.2:")
    for i in range(1, n + 1):
        reply.bullet(item_ref(i), " " + "😀" * per_title)
    return reply


# -- never plaintext in an encrypted room ---------------------------------------------------------
async def _answer(t: MatrixTransport) -> None:
    await t._handle_event(t.client.rooms[ROOM], said("!show 1"))


async def _reaction(t: MatrixTransport) -> None:  # a claim: its answer and a ✅ reaction
    await t._handle_event(t.client.rooms[ROOM], said("!claim 1"))


async def _more(t: MatrixTransport) -> None:  # a long answer, then `!more`
    msg = Message(transport="matrix", room=ROOM, msg_id="$long",
                  sender=Sender(identity=f"matrix:{ALICE}", nick="Alice", authenticated=True),
                  text="!todo")
    await t._answer(msg, Where(ROOM, "$long"), emoji_list(40, 2000))
    t.client.sent.clear()
    await t._handle_event(t.client.rooms[ROOM], said("!more"))


async def _digest(t: MatrixTransport) -> None:
    await t.post(ROOM, Reply().heading("Weekly digest for 4.2").add(SECRET))


async def _reminder(t: MatrixTransport) -> None:  # anything else posted unasked goes this way
    await t.post(ROOM, Reply().add(f"Reminder: {SECRET} is due"))


POSTS = {"answer": _answer, "reaction": _reaction, "more": _more, "digest": _digest,
         "reminder": _reminder}


@pytest.mark.parametrize("kind", POSTS)
async def test_with_e2ee_each_kind_of_post_is_encrypted(matrix, kind):
    t = matrix()
    t.client.room(encrypted=True)
    await POSTS[kind](t)
    assert t.client.sent and all(e["type"] == "m.room.message" for e in t.client.sent)
    assert leaked(t.client) == []  # (a claim's ✅ cannot be encrypted: none is sent)


@pytest.mark.parametrize("kind", POSTS)
@pytest.mark.parametrize("e2ee,olm", [(False, False), (True, False)],
                         ids=["without E2EE support", "without a key store"])
async def test_without_encryption_no_kind_of_post_reaches_an_encrypted_room(matrix, kind, e2ee,
                                                                            olm):
    t = matrix(e2ee=e2ee, olm=olm)
    t.client.room(encrypted=True)
    await POSTS[kind](t)
    assert leaked(t.client) == []
    assert t.client.sent == []


async def test_in_a_plain_room_a_claim_gets_its_reaction(matrix):
    t = matrix()
    t.client.room(encrypted=False)
    await t._handle_event(t.client.rooms[ROOM], said("!claim 1"))
    assert [e["type"] for e in t.client.sent] == ["m.room.message", "m.reaction"]


async def test_a_room_whose_state_is_unknown_gets_nothing(matrix):
    t = matrix()
    t.synced.set()  # (a post waits for the first sync to know the room)
    await t.post("!unknown:localhost", Reply().add(SECRET))
    assert t.client.sent == []


# -- event sizes ----------------------------------------------------------------------------------
def test_the_encrypted_size_is_what_megolm_makes():
    """The model of matrix-nio's encryption against vodozemac's own Megolm session: never
    under, and at most a few bytes over (the frame's varints, the device id)."""
    vodozemac = pytest.importorskip("vodozemac")
    session = vodozemac.GroupSession()
    for text in ("x", "😀" * 10, "😀" * 3000, "é<" * 5000, "a" * 17, "\u202e" * 100):
        content = {"msgtype": "m.notice", "body": text, "format": "org.matrix.custom.html",
                   "formatted_body": f"<b>{text}</b>",
                   "m.relates_to": {"m.in_reply_to": {"event_id": "$" + "e" * 43}}}
        plain = json.dumps({"content": content, "type": "m.room.message", "room_id": ROOM},
                           separators=(",", ":"))
        cipher = session.encrypt(plain.encode()).to_base64()
        actual = content_bytes({"algorithm": "m.megolm.v1.aes-sha2", "sender_key": "k" * 43,
                                "ciphertext": cipher, "session_id": session.session_id,
                                "device_id": "ABCDEFGHIJ",
                                "m.relates_to": content["m.relates_to"]})
        model = encrypted_bytes(content, ROOM)
        assert actual <= model <= actual + 64, (len(text), actual, model)


async def test_a_long_encrypted_answer_of_emoji_fits_every_event(matrix):
    """4-byte characters cost 12 bytes each in the JSON matrix-nio encrypts, then 4/3 for
    base64: events are measured as encrypted, so the server refuses none and all arrive."""
    t = matrix(max_events=50)
    t.client.room(encrypted=True)
    reply = emoji_list(50, 300)
    msg = Message(transport="matrix", room=ROOM, msg_id="$todo",
                  sender=Sender(identity=f"matrix:{ALICE}", nick="Alice", authenticated=True),
                  text="!todo")
    await t._answer(msg, Where(ROOM, "$todo"), reply)
    assert t.client.refused == []
    assert all(e["encrypted"] and e["size"] <= MAX_EVENT_BYTES for e in t.client.sent)
    assert len(t.client.sent) > 1
    assert "\n".join(t.client.bodies()) == reply.plain  # every line, in order, once


async def test_a_long_encrypted_digest_fits_every_event(matrix):
    t = matrix()
    t.client.room(encrypted=True)
    reply = emoji_list(80, 300)
    await t.post(ROOM, reply)
    assert t.client.refused == []
    assert "\n".join(t.client.bodies()) == reply.plain


async def test_an_event_refused_as_too_large_is_sent_cut_smaller(matrix):
    t = matrix(max_events=50)
    t.client.room(encrypted=True)
    t.client.too_large = lambda content, size: size > 8 * 1024  # a stricter server
    reply = emoji_list(20, 300)
    msg = Message(transport="matrix", room=ROOM, msg_id="$todo",
                  sender=Sender(identity=f"matrix:{ALICE}", nick="Alice", authenticated=True),
                  text="!todo")
    await t._answer(msg, Where(ROOM, "$todo"), reply)
    assert t.client.refused  # it did refuse some
    # and nothing was lost (a title too big for one event is cut into lines)
    assert "".join(t.client.bodies()).replace("\n", "") == reply.plain.replace("\n", "")


async def test_an_event_that_cannot_be_cut_gets_one_line(matrix):
    t = matrix()
    t.client.room(encrypted=False)
    t.client.too_large = lambda content, size: "🙈" in content["body"]
    await t.post(ROOM, Reply().add("before").add("🙈").add("after"))
    bodies = t.client.bodies()
    assert TOO_LARGE in bodies
    assert "before" in "\n".join(bodies) and "after" in "\n".join(bodies)


# -- display names --------------------------------------------------------------------------------
async def test_a_display_name_is_cleaned_before_it_is_echoed(matrix):
    """A display name is anyone's text: bidi overrides, isolates and control characters never
    come back in the flood warning (or anywhere else the name is shown)."""
    import unicodedata
    t = matrix()
    t.client.room(members=((ALICE, "\u202eecilA\u2066 \x07[admin]\u200b"),))
    room = t.client.rooms[ROOM]
    for _ in range(t.dispatcher.config.cooldown.burst + 2):
        await t._handle_event(room, said("!whoami"))
    bodies = t.client.bodies()
    [warning] = [b for b in bodies if "too many commands" in b]
    assert warning.startswith("ecilA [admin]: too many commands")
    for body in bodies:
        assert not any(unicodedata.category(ch) in ("Cf", "Cc") and ch != "\n" for ch in body)


# -- room upgrades --------------------------------------------------------------------------------
NEW = "!new:localhost"
MALLORY = "@mallory:localhost"


def create(room_id: str, creator: str, predecessor: str | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"room_version": "10", "creator": creator}
    if predecessor:
        content["predecessor"] = {"room_id": predecessor, "event_id": "$tomb"}
    return {"type": "m.room.create", "state_key": "", "sender": creator, "content": content,
            "event_id": f"$create-{room_id}", "origin_server_ts": 1, "room_id": room_id}


def tombstone(sender: str, new: str = NEW) -> RoomUpgradeEvent:
    return RoomUpgradeEvent.from_dict({
        "type": "m.room.tombstone", "state_key": "", "sender": sender, "event_id": "$tomb",
        "origin_server_ts": int(time.time() * 1000),
        "content": {"body": "This room has been replaced", "replacement_room": new}})


@pytest.fixture
def upgraded(matrix):
    """A configured room created by Alice, where Bob has power 50 and Mallory 100, and a
    tombstone needs 100."""
    t = matrix(rooms=[ROOM])
    room = t.client.room(members=((ALICE, "Alice"), ("@bob:localhost", "Bob"), (MALLORY, "M")))
    room.power_levels = PowerLevels(users={ALICE: 100, "@bob:localhost": 50, MALLORY: 100},
                                    events={"m.room.tombstone": 100})
    t.client.state[ROOM] = [create(ROOM, ALICE)]
    return t


async def _kv(t: MatrixTransport, what: str) -> str | None:
    return await t._kv_get(what)


async def test_a_real_upgrade_is_followed_and_remembered(upgraded):
    t = upgraded
    t.client.state[NEW] = [create(NEW, ALICE, predecessor=ROOM)]
    await t._handle_event(t.client.rooms[ROOM], tombstone(ALICE))
    assert t.client.joins == [NEW] and t.client.leaves == []
    assert t.room_release[NEW] == t.room_release[ROOM]
    assert await _kv(t, f"upgraded:{ROOM}") == NEW


async def test_a_tombstone_from_someone_without_the_power_is_ignored(upgraded):
    t = upgraded
    t.client.state[NEW] = [create(NEW, "@bob:localhost", predecessor=ROOM)]
    await t._handle_event(t.client.rooms[ROOM], tombstone("@bob:localhost"))
    assert t.client.joins == []
    assert NEW not in t.room_release and await _kv(t, f"upgraded:{ROOM}") is None


@pytest.mark.parametrize(("version", "extra", "follows"), [
    ("12", [MALLORY], True),  # an additional creator of a v12 room may upgrade it
    ("12", [], False),
    ("11", [MALLORY], False),  # before v12 the field means nothing
    ("10", [MALLORY], False),
])
async def test_additional_creators_may_upgrade_a_version_12_room(upgraded, version, extra, follows):
    t = upgraded
    room = t.client.rooms[ROOM]
    room.power_levels = PowerLevels(users={}, events={"m.room.tombstone": 150})  # v12: creators unlisted
    made = create(ROOM, ALICE)
    made["content"] = {"room_version": version, "additional_creators": extra}
    t.client.state[ROOM] = [made]
    t.client.state[NEW] = [create(NEW, MALLORY, predecessor=ROOM)]
    await t._handle_event(room, tombstone(MALLORY))
    assert (NEW in t.room_release) is follows


def test_creators_by_room_version():
    def made(content: dict[str, Any]) -> dict[str, Any]:
        return {"type": "m.room.create", "sender": ALICE, "content": content}

    assert creators(made({"room_version": "10", "creator": ALICE})) == {ALICE}
    assert creators(made({"creator": ALICE})) == {ALICE}  # version 1 when unsaid
    # From v11 the sender is the creator: a `creator` in content is only content.
    assert creators(made({"room_version": "11", "creator": MALLORY})) == {ALICE}
    assert creators(made({"room_version": "12", "additional_creators": [MALLORY, 7]})) == {
        ALICE, MALLORY}
    assert creators(made({"room_version": "org.example.custom", "creator": ALICE})) == {ALICE}


async def test_a_tombstone_to_a_room_that_does_not_replace_this_one_is_left(upgraded, caplog):
    """Mallory has the power to send a tombstone, but her room was not made as this room's
    successor: the bot joins it to look, leaves it, says so once, and remembers nothing."""
    t = upgraded
    t.client.state[NEW] = [create(NEW, MALLORY)]
    await t._handle_event(t.client.rooms[ROOM], tombstone(MALLORY))
    assert t.client.joins == [NEW] and t.client.leaves == [NEW]
    assert NEW not in t.room_release and NEW not in t.rooms()
    assert await _kv(t, f"upgraded:{ROOM}") is None
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and NEW in r.getMessage()]
    assert len(warnings) == 1



async def test_a_successor_remembered_without_a_check_is_checked_at_start(upgraded):
    """A replacement remembered by a version that did not check it: at start the bot joins it,
    sees it does not name the configured room as its predecessor, leaves it, forgets it and
    serves the configured room again."""
    t = upgraded
    await t._kv_set(f"upgraded:{ROOM}", NEW)
    t.client.state[NEW] = [create(NEW, MALLORY)]
    assert await t._join_room(ROOM, t.configured[ROOM]) == ROOM
    assert t.client.joins == [NEW, ROOM] and t.client.leaves == [NEW]
    assert NEW not in t.room_release and not await _kv(t, f"upgraded:{ROOM}")


async def test_a_checked_successor_is_served_at_start(upgraded):
    t = upgraded
    await t._kv_set(f"upgraded:{ROOM}", NEW)
    t.client.state[NEW] = [create(NEW, ALICE, predecessor=ROOM)]
    assert await t._join_room(ROOM, t.configured[ROOM]) == NEW
    assert t.client.joins == [NEW] and t.client.leaves == []
    assert t.room_release[NEW] == t.room_release[ROOM]

# -- "I can take this one": what the person saw ---------------------------------------------------
GEORGE = "@george:localhost"


def posted(t: MatrixTransport, text: str, sender: str = MALLORY, **content: Any) -> Any:
    """A message someone said earlier, as the server returns it for a reply to it."""
    ev = said(text, sender, **content)
    t.client.timeline[ev.event_id] = ev
    return ev


def reply_to(ev: Any) -> dict[str, Any]:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": ev.event_id}}}


def edit(of: Any, text: str, sender: str | None = None) -> Any:
    return Event.parse_event({
        "type": "m.room.message", "event_id": f"$edit{next(_events)}",
        "sender": sender or of.sender, "origin_server_ts": of.server_timestamp + 1000,
        "content": {"msgtype": "m.text", "body": f"* {text}",
                    "m.new_content": {"msgtype": "m.text", "body": text},
                    "m.relates_to": {"rel_type": "m.replace", "event_id": of.event_id}}})


@pytest.fixture
def claims(matrix):
    t = matrix()
    t.client.room(members=((ALICE, "Alice"), (MALLORY, "Mallory"), (GEORGE, "George")))
    return t


async def test_a_reply_names_what_the_html_showed_and_asks_when_the_body_differs(claims, chat):
    t = claims
    them = posted(t, "#1 needs an owner", format="org.matrix.custom.html",
                  formatted_body="<b>#2</b> needs an owner")
    await t._handle_event(t.client.rooms[ROOM], said("I can take this one", GEORGE, **reply_to(them)))
    assert t.client.bodies()[-1] == "Which one: #1 or #2? Say !claim ID."
    assert (await chat.item(1)).owners == [] and (await chat.item(2)).owners == []


async def test_a_reply_names_what_the_html_showed_when_it_agrees(claims, chat):
    t = claims
    them = posted(t, "> <@x:y> quoted #3\n\n#2 needs an owner", format="org.matrix.custom.html",
                  formatted_body="<mx-reply><blockquote>quoted #3</blockquote></mx-reply>"
                                 "<b>#2</b> needs an owner")
    them.source["content"]["m.relates_to"] = {"m.in_reply_to": {"event_id": "$x"}}
    await t._handle_event(t.client.rooms[ROOM], said("I can take this one", GEORGE, **reply_to(them)))
    assert t.client.bodies()[-1].startswith("#2 claimed by George")


async def test_a_reply_to_an_edited_message_names_what_the_edit_says(claims, chat):
    t = claims
    them = posted(t, "#1 needs an owner")
    t.client.edits[them.event_id] = [edit(them, "#2 needs an owner"),
                                     edit(them, "#1 is fine now", sender=ALICE)]  # not theirs
    await t._handle_event(t.client.rooms[ROOM], said("I can take this one", GEORGE, **reply_to(them)))
    assert t.client.bodies()[-1].startswith("#2 claimed by George")
    assert (await chat.item(1)).owners == []


async def test_a_claim_whose_html_names_another_item_is_asked_about(claims, chat):
    t = claims
    await t._handle_event(t.client.rooms[ROOM], said(
        "I can take #1", GEORGE, format="org.matrix.custom.html",
        formatted_body="I can take <b>#2</b>"))
    assert t.client.bodies()[-1] == "Which one: #1 or #2? Say !claim ID."
    assert (await chat.item(1)).owners == [] and (await chat.item(2)).owners == []


async def test_without_a_reply_this_one_is_only_what_the_bot_named_last(claims, chat):
    t = claims
    room = t.client.rooms[ROOM]
    await t._handle_event(room, said("!add tools nice first thing", ALICE))  # the bot names #4
    await t._handle_event(room, said("#2 is easy, whoever wants it", MALLORY))
    await t._handle_event(room, said("I can take this one", GEORGE))
    assert t.client.bodies()[-1] == "Which one? Say !claim ID."
    assert (await chat.item(4)).owners == [] and (await chat.item(2)).owners == []
    await t._handle_event(room, said("!add tools nice second thing", ALICE))  # names #5
    await t._handle_event(room, said("I can take this one", GEORGE))
    assert t.client.bodies()[-1].startswith("#5 claimed by George")
