"""One IRC connection: the line parser, the throttled writer, verified TLS, registration
(CAP, SASL PLAIN or EXTERNAL, nick fallback) and the keepalive watchdog.

`transport.py` drives a connection (what to say and when); this module only knows the protocol.
Every outgoing line goes through `IrcConnection._checked`, the single choke point: built
with `clean()` or `wire_lines()`, checked for CR/LF/NUL and length, queued per requester
(`output.py`) and throttled by the connection's token bucket. A separate writer task
sends, choosing the next line only when the bucket allows one, so a full bucket never
delays reading (and answering the server's PINGs) and a newcomer's answer never waits
behind everyone else's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from irc.features import FeatureSet
from irc.message import Tag

from ..backoff import Backoff
from ..config import ConfigError, IrcNetwork
from .output import CONNECTION, OutputQueues, Requester, dropped_text
from ..ratelimit import TokenBucket
from .text import MAX_LINE, casefold, clean, pessimistic_source, wire_lines

log = logging.getLogger(__name__)

# Capabilities todobot uses when the server offers them. `sasl` is added when configured.
WANTED_CAPS = ("message-tags", "account-tag", "extended-join", "account-notify", "server-time",
               "echo-message", "multi-prefix", "chghost", "cap-notify")
NICK_ERRORS = {"431", "432", "433", "436", "437"}
SASL_DONE = {"903"}
SASL_FAILED = {"902", "904", "905", "906", "907", "908"}
SASL_STALL = 30.0  # a post-registration SASL exchange unanswered this long is started over
READ_LIMIT = 64 * 1024  # message tags may make a line far longer than 512 bytes


class LinkClosed(ConnectionError):
    """The server closed the connection, sent ERROR, or stopped answering."""


class CertificateRefused(ConnectionError):
    """The server's TLS certificate did not verify: this network is not trusted."""


class NotTls(ConnectionError):
    """`tls: true`, but the port did not speak TLS (it answered in plain text, or not at all)."""


def tls_context(net: IrcNetwork) -> ssl.SSLContext:
    """Verified TLS against the system store or `tls_ca`; a client certificate for CertFP.
    A missing or unreadable file is a ConfigError naming the key."""
    try:
        context = ssl.create_default_context(cafile=net.tls_ca)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"irc[{net.network}].tls_ca: cannot load {net.tls_ca}: {exc}") from None
    if not net.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if net.tls_certfile:
        try:
            context.load_cert_chain(net.tls_certfile, net.tls_keyfile)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"irc[{net.network}].tls_certfile: cannot load {net.tls_certfile}"
                              f"{' / ' + net.tls_keyfile if net.tls_keyfile else ''}: {exc}") from None
    return context


# -- lines -----------------------------------------------------------------------------------


@dataclass
class IrcLine:
    command: str
    params: list[str]
    source: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def nick(self) -> str | None:
        return nick_of(self.source) if self.source else None

    def param(self, i: int, default: str = "") -> str:
        return self.params[i] if len(self.params) > i else default


def nick_of(source: str) -> str:
    """The nick of a "nick!user@host" source (also "nick@host", which some servers send).
    Parsed here rather than by irc.client's NickMask: importing irc.client (and what it
    pulls in) costs an IRC-only bot ~6 MB of RSS for one partition."""
    return source.partition("!")[0].split("@", 1)[0]


def userhost_of(source: str) -> str:
    """The `user@host` of a "nick!user@host" source, host in lower case (DNS names and
    addresses ignore case; the user part does not); "" when the source has no user part."""
    _, bang, userhost = source.partition("!")
    user, at, host = userhost.rpartition("@")
    return f"{user}@{host.lower()}" if bang and at and user and host else ""


