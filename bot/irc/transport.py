"""The IRC transport: channels as rooms, accounts as identities, throttled safe output.

`IrcTransport` holds the state and wires its parts, one module each:

- `session.py`: the connection kept alive (reconnect, backoff), the bot's own NickServ
  login, nick and prefix;
- `identity.py`: who is who (accounts, WHOIS bound to `nick!user@host`, kept answers,
  MONITOR, who is in sight, forgetting);
- `channels.py`: joins, kicks, refused joins, invites, reloaded channels;
- `inbound.py`: messages in, held behind a pending WHOIS, to the dispatcher;
- `replies.py`: answers, `!more`, posts and CTCP answers;
- `connection.py`, `output.py` and `text.py`: the wire connection, the fair output queues
  and the wire text those use.

A line from the server goes to the `_on_<command>` handler of whichever part owns it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config import Config, ConfigError, IrcNetwork
from ..pending import PendingAnswers
from ..ratelimit import TokenBucket
from ..rooms import room_entry, room_settings
from ..transport import Transport
from .channels import ChannelsMixin
from .connection import IrcConnection, IrcLine
from .identity import IdentityMixin, _Asked
from .inbound import INBOX_SIZE, InboundMixin, _Inbound
from .replies import MAX_PENDING, RepliesMixin
from .session import SessionMixin
from .text import casefold

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher


@dataclass
class IrcTransport(SessionMixin, IdentityMixin, ChannelsMixin, InboundMixin, RepliesMixin,
                   Transport):
    """One IRC network: the state its parts share, their lifecycle, and the line dispatch."""

    def __init__(self, net: IrcNetwork, config: Config) -> None:
        self.net = net
        self.config = config
        self.name = f"irc:{net.network}"
        self.prefix = config.prefix
        self._bucket = TokenBucket(net.throttle.burst, net.throttle.rate, time.monotonic)
        self._casemapping = "rfc1459"
        self._channels: dict[str, str] = {}  # folded name -> name as configured
        # Each channel's settings, resolved once: name as configured -> Settings.
        self._settings = {name: room_settings(config, release=rel, digest=dig, compact=True)
                          for name, rel, dig in (room_entry(c, "name") for c in net.channels)}
        self._default_settings = room_settings(config, compact=True)
        self._refold()
        self._dispatcher: Dispatcher | None = None
        self._password: str | None = None
        self._conn: IrcConnection | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[_Inbound] = asyncio.Queue(INBOX_SIZE)
        self._stopping = False
        self._accounts: dict[str, str | None] = {}  # folded nick -> account (None: logged out)
        # WHOIS, where the server does not tell accounts by itself. Answers: folded nick ->
        # (the user@host it was about, account, when), valid only for that exact source;
        # questions in flight per folded nick.
        self._whois_cache: dict[str, tuple[str, str | None, float]] = {}
        self._whois_asked: dict[str, _Asked] = {}
        # Who the bot can see leave: folded nick -> folded shared channels; with MONITOR,
        # the nicks watched and, of those online, their user@host.
        self._members: dict[str, set[str]] = {}
        self._monitored: set[str] = set()
        self._online: dict[str, str] = {}
        # Messages held, per folded nick, until that nick's WHOIS is answered or runs out.
        self._held: dict[str, list[_Inbound]] = {}
        self._holds: set[asyncio.Task[None]] = set()
        self._nickserv_password: str | None = None
        self._identify_state = ""  # "", "waiting", "done", "again" (a later IDENTIFY)
        self._login_warned: float | None = None  # when we last warned of having no account
        self._timers: set[asyncio.Task[None]] = set()  # rejoins and the identify timeout
        self._ban_backoff: dict[str, float] = {}  # folded channel -> next wait after 474
        # folded channel -> (wait before rejoining after its next kick, when the last kick was)
        self._kick_backoff: dict[str, tuple[float, float]] = {}
        self._ctcp_bucket = TokenBucket(3, 0.5, time.monotonic)
        # Why this network is down: a certificate or configuration refused (None once connected).
        self.failed: str | None = None
        self._pending: PendingAnswers[bytes] = PendingAnswers(MAX_PENDING)  # meta: (command, target)
        self._last_regain = 0.0
        # Observable state (tests, status): registered sessions so far and channels we are in.
        self.sessions = 0
        self.attempts = 0  # connection attempts, successful or not
        self.joined: set[str] = set()
        self.ready = asyncio.Event()  # registered and the channels joined

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, dispatcher: "Dispatcher") -> None:
        self._dispatcher = dispatcher
        # Secrets are read now, so a missing variable stops the start rather than a connect.
        if self.net.sasl_account and self.net.sasl_mechanism == "PLAIN":
            self._password = self.net.sasl_password()
            if self._password is None:
                raise ConfigError(f"irc[{self.net.network}]: sasl_account needs sasl_password_env")
        if self.net.nickserv_password_env:
            self._nickserv_password = self.net.nickserv_password()
        self._bind_rooms()
        self._stopping = False
        self._worker = asyncio.create_task(self._work(), name=f"{self.name}:worker")
        self._supervisor = asyncio.create_task(self._supervise(), name=f"{self.name}:connection")

    def health(self) -> str | None:
        conn = self._conn
        if conn is None:
            return f"not connected to {self.net.host}:{self.net.port}"
        if self._wants_account() and conn.account is None:
            return "connected but not logged in to its account"
        return None

    async def queue_lengths(self) -> dict[str, int]:
        """Lines waiting for the server's rate limit (output.py's queues)."""
        return {"output": self._conn.queued if self._conn is not None else 0}

    async def stop(self) -> None:
        self._stopping = True
        conn = self._conn
        if conn is not None and conn.registered:
            conn.send("QUIT", "todobot stopping", urgent=True)
            await conn.flush(timeout=3.0)
        for task in (self._supervisor, self._worker, *self._holds):
            if task is not None and not task.done():
                task.cancel()
        for task in (self._supervisor, self._worker):
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        self._supervisor = self._worker = None
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    def _fold(self, name: str) -> str:
        """A nick or channel name as the server compares it (its CASEMAPPING)."""
        return casefold(name, self._casemapping)

    # -- what the server tells us ----------------------------------------------------------
    def _on_line(self, conn: IrcConnection, line: IrcLine) -> None:
        cmd = line.command
        handler = getattr(self, f"_on_{cmd.lower()}", None)
        if handler is not None:
            handler(conn, line)
        self._seen_account_tag(conn, line)  # after: a QUIT, NICK or PART takes the nick away
