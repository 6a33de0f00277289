"""The IRC transport: channels as rooms, accounts as identities, throttled safe output.

A supervisor task keeps one connection (`connection.py`) alive: connect, register, join the
configured channels, read until the link dies, then reconnect with jittered backoff. Lines
from the server update what we know (our prefix, who is logged in to which account) and
turn PRIVMSGs into `Message`s for a worker task that calls the dispatcher one message at a
time and sends the rendered reply, in the asker's own output queue (`output.py`: served
fairly, a bounded backlog per person) and by NOTICE when the command came in private.
Long answers stop after `max_lines` lines; the rest waits per channel and nick for
`<prefix>more`, which the transport answers itself.

Where the server does not tell accounts (no account-tag, extended-join/account-notify or
WHOX), a message that needs one waits for the server's WHOIS answer (bounded) before it goes
to the worker, and so do that person's later messages (their order is kept); everyone else's
pass meanwhile. An answer counts only for the `nick!user@host` it describes (311): a nick
that changed hands between the command and the WHOIS gets the command refused, and a kept
answer is used only while the bot can see that nick go (a shared channel, or MONITOR).
WHOIS lines are queued per asking `user@host` ahead of answers, a few at a time each, so
clones cannot starve anyone else's. The bot's own NickServ login holds the channel joins
until services answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from irc import ctcp

from ..config import Config, ConfigError, IrcNetwork
from .connection import (CertificateRefused, IrcConnection, IrcLine, LinkClosed, nick_of,
                       reconnect_backoff, userhost_of)
from .output import Requester
from ..pending import PendingAnswers
from ..ratelimit import TokenBucket
from ..rooms import room_entry, room_settings
from .text import budget_for, casefold, render_lines, strip_formatting, wire_lines
from ...commands import claim_intent, lookup
from ...commands.messages import Message, Reply, Sender, text as one_line
from ..transport import Reconfigured, Transport

if TYPE_CHECKING:
    from ..dispatcher import Dispatcher

log = logging.getLogger(__name__)

STABLE_SESSION = 60.0  # a session that lasted this long resets the reconnect backoff
MAX_PENDING = 200  # answers kept for "!more" (bot/pending.py)
INBOX_SIZE = 200  # messages waiting for the dispatcher; more are dropped (flood)
WHOX_TOKEN = "217"
WHOIS_WAIT = 5.0  # a command waits this long for the server's WHOIS answer
WHOIS_TTL = 60.0  # a WHOIS answer is trusted this long (no account-notify keeps it fresh)
# "Not logged in" is kept only briefly: identifying is invisible to the bot here, and a
# release manager refused a moment ago must not stay refused for a minute once identified.
WHOIS_TTL_NO_ACCOUNT = 3.0
WHOIS_CACHE_MAX = 5000
# WHOIS questions waiting for the server (queued or sent): per asking user@host (clones
# share one), and in all. A command past these is answered as "could not confirm".
WHOIS_PER_USERHOST = 2
WHOIS_PENDING_MAX = 100
CHANGED_HANDS = "your nick changed hands while I checked your account: send the command again"
HELD_MAX = 20  # messages of one person held behind their unanswered WHOIS; more are dropped
IDENTIFY_WAIT = 10.0  # channel joins wait this long for services to confirm our IDENTIFY
REJOIN_AFTER_KICK = 5.0  # the first rejoin after a kick; each kick soon after doubles it
KICK_BACKOFF_MAX = 600.0
KICK_CALM = 600.0  # a kick this long after the previous one starts the waits over
BANNED_BACKOFF = (60.0, 3600.0)  # after 474 (banned): first retry, longest wait
# Commands that are anyone's but whose answer depends on who you are.
_IDENTITY_COMMANDS = {"whoami", "iam", "claim"}
# What NickServ says after IDENTIFY (Anope, Atheme, OFTC's services), in a NOTICE to us.
_NS_OK = re.compile(r"(?i)password accepted|you are now (?:recognized|identified|logged in)"
                    r"|now identified|successfully identified")
_NS_FAILED = re.compile(r"(?i)password incorrect|invalid password|incorrect password"
                        r"|isn't registered|is not registered|not a registered|denied|failed")
_ADDRESSED = re.compile(r"^\s*([^\s:,]+)[:,]\s*(.*)$", re.DOTALL)
CTCP_ANSWERED = ("ACTION", "CLIENTINFO", "PING", "VERSION")
# Network settings read at each use, so a reload applies them to the running connection.
LIVE_NETWORK_KEYS = ("long_replies", "max_lines")


def _version() -> str:
    from ... import __version__
    return __version__


@dataclass(frozen=True)
class _WhoisAnswer:
    """What one WHOIS said: whose connection held the nick (311) and its account."""

    userhost: str = ""  # "" when the server showed no 311 (the nick was gone)
    account: str | None = None


@dataclass
class _Asked:
    """A WHOIS waiting for the server: who waits, and its line in which asker's queue."""

    fut: asyncio.Future[_WhoisAnswer]
    key: str  # "whois:user@host" of the asker
    line: bytes | None
    conn: IrcConnection
    seen: dict[str, str | None] = dataclasses.field(default_factory=dict)  # 311/330/307 so far


