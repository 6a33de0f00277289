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
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import ClientConnectionError
from nio import (AsyncClient, AsyncClientConfig, InviteMemberEvent, JoinResponse, LoginResponse,
                 MatrixRoom, MegolmEvent, MessageDirection, PresenceSetResponse,
                 RoomGetEventResponse, RoomGetStateResponse, RoomLeaveResponse, RoomMemberEvent,
                 RoomMessagesResponse, RoomMessageText, RoomResolveAliasResponse, RoomSendResponse, RoomUpgradeEvent,
                 SyncResponse, WhoamiResponse)
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

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

log = logging.getLogger(__package__)  # todobot.bot.matrix, as logged before the package

BACKOFF_FIRST = 5.0
BACKOFF_MAX = 320.0
PROBE_INTERVAL = 5.0  # while the homeserver is unreachable: one TCP connect this often
SYNC_TIMEOUT_MS = 30_000
SEND_ATTEMPTS = 30
# Most restarts fit in one sync's timeline; longer gaps are paged back (`_fetch_gap`).
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}, "presence": {"not_types": ["*"]}}
CANNOT_READ = ("I cannot read encrypted messages (end-to-end encryption support is not "
               "installed), so I cannot answer in this room.")
TOO_LARGE = ("Part of this answer was too large for a Matrix event and could not be sent; "
             "ask for less (one area, or !show ID).")
FIRST_SYNC_WAIT = 120.0  # seconds a post waits for the first sync to show its room
RESPLITS = 3  # times a refused event is cut smaller before the one-line answer
_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n?", re.DOTALL)
_ITEM_ID = re.compile(r"(?<![\w#])#(\d{1,12})\b")
GAP_MAX_AGE = 86400.0  # a gap is fetched back at most this far (seconds)
GAP_PAGE = 100  # events per /messages request
MAX_PENDING = 1000  # answers kept for "!more" (bot/pending.py)
MAX_THREADS = 1000  # threads (and rooms) whose last named items we remember
MAX_EDITS = 50  # edits of a replied-to message looked at for its latest text
# What a claim becomes when its plain body and its HTML disagree: "this one", with the items
# either named as the candidates (so the person is asked which).
THIS_ONE = "I can take this one"
_TRANSIENT = (ClientConnectionError, asyncio.TimeoutError, TimeoutError, OSError)
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


class MatrixLoginError(ValueError):
    """The homeserver refused our credentials; a person has to act (worded for them)."""


class _ServerError(Exception):
    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


class _TooLarge(Exception):
    """The homeserver refused an event as too large (M_TOO_LARGE, HTTP 413)."""


