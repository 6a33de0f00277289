"""Matrix rooms as chat rooms for todobot, over matrix-nio with a sync loop of our own.

What the loop guarantees:
- one login per data directory: the access token and device id are kept in
  `<data_dir>/credentials.json` and restored on restart, so restarts add no devices;
- `next_batch` lives in the bot's SQLite database; the backlog before the very first sync is
  skipped, and every event is handled at most once (the dispatcher records the event id in the
  same transaction as the command's effect);
- a sync whose timeline is `limited` (a long downtime) is completed by paging back with
  /messages to the previous token, within `gap_fetch_max` events and 24 h;
- answers are cut into events far under the 64 KiB event limit, measured in bytes as sent
  (in an encrypted room, the ciphertext), `max_events` at a time, the rest on `!more`; an
  event the server still refuses as too large is sent again cut smaller, else one line says
  so; a reply or thread message means the item(s) the message it answers named;
- a homeserver that fails is retried after 5 s, doubling to 320 s, reset by the first good
  sync; one that is unreachable costs one TCP connect per probe interval, and the loop resumes
  as soon as it accepts connections again; HTTP 429 waits the `retry_after_ms` it names;
- encrypted rooms are read and answered encrypted when matrix-nio's E2EE support is installed
  (devices of room members are trusted: this is a bot); without it, the bot says once that it
  cannot read the room and never sends anything else there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nio import (InviteMemberEvent, JoinResponse, MatrixRoom, MegolmEvent, RoomGetEventResponse, RoomGetStateResponse, RoomLeaveResponse, RoomMemberEvent,
                 RoomMessageText, RoomResolveAliasResponse, RoomSendResponse, RoomUpgradeEvent,
                 SyncResponse)
from nio.api import Api, RelationshipType
from nio.crypto import ENCRYPTION_ENABLED
from nio.exceptions import LocalProtocolError

from ...storage import Repository
from ...storage.names import clean

from ...commands import claim_intent
from ...commands.settings import Settings
from ..backoff import Backoff
from ..config import Config, Matrix
from ..rooms import room_entry, room_settings
from .render import (Measure, content_bytes, encrypted_bytes, render, shown_text,
                            split_reply)
from ..pending import PendingAnswers
from ...commands.messages import Message, Reply, Sender, Span, text
from ..transport import Reconfigured, Transport
from ..logs import log_failure
from .errors import TRANSIENT, ServerError, check_rate_limit
from .session import CountingClient, Session
from .sync import BACKOFF_FIRST, Syncing

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

log = logging.getLogger(__package__)  # todobot.bot.matrix, as logged before the package

SEND_ATTEMPTS = 30
CANNOT_READ = ("I cannot read encrypted messages (end-to-end encryption support is not "
               "installed), so I cannot answer in this room.")
TOO_LARGE = ("Part of this answer was too large for a Matrix event and could not be sent; "
             "ask for less (one area, or !show ID).")
FIRST_SYNC_WAIT = 120.0  # seconds a post waits for the first sync to show its room
RESPLITS = 3  # times a refused event is cut smaller before the one-line answer
_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n?", re.DOTALL)
_ITEM_ID = re.compile(r"(?<![\w#])#(\d{1,12})\b")
MAX_PENDING = 1000  # answers kept for "!more" (bot/pending.py)
MAX_THREADS = 1000  # threads (and rooms) whose last named items we remember
MAX_EDITS = 50  # edits of a replied-to message looked at for its latest text
# What a claim becomes when its plain body and its HTML disagree: "this one", with the items
# either named as the candidates (so the person is asked which).
THIS_ONE = "I can take this one"
# Matrix settings read at each use, so a reload applies them without logging in again.
LIVE_MATRIX_KEYS = ("allowed_inviters", "max_events", "gap_fetch_max", "reply_claim_max_age")


@dataclass
@dataclass(frozen=True)
class _Where:
    """Where an answer goes: the room, the event it answers, the thread that event is in."""

    room: str
    event_id: str | None = None
    thread: str | None = None

    def relation(self) -> dict[str, Any] | None:
        if self.thread:  # in the thread, and a reply for clients without threads
            return {"rel_type": "m.thread", "event_id": self.thread, "is_falling_back": True,
                    "m.in_reply_to": {"event_id": self.event_id or self.thread}}
        if self.event_id:
            return {"m.in_reply_to": {"event_id": self.event_id}}
        return None


def item_ids(body: str) -> tuple[int, ...]:
    """The `#id`s a message names, each once, in order."""
    return tuple(dict.fromkeys(int(m) for m in _ITEM_ID.findall(body)))


def named_in(content: dict[str, Any]) -> tuple[int, ...]:
    """The `#id`s a message names as people saw it: its plain body's when its HTML shows the
    same ones (or it has none); when the two disagree, all of them if that makes several
    (the person is asked which), else none (the person is asked for the id)."""
    body = content.get("body")
    plain = item_ids(strip_reply_fallback(body)) if isinstance(body, str) else ()
    if not plain and "#" not in str(content.get("formatted_body", "")):
        return ()  # (most messages: no HTML to parse)
    shown = shown_text(content)
    if shown is None or item_ids(shown) == plain:
        return plain
    both = tuple(dict.fromkeys(plain + item_ids(shown)))
    return both if len(both) > 1 else ()

class _TooLarge(Exception):
    """The homeserver refused an event as too large (M_TOO_LARGE, HTTP 413)."""


def strip_reply_fallback(body: str) -> str:
    """A reply's body starts with the quoted original (`> <@u:s> text`); drop it."""
    return _REPLY_FALLBACK.sub("", body, count=1)