@dataclass
class _Inbound:
    """A message waiting for the dispatcher; `whois` is set while its sender's account is
    being asked for."""

    msg: Message
    reply_to: str
    whois: asyncio.Future[_WhoisAnswer] | None = None
    deadline: float = 0.0
    more: bool = False  # "!more": the next page of this person's last long answer
    userhost: str = ""  # the user@host the command came from
    stale: bool = False  # the nick quit or changed while its WHOIS was pending


@dataclass
class IrcTransport(Transport):
    regain_interval = 60.0  # seconds between attempts to take back our configured nick

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
        self._identify_state = ""  # "", "waiting", "done"
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

    def rooms(self) -> list[str]:
        return list(self._channels)

    async def post(self, room: str, reply: Reply) -> None:
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), 60)
            except asyncio.TimeoutError:
                log.warning("%s: not connected; dropping a post to %s", self.name, room)
                return
        conn = self._conn
        if conn is None:
            return
        target = self._channels.get(self._fold(room), room)
        # Under the room's own key: a digest takes its turn with the answers, never dropped.
        conn.send_lines(self._wire(conn, "PRIVMSG", target, reply), key=f"post:{self._fold(room)}")

    # -- rooms -----------------------------------------------------------------------------
    def _fold(self, name: str) -> str:
        return casefold(name, self._casemapping)

    def _refold(self) -> None:
        self._channels = {self._fold(name): name for name in self._settings}

    def _bind_rooms(self) -> None:
        if self._dispatcher is None:
            return
        self._dispatcher.bind_default(self.name, self._default_settings)
        for folded, name in self._channels.items():
            self._dispatcher.bind_room(self.name, folded, self._settings[name])

    def apply_config(self, config: Config) -> Reconfigured:
        """Re-bind the channels' settings; JOIN channels added and PART channels removed on the
        live connection (or at the next registration). Connection settings wait for a restart."""
        out = Reconfigured()
        net = next((n for n in config.irc if n.network == self.net.network), None)
        if net is None:
            out.restart.append(f"{self.name}: removed from the configuration; still connected "
                               "until a restart")
            return out
        self.config, self.prefix = config, config.prefix
        old = dict(self._channels)  # folded -> name
        self._settings = {name: room_settings(config, release=rel, digest=dig, compact=True)
                          for name, rel, dig in (room_entry(c, "name") for c in net.channels)}
        self._default_settings = room_settings(config, compact=True)
        self._refold()
        added = [name for folded, name in self._channels.items() if folded not in old]
        removed = [name for folded, name in old.items() if folded not in self._channels]
        conn = self._conn
        live = (conn is not None and conn.registered and conn.motd_done
                and self._identify_state != "waiting")
        for name in removed:
            folded = self._fold(name)
            if self._dispatcher is not None:
                self._dispatcher.unbind_room(self.name, folded)
            self._ban_backoff.pop(folded, None)
            out.changes.append(f"{self.name}: leaving {name}")
            if live and folded in self.joined:
                conn.send("PART", name, "no longer in todobot's configuration")
        self._bind_rooms()
        for name in added:
            out.changes.append(f"{self.name}: joining {name}")
        if added and live:
            self._join_all(conn)  # else the next registration joins them
        # What is read at each use applies now; what the connection was opened with does not.
        for key in LIVE_NETWORK_KEYS:
            if getattr(net, key) != getattr(self.net, key):
                out.changes.append(f"{self.name}: {key} {getattr(self.net, key)} -> {getattr(net, key)}")
        held = sorted(k for k, v in net.model_dump(exclude={"channels", *LIVE_NETWORK_KEYS}).items()
                      if getattr(self.net, k) != getattr(net, k))
        self.net = self.net.model_copy(update={"channels": net.channels,
                                               **{k: getattr(net, k) for k in LIVE_NETWORK_KEYS}})
        if held:
            out.restart.append(f"{self.name}: {', '.join(held)} changed; reconnecting with it "
                               "takes a restart")
        return out

    # -- the connection supervisor ---------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = reconnect_backoff()
        while not self._stopping:
            registered_at: float | None = None
            conn = IrcConnection(self.net, self._bucket, self._password)
            self._conn = conn
            self.attempts += 1
            try:
                await conn.open()
                log.info("%s: connected to %s:%d", self.name, self.net.host, self.net.port)
                async with asyncio.timeout(self.net.ping_interval + self.net.ping_timeout):
                    welcome = await conn.register()
                registered_at = time.monotonic()
                self.failed = None
                await self._session(conn, welcome)
            except asyncio.CancelledError:
                raise
            except CertificateRefused as exc:
                self.failed = str(exc)
                if not self.sessions:
                    # Never verified: a configuration to fix, not a server to knock on.
                    log.error("%s: giving up on this network: %s", self.name, exc)
                    break
                # It verified before: a certificate changed mid-run (a renewal gone wrong, or
                # someone in between). Never connect unverified; keep trying with backoff.
                log.error("%s: refusing to connect: %s; trying again with backoff", self.name, exc)
            except ConfigError as exc:
                # Do not knock forever: this network stays down until the configuration is
                # fixed.
                self.failed = str(exc)
                log.error("%s: giving up on this network: %s", self.name, exc)
                break
            except (OSError, LinkClosed, asyncio.TimeoutError, EOFError) as exc:
                log.warning("%s: connection lost: %s", self.name, exc or type(exc).__name__)
            except Exception:
                log.exception("%s: connection failed", self.name)
            finally:
                self.ready.clear()
                self.joined.clear()
                await conn.close()
                if self._conn is conn:
                    self._conn = None
            if self._stopping:
                break
            if registered_at is not None and time.monotonic() - registered_at >= STABLE_SESSION:
                backoff.reset()
            delay = backoff.next()
            log.info("%s: reconnecting in %.1fs", self.name, delay)
            await asyncio.sleep(delay)

    async def _session(self, conn: IrcConnection, welcome: IrcLine) -> None:
        self.sessions += 1
        self._accounts.clear()
        self._whois_cache.clear()
        self._members.clear()
        self._monitored.clear()  # a new connection watches nothing
        self._online.clear()
        self._identify_state = ""
        if conn.account:
            log.info("%s: logged in as %s (SASL)", self.name, conn.account)
        elif self._nickserv_password:
            self._identify(conn)
        regain = asyncio.create_task(self._regain_loop(conn), name=f"{self.name}:regain")
        try:
            while True:
                line = await conn.read()
                self._on_line(conn, line)
        finally:
            regain.cancel()
            for task in list(self._timers):
                task.cancel()
            self._timers.clear()
            for asked in self._whois_asked.values():
                if not asked.fut.done():
                    asked.fut.cancel()
            self._whois_asked.clear()

    def _later(self, delay: float, fn, *args) -> None:
        """Run `fn(*args)` after `delay` seconds, unless the session ends first."""
        async def run() -> None:
            await asyncio.sleep(delay)
            fn(*args)
        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # -- the bot's own NickServ login ------------------------------------------------------
    def _identify(self, conn: IrcConnection) -> None:
        account = self.net.nickserv_account or self.net.nick
        log.info("%s: identifying to NickServ as %s", self.name, account)
        conn.send("PRIVMSG", "NickServ", f"IDENTIFY {account} {self._nickserv_password}",
                  secret=True, urgent=True)
        self._identify_state = "waiting"
        self._later(IDENTIFY_WAIT, self._identify_timeout, conn)

    def _identify_timeout(self, conn: IrcConnection) -> None:
        if self._identify_state == "waiting":
            log.warning("%s: NickServ did not confirm the login within %.0fs; joining anyway",
                        self.name, IDENTIFY_WAIT)
            self._identified(conn, None)

    def _identified(self, conn: IrcConnection, account: str | None) -> None:
        """Services answered (or the wait ran out): the joins held back go out now."""
        if self._identify_state != "waiting":
            return
        self._identify_state = "done"
        if account:
            conn.account = account
            log.info("%s: logged in as %s (NickServ)", self.name, account)
        if conn.motd_done:
            self._join_all(conn)

    async def _regain_loop(self, conn: IrcConnection) -> None:
        while True:
            await asyncio.sleep(self.regain_interval)
            self._regain(conn)

    def _regain(self, conn: IrcConnection) -> None:
        if not conn.is_me(self.net.nick):
            self._last_regain = time.monotonic()
            conn.send("NICK", self.net.nick)

    def _join_all(self, conn: IrcConnection) -> None:
        if self._identify_state == "waiting":
            return  # after services confirm: +r channels need the login
        names = [n for f, n in self._channels.items() if f not in self.joined]
        line: list[str] = []
        for name in names:  # a few per JOIN, so a long list stays under the line limit
            line.append(name)
            if len(line) == 10:
                conn.send("JOIN", ",".join(line))
                line = []
        if line:
            conn.send("JOIN", ",".join(line))
        if not names:
            self.ready.set()

    # -- what the server tells us ----------------------------------------------------------
    def _on_line(self, conn: IrcConnection, line: IrcLine) -> None:
        cmd = line.command
        handler = getattr(self, f"_on_{cmd.lower()}", None)
        if handler is not None:
            handler(conn, line)

    def _on_005(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.casemapping != self._casemapping:
            self._casemapping = conn.casemapping
            self._refold()
            self._bind_rooms()

    def _on_376(self, conn: IrcConnection, line: IrcLine) -> None:  # end of MOTD
        if conn.motd_done:
            return  # a MOTD asked for later
        conn.motd_done = True
        if conn.source is None:
            conn.send("USERHOST", conn.nick)
        self._join_all(conn)

    def _on_900(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_LOGGEDIN
        if self._identify_state == "waiting":
            self._identified(conn, line.param(2) or None)

    def _on_notice(self, conn: IrcConnection, line: IrcLine) -> None:
        if self._identify_state != "waiting" or (line.nick or "").casefold() != "nickserv":
            return
        text = strip_formatting(line.param(1))
        account = self.net.nickserv_account or self.net.nick
        if _NS_FAILED.search(text):
            log.warning("%s: NickServ login as %s failed: %s; carrying on without an account",
                        self.name, account, text[:200])
            self._identified(conn, None)
        elif _NS_OK.search(text):
            self._identified(conn, account)

    def _on_mode(self, conn: IrcConnection, line: IrcLine) -> None:
        # Services mark an identified user +r: as good as their NOTICE.
        if (self._identify_state == "waiting" and conn.is_me(line.param(0))
                and "r" in line.param(1).split("-")[0]):
            self._identified(conn, self.net.nickserv_account or self.net.nick)

    _on_422 = _on_376  # no MOTD

    def _on_302(self, conn: IrcConnection, line: IrcLine) -> None:  # USERHOST
        for entry in line.params[-1].split():
            name, _, rest = entry.partition("=")
            if conn.is_me(name.rstrip("*")) and "@" in rest:
                conn.source = f"{conn.nick}!{rest[1:]}"

    def _on_396(self, conn: IrcConnection, line: IrcLine) -> None:  # our displayed host
        if conn.source and len(line.params) >= 2:
            conn.source = conn.source.split("@", 1)[0] + "@" + line.params[1]

    def _on_chghost(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.nick) and len(line.params) >= 2:
            conn.source = f"{conn.nick}!{line.params[0]}@{line.params[1]}"

    def _on_join(self, conn: IrcConnection, line: IrcLine) -> None:
        nick, chan = line.nick, line.param(0)
        if conn.is_me(nick):
            conn.source = line.source  # the server just showed us our own prefix
            folded = self._fold(chan)
            self.joined.add(folded)
            self._ban_backoff.pop(folded, None)
            if getattr(conn.features, "whox", False):
                conn.send("WHO", chan, f"%tna,{WHOX_TOKEN}")
            if all(f in self.joined for f in self._channels):
                self.ready.set()
            return
        if nick:
            self._members.setdefault(self._fold(nick), set()).add(self._fold(chan))
        if nick and "extended-join" in conn.caps and len(line.params) >= 2:
            account = line.params[1]
            self._accounts[self._fold(nick)] = None if account == "*" else account

    def _on_353(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_NAMREPLY
        if len(line.params) < 4:
            return
        chan = self._fold(line.params[2])
        prefixes = "".join(getattr(conn.features, "prefix", None) or "@+")
        for name in line.params[3].split():
            nick = nick_of(name.lstrip(prefixes))
            if nick and not conn.is_me(nick):
                self._members.setdefault(self._fold(nick), set()).add(chan)

    def _on_354(self, conn: IrcConnection, line: IrcLine) -> None:  # WHOX
        if len(line.params) >= 4 and line.params[1] == WHOX_TOKEN:
            nick, account = line.params[2], line.params[3]
            self._accounts[self._fold(nick)] = None if account in ("0", "*") else account

    def _on_account(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            account = line.param(0)
            self._accounts[self._fold(line.nick)] = None if account in ("*", "") else account
            self._forget(line.nick)

    # -- who the bot can see leave -----------------------------------------------------------
    def _left(self, nick: str, chan: str) -> None:
        """`nick` left one shared channel; out of sight when it was the last."""
        folded = self._fold(nick)
        chans = self._members.get(folded)
        if chans is not None:
            chans.discard(self._fold(chan))
        if not chans:
            self._lost_sight(folded)

    def _lost_sight(self, folded: str) -> None:
        """The bot can no longer see `folded` quit or change nick: nothing it knew about
        that nick's account may be used for whoever holds it next."""
        self._members.pop(folded, None)
        self._accounts.pop(folded, None)  # account-notify no longer reaches us
        self._forget(folded)

    def _left_channel(self, chan: str) -> None:
        """The bot itself left `chan`: its members are out of sight unless shared elsewhere."""
        for folded, chans in list(self._members.items()):
            chans.discard(chan)
            if not chans:
                self._lost_sight(folded)

    # -- WHOIS: accounts where the server does not tell them -------------------------------
    def _forget(self, nick: str | None) -> None:
        if not nick:
            return
        folded = self._fold(nick)
        self._whois_cache.pop(folded, None)
        if folded in self._monitored:
            self._monitored.discard(folded)
            self._online.pop(folded, None)
            conn = self._conn
            if conn is not None and conn.registered:
                conn.send("MONITOR", "-", folded)

    def _changed_hands(self, nick: str) -> None:
        """`nick` quit or changed while its WHOIS was pending: the answer will be about
        someone else (or no one), so the commands waiting for it are refused."""
        folded = self._fold(nick)
        if folded in self._whois_asked:
            for inbound in self._held.get(folded, ()):
                if inbound.whois is not None:
                    inbound.stale = True

    def _known_account(self, conn: IrcConnection, line: IrcLine, nick: str) -> tuple[bool, str | None]:
        """(known, account): what the server has told us about `nick` (as the sender of
        `line`) without asking."""
        if "account-tag" in conn.caps:
            return True, line.tags.get("account") or None  # absent: not logged in
        folded = self._fold(nick)
        userhost = userhost_of(line.source or "")
        if folded in self._accounts:
            return True, self._accounts[folded]
        cached = self._whois_cache.get(folded)
        if (cached is not None and userhost and cached[0] == userhost
                and self._in_sight(folded, userhost)
                and time.monotonic() - cached[2] < (WHOIS_TTL if cached[1] is not None
                                                    else WHOIS_TTL_NO_ACCOUNT)):
            return True, cached[1]
        return False, None

    def _in_sight(self, folded: str, userhost: str) -> bool:
        """Whether the bot would see `folded` quit or change nick (and so forget what it
        knows): a shared channel, or MONITOR saying this very user@host holds it."""
        return folded in self._members or self._online.get(folded) == userhost

    def _ask_whois(self, conn: IrcConnection, nick: str,
                   userhost: str) -> asyncio.Future[_WhoisAnswer] | None:
        """The WHOIS answer to wait for: the one pending for this nick, or a new question;
        None when it cannot be asked (no user@host to bind the answer to, or too many
        questions pending from this user@host or in all)."""
        folded = self._fold(nick)
        asked = self._whois_asked.get(folded)
        if asked is not None:
            return asked.fut  # one question in flight per nick, so per source
        key = f"whois:{userhost}"
        if (not userhost or len(self._whois_asked) >= WHOIS_PENDING_MAX
                or sum(a.key == key for a in self._whois_asked.values()) >= WHOIS_PER_USERHOST):
            return None
        fut: asyncio.Future[_WhoisAnswer] = asyncio.get_running_loop().create_future()
        # Ahead of queued answers (a command waits), in turn with other askers.
        self._whois_asked[folded] = _Asked(fut, key, conn.ask(key, "WHOIS", nick), conn)
        return fut

    def _give_up_whois(self, folded: str, fut: asyncio.Future[_WhoisAnswer]) -> None:
        """Nobody waits for this WHOIS any more: take it back if not sent yet; the next
        command asks again."""
        asked = self._whois_asked.get(folded)
        if asked is None or asked.fut is not fut:
            return
        del self._whois_asked[folded]
        if asked.line is not None:
            asked.conn.withdraw(asked.key, asked.line)
        fut.cancel()

    def _whois_part(self, nick: str) -> dict[str, str | None] | None:
        asked = self._whois_asked.get(self._fold(nick))
        return asked.seen if asked is not None else None  # not ours: an oper's, say

    def _on_311(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISUSER
        if len(line.params) >= 4 and (seen := self._whois_part(line.params[1])) is not None:
            seen["userhost"] = userhost_of(f"{line.params[1]}!{line.params[2]}@{line.params[3]}")

    def _on_330(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISACCOUNT
        if len(line.params) >= 3 and (seen := self._whois_part(line.params[1])) is not None:
            seen["account"] = line.params[2]

    def _on_307(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_WHOISREGNICK
        # "is a registered nick" / "has identified for this nick": the account is the nick.
        if len(line.params) >= 2 and (seen := self._whois_part(line.params[1])) is not None:
            seen.setdefault("account", line.params[1])

    def _on_318(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_ENDOFWHOIS
        if len(line.params) < 2:
            return
        for nick in line.params[1].split(","):
            folded = self._fold(nick)
            asked = self._whois_asked.pop(folded, None)
            if asked is None:
                continue  # not ours (an operator's manual WHOIS, say)
            answer = _WhoisAnswer(asked.seen.get("userhost") or "", asked.seen.get("account"))
            if answer.userhost:
                self._remember_whois(conn, nick, answer)
            if not asked.fut.done():
                asked.fut.set_result(answer)

    def _remember_whois(self, conn: IrcConnection, nick: str, answer: _WhoisAnswer) -> None:
        folded = self._fold(nick)
        now = time.monotonic()
        if len(self._whois_cache) >= WHOIS_CACHE_MAX:
            for old in [k for k, v in self._whois_cache.items() if now - v[2] >= WHOIS_TTL]:
                self._forget(old)
            while len(self._whois_cache) >= WHOIS_CACHE_MAX:
                self._forget(next(iter(self._whois_cache)))
        self._whois_cache[folded] = (answer.userhost, answer.account, now)
        if answer.account is not None and folded not in self._members:
            self._monitor(conn, folded)

    # -- MONITOR: seeing nicks go that share no channel with the bot ------------------------
    def _monitor(self, conn: IrcConnection, folded: str) -> None:
        """Watch `folded` (when the server offers MONITOR), so its kept answer may be used
        while the server says the same user@host holds it (730) and is forgotten when it
        goes (731)."""
        limit = getattr(conn.features, "monitor", None)
        if not limit or folded in self._monitored:
            return
        if not isinstance(limit, bool) and isinstance(limit, int) and len(self._monitored) >= limit:
            now = time.monotonic()
            for old in list(self._monitored):  # those whose answers ran out make room
                if old not in self._whois_cache or now - self._whois_cache[old][2] >= WHOIS_TTL:
                    self._forget(old)
            if len(self._monitored) >= limit:
                return
        self._monitored.add(folded)
        conn.send("MONITOR", "+", folded)

    def _on_730(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_MONONLINE
        for target in line.params[-1].split(","):
            folded = self._fold(nick_of(target))
            if folded in self._monitored:
                self._online[folded] = userhost_of(target)

    def _on_731(self, conn: IrcConnection, line: IrcLine) -> None:  # RPL_MONOFFLINE
        for target in line.params[-1].split(","):
            folded = self._fold(nick_of(target))
            self._online.pop(folded, None)
            self._changed_hands(folded)
            self._forget(folded)

    def _on_734(self, conn: IrcConnection, line: IrcLine) -> None:  # ERR_MONLISTFULL
        for target in line.param(2).split(","):
            folded = self._fold(target)
            self._monitored.discard(folded)
            self._online.pop(folded, None)

    def _on_nick(self, conn: IrcConnection, line: IrcLine) -> None:
        old, new = line.nick, line.param(0)
        if not old or not new:
            return
        if conn.is_me(old):
            conn.nick = new
            if conn.source:
                conn.source = new + conn.source[len(nick_of(conn.source)):]
            log.info("%s: now known as %s", self.name, new)
            return
        self._changed_hands(old)
        self._changed_hands(new)
        self._forget(old)
        self._forget(new)
        chans = self._members.pop(self._fold(old), None)
        if chans:
            self._members[self._fold(new)] = chans
        account = self._accounts.pop(self._fold(old), None)
        if account is not None or "extended-join" in conn.caps:
            self._accounts[self._fold(new)] = account
        if self._fold(old) == self._fold(self.net.nick):
            self._regain(conn)  # whoever held our nick let it go

    def _on_quit(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            self._changed_hands(line.nick)
            self._lost_sight(self._fold(line.nick))
            if self._fold(line.nick) == self._fold(self.net.nick):
                self._regain(conn)

    def _on_part(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.nick):
            self.joined.discard(self._fold(line.param(0)))
            self._left_channel(self._fold(line.param(0)))
        elif line.nick:
            # Forgotten on any PART, even with channels still shared: it costs one more
            # WHOIS and never keeps an answer about someone the bot is losing sight of.
            self._forget(line.nick)
            self._left(line.nick, line.param(0))

    def _on_kick(self, conn: IrcConnection, line: IrcLine) -> None:
        if not conn.is_me(line.param(1)):
            self._forget(line.param(1))
            self._left(line.param(1), line.param(0))
            return
        self._left_channel(self._fold(line.param(0)))
        folded = self._fold(line.param(0))
        self.joined.discard(folded)
        if folded not in self._channels:
            log.warning("%s: kicked from %s by %s: %s", self.name, line.param(0), line.nick,
                        line.param(2))
            return
        # Kicked again soon after rejoining: wait twice as long each time (a kick loop, an
        # operator who wants the bot gone), so the bot never rejoins in a tight loop.
        now = time.monotonic()
        wait, last = self._kick_backoff.get(folded, (REJOIN_AFTER_KICK, float("-inf")))
        if now - last > KICK_CALM:
            wait = REJOIN_AFTER_KICK
        self._kick_backoff[folded] = (min(KICK_BACKOFF_MAX, wait * 2), now)
        log.warning("%s: kicked from %s by %s: %s; rejoining in %.1fs", self.name, line.param(0),
                    line.nick, line.param(2), wait)
        self._later(wait, self._rejoin, conn, folded)

    def _rejoin(self, conn: IrcConnection, folded: str) -> None:
        if folded in self._channels and folded not in self.joined and conn.registered:
            conn.send("JOIN", self._channels[folded])

    def _on_474(self, conn: IrcConnection, line: IrcLine) -> None:
        """Refused a join: banned (474), or full (471), invite-only (473), keyed (475),
        registered nicks only (477). Try again later, waiting twice as long each time (up to
        an hour), and say so in the log."""
        folded = self._fold(line.param(1))
        if folded not in self._channels:
            return
        first, cap = BANNED_BACKOFF
        wait = self._ban_backoff.get(folded, first)
        self._ban_backoff[folded] = min(cap, wait * 2)
        why = {"471": "full", "473": "invite only", "474": "banned", "475": "needs a key",
               "477": "registered nicks only"}.get(line.command, line.command)
        log.warning("%s: cannot join %s (%s: %s); trying again in %.0f min", self.name,
                    line.param(1), why, line.param(2), wait / 60)
        self._later(wait, self._rejoin, conn, folded)

    _on_471 = _on_473 = _on_475 = _on_477 = _on_474

    def _on_invite(self, conn: IrcConnection, line: IrcLine) -> None:
        chan = line.param(1)
        folded = self._fold(chan)
        if folded in self._channels:
            if folded not in self.joined:
                self._ban_backoff.pop(folded, None)
                conn.send("JOIN", self._channels[folded])
        else:
            log.info("%s: ignoring invite to %s from %s (not configured)", self.name, chan,
                     line.nick)

    def _on_privmsg(self, conn: IrcConnection, line: IrcLine) -> None:
        nick = line.nick
        if not nick or len(line.params) < 2:
            return
        if conn.is_me(nick):  # echo-message: our own line, with our real prefix
            if line.source and "@" in line.source:
                conn.source = line.source
            return
        target, body = line.params[0], line.params[1]
        if conn.is_channel(target):
            room = self._fold(target)
            if room not in self._channels:
                return
            reply_to, private = self._channels[room], False
        else:
            room, reply_to, private = nick, nick, True
        if body.startswith(ctcp.DELIMITER):
            action = self._ctcp(conn, nick, body)
            if action is None:
                return
            # "/me will take this one" is the sender saying "I will take this one"; an action
            # is never a command.
            text = "I " + strip_formatting(action).strip()
        else:
            text = self._as_command(conn, strip_formatting(body), private)
        userhost = userhost_of(line.source or "")
        known, account = self._known_account(conn, line, nick)
        # No msg_id: IRC never replays a message, so recording ids for at-most-once handling
        # would only cost a write per command.
        msg = Message(transport=self.name, room=room, sender=self._sender(nick, account),
                      text=text, private=private, at=_server_time(line.tags.get("time")))
        inbound = _Inbound(msg, reply_to, userhost=userhost)
        # "!more" is the transport's own, but it queues like a command: after the answer
        # to this person's previous one, which it continues.
        inbound.more = text.strip().casefold() == f"{self.prefix}more".casefold()
        folded = self._fold(nick)
        held = self._held.get(folded)
        if not known and not inbound.more and self._needs_account(text):
            inbound.whois = self._ask_whois(conn, nick, userhost)
            if inbound.whois is None:
                log.debug("%s: not asking WHOIS %s (%s): too many questions pending",
                          self.name, nick, userhost)
                inbound.msg = dataclasses.replace(
                    msg, sender=self._sender(nick, None, unconfirmed=True))
            else:
                inbound.deadline = time.monotonic() + WHOIS_WAIT
                if held is None:
                    self._hold(folded, inbound)
                    return
        if held is not None:  # behind their own earlier message, never overtaking it
            if len(held) >= HELD_MAX:
                log.warning("%s: too many messages from %s wait for WHOIS; dropping one",
                            self.name, nick)
            else:
                held.append(inbound)
            return
        self._queue(inbound)

    def _queue(self, inbound: _Inbound) -> None:
        try:
            self._inbox.put_nowait(inbound)
        except asyncio.QueueFull:
            log.warning("%s: too many waiting messages; dropping one from %s", self.name,
                        inbound.msg.sender.nick)

    def _hold(self, folded: str, inbound: _Inbound) -> None:
        """Keep this person's messages aside until their WHOIS is answered or its wait runs
        out; the worker meanwhile serves everyone else (a server that never answers WHOIS
        delays only the asker, by WHOIS_WAIT at most)."""
        self._held[folded] = [inbound]
        assert inbound.whois is not None

        async def release(fut: asyncio.Future[_WhoisAnswer], deadline: float) -> None:
            try:
                await asyncio.wait({fut}, timeout=max(0.0, deadline - time.monotonic()))
                if not fut.done():
                    self._give_up_whois(folded, fut)
            finally:
                for waiting in self._held.pop(folded, []):
                    self._queue(waiting)

        task = asyncio.create_task(release(inbound.whois, inbound.deadline),
                                   name=f"{self.name}:whois:{folded}")
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)

    def _as_command(self, conn: IrcConnection, text: str, private: bool) -> str:
        """`todobot: blockers` and `todobot, claim 12` (and, in private, a bare `blockers`)
        as the prefixed command; anything else unchanged."""
        m = _ADDRESSED.match(text)
        if m and conn.is_me(m.group(1)):
            rest = m.group(2).strip()
        elif private:
            rest = text.strip()
        else:
            return text
        if rest.startswith(self.prefix):
            return rest
        word = rest.split(None, 1)[0] if rest else ""
        if word and (lookup(word) is not None or word.casefold() == "more"):
            return self.prefix + rest
        return rest if m and conn.is_me(m.group(1)) else text

    def _needs_account(self, text: str) -> bool:
        """Whether the answer depends on who the sender is: commands that need more than
        anyone may do, the few that show or bind identity, and claims."""
        raw = text.strip()
        if raw.startswith(self.prefix):
            words = raw[len(self.prefix):].split(None, 1)
            cmd = lookup(words[0]) if words else None
            return cmd is not None and (cmd.who != "anyone" or cmd.name in _IDENTITY_COMMANDS
                                        or cmd.admin_only(words[1] if len(words) > 1 else ""))
        return len(raw) <= 200 and claim_intent(raw) is not None

    def _sender(self, nick: str, account: str | None, *, unconfirmed: bool = False) -> Sender:
        if account:
            # Named by the account, not the nick: whoever holds the nick later is not them.
            return Sender(identity=f"irc:{self.net.network}/{account}", nick=nick,
                          display_name=account)
        # A nick without an account is a weaker identity of its own: it never acts as an
        # owner or release manager, and cannot be confused with the account of that name.
        return Sender(identity=f"irc:{self.net.network}/~{self._fold(nick)}", nick=nick,
                      authenticated=False, unconfirmed=unconfirmed)

    # -- CTCP --------------------------------------------------------------------------------
    def _ctcp(self, conn: IrcConnection, nick: str, body: str) -> str | None:
        """Answer VERSION, PING and CLIENTINFO (by NOTICE, rate limited); return the text of
        an ACTION; ignore every other request."""
        for part in ctcp.dequote(body):
            if not isinstance(part, tuple):
                continue
            tag, data = part[0].upper(), (part[1] if len(part) > 1 else "")
            if tag == "ACTION":
                return data
            answer = {"VERSION": f"todobot {_version()}",
                      "PING": data,
                      "CLIENTINFO": " ".join(CTCP_ANSWERED)}.get(tag)
            if answer is None or not self._ctcp_bucket.try_take():
                continue
            reply = f"{ctcp.DELIMITER}{tag} {answer}".rstrip() + ctcp.DELIMITER
            try:
                conn.send("NOTICE", nick, reply)
            except ValueError:
                pass  # a nick that cannot be a target
        return None

    # -- answering -------------------------------------------------------------------------
    async def _work(self) -> None:
        """Hand messages to the dispatcher one at a time, in arrival order."""
        assert self._dispatcher is not None
        while True:
            inbound = await self._inbox.get()
            if inbound.more:
                conn, msg = self._conn, inbound.msg
                if conn is not None and conn.registered:
                    self._more(conn, msg.room, msg.sender.nick, inbound.reply_to, msg.private,
                               inbound.userhost)
                continue
            msg = await self._identified_message(inbound)
            if msg is None:
                msg = inbound.msg
                self._deliver(msg, inbound.reply_to,
                              one_line(f"{msg.sender.nick}: {CHANGED_HANDS}", outcome="refused"),
                              inbound.userhost)
                continue
            try:
                reply = await self._dispatcher.handle(msg)
            except Exception:  # the dispatcher answers errors itself; a last guard
                log.exception("%s: unhandled error for %r", self.name, msg.text[:200])
                continue
            if reply is not None:
                self._deliver(msg, inbound.reply_to, reply, inbound.userhost)

    async def _identified_message(self, inbound: _Inbound) -> Message | None:
        """The message with its sender's account, once WHOIS answered (bounded wait); None
        when the answer is about another connection than the one the command came from."""
        msg, fut = inbound.msg, inbound.whois
        if fut is None:
            return msg
        nick = msg.sender.nick
        try:
            answer = await asyncio.wait_for(asyncio.shield(fut),
                                             max(0.0, inbound.deadline - time.monotonic()))
        except (asyncio.TimeoutError, asyncio.CancelledError):
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            log.warning("%s: no WHOIS answer for %s within %.0fs; treating as not logged in",
                        self.name, nick, WHOIS_WAIT)
            return dataclasses.replace(msg, sender=self._sender(nick, None, unconfirmed=True))
        if inbound.stale or answer.userhost != inbound.userhost:
            log.info("%s: %s changed hands while its WHOIS was pending (%s, then %s); "
                     "refusing %r", self.name, nick, inbound.userhost, answer.userhost or "gone",
                     msg.text[:50])
            return None
        return dataclasses.replace(msg, sender=self._sender(nick, answer.account))

    def _deliver(self, msg: Message, reply_to: str, reply: Reply, userhost: str = "") -> None:
        conn = self._conn
        if conn is None or not conn.registered:
            log.warning("%s: disconnected; reply to %s lost", self.name, msg.sender.nick)
            return
        nick = msg.sender.nick
        # In private, a NOTICE: the convention for bots, never answered by an auto-reply.
        command, target = ("NOTICE" if msg.private else "PRIVMSG"), reply_to
        if reply.long and not msg.private and self.net.long_replies != "channel":
            command = "NOTICE" if self.net.long_replies == "notice" else "PRIVMSG"
            target = nick
        wire = self._wire_lines(conn, command, target, reply)
        # The first line is queued (and, when the writer is idle, written) before the rest
        # are rendered: a listing's first line does not wait for its last.
        lines = list(itertools.islice(wire, 1))
        who = self._requester(nick, command, target, userhost)
        if not conn.answer(who, lines, more_to_come=True):
            log.info("%s: answer to %s dropped: too many lines already wait for them",
                     self.name, nick)
            return
        more: list[bytes] = []
        try:
            lines += wire
            limit = self.net.max_lines  # at least 1: the first line is on the first page
            rest = lines[limit:]
            more = lines[1:limit] + (self._offer(conn, command, target, len(rest)) if rest else [])
        finally:
            conn.answer_more(who, more)
        if rest:
            self._pending.remember((msg.room, self._fold(nick)), rest, (command, target))

    def _requester(self, nick: str, command: str, target: str, userhost: str = "") -> Requester:
        """Whose turn an answer takes: the asker's user@host when known, so clones under
        many nicks are one requester (one turn, one backlog), not forty."""
        return Requester(f"{self.net.network}/{userhost or self._fold(nick)}", nick, command,
                         target)

    @classmethod
    def _wire(cls, conn: IrcConnection, command: str, target: str, reply: Reply) -> list[bytes]:
        """The reply as wire lines: listings packed to the line budget, then split to it."""
        return list(cls._wire_lines(conn, command, target, reply))

    @staticmethod
    def _wire_lines(conn: IrcConnection, command: str, target: str, reply: Reply) -> Iterator[bytes]:
        source = conn.wire_source()
        budget = budget_for(command, target, source)
        for text in render_lines(reply, budget):
            yield from wire_lines(command, target, text, source)

    def _offer(self, conn: IrcConnection, command: str, target: str, left: int) -> list[bytes]:
        text = (f"({left} more line{'s' * (left != 1)}: say \x02{self.prefix}more\x02)")
        return wire_lines(command, target, text, conn.wire_source())

    def _more(self, conn: IrcConnection, room: str, nick: str, reply_to: str,
              private: bool = False, userhost: str = "") -> None:
        key = (room, self._fold(nick))
        pending = self._pending.get(key)
        if pending is None:
            command = "NOTICE" if private else "PRIVMSG"
            conn.answer(self._requester(nick, command, reply_to, userhost),
                        wire_lines(command, reply_to, f"{nick}: there is nothing more to show.",
                                   conn.wire_source()))
            return
        limit = self.net.max_lines
        command, target = pending.meta
        lines, rest = pending.parts[:limit], pending.parts[limit:]
        if rest:
            lines = lines + self._offer(conn, command, target, len(rest))
        # A page dropped (their backlog is full) stays pending for the next "more".
        if conn.answer(self._requester(nick, command, target, userhost), lines):
            self._pending.advance(key, limit)


def _server_time(value: str | None) -> float:
    """The IRCv3 `time` tag as a timestamp; now when absent or malformed."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
