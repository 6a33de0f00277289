"""`MatrixTransport`: the Transport that wires the parts of this package together, and the
state they share. Each part is a mixin in the module named for its job (see __init__.py).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from nio.crypto import ENCRYPTION_ENABLED

from ...commands.messages import Reply
from ...commands.settings import Settings
from ...storage import Repository
from ..config import Config, Matrix
from ..pending import PendingAnswers
from ..rooms import room_entry, room_settings
from ..transport import Transport
from .claims import Claims
from .direct import Direct, Held
from .errors import TRANSIENT
from .events import Events
from .rooms import Rooms
from .sending import MAX_PENDING, Sending
from .session import CountingClient, Session
from .sync import Syncing
from .upgrades import Upgrades

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix


class MatrixTransport(Session, Syncing, Rooms, Upgrades, Events, Claims, Sending, Direct,
                      Transport):
    name = "matrix"

    def __init__(self, mcfg: Matrix, config: Config, repo: Repository | None) -> None:
        self.mcfg = mcfg
        self.config = config
        self.repo = repo
        # A missing secret is a ConfigError now, at start, not at the first login.
        mcfg.access_token() if mcfg.access_token_env else mcfg.password()
        self.dispatcher: Dispatcher | None = None
        # session.py
        self.data_dir = Path(mcfg.data_dir)
        self.e2ee = bool(mcfg.e2ee and ENCRYPTION_ENABLED)
        self.client: CountingClient | None = None
        self._logged_in = False
        # sync.py
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._next_batch: str | None = None
        self._synced_once = False
        self._known_rooms: set[str] = set()
        self._handling = False
        self._recovering = False
        self.probes = 0
        self.gap_fetched = 0  # events fetched back after sync gaps (logs and tests)
        self.synced = asyncio.Event()  # set after each good sync (tests wait on it)
        # rooms.py and upgrades.py
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
        self._rooms_joined = False
        # claims.py
        self._thread_named: dict[tuple[str, str], tuple[int, ...]] = {}  # (room, root): items
        # room -> who named items last in its main timeline ("" for the bot) and which
        self._room_named: dict[str, tuple[str, tuple[int, ...]]] = {}
        # sending.py
        self._pending: PendingAnswers[Reply] = PendingAnswers(MAX_PENDING)  # (room, identity)
        self.rate_limited = 0  # 429 answers seen (each one waited out)
        # direct.py: user -> notices waiting for them to join an encrypted direct room
        self._held: dict[str, Held] = {}
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

    def health(self) -> str | None:
        if not self._logged_in:
            return "not logged in"
        if self._recovering:
            return "the homeserver is unreachable or failing; retrying"
        if not self._synced_once:
            return "not synced yet"
        return None

    async def stop(self) -> None:
        """Stop syncing (the token of the last complete sync is in the database already), say
        we are offline, close the HTTP session. Never log out: the device and its encryption
        keys must survive a restart."""
        self._stopping.set()
        for user in list(self._held):
            self._drop_held(user, "stopping before they joined")
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