class MatrixTransport(Session, Syncing, Transport):
    name = "matrix"

    def __init__(self, mcfg: Matrix, config: Config, repo: Repository | None) -> None:
        self.mcfg = mcfg
        self.config = config
        self.repo = repo
        # A missing secret is a ConfigError now, at start, not at the first login.
        mcfg.access_token() if mcfg.access_token_env else mcfg.password()
        self.data_dir = Path(mcfg.data_dir)
        self.e2ee = bool(mcfg.e2ee and ENCRYPTION_ENABLED)
        # Each configured room's settings, resolved once, by the room as written (id or alias).
        self.configured: dict[str, Settings] = {
            room: room_settings(config, release=rel, digest=dig)
            for room, rel, dig in (room_entry(r, "room") for r in mcfg.rooms)}
        self.room_release: dict[str, Settings] = {  # by room id, aliases once resolved
            r: s for r, s in self.configured.items() if r.startswith("!")}
        self._room_ids: dict[str, str] = {}  # configured room (id or alias) -> room id
        self._successor: dict[str, str] = {}  # upgraded room id -> its replacement's id
        self._upgrades: dict[str, tuple[str, str]] = {}  # room to check -> (old room, sender)
        self._present: set[str] = set()  # rooms we are in (syncs, our own joins and leaves)
        self._room_tasks: set[asyncio.Task[None]] = set()  # joins and leaves after a reload
        self._room_lock = asyncio.Lock()
        self._rooms_ready = asyncio.Event()  # the configured rooms were joined once
        self.client: CountingClient | None = None
        self.dispatcher: Dispatcher | None = None
        self.probes = 0
        self.rate_limited = 0  # 429 answers seen (each one waited out)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._logged_in = False
        self._rooms_joined = False
        self._next_batch: str | None = None
        self._synced_once = False
        self._known_rooms: set[str] = set()
        self._handling = False
        self._recovering = False
        self._pending: PendingAnswers[Reply] = PendingAnswers(MAX_PENDING)  # (room, identity)
        self._thread_named: dict[tuple[str, str], tuple[int, ...]] = {}  # (room, root): items
        # room -> who named items last in its main timeline ("" for the bot) and which
        self._room_named: dict[str, tuple[str, tuple[int, ...]]] = {}
        self.gap_fetched = 0  # events fetched back after sync gaps (logs and tests)
        self.synced = asyncio.Event()  # set after each good sync (tests wait on it)
        if logging.getLogger("nio").level == logging.NOTSET:
            logging.getLogger("nio").setLevel(logging.WARNING)  # INFO is a line per event

    # -- Transport --------------------------------------------------------------------------------
    @property
    def requests(self) -> int:
        """HTTP requests plus reachability probes made so far."""
        return (self.client.requests if self.client else 0) + self.probes

    def rooms(self) -> list[str]:
        """The rooms we are in now (not those left: nio keeps them in `client.rooms`)."""
        return sorted(self._present)

    async def start(self, dispatcher: "Dispatcher") -> None:
        self.dispatcher = dispatcher
        self._open_client()
        if self.repo is not None:
            async with self.repo.session("matrix", write=False) as s:
                self._next_batch = await s.kv_get(self._kv("next_batch"))
        try:
            await self._login()  # fails loudly here when the credentials are refused
        except TRANSIENT as exc:
            log.warning("matrix: homeserver %s unreachable (%s); will keep trying",
                        self.mcfg.homeserver, exc)
        self._task = asyncio.create_task(self._run(), name="matrix")

    async def stop(self) -> None:
        """Stop syncing (the token of the last complete sync is in the database already), say
        we are offline, close the HTTP session. Never log out: the device and its encryption
        keys must survive a restart."""
        self._stopping.set()
        for task in list(self._room_tasks):
            task.cancel()
        await asyncio.gather(*self._room_tasks, return_exceptions=True)
        if self._task is not None:
            if not self._handling:
                self._task.cancel()  # waiting in a sync: nothing to lose
            try:
                await asyncio.wait_for(self._task, 30)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            except Exception:
                log.exception("matrix: sync loop failed")
            self._task = None
        if self.client is not None:
            if self._logged_in and not self._recovering:  # (not to a server known to be down)
                await self._say_offline()
            await self.client.close()

    async def post(self, room: str, reply: Reply) -> None:
        """An unsolicited answer (the digest): in as many events as it takes, no `!more`."""
        if self.client is not None and room not in self.client.rooms:
            try:  # (a digest due at start: whether the room is encrypted comes with the sync)
                await asyncio.wait_for(self.synced.wait(), FIRST_SYNC_WAIT)
            except asyncio.TimeoutError:
                pass
        where = _Where(room)
        for part in split_reply(reply, measure=self._measure(where)):
            await self._send_part(where, part)

    # -- login ------------------------------------------------------------------------------------
    # -- the loop ---------------------------------------------------------------------------------
    async def _join_configured(self) -> None:
        for room, settings in self.configured.items():
            await self._join_room(room, settings)
        self._rooms_joined = True
        self._rooms_ready.set()

    async def _join_room(self, room: str, settings: Settings) -> str | None:
        """Resolve a configured room (id or alias), bind it and any room that replaced it, and
        join the newest one; returns that room id, or None when it cannot be joined now."""
        assert self.client is not None and self.dispatcher is not None
        room_id = room
        if room.startswith("#"):
            found = await self.client.room_resolve_alias(room)
            if not isinstance(found, RoomResolveAliasResponse):
                check_rate_limit(found)
                log.error("matrix: cannot resolve %s: %s %s", room, found.status_code,
                          found.message)
                return None
            room_id = found.room_id
        self._room_ids[room] = room_id
        self.room_release[room_id] = settings
        self.dispatcher.bind_room(self.name, room_id, settings)
        # A room upgraded while we served it: its successor, with the same settings.
        chain = [room_id]
        for _ in range(20):
            newer = await self._kv_get(f"upgraded:{room_id}")
            if not newer:
                break
            self._successor[room_id] = newer
            room_id = newer
            chain.append(room_id)
            self.room_release[room_id] = settings
            self.dispatcher.bind_room(self.name, room_id, settings)
        while True:
            resp = await self.client.join(room_id)
            if not isinstance(resp, JoinResponse):
                check_rate_limit(resp)
                log.error("matrix: cannot join %s (%s): %s %s; waiting for an invite", room,
                          room_id, resp.status_code, resp.message)
                return None
            # (A successor remembered by an older version, which did not check it.)
            if len(chain) == 1 or await self._replaces(room_id, chain[-2]) is not False:
                break
            old = chain[-2]
            log.warning("matrix: %s, remembered as the upgrade of %s, does not say it replaces "
                        "it; leaving it and going back to %s", room_id, old, old)
            await self.client.room_leave(room_id)
            await self._kv_set(f"upgraded:{old}", "")
            self._successor.pop(old, None)
            self.room_release.pop(room_id, None)
            self.dispatcher.unbind_room(self.name, room_id)
            chain.pop()
            room_id = old
        self._present.add(room_id)
        return room_id

    def _ids_of(self, room: str) -> list[str]:
        """The room ids a configured room stands for: its own, then each replacement's."""
        room_id = self._room_ids.get(room, room if room.startswith("!") else None)
        out: list[str] = []
        while room_id is not None and room_id not in out:
            out.append(room_id)
            room_id = self._successor.get(room_id)
        return out

    def apply_config(self, config: Config) -> Reconfigured:
        """Re-bind the configured rooms' settings, join rooms added to `rooms:` and leave rooms
        removed from it (in the background: the sync goes on). Rooms the bot joined on an
        invite from `allowed_inviters` were never in `rooms:` and are not left."""
        out = Reconfigured()
        if config.matrix is None:
            out.restart.append("matrix: removed from the configuration; still syncing until a "
                               "restart")
            return out
        self.config, new = config, config.matrix
        wanted = {room: room_settings(config, release=rel, digest=dig)
                  for room, rel, dig in (room_entry(r, "room") for r in new.rooms)}
        added = [room for room in wanted if room not in self.configured]
        removed = [room for room in self.configured if room not in wanted]
        gone = {room_id: room for room in removed for room_id in self._ids_of(room)}
        for room in removed:
            self._room_ids.pop(room, None)
        self.configured = wanted
        served: set[str] = set()
        for room, settings in wanted.items():
            for room_id in self._ids_of(room):
                served.add(room_id)
                self.room_release[room_id] = settings
                if self.dispatcher is not None:
                    self.dispatcher.bind_room(self.name, room_id, settings)
        leave = [room_id for room_id in gone if room_id not in served]
        for room_id in leave:
            self.room_release.pop(room_id, None)
            if self.dispatcher is not None:
                self.dispatcher.unbind_room(self.name, room_id)
        out.changes += [f"matrix: joining {room}" for room in added]
        out.changes += [f"matrix: leaving {gone[room_id]}"
                        + (f" ({room_id})" if room_id != gone[room_id] else "") for room_id in leave]
        if (added or leave) and self.client is not None:
            # Before the first join of the configured rooms, that join takes the added ones.
            join = added if self._rooms_joined else []
            task = asyncio.create_task(self._change_rooms(join, leave), name="matrix:rooms")
            self._room_tasks.add(task)
            task.add_done_callback(self._room_tasks.discard)
        for key in LIVE_MATRIX_KEYS:
            if getattr(new, key) != getattr(self.mcfg, key):
                out.changes.append(f"matrix: {key} {getattr(self.mcfg, key)} -> {getattr(new, key)}")
        held = sorted(k for k, v in new.model_dump(exclude={"rooms", *LIVE_MATRIX_KEYS}).items()
                      if getattr(self.mcfg, k) != v)
        self.mcfg = self.mcfg.model_copy(update={"rooms": new.rooms,
                                                 **{k: getattr(new, k) for k in LIVE_MATRIX_KEYS}})
        if held:
            out.restart.append(f"matrix: {', '.join(held)} changed; that takes a restart")
        return out

    async def settled(self) -> None:
        while self._room_tasks:
            await asyncio.gather(*self._room_tasks, return_exceptions=True)

    async def _change_rooms(self, join: list[str], leave: list[str]) -> None:
        """After a reload: join the rooms added, leave the rooms removed, one request at a
        time (a reload right after another waits for this one), each logged."""
        async with self._room_lock:
            await self._rooms_ready.wait()
            for room in join:
                settings = self.configured.get(room)
                if settings is None:
                    continue  # removed again by a later reload
                room_id = await self._retrying(f"join {room}",
                                               lambda: self._join_room(room, settings))
                if room_id is not None:
                    log.info("matrix: joined %s%s", room, f" ({room_id})" if room_id != room else "")
            for room_id in leave:
                if room_id in self.room_release:
                    continue  # configured again by a later reload
                if room_id not in self._present:
                    log.info("matrix: not in %s; nothing to leave", room_id)
                    continue
                await self._retrying(f"leave {room_id}", lambda: self._leave(room_id))

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Run one join or leave; a rate limit or an outage is waited out a few times."""
        for tries in range(5):
            try:
                return await attempt()
            except (ServerError, *TRANSIENT) as exc:
                delay = getattr(exc, "retry_after", None) or BACKOFF_FIRST * 2 ** tries
                log.warning("matrix: cannot %s now (%s); trying again in %.0f s", what,
                            exc or type(exc).__name__, delay)
                await asyncio.sleep(delay)
        log.error("matrix: gave up trying to %s; a restart tries again", what)
        return None

    async def _leave(self, room_id: str) -> None:
        """Leave a room that was removed from the configuration."""
        assert self.client is not None
        resp = await self.client.room_leave(room_id)
        if isinstance(resp, RoomLeaveResponse):
            self._present.discard(room_id)
            log.info("matrix: left %s (no longer in the configuration)", room_id)
            return
        check_rate_limit(resp)
        log.error("matrix: cannot leave %s: %s %s", room_id, resp.status_code, resp.message)

    # -- events -----------------------------------------------------------------------------------
    async def _handle_invites(self, resp: SyncResponse) -> None:
        client = self.client
        assert client is not None
        for room_id, info in resp.rooms.invite.items():
            inviter = next((ev.sender for ev in info.invite_state
                            if isinstance(ev, InviteMemberEvent) and ev.state_key == client.user_id
                            and ev.membership == "invite"), None)
            wanted = (room_id in self.room_release or room_id in self._upgrades
                      or inviter in self.mcfg.allowed_inviters)
            if wanted:
                log.info("matrix: joining %s (invited by %s)", room_id, inviter)
                joined = await client.join(room_id)
                if not isinstance(joined, JoinResponse):
                    check_rate_limit(joined)
                    log.error("matrix: cannot join %s: %s %s", room_id, joined.status_code,
                              joined.message)
                elif room_id in self._upgrades:
                    old, by = self._upgrades[room_id]
                    await self._adopt_successor(old, room_id, by)
            else:
                log.info("matrix: declining the invite to %s from %s", room_id, inviter)
                await client.room_leave(room_id)

    async def _handle_timeline(self, room_id: str, events: list[Any]) -> None:
        client = self.client
        assert client is not None
        # Only what was said after we joined: cut at our own join in this batch, and skip a
        # room that is new to us when the batch does not show our join.
        start = None
        for i, ev in enumerate(events):
            if (isinstance(ev, RoomMemberEvent) and ev.state_key == client.user_id
                    and ev.membership == "join" and ev.prev_membership != "join"):
                start = i + 1
        if start is None:
            if room_id not in self._known_rooms:
                return
            start = 0
        room = client.rooms.get(room_id)
        for ev in events[start:]:
            if self._stopping.is_set() or room is None:
                return
            log.debug("matrix: %s %s from %s", type(ev).__name__, getattr(ev, "event_id", "?"),
                      getattr(ev, "sender", "?"))
            try:
                await self._handle_event(room, ev)
            except asyncio.CancelledError:
                raise
            except TRANSIENT:
                raise
            except Exception:
                log_failure(log, "matrix: event %s in %s failed", getattr(ev, "event_id", "?"),
                            room_id)

    async def _handle_event(self, room: MatrixRoom, ev: Any) -> None:
        client = self.client
        assert client is not None and self.dispatcher is not None
        if getattr(ev, "sender", None) == client.user_id:
            return
        if isinstance(ev, RoomUpgradeEvent):
            await self._follow_upgrade(room.room_id, ev)
            return
        if isinstance(ev, MegolmEvent):
            if not self.e2ee:
                await self._say_cannot_read(room.room_id)
            else:
                log.warning("matrix: cannot decrypt %s from %s in %s (no room key)",
                            ev.event_id, ev.sender, room.room_id)
            return
        if not isinstance(ev, RoomMessageText):  # m.notice (other bots), emotes, media, state
            return
        content = ev.source.get("content", {})
        relation = content.get("m.relates_to") or {}
        if relation.get("rel_type") == "m.replace":
            return  # an edit: the command already ran (or was ignored) as first written
        thread = relation.get("event_id") if relation.get("rel_type") == "m.thread" else None
        in_reply = (relation.get("m.in_reply_to") or {}).get("event_id")
        # In a thread, m.in_reply_to is only the fallback for older clients unless it says not.
        reply_to = None if thread and relation.get("is_falling_back") is True else in_reply
        body = strip_reply_fallback(ev.body) if in_reply else ev.body
        # The identity is the user id, always; the display name is only a label to show.
        display = clean(room.user_name(ev.sender) or "") or None  # (bidi overrides, controls)
        sender = Sender(identity=f"matrix:{ev.sender}", nick=display or ev.sender,
                        authenticated=True, display_name=display)
        msg = Message(transport=self.name, room=room.room_id, sender=sender, text=body,
                      msg_id=ev.event_id, thread=thread, actions=frozenset({"leave"}),
                      private=room.member_count <= 2 and room.room_id not in self.room_release,
                      at=ev.server_timestamp / 1000)
        where = _Where(room.room_id, ev.event_id, thread)
        if body.strip().casefold() == f"{self.dispatcher.prefix}more".casefold():
            await self._more(msg, where)
            return
        said = body.strip()
        intent = claim_intent(said) if len(said) <= 200 else None
        shown = shown_text(content)  # what an HTML client showed: that is what was meant
        seen = intent if shown is None else claim_intent(shown) if len(shown) <= 200 else None
        if intent != seen:  # a claim in one form only, or of another item: ask which
            ids = tuple(dict.fromkeys(i.item_id for i in (intent, seen)
                                      if i is not None and i.item_id is not None))
            msg = replace(msg, text=THIS_ONE, refers_to=ids if len(ids) > 1 else ())
        elif intent is not None and intent.item_id is None:
            if reply_to or thread:
                msg = replace(msg, refers_to=await self._referred(room.room_id, reply_to, thread))
            elif self._room_named.get(room.room_id, ("",))[0]:
                msg = replace(msg, refers_to=())  # someone else named an item since we did
        elif not thread and not said.startswith(
                self.dispatcher.settings_for(self.name, room.room_id).prefix):
            self._note_named(room.room_id, ev.sender, named_in(content))
        reply = await self.dispatcher.handle(msg)
        if reply is not None:
            await self._answer(msg, where, reply)

    # -- what "this one" means -------------------------------------------------------------------
    def _note_named(self, room_id: str, who: str, items: tuple[int, ...]) -> None:
        """`who` ("" for the bot) named `items` last in the room. Without a reply, "this one"
        means what the bot named last, and nothing once someone else named an item since:
        the person is asked which."""
        if not items:
            return
        self._room_named.pop(room_id, None)
        if len(self._room_named) >= MAX_THREADS:
            del self._room_named[next(iter(self._room_named))]
        self._room_named[room_id] = (who, items)

    async def _referred(self, room_id: str, reply_to: str | None,
                        thread: str | None) -> tuple[int, ...]:
        """The items a reply or thread message may mean: those the replied-to message named;
        in a thread, those the bot named last in it, else those its root named."""
        if reply_to:
            return await self._named_by(room_id, reply_to)
        assert thread is not None
        return self._thread_named.get((room_id, thread)) or await self._named_by(room_id, thread)

    async def _named_by(self, room_id: str, event_id: str) -> tuple[int, ...]:
        """Items an event of this room names: the bot's own answers as recorded when sent,
        anyone else's by the `#id`s in it. Nothing for an event of another room (the server
        does not find it here) or one older than `reply_claim_max_age`."""
        client = self.client
        assert client is not None
        resp = await client.room_get_event(room_id, event_id)
        if not isinstance(resp, RoomGetEventResponse):  # (any failure: the person is asked)
            log.info("matrix: %s is not an event of %s (%s)", event_id, room_id,
                     getattr(resp, "status_code", resp))
            return ()
        ev = resp.event
        if time.time() - getattr(ev, "server_timestamp", 0) / 1000 > self.mcfg.reply_claim_max_age:
            return ()
        if getattr(ev, "sender", None) == client.user_id:
            if self.repo is None:
                return ()
            async with self.repo.session("matrix", write=False) as s:
                return await s.sent_items(self.name, event_id)
        content = await self._latest_content(room_id, ev)
        return named_in(content) if content is not None else ()

    async def _latest_content(self, room_id: str, ev: Any) -> dict[str, Any] | None:
        """An event's content as people see it now: the `m.new_content` of its latest edit by
        its own sender, else its own content; None when the edits cannot be read."""
        client = self.client
        assert client is not None
        source = getattr(ev, "source", None) or {}
        content = source.get("content")
        if not isinstance(content, dict):
            return None
        latest: tuple[int, str, dict[str, Any]] | None = None
        seen = 0
        try:
            async for edit in client.room_get_event_relations(
                    room_id, ev.event_id, RelationshipType.replacement, limit=MAX_EDITS):
                seen += 1
                if isinstance(edit, MegolmEvent) and client.olm is not None:
                    edit = client.decrypt_event(edit)
                new = ((getattr(edit, "source", None) or {}).get("content") or {}).get(
                    "m.new_content")
                if getattr(edit, "sender", None) == ev.sender and isinstance(new, dict):
                    key = (getattr(edit, "server_timestamp", 0), edit.event_id, new)
                    if latest is None or key[:2] > latest[:2]:
                        latest = key
                if seen >= MAX_EDITS:
                    break
        except TRANSIENT:
            raise
        except Exception as exc:  # (an error response, an edit we cannot decrypt)
            log.info("matrix: cannot read the edits of %s in %s (%s)", ev.event_id, room_id,
                     exc or type(exc).__name__)
            return None
        return latest[2] if latest is not None else content

    # -- sending ----------------------------------------------------------------------------------
    async def _answer(self, msg: Message, where: _Where, reply: Reply) -> None:
        """Send an answer in events under the size limit: `max_events` of them now, the rest
        when the person says `!more`. Then the reaction and the reply's action, if any."""
        assert self.client is not None
        parts = split_reply(reply, measure=self._measure(where))
        limit = self.mcfg.max_events
        if len(parts) > limit:
            rest = parts[limit:]
            self._pending.remember((msg.room, msg.sender.identity), rest)
            parts = parts[:limit - 1] + [self._with_tail(parts[limit - 1], rest)]
        for part in parts:
            await self._send_part(where, part)
        if reply.reaction and where.event_id:  # (never in an encrypted room: see _would_leak)
            await self._send(msg.room, "m.reaction", {"m.relates_to": {
                "rel_type": "m.annotation", "event_id": where.event_id, "key": reply.reaction}})
        if reply.action == "leave":
            await self.client.room_leave(msg.room)
            self._present.discard(msg.room)
            log.info("matrix: left %s as %s asked", msg.room, msg.sender.identity)

    def _with_tail(self, part: Reply, rest: list[Reply]) -> Reply:
        assert self.dispatcher is not None
        left = sum(len(p.lines) for p in rest)
        tail = Reply(lines=list(part.lines), outcome=part.outcome, items=part.items)
        return tail.add(f"({left} more line{'s' * (left != 1)}: say ",
                        Span(f"{self.dispatcher.prefix}more", bold=True), ")")

    async def _more(self, msg: Message, where: _Where) -> None:
        """`!more`: the next parts of this person's last long answer in this room."""
        assert self.dispatcher is not None
        flood = self.dispatcher.throttle(msg)
        if flood is not False:
            if flood is not None:
                await self._answer(msg, where, flood)  # type: ignore[arg-type]
            return
        if self.repo is not None and msg.msg_id:
            async with self.repo.session(msg.sender.identity) as s:
                if not await s.record_event(self.name, msg.msg_id):
                    return
        key = (msg.room, msg.sender.identity)
        pending = self._pending.get(key)
        if pending is None:
            await self._send_part(where, text("There is nothing more to show."))
            return
        limit = self.mcfg.max_events
        parts = pending.parts[:limit]
        if rest := self._pending.advance(key, limit):
            parts[-1] = self._with_tail(parts[-1], rest)
        for part in parts:
            await self._send_part(where, part)

    @staticmethod
    def _content(where: _Where, part: Reply) -> dict[str, Any]:
        content: dict[str, Any] = render(part)
        relation = where.relation()
        if relation:
            content["m.relates_to"] = relation
        return content

    def _measure(self, where: _Where) -> Measure:
        """How many bytes a part takes as sent to this room: the ciphertext matrix-nio makes of
        it in an encrypted room (several times the text for emoji), else its JSON."""
        room = self.client.rooms.get(where.room) if self.client is not None else None
        if room is not None and room.encrypted:
            return lambda part: encrypted_bytes(self._content(where, part), where.room)
        return lambda part: content_bytes(self._content(where, part))

    async def _send_part(self, where: _Where, part: Reply, resplits: int = RESPLITS) -> None:
        """One event: the rendered part, related to what it answers; its items recorded so
        that a reply to it can claim them. An event refused as too large is sent again cut in
        smaller ones; one that cannot be cut gets the one-line TOO_LARGE in its place."""
        try:
            event_id = await self._send(where.room, "m.room.message", self._content(where, part),
                                        splittable=True)
        except _TooLarge:
            measure = self._measure(where)
            size, base = measure(part), measure(Reply())
            smaller = (split_reply(part, base + (size - base) // 2, measure) if resplits > 0
                       else [part])
            if len(smaller) > 1:
                log.warning("matrix: %s refused an event of %d bytes as too large; sending it "
                            "as %d smaller ones", where.room, size, len(smaller))
                for piece in smaller:
                    await self._send_part(where, piece, resplits - 1)
            else:
                log.error("matrix: %s refused an event of %d bytes as too large; it cannot be "
                          "cut further; said so instead", where.room, size)
                await self._send(where.room, "m.room.message", self._content(where, text(TOO_LARGE)))
            return
        if event_id is None:
            return
        if not where.thread:
            self._note_named(where.room, "", part.items)
        if where.thread and part.items:
            key = (where.room, where.thread)
            self._thread_named.pop(key, None)
            if len(self._thread_named) >= MAX_THREADS:
                del self._thread_named[next(iter(self._thread_named))]
            self._thread_named[key] = part.items
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.record_sent(self.name, where.room, event_id, part.items)

    # -- room upgrades ----------------------------------------------------------------------------
    async def _follow_upgrade(self, room_id: str, ev: RoomUpgradeEvent) -> None:
        """A configured room was upgraded: serve its replacement with the same settings, now
        and after restarts; but only a tombstone from someone who may upgrade the room, to a
        room that says it replaces this one (anyone with enough power could otherwise move the
        bot into a room of their own)."""
        client = self.client
        assert client is not None and self.dispatcher is not None
        settings = self.room_release.get(room_id)
        new = ev.replacement_room
        if settings is None or not new or not new.startswith("!"):
            log.info("matrix: %s was upgraded to %s; not a configured room, not following",
                     room_id, new or "?")
            return
        if new in self.room_release:
            return
        if not await self._may_upgrade(room_id, ev.sender):
            log.warning("matrix: %s sent a tombstone in %s naming %s, but is neither the room's "
                        "creator nor at the power level m.room.tombstone needs; not following",
                        ev.sender, room_id, new)
            return
        log.info("matrix: %s was upgraded to %s (by %s); joining it to check it", room_id, new,
                 ev.sender)
        joined = await client.join(new)
        if not isinstance(joined, JoinResponse):
            check_rate_limit(joined)
            self._upgrades[new] = (room_id, ev.sender)  # checked once an invite lets us in
            log.warning("matrix: cannot join %s yet (%s %s); waiting for an invite", new,
                        joined.status_code, joined.message)
            return
        await self._adopt_successor(room_id, new, ev.sender)

    async def _may_upgrade(self, room_id: str, sender: str) -> bool:
        """The room's creator, or someone whose power level is at least what m.room.tombstone
        needs in it."""
        assert self.client is not None
        room = self.client.rooms.get(room_id)
        if room is not None and room.power_levels.can_user_send_state(sender, "m.room.tombstone"):
            return True
        create = await self._create_event(room_id)
        return create is not None and sender == (create.get("content", {}).get("creator")
                                                 or create.get("sender"))

    async def _create_event(self, room_id: str) -> dict[str, Any] | None:
        """The room's m.room.create event (with its sender), or None when we cannot read it."""
        assert self.client is not None
        resp = await self.client.room_get_state(room_id)
        if not isinstance(resp, RoomGetStateResponse):
            check_rate_limit(resp)
            log.warning("matrix: cannot read the state of %s: %s %s", room_id,
                        resp.status_code, resp.message)
            return None
        return next((e for e in resp.events if isinstance(e, dict)
                     and e.get("type") == "m.room.create" and e.get("state_key") == ""), None)

    async def _replaces(self, new: str, old: str) -> bool | None:
        """Whether room `new` was made as `old`'s successor: its m.room.create names `old` as
        its predecessor. None when its state cannot be read."""
        create = await self._create_event(new)
        if create is None:
            return None
        predecessor = create.get("content", {}).get("predecessor")
        return isinstance(predecessor, dict) and predecessor.get("room_id") == old

    async def _adopt_successor(self, old: str, new: str, by: str) -> None:
        """Joined `new`, named by a tombstone in `old`: serve it with `old`'s settings (also after
        restarts) when its m.room.create names `old` as its predecessor; else leave it."""
        assert self.client is not None and self.dispatcher is not None
        self._upgrades.pop(new, None)
        settings = self.room_release.get(old)
        if settings is None or not await self._replaces(new, old):
            log.warning("matrix: %s, named by %s's tombstone in %s, does not say it replaces "
                        "%s; leaving it and staying in %s", new, by, old, old, old)
            await self.client.room_leave(new)
            self._present.discard(new)
            return
        self.room_release[new] = settings
        self._successor[old] = new
        self.dispatcher.bind_room(self.name, new, settings)
        self._present.add(new)
        await self._kv_set(f"upgraded:{old}", new)
        log.info("matrix: serving %s in place of %s with the same settings", new, old)

    async def _send(self, room_id: str, event_type: str, content: dict[str, Any], *,
                    in_the_clear: bool = False, splittable: bool = False) -> str | None:
        """Send one event, retrying 429s (as long as the server asks) and brief outages with the
        same transaction id, so a retry never posts twice. `in_the_clear` skips encryption
        (only for the notice that we cannot read a room). An event refused as too large raises
        _TooLarge when `splittable` (the caller cuts it), else is logged."""
        client = self.client
        assert client is not None
        room = client.rooms.get(room_id)
        if not in_the_clear and self._would_leak(room_id, room, event_type):
            return None
        txn = str(uuid.uuid4())
        backoff = Backoff(1.0, 30.0)
        for _ in range(SEND_ATTEMPTS):
            try:
                if in_the_clear:
                    method, path, data = Api.room_send(client.access_token, room_id, event_type,
                                                       content, txn)
                    resp = await client._send(RoomSendResponse, method, path, data, (room_id,))
                else:
                    resp = await client.room_send(room_id, event_type, content, tx_id=txn,
                                                  ignore_unverified_devices=True)
            except TRANSIENT as exc:
                self._recovering = True
                delay = backoff.next()
                log.warning("matrix: send to %s failed (%s); retrying in %.0f s", room_id, exc,
                            delay)
                await asyncio.sleep(delay)
                continue
            except LocalProtocolError as exc:
                log.error("matrix: cannot send to %s: %s", room_id, exc)
                return None
            if isinstance(resp, RoomSendResponse):
                return resp.event_id
            if (resp.status_code == "M_TOO_LARGE"
                    or getattr(resp.transport_response, "status", None) == 413):
                if splittable:
                    raise _TooLarge(resp.message)
                log.error("matrix: %s refused a %s event as too large", room_id, event_type)
                return None
            if resp.status_code == "M_LIMIT_EXCEEDED":
                self.rate_limited += 1
                delay = (resp.retry_after_ms or 1000) / 1000
                log.info("matrix: rate-limited in %s; waiting %.1f s", room_id, delay)
                await asyncio.sleep(delay)
                continue
            log.error("matrix: send to %s refused: %s %s", room_id, resp.status_code, resp.message)
            return None
        log.error("matrix: gave up sending to %s after %d attempts", room_id, SEND_ATTEMPTS)
        return None

    def _would_leak(self, room_id: str, room: MatrixRoom | None, event_type: str) -> bool:
        """Whether this event would go in the clear into an encrypted room (or one whose state
        we have not seen): matrix-nio sends plaintext when it has no E2EE support or store, and
        reactions are never encrypted. Such an event is not sent."""
        if room is None:
            log.warning("matrix: not sending to %s: its state (encrypted or not) is not known yet",
                        room_id)
            return True
        if not room.encrypted:
            return False
        if not self.e2ee or self.client is None or self.client.olm is None:
            log.warning("matrix: not sending to encrypted room %s without E2EE support", room_id)
            return True
        if event_type == "m.reaction":
            # That would tell which commands succeeded; the answer itself says it.
            log.debug("matrix: no reaction in encrypted room %s", room_id)
            return True
        return False

    async def _say_cannot_read(self, room_id: str) -> None:
        """Once per room: an unencrypted notice that we cannot read it, and nothing else."""
        assert self.client is not None
        key = self._kv(f"cannot-read:{room_id}")
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                if await s.kv_get(key):
                    return
                await s.kv_set(key, "1")
        content = {"msgtype": "m.notice", "body": CANNOT_READ}
        await self._send(room_id, "m.room.message", content, in_the_clear=True)