def decode_line(raw: bytes) -> str:
    """UTF-8 when valid; UTF-8 without the last, partial character when the server cut the
    line inside one; else latin-1 for this line only (old clients still send it)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Only a line at the length limit was cut: a short one ending in a lone é (0xE9)
        # is Latin-1, not a partial character.
        body = raw.split(b" ", 1)[1] if raw.startswith(b"@") and b" " in raw else raw
        if (exc.reason == "unexpected end of data" and len(raw) - exc.start < 4
                and len(body) >= MAX_LINE - 2 - 4):
            try:
                return raw[:exc.start].decode("utf-8")
            except UnicodeDecodeError:
                pass
        return raw.decode("latin-1")


def parse_line(text: str) -> IrcLine | None:
    """`@tags :source COMMAND params :trailing` into its parts; None for an empty line."""
    tags: dict[str, str] = {}
    text = text.rstrip("\r\n")
    if text.startswith("@"):
        raw_tags, _, text = text[1:].partition(" ")
        for item in raw_tags.split(";"):
            if item:
                tag = Tag.parse(item)  # unescapes \s \: \\ \r \n
                tags[tag["key"]] = tag["value"] or ""
        text = text.lstrip(" ")
    source = None
    if text.startswith(":"):
        source, _, text = text[1:].partition(" ")
        text = text.lstrip(" ")
    head, sep, trailing = text.partition(" :")
    params = head.split()
    if not params:
        return None
    if sep:
        params.append(trailing)
    return IrcLine(params[0].upper(), params[1:], source or None, tags)


def build_line(command: str, *params: str) -> bytes:
    """A non-message line (`JOIN`, `PONG`, `CAP REQ`, ...): every part cleaned, the last one
    as a trailing parameter when it needs to be, cut to the line limit."""
    parts = [clean(command)]
    for i, p in enumerate(params):
        p = clean(p)
        last = i == len(params) - 1
        if last and (not p or " " in p or p.startswith(":")):
            p = ":" + p
        elif " " in p or not p or p.startswith(":"):
            raise ValueError(f"bad middle parameter {p!r} for {command}")
        parts.append(p)
    data = " ".join(parts).encode("utf-8", "replace")[:MAX_LINE - 2]
    return data + b"\r\n"


# -- reconnect timing ------------------------------------------------------------------------


def reconnect_backoff() -> Backoff:
    """The IRC reconnect waits: the first retry within 2 s, jittered, never more than 300 s."""
    return Backoff(2.0, 300.0, jitter=True)


# -- the connection --------------------------------------------------------------------------


class IrcConnection:
    """One session with the server, from the TCP connect to the close."""

    def __init__(self, net: IrcNetwork, bucket: TokenBucket, password: str | None = None) -> None:
        self.net = net
        self.bucket = bucket
        self.password = password
        self.nick = net.nick
        self.user = net.username
        self.source: str | None = None  # our nick!user@host as others see it, once known
        self.caps: set[str] = set()  # enabled capabilities
        self.offered: dict[str, str] = {}
        self.account: str | None = None  # the account SASL logged us in to
        self.features = FeatureSet()  # ISUPPORT (005), parsed by the irc package
        self.registered = False
        self.motd_done = False  # end of MOTD seen: channels may be joined
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._out = OutputQueues()
        self._wake = asyncio.Event()  # a line was queued
        self._idle = asyncio.Event()  # nothing queued and nothing being written
        self._idle.set()
        self._write_task: asyncio.Task[None] | None = None
        self._nicks = iter([*net.alternates])
        self._ping_outstanding = False
        self._late_sasl = ""  # post-registration SASL step, when services arrive late
        self._late_sasl_since = 0.0

    # -- names ---------------------------------------------------------------------------
    @property
    def casemapping(self) -> str:
        return str(getattr(self.features, "casemapping", "rfc1459"))

    def fold(self, name: str) -> str:
        return casefold(name, self.casemapping)

    def is_me(self, nick: str | None) -> bool:
        return nick is not None and self.fold(nick) == self.fold(self.nick)

    def is_channel(self, target: str) -> bool:
        types = getattr(self.features, "chantypes", "#&")  # True: given empty, no channels
        return bool(target) and isinstance(types, str) and target[0] in types

    def wire_source(self) -> str:
        """Our prefix for the byte budget: the real one when known, else a worst case."""
        return self.source or pessimistic_source(self.nick, self.user)

    # -- transport -----------------------------------------------------------------------
    async def open(self, timeout: float = 30.0) -> None:
        """Connect; with TLS, a server certificate that does not verify is a
        `CertificateRefused` (never a silent fallback to an unverified link)."""
        context = tls_context(self.net) if self.net.tls else None
        self._tcp_up = False
        try:
            self._reader, self._writer = await asyncio.wait_for(self._open(context), timeout)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateRefused(
                f"the TLS certificate of {self.net.host}:{self.net.port} did not verify "
                f"({exc.verify_message or exc.reason}); "
                + ("check tls_ca" if self.net.tls_ca else "set tls_ca to trust a private CA")
            ) from None
        except asyncio.TimeoutError:
            if context is None or not self._tcp_up:
                raise
            raise self._not_tls("did not answer the TLS handshake") from None
        self._write_task = asyncio.create_task(self._write_loop(),
                                               name=f"irc-writer:{self.net.network}")

    async def _open(self, context: ssl.SSLContext | None):
        """TCP first, then TLS over it: a handshake that never ends is told apart from a
        server that cannot be reached."""
        sock_reader, sock_writer = await asyncio.open_connection(self.net.host, self.net.port,
                                                                 limit=READ_LIMIT)
        self._tcp_up = True
        if context is None:
            return sock_reader, sock_writer
        try:
            await sock_writer.start_tls(context, server_hostname=self.net.host)
        except ssl.SSLCertVerificationError:
            sock_writer.close()
            raise
        except (ssl.SSLError, ConnectionError, EOFError) as exc:
            sock_writer.close()
            why = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
            raise self._not_tls(f"answered the TLS handshake with something else ({why})") from None
        except BaseException:
            sock_writer.close()
            raise
        return sock_reader, sock_writer

    def _not_tls(self, how: str) -> NotTls:
        return NotTls(f"{self.net.host}:{self.net.port} {how}: is this a plain-text port? "
                      "set tls: false, or the server's TLS port (often 6697)")

    async def close(self) -> None:
        if self._write_task is not None:
            self._write_task.cancel()
            try:
                await self._write_task
            except (asyncio.CancelledError, Exception):
                pass
            self._write_task = None
        if self._writer is not None:
            writer, self._writer = self._writer, None
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                pass

    @property
    def queued(self) -> int:
        """Lines waiting to be written."""
        return len(self._out)

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued line has been written (bounded)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            log.warning("%s: %d lines still queued at close", self.net.network, len(self._out))

    # -- sending: the one choke point ------------------------------------------------------
    def _checked(self, line: bytes) -> bytes | None:
        body = line[:-2] if line.endswith(b"\r\n") else line
        if any(c in body for c in (b"\r", b"\n", b"\0")) or len(body) > MAX_LINE - 2:
            # Never reached through send()/say(); a guard against a future caller.
            log.error("%s: refusing malformed outgoing line %r", self.net.network, body[:80])
            return None
        return body + b"\r\n"

    def _queued(self) -> None:
        self._idle.clear()
        self._wake.set()

    def _enqueue(self, line: bytes, urgent: bool = False, secret: bool = False,
                 key: str = CONNECTION, ask: bool = False) -> bytes | None:
        data = self._checked(line)
        if data is not None:
            self._out.put(data, key=key, urgent=urgent, secret=secret, ask=ask)
            self._queued()
        return data

    def ask(self, key: str, command: str, *params: str) -> bytes | None:
        """A question a command waits for (WHOIS), in `key`'s queue of questions: before
        every answer, in turn with other askers (`output.py`). Returns the line, for
        `withdraw`."""
        return self._enqueue(build_line(command, *params), key=key, ask=True)

    def withdraw(self, key: str, line: bytes) -> bool:
        """Take back a question `ask` queued, unless it has been sent."""
        return self._out.withdraw(key, line)

    def send(self, command: str, *params: str, urgent: bool = False, secret: bool = False) -> None:
        """One line of the connection's own; `secret` lines (passwords) are never logged."""
        self._enqueue(build_line(command, *params), urgent, secret)

    def say(self, command: str, target: str, text: str) -> list[bytes]:
        """PRIVMSG/NOTICE `text`, split to fit; returns the lines (for later `send_lines`)."""
        lines = wire_lines(command, target, text, self.wire_source())
        self.send_lines(lines)
        return lines

    def send_lines(self, lines: list[bytes], key: str = CONNECTION) -> None:
        """Lines under `key`, never dropped (unsolicited posts: a digest is not an answer)."""
        for line in lines:
            self._enqueue(line, key=key)

    def answer(self, who: Requester, lines: list[bytes], *, more_to_come: bool = False) -> bool:
        """An answer for one person, queued whole in their queue; False when dropped because
        too much already waits for them (they are told once their queue drains).
        `more_to_come`: these are its first lines; `answer_more` must follow with the rest."""
        checked = [d for d in map(self._checked, lines) if d is not None]
        parked = self._idle.is_set() and self._write_task is not None
        if not self._out.answer(who, checked, more_to_come=more_to_come):
            return False
        if checked:
            if parked and self.bucket.delay() <= 0:
                # The writer waits with nothing queued and the bucket has a token: the line
                # it would choose on its next turn is this answer's first; send it now rather
                # than after that turn of the event loop.
                if (sent := self._write_next()) is not None:
                    self._report_dropped(sent[0])
            if self._out:
                self._queued()
        return True

    def answer_more(self, who: Requester, lines: list[bytes]) -> None:
        """The rest of an answer `answer(..., more_to_come=True)` took: queued behind its
        first lines (the backlog limit applies to a whole answer, when it starts)."""
        checked = [d for d in map(self._checked, lines) if d is not None]
        self._out.more(who, checked)
        if checked:
            self._queued()

    def _write_next(self) -> tuple[str, bool] | None:
        """Take a token and write the next line (the bucket has one): its requester's key
        and whether the write went through; None when nothing waits."""
        picked = self._out.pop()
        if picked is None:
            return None
        key, data, secret = picked
        self.bucket.take()
        assert self._writer is not None
        try:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s >> %r", self.net.network,
                          data.split(b" ", 1)[0] + b" <secret>" if secret else data)
            self._writer.write(data)
        except (OSError, ssl.SSLError) as exc:
            self._write_failed(exc)
            return key, False
        return key, True

    def _write_failed(self, exc: BaseException) -> None:
        log.info("%s: write failed: %s", self.net.network, exc)
        assert self._writer is not None
        self._writer.close()  # the reader notices and the session ends

    def _report_dropped(self, key: str) -> None:
        if (dropped := self._out.drained(key)) is not None:
            who, count = dropped
            self.send_lines(wire_lines(who.command, who.target, dropped_text(count, who.nick),
                                       self.wire_source())[:1], key=key)

    async def _write_loop(self) -> None:
        assert self._writer is not None
        while True:
            while not self._out:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
            # Wait for a token first and choose the line after: whoever asked meanwhile
            # competes for it.
            while (wait := self.bucket.delay()) > 0:
                await asyncio.sleep(wait)
            if (sent := self._write_next()) is None:
                continue
            key, written = sent
            if written:
                try:
                    await self._writer.drain()
                except (OSError, ssl.SSLError) as exc:
                    self._write_failed(exc)
            self._report_dropped(key)

    # -- receiving -----------------------------------------------------------------------
    async def read(self) -> IrcLine:
        """The next line from the server. Answers PING itself; PINGs the server after
        `ping_interval` of silence and gives up (LinkClosed) after `ping_timeout` more."""
        assert self._reader is not None
        while True:
            wait = self.net.ping_timeout if self._ping_outstanding else self.net.ping_interval
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes as
                # a line arrives, and stopping the bot then waited for the keepalive.
                async with asyncio.timeout(wait):
                    raw = await self._reader.readuntil(b"\n")
            except TimeoutError:
                if self._ping_outstanding:
                    raise LinkClosed(f"no answer from the server for "
                                     f"{self.net.ping_interval + self.net.ping_timeout:.0f}s") from None
                self._ping_outstanding = True
                self.send("PING", "todobot-keepalive", urgent=True)
                continue
            except asyncio.IncompleteReadError:
                raise LinkClosed("the server closed the connection") from None
            except asyncio.LimitOverrunError as exc:
                await self._reader.readexactly(exc.consumed)  # drop an oversized line
                continue
            self._ping_outstanding = False
            line = parse_line(decode_line(raw.rstrip(b"\r\n").replace(b"\0", b"")))
            if line is None:
                continue
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s << %r", self.net.network,
                          b"(a line naming IDENTIFY, not logged)" if b"IDENTIFY" in raw.upper() else raw)
            if line.command == "PING":
                self.send("PONG", *line.params[:1] or ["todobot"], urgent=True)
                continue
            if line.command == "ERROR":
                raise LinkClosed(f"server said ERROR: {line.param(0)}")
            if line.command == "CAP":
                self._cap_update(line)
            elif self.registered and self._late_sasl and line.command in (
                    "AUTHENTICATE", *SASL_DONE, *SASL_FAILED):  # 900: the session's
                self._late_sasl_step(line)
            elif line.command == "005":
                self._isupport(line)
            return line

    async def lines(self) -> AsyncIterator[IrcLine]:
        while True:
            yield await self.read()

    def _isupport(self, line: IrcLine) -> None:
        for token in line.params[1:-1]:
            if not token.startswith("-") and "=" not in token:
                self.features.set(token)  # a bare flag (WHOX): FeatureSet would skip it
            else:
                self.features.load_feature(token)

    def _cap_update(self, line: IrcLine) -> None:
        """CAP ACK/NEW/DEL after registration (cap-notify)."""
        sub = line.param(1).upper()
        names = line.params[-1].split() if len(line.params) > 2 else []
        if sub == "DEL":
            for name in names:
                self.caps.discard(name)
                self.offered.pop(name, None)
        elif sub == "NEW":
            for item in names:
                name, _, value = item.partition("=")
                self.offered[name] = value
            if not self.registered:
                return  # services linked mid-registration: the session logs in after 001
            new = [n.partition("=")[0] for n in names
                   if n.partition("=")[0] in WANTED_CAPS and n.partition("=")[0] not in self.caps]
            if "sasl" in self.offered and self.account is None and self._sasl_wanted():
                new.append("sasl")  # services came (back): log in now
            if new:
                self.send("CAP", "REQ", " ".join(new))
        elif sub == "ACK" and self.registered:
            for name in names:
                if name.startswith("-"):
                    self.caps.discard(name[1:])
                else:
                    self.caps.add(name)
            if "sasl" in names and self.account is None and not self._late_sasl:
                self._start_late_sasl()

    def _start_late_sasl(self) -> None:
        self._late_sasl = "mechanism"
        self._late_sasl_since = time.monotonic()
        self.send("AUTHENTICATE", self.sasl_mechanism)

    def relogin_sasl(self) -> bool:
        """SASL again after registration (IRCv3 sasl-3.2), when the server offers it now and
        it is configured: True when a login is under way. One that got no answer for
        `SASL_STALL` seconds (services went away mid-login) is started over."""
        if not self.registered or not self._sasl_wanted():
            return False
        if self._late_sasl and time.monotonic() - self._late_sasl_since < SASL_STALL:
            return True
        if "sasl" in self.caps:
            self._start_late_sasl()
        else:
            self._late_sasl = ""
            self.send("CAP", "REQ", "sasl")
        return True

    def _late_sasl_step(self, line: IrcLine) -> None:
        """SASL after registration, when services appear later than we connected."""
        if line.command == "AUTHENTICATE" and self._late_sasl == "mechanism":
            self._late_sasl = "sent"
            self._send_sasl_response()
        elif line.command in SASL_DONE or (line.command in SASL_FAILED and line.command != "908"):
            if line.command in SASL_FAILED:
                log.warning("%s: SASL login failed (%s)", self.net.network, line.params[-1:])
            self._late_sasl = ""

    # -- registration --------------------------------------------------------------------
    async def register(self) -> IrcLine:
        """CAP LS 302, NICK, USER; request capabilities, SASL when configured; fall back
        to plain RFC 1459 when the server knows no CAP. Returns the 001 line."""
        self.send("CAP", "LS", "302")
        self.send("NICK", self.nick)
        self.send("USER", self.user, "0", "*", self.net.realname)
        listing: list[str] = []
        cap_open = True  # we owe the server a CAP END
        sasl_step = ""
        while True:
            line = await self.read()
            cmd = line.command
            if cmd == "CAP":
                sub = line.param(1).upper()
                if sub == "LS":
                    listing.extend(line.params[-1].split())
                    if line.param(2) == "*" and len(line.params) > 3:
                        continue  # more LS lines follow
                    for item in listing:
                        name, _, value = item.partition("=")
                        self.offered[name] = value
                    want = [c for c in WANTED_CAPS if c in self.offered]
                    if self._sasl_wanted():
                        want.append("sasl")
                    if want:
                        self.send("CAP", "REQ", " ".join(want))
                    else:
                        self.send("CAP", "END")
                        cap_open = False
                elif sub == "ACK":
                    for name in line.params[-1].split():
                        if not name.startswith("-"):
                            self.caps.add(name)
                    if "sasl" in self.caps and not sasl_step:
                        sasl_step = "mechanism"
                        self.send("AUTHENTICATE", self.sasl_mechanism)
                    elif cap_open and not sasl_step:
                        self.send("CAP", "END")
                        cap_open = False
                elif sub == "NAK":
                    log.warning("%s: server refused capabilities %s", self.net.network,
                                line.params[-1])
                    if cap_open and not sasl_step:
                        self.send("CAP", "END")
                        cap_open = False
            elif cmd == "AUTHENTICATE" and sasl_step == "mechanism" and line.param(0) == "+":
                sasl_step = "sent"
                self._send_sasl_response()
            elif cmd == "900":
                self.account = line.param(2) or None
            elif cmd in SASL_DONE or cmd in SASL_FAILED:
                if cmd in SASL_FAILED:
                    log.warning("%s: SASL %s login%s failed (%s %s); continuing without an "
                                "account", self.net.network, self.sasl_mechanism,
                                f" as {self.net.sasl_account}" if self.net.sasl_account else "",
                                cmd, line.params[-1] if line.params else "")
                if cap_open and cmd != "908":  # 908 (mechanism list) precedes 904
                    self.send("CAP", "END")
                    cap_open = False
            elif cmd in ("421", "451", "410") and line.param(1).upper() == "CAP":
                cap_open = False  # a server without CAP: plain registration continues
            elif cmd in NICK_ERRORS:
                self.nick = self._next_nick(line.param(1) or self.nick)
                self.send("NICK", self.nick)
            elif cmd == "001":
                self.registered = True
                self.nick = line.param(0, self.nick)
                words = line.params[-1].split() if line.params else []
                if words and "!" in words[-1] and "@" in words[-1] and self.is_me(nick_of(words[-1])):
                    self.source = words[-1]
                return line

    @property
    def sasl_mechanism(self) -> str:
        return self.net.sasl_mechanism

    def _sasl_wanted(self) -> bool:
        if "sasl" not in self.offered:
            return False
        if self.sasl_mechanism == "EXTERNAL":
            if not self.net.tls_certfile:
                return False
        elif not (self.net.sasl_account and self.password):
            return False
        mechs = self.offered["sasl"]
        return not mechs or self.sasl_mechanism in mechs.upper().split(",")

    def _send_sasl_response(self) -> None:
        """The answer to the server's `AUTHENTICATE +`: PLAIN credentials, or for EXTERNAL
        an empty response (the server takes the account from our client certificate)."""
        if self.sasl_mechanism == "EXTERNAL":
            self.send("AUTHENTICATE", "+")
            return
        account = self.net.sasl_account or ""
        payload = base64.b64encode(f"{account}\0{account}\0{self.password}".encode()).decode()
        chunks = [payload[i:i + 400] for i in range(0, len(payload), 400)]
        for chunk in chunks:
            self.send("AUTHENTICATE", chunk, secret=True)
        if not chunks or len(chunks[-1]) == 400:
            self.send("AUTHENTICATE", "+")

    def _next_nick(self, refused: str) -> str:
        """The next alternate; when they run out, the nick with a growing suffix."""
        for candidate in self._nicks:
            if not self.is_me(candidate):
                return candidate
        base = self.net.nick
        nicklen = getattr(self.features, "nicklen", 16)
        nicklen = nicklen if isinstance(nicklen, int) else 16
        if self.fold(refused) != self.fold(base + "_") and len(base) < nicklen:
            return base + "_"
        suffix = str(random.randint(10, 9999))
        return base[:max(1, nicklen - len(suffix) - 1)] + "_" + suffix
