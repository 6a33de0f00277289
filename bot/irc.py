"""The IRC transport: channels as rooms, accounts as identities, throttled safe output.

A supervisor task keeps one connection (`bot.irc_conn`) alive: connect, register, join the
configured channels, read until the link dies, then reconnect with jittered backoff. Lines
from the server update what we know (our prefix, who is logged in to which account) and
turn PRIVMSGs into `Message`s for a worker task that calls the dispatcher one message at a
time and sends the rendered reply. Long answers stop after `max_lines` lines; the rest waits
per channel and nick for `<prefix>more`, which the transport answers itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from .config import Config, ConfigError, IrcNetwork
from .irc_conn import Backoff, IrcConnection, IrcLine, LinkClosed, nick_of
from .ratelimit import TokenBucket
from .rooms import room_entry, room_settings
from .irc_text import casefold, render, strip_formatting, wire_lines
from ..commands.messages import Message, Reply, Sender
from .transport import Transport

if TYPE_CHECKING:
    from .dispatcher import Dispatcher

log = logging.getLogger(__name__)

STABLE_SESSION = 60.0  # a session that lasted this long resets the reconnect backoff
PENDING_TTL = 1800.0  # "!more" material is forgotten after this long
MAX_PENDING = 200
INBOX_SIZE = 200  # messages waiting for the dispatcher; more are dropped (flood)
WHOX_TOKEN = "217"


@dataclass
class _Pending:
    lines: list[bytes]
    command: str
    target: str
    at: float


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
        self._inbox: asyncio.Queue[tuple[Message, str]] = asyncio.Queue(INBOX_SIZE)
        self._stopping = False
        self._accounts: dict[str, str | None] = {}  # folded nick -> account (None: logged out)
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._last_regain = 0.0
        # Observable state (tests, status): registered sessions so far and channels we are in.
        self.sessions = 0
        self.attempts = 0  # connection attempts, successful or not
        self.joined: set[str] = set()
        self.ready = asyncio.Event()  # registered and the channels joined

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, dispatcher: "Dispatcher") -> None:
        self._dispatcher = dispatcher
        if self.net.sasl_account:
            self._password = self.net.sasl_password()  # ConfigError now rather than at connect
            if self._password is None:
                raise ConfigError(f"irc[{self.net.network}]: sasl_account needs sasl_password_env")
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
        for task in (self._supervisor, self._worker):
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
        for text in render(reply):
            conn.say("PRIVMSG", target, text)

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

    def apply_config(self, config: Config) -> list[str]:
        net = next((n for n in config.irc if n.network == self.net.network), None)
        if net is None:
            return [f"{self.name}: no longer configured; still connected until a restart"]
        self.config, self.prefix = config, config.prefix
        wanted = {name: (rel, dig) for name, rel, dig in (room_entry(c, "name") for c in net.channels)}
        for name in self._settings:
            if name in wanted:
                rel, dig = wanted[name]
                self._settings[name] = room_settings(config, release=rel, digest=dig, compact=True)
        self._default_settings = room_settings(config, compact=True)
        self._bind_rooms()
        notes = []
        if new := [n for n in wanted if n not in self._settings]:
            notes.append(f"{self.name}: joining {', '.join(new)} takes a restart")
        if gone := [n for n in self._settings if n not in wanted]:
            notes.append(f"{self.name}: leaving {', '.join(gone)} takes a restart")
        if net.model_dump(exclude={"channels"}) != self.net.model_dump(exclude={"channels"}):
            notes.append(f"{self.name}: connection settings change at the next restart")
        return notes

    # -- the connection supervisor ---------------------------------------------------------
    async def _supervise(self) -> None:
        backoff = Backoff()
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
                await self._session(conn, welcome)
            except asyncio.CancelledError:
                raise
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
        if conn.account:
            log.info("%s: logged in as %s (SASL)", self.name, conn.account)
        regain = asyncio.create_task(self._regain_loop(conn), name=f"{self.name}:regain")
        try:
            while True:
                line = await conn.read()
                self._on_line(conn, line)
        finally:
            regain.cancel()

    async def _regain_loop(self, conn: IrcConnection) -> None:
        while True:
            await asyncio.sleep(self.regain_interval)
            self._regain(conn)

    def _regain(self, conn: IrcConnection) -> None:
        if not conn.is_me(self.net.nick):
            self._last_regain = time.monotonic()
            conn.send("NICK", self.net.nick)

    def _join_all(self, conn: IrcConnection) -> None:
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
        if conn.source is None:
            conn.send("USERHOST", conn.nick)
        self._join_all(conn)

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
            if "WHOX" in conn.isupport:
                conn.send("WHO", chan, f"%tna,{WHOX_TOKEN}")
            if all(f in self.joined for f in self._channels):
                self.ready.set()
            return
        if nick and "extended-join" in conn.caps and len(line.params) >= 2:
            account = line.params[1]
            self._accounts[self._fold(nick)] = None if account == "*" else account

    def _on_354(self, conn: IrcConnection, line: IrcLine) -> None:  # WHOX
        if len(line.params) >= 4 and line.params[1] == WHOX_TOKEN:
            nick, account = line.params[2], line.params[3]
            self._accounts[self._fold(nick)] = None if account in ("0", "*") else account

    def _on_account(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            account = line.param(0)
            self._accounts[self._fold(line.nick)] = None if account in ("*", "") else account

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
        account = self._accounts.pop(self._fold(old), None)
        if account is not None or "extended-join" in conn.caps:
            self._accounts[self._fold(new)] = account
        if self._fold(old) == self._fold(self.net.nick):
            self._regain(conn)  # whoever held our nick let it go

    def _on_quit(self, conn: IrcConnection, line: IrcLine) -> None:
        if line.nick:
            self._accounts.pop(self._fold(line.nick), None)
            if self._fold(line.nick) == self._fold(self.net.nick):
                self._regain(conn)

    def _on_part(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.nick):
            self.joined.discard(self._fold(line.param(0)))

    def _on_kick(self, conn: IrcConnection, line: IrcLine) -> None:
        if conn.is_me(line.param(1)):
            self.joined.discard(self._fold(line.param(0)))
            log.warning("%s: kicked from %s by %s: %s", self.name, line.param(0), line.nick,
                        line.param(2))

    def _on_invite(self, conn: IrcConnection, line: IrcLine) -> None:
        chan = line.param(1)
        folded = self._fold(chan)
        if folded in self._channels:
            if folded not in self.joined:
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
        if body.startswith("\x01"):
            return  # CTCP (ACTION, VERSION, ...): not a command
        if conn.is_channel(target):
            room = self._fold(target)
            if room not in self._channels:
                return
            reply_to, private = self._channels[room], False
        else:
            room, reply_to, private = nick, nick, True
        text = strip_formatting(body)
        # No msg_id: IRC never replays a message, so recording ids for at-most-once handling
        # would only cost a write per command.
        msg = Message(transport=self.name, room=room, sender=self._sender(conn, line, nick),
                      text=text, private=private, at=_server_time(line.tags.get("time")))
        if text.strip().casefold() == f"{self.prefix}more".casefold():
            self._more(conn, room, nick, reply_to)
            return
        try:
            self._inbox.put_nowait((msg, reply_to))
        except asyncio.QueueFull:
            log.warning("%s: too many waiting messages; dropping one from %s", self.name, nick)

    def _sender(self, conn: IrcConnection, line: IrcLine, nick: str) -> Sender:
        if "account-tag" in conn.caps:
            account = line.tags.get("account")  # absent: not logged in
        else:
            account = self._accounts.get(self._fold(nick))
        if account:
            # Named by the account, not the nick: whoever holds the nick later is not them.
            return Sender(identity=f"irc:{self.net.network}/{account}", nick=nick,
                          display_name=account)
        # A nick without an account is a weaker identity of its own: it never acts as an
        # owner or release manager, and cannot be confused with the account of that name.
        return Sender(identity=f"irc:{self.net.network}/~{self._fold(nick)}", nick=nick,
                      authenticated=False)

    # -- answering -------------------------------------------------------------------------
    async def _work(self) -> None:
        """Hand messages to the dispatcher one at a time, in arrival order."""
        assert self._dispatcher is not None
        while True:
            msg, reply_to = await self._inbox.get()
            try:
                reply = await self._dispatcher.handle(msg)
            except Exception:  # the dispatcher answers errors itself; a last guard
                log.exception("%s: unhandled error for %r", self.name, msg.text[:200])
                continue
            if reply is not None:
                self._deliver(msg, reply_to, reply)

    def _deliver(self, msg: Message, reply_to: str, reply: Reply) -> None:
        conn = self._conn
        if conn is None or not conn.registered:
            log.warning("%s: disconnected; reply to %s lost", self.name, msg.sender.nick)
            return
        nick = msg.sender.nick
        command, target = "PRIVMSG", reply_to
        if reply.long and not msg.private and self.net.long_replies != "channel":
            command = "NOTICE" if self.net.long_replies == "notice" else "PRIVMSG"
            target = nick
        source = conn.wire_source()
        lines = [wl for text in render(reply) for wl in wire_lines(command, target, text, source)]
        key = (msg.room, self._fold(nick))
        limit = self.net.max_lines
        if len(lines) > limit:
            self._remember(key, _Pending(lines[limit:], command, target, time.monotonic()))
            lines = lines[:limit] + self._offer(conn, command, target, len(lines) - limit)
        conn.send_lines(lines)

    def _offer(self, conn: IrcConnection, command: str, target: str, left: int) -> list[bytes]:
        text = (f"({left} more line{'s' * (left != 1)}: say \x02{self.prefix}more\x02)")
        return wire_lines(command, target, text, conn.wire_source())

    def _remember(self, key: tuple[str, str], pending: _Pending) -> None:
        now = time.monotonic()
        for k in [k for k, p in self._pending.items() if now - p.at > PENDING_TTL]:
            del self._pending[k]
        while len(self._pending) >= MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        self._pending[key] = pending

    def _more(self, conn: IrcConnection, room: str, nick: str, reply_to: str) -> None:
        key = (room, self._fold(nick))
        pending = self._pending.get(key)
        if pending is None or time.monotonic() - pending.at > PENDING_TTL:
            self._pending.pop(key, None)
            conn.say("PRIVMSG", reply_to, f"{nick}: there is nothing more to show.")
            return
        limit = self.net.max_lines
        lines, rest = pending.lines[:limit], pending.lines[limit:]
        if rest:
            pending.lines, pending.at = rest, time.monotonic()
            lines += self._offer(conn, pending.command, pending.target, len(rest))
        else:
            del self._pending[key]
        conn.send_lines(lines)


def _server_time(value: str | None) -> float:
    """The IRCv3 `time` tag as a timestamp; now when absent or malformed."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