class CountingClient(AsyncClient):
    """An AsyncClient that counts the HTTP requests it makes (for logs and tests)."""

    requests = 0

    async def send(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        self.requests += 1
        return await super().send(*args, **kwargs)


def sync_backoff() -> Backoff:
    """The sync loop's waits: 5 s, 10 s, ... 320 s."""
    return Backoff(BACKOFF_FIRST, BACKOFF_MAX)


def strip_reply_fallback(body: str) -> str:
    """A reply's body starts with the quoted original (`> <@u:s> text`); drop it."""
    return _REPLY_FALLBACK.sub("", body, count=1)


class MatrixTransport(Transport):
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
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        store = self.data_dir / "store"
        store.mkdir(exist_ok=True, mode=0o700)
        cfg = AsyncClientConfig(max_limit_exceeded=0, max_timeouts=0, store_sync_tokens=False,
                                encryption_enabled=self.e2ee)
        self.client = CountingClient(self.mcfg.homeserver.rstrip("/"), self.mcfg.user_id,
                                     store_path=str(store), config=cfg)
        if self.repo is not None:
            async with self.repo.session("matrix", write=False) as s:
                self._next_batch = await s.kv_get(self._kv("next_batch"))
        try:
            await self._login()  # fails loudly here when the credentials are refused
        except _TRANSIENT as exc:
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

    async def _say_offline(self) -> None:
        """Presence `offline`, so people see the bot gone now rather than when the server's
        own timeout notices. A server without presence (or one that is down) costs one bounded
        request and a debug line."""
        assert self.client is not None
        try:
            resp = await asyncio.wait_for(self.client.set_presence("offline"), 5)
        except (*_TRANSIENT, LocalProtocolError) as exc:
            log.debug("matrix: could not set presence offline: %s", exc or type(exc).__name__)
            return
        if isinstance(resp, PresenceSetResponse):
            log.info("matrix: told the homeserver we are offline")
        else:
            log.debug("matrix: presence offline refused: %s %s", resp.status_code, resp.message)

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
    def _kv(self, what: str) -> str:
        return f"matrix:{self.mcfg.user_id}:{what}"

    @property
    def _credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    async def _login(self) -> None:
        client = self.client
        assert client is not None
        saved = self._load_credentials()
        if saved is not None:
            client.restore_login(self.mcfg.user_id, saved["device_id"], saved["access_token"])
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse):
                if who.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN", "M_FORBIDDEN"):
                    raise MatrixLoginError(
                        f"matrix: the homeserver refused the saved access token for "
                        f"{self.mcfg.user_id} ({who.status_code}: {who.message}); it was revoked "
                        f"or logged out. Delete {self._credentials_file} to log in again.")
                raise _ServerError(f"whoami failed: {who.status_code} {who.message}",
                                   retry_after=(who.retry_after_ms or 0) / 1000 or None)
        elif self.mcfg.access_token_env:
            client.access_token = self.mcfg.access_token() or ""
            who = await client.whoami()
            if not isinstance(who, WhoamiResponse):
                raise MatrixLoginError(
                    f"matrix: the access token in ${self.mcfg.access_token_env} was refused "
                    f"({who.status_code}: {who.message}).")
            if who.user_id != self.mcfg.user_id:
                raise MatrixLoginError(f"matrix: the access token belongs to {who.user_id}, "
                                       f"not {self.mcfg.user_id}.")
            client.restore_login(who.user_id, who.device_id or "", client.access_token)
            self._save_credentials(client.device_id, client.access_token)
        else:
            resp = await client.login(self.mcfg.password() or "", device_name=self.mcfg.device_name)
            if not isinstance(resp, LoginResponse):
                if resp.status_code == "M_LIMIT_EXCEEDED":
                    raise _ServerError("login rate-limited", (resp.retry_after_ms or 1000) / 1000)
                raise MatrixLoginError(f"matrix: login as {self.mcfg.user_id} failed "
                                       f"({resp.status_code}: {resp.message}).")
            self._save_credentials(resp.device_id, resp.access_token)
            log.info("matrix: logged in as %s, new device %s", resp.user_id, resp.device_id)
        self._logged_in = True
        log.info("matrix: %s on device %s (e2ee %s)", client.user_id, client.device_id,
                 "on" if self.e2ee else "off")

    def _load_credentials(self) -> dict[str, str] | None:
        try:
            data = json.loads(self._credentials_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise MatrixLoginError(f"matrix: cannot read {self._credentials_file}: {exc}") from None
        if data.get("user_id") != self.mcfg.user_id or data.get("homeserver") != self.mcfg.homeserver:
            log.warning("matrix: %s is for another account; logging in afresh",
                        self._credentials_file)
            return None
        return data

    def _save_credentials(self, device_id: str, token: str) -> None:
        tmp = self._credentials_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"homeserver": self.mcfg.homeserver, "user_id": self.mcfg.user_id,
                       "device_id": device_id, "access_token": token}, f)
        os.replace(tmp, self._credentials_file)

    # -- the loop ---------------------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = sync_backoff()
        while not self._stopping.is_set():
            try:
                if not self._logged_in:
                    await self._login()
                if not self._rooms_joined:
                    await self._join_configured()
                await self._sync_once()
                backoff.reset()
                self._recovering = False
            except asyncio.CancelledError:
                raise
            except MatrixLoginError as exc:
                log.critical("%s The Matrix transport has stopped.", exc)
                return
            except _ServerError as exc:
                self._recovering = True
                delay = exc.retry_after if exc.retry_after is not None else backoff.next()
                log.warning("matrix: %s; retrying in %.1f s", exc, delay)
                await self._pause(delay, probe=False)
            except _TRANSIENT as exc:
                self._recovering = True
                delay = backoff.next()
                log.warning("matrix: homeserver unreachable (%s); retrying within %.0f s",
                            exc or type(exc).__name__, delay)
                if self.client is not None:
                    await self.client.close()  # drop pooled connections to the old server
                await self._pause(delay, probe=True)
            except Exception:
                delay = backoff.next()
                log_failure(log, "matrix: sync failed; retrying in %.0f s", delay)
                await self._pause(delay, probe=False)

    async def _pause(self, delay: float, *, probe: bool) -> None:
        """Wait `delay` seconds, or less when `probe` and the homeserver accepts connections."""
        end = time.monotonic() + delay
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._stopping.wait(), min(left, PROBE_INTERVAL))
                return
            except asyncio.TimeoutError:
                pass
            if probe and time.monotonic() < end and await self._reachable():
                return

    async def _reachable(self) -> bool:
        url = urlsplit(self.mcfg.homeserver)
        port = url.port or (443 if url.scheme == "https" else 80)
        self.probes += 1
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, port), 3)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

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
                self._check_rate_limit(found)
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
                self._check_rate_limit(resp)
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
            except (_ServerError, *_TRANSIENT) as exc:
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
        self._check_rate_limit(resp)
        log.error("matrix: cannot leave %s: %s %s", room_id, resp.status_code, resp.message)

    @staticmethod
    def _check_rate_limit(resp: Any) -> None:
        if getattr(resp, "status_code", None) == "M_LIMIT_EXCEEDED":
            raise _ServerError("rate-limited", (resp.retry_after_ms or 1000) / 1000)

    async def _sync_once(self) -> None:
        client = self.client
        assert client is not None
        if self.e2ee:
            await self._crypto_housekeeping()
        first_ever = self._next_batch is None
        since = self._next_batch
        full = not self._synced_once  # a fresh process needs the rooms' state (encryption!)
        # After a failure, a sync that returns at once shows we are back (and catches up).
        quick = full or self._recovering
        resp = await client.sync(timeout=0 if quick else SYNC_TIMEOUT_MS, since=self._next_batch,
                                 full_state=full, sync_filter=SYNC_FILTER)
        if not isinstance(resp, SyncResponse):
            if resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
                raise MatrixLoginError(
                    f"matrix: the homeserver no longer accepts the access token of "
                    f"{self.mcfg.user_id} ({resp.status_code}: {resp.message}); it was revoked "
                    f"or logged out. Delete {self._credentials_file} to log in again.")
            if resp.status_code == "M_LIMIT_EXCEEDED":
                raise _ServerError("sync rate-limited", (resp.retry_after_ms or 1000) / 1000)
            raise _ServerError(f"sync failed: {resp.status_code} {resp.message}")
        await self._handle_invites(resp)
        if not self._synced_once:  # the stored token says we were in these rooms already
            self._known_rooms |= set(resp.rooms.join)
        if first_ever:
            log.info("matrix: first sync; skipping the backlog")
        else:
            self._handling = True
            try:
                for room_id, info in resp.rooms.join.items():
                    log.debug("matrix: sync: %d events in %s%s", len(info.timeline.events),
                              room_id, " (limited)" if info.timeline.limited else "")
                    events = list(info.timeline.events)
                    if (info.timeline.limited and info.timeline.prev_batch and since
                            and room_id in self._known_rooms):
                        events = await self._fetch_gap(room_id, info.timeline.prev_batch,
                                                       since) + events
                    await self._handle_timeline(room_id, events)
            finally:
                self._handling = False
        self._known_rooms = (self._known_rooms | set(resp.rooms.join)) - set(resp.rooms.leave)
        self._present = (self._present | set(resp.rooms.join)) - set(resp.rooms.leave)
        if self._stopping.is_set():
            return  # the batch may be half done: keep the old token, replays are deduplicated
        self._synced_once = True
        self._next_batch = resp.next_batch
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.kv_set(self._kv("next_batch"), resp.next_batch)
        self.synced.set()

    async def _fetch_gap(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """The events a `limited` sync left out, oldest first: paged back with /messages from
        the timeline's start to the token of our previous sync, at most `gap_fetch_max` of
        them and none older than GAP_MAX_AGE. What lies beyond is logged, not handled."""
        client = self.client
        assert client is not None
        most = self.mcfg.gap_fetch_max
        oldest = time.time() - GAP_MAX_AGE
        got: list[Any] = []
        token, beyond = prev_batch, ""
        while True:
            if len(got) >= most:
                beyond = f"the limit of {most} events"
                break
            resp = await client.room_messages(room_id, start=token, end=since,
                                              direction=MessageDirection.back,
                                              limit=min(GAP_PAGE, most - len(got)))
            if not isinstance(resp, RoomMessagesResponse):
                self._check_rate_limit(resp)
                beyond = f"an error ({resp.status_code} {resp.message})"
                break
            for ev in resp.chunk:  # newest first
                if getattr(ev, "server_timestamp", 0) / 1000 < oldest:
                    beyond = f"{GAP_MAX_AGE / 3600:.0f} h back"
                    break
                got.append(ev)
            if beyond or not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        self.gap_fetched += len(got)
        log.info("matrix: gap in %s: fetched %d missed event%s", room_id, len(got),
                 "s" * (len(got) != 1))
        if beyond:
            log.warning("matrix: gap in %s: stopped at %s; anything said earlier in the gap is "
                        "not handled", room_id, beyond)
        got.reverse()
        return got

    async def _kv_get(self, what: str) -> str | None:
        if self.repo is None:
            return None
        async with self.repo.session("matrix", write=False) as s:
            return await s.kv_get(self._kv(what))

    async def _kv_set(self, what: str, value: str) -> None:
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.kv_set(self._kv(what), value)

    async def _crypto_housekeeping(self) -> None:
        client = self.client
        assert client is not None
        try:
            if client.should_upload_keys:
                await client.keys_upload()
            if client.should_query_keys:
                await client.keys_query()
            if client.should_claim_keys:
                await client.keys_claim(client.get_users_for_key_claiming())
            await client.send_to_device_messages()
        except LocalProtocolError as exc:
            log.debug("matrix: key housekeeping skipped: %s", exc)

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
                    self._check_rate_limit(joined)
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
            except _TRANSIENT:
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
        except _TRANSIENT:
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
            self._check_rate_limit(joined)
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
            self._check_rate_limit(resp)
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
            except _TRANSIENT as exc:
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
