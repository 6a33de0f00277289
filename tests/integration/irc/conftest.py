"""Fixtures for IRC integration tests: real servers, raw-socket human clients, the bot's App.

Servers are session-scoped (starting InspIRCd + Anope takes a few seconds); each test uses
its own channel so tests do not see each other. Human clients are plain sockets speaking
just enough IRC (and SASL PLAIN) to act like people in a channel.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import re
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from todobot.bot.app import App
from todobot.bot.config import Config, IrcNetwork, Throttle
from todobot.bot.irc import IrcTransport
from todobot.bot.irc.connection import IrcLine, parse_line
from todobot.storage import Repository
from tests.servers.ircd import IrcServer, missing_binaries, start_inspircd, start_ngircd

WAIT = 45.0  # generous: registrations take ~1 s each on InspIRCd and machines are shared
BOT_PASSWORD_ENV = "TODOBOT_IT_SASL_PASSWORD"
_ids = itertools.count(1)


def password_for(account: str) -> str:
    return f"pw-{account}-7351"


def unavailable(reason: str) -> None:
    if os.environ.get("TODOBOT_REQUIRE_SERVERS") == "1":
        pytest.fail(f"IRC server required but unavailable: {reason}")
    pytest.skip(reason)


def _launch(start: Callable[..., IrcServer], path: Path, *binaries: str, **kw: Any) -> IrcServer:
    """Start a server; a missing binary skips (or fails under TODOBOT_REQUIRE_SERVERS=1),
    a server that is installed but does not come up is a failure."""
    missing = missing_binaries(*binaries)
    if missing:
        unavailable(f"not installed: {', '.join(missing)} (run scripts/install-irc-servers.sh)")
    return start(path, **kw)


# -- human clients ---------------------------------------------------------------------------


class Human:
    """A person on IRC: a raw socket, every line kept, PINGs answered."""

    def __init__(self, nick: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.nick = nick
        self.reader = reader
        self.writer = writer
        self.lines: list[IrcLine] = []
        self.raw: list[bytes] = []
        self._cursor = 0
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.account: str | None = None

    @classmethod
    async def connect(cls, server: IrcServer, nick: str, *, account: str | None = None,
                      identify: str | None = None,
                      client_cert: tuple[str, str] | None = None,
                      user: str | None = None) -> "Human":
        """`account`: log in by SASL PLAIN; `identify`: by `PRIVMSG NickServ :IDENTIFY`
        after registering (networks without SASL); `client_cert`: (cert, key) to connect to
        the server's TLS listener with; `user`: the USER name (default: from the nick), so
        two clients share a user@host or do not."""
        if client_cert:
            ctx = ssl.create_default_context(cafile=server.cert)
            ctx.load_cert_chain(*client_cert)
            reader, writer = await asyncio.open_connection(server.host, server.tls_port, ssl=ctx)
        else:
            reader, writer = await asyncio.open_connection(server.host, server.port)
        h = cls(nick, reader, writer)
        h._task = asyncio.create_task(h._read_loop())
        if account:
            h.send("CAP LS 302")
        h.send(f"NICK {nick}", f"USER {user or nick.lower()[:9]} 0 * :{nick} (test)")
        if account:
            await h.expect(lambda ln: ln.command == "CAP" and ln.param(1) == "LS")
            h.send("CAP REQ :sasl")
            await h.expect(lambda ln: ln.command == "CAP" and ln.param(1) == "ACK")
            h.send("AUTHENTICATE PLAIN")
            await h.expect(lambda ln: ln.command == "AUTHENTICATE")
            blob = f"{account}\0{account}\0{password_for(account)}".encode()
            h.send("AUTHENTICATE " + base64.b64encode(blob).decode())
            done = await h.expect(lambda ln: ln.command in ("903", "904", "905"))
            assert done.command == "903", f"SASL login of {account} failed: {done}"
            h.account = account
            h.send("CAP END")
        welcome = await h.expect(lambda ln: ln.command in ("001", "433"))
        assert welcome.command == "001", f"{nick} could not register: {welcome}"
        if identify:
            h.say("NickServ", f"IDENTIFY {identify} {password_for(identify)}")
            said = await h.hear("NickServ", r"(?i)password|recogni[sz]ed|identified", command="NOTICE")
            assert "accepted" in said.lower(), f"IDENTIFY as {identify} failed: {said}"
            h.account = identify
        return h

    async def _read_loop(self) -> None:
        while True:
            raw = await self.reader.readline()
            if not raw:
                self._changed.set()
                return
            self.raw.append(raw)
            line = parse_line(raw.decode("utf-8", "replace"))
            if line is None:
                continue
            if line.command == "PING":
                self.send(f"PONG :{line.param(0)}")
            self.lines.append(line)
            self._changed.set()

    def send(self, *lines: str) -> None:
        for ln in lines:
            self.writer.write(ln.encode() + b"\r\n")

    def say(self, target: str, text: str) -> None:
        self.send(f"PRIVMSG {target} :{text}")

    async def expect(self, pred: Callable[[IrcLine], bool], timeout: float = WAIT) -> IrcLine:
        """The next line (after the last one returned) that satisfies `pred`."""
        async with asyncio.timeout(timeout):
            while True:
                while self._cursor < len(self.lines):
                    ln = self.lines[self._cursor]
                    self._cursor += 1
                    if pred(ln):
                        return ln
                if self._task is not None and self._task.done():
                    raise ConnectionError(f"{self.nick}: connection closed")
                self._changed.clear()
                await self._changed.wait()

    async def hear(self, sender: str, pattern: str, timeout: float = WAIT,
                   command: str = "PRIVMSG") -> str:
        """Text of the next PRIVMSG (or NOTICE) from `sender` that matches `pattern`."""
        rx = re.compile(pattern)
        ln = await self.expect(lambda ln: ln.command == command and (ln.nick or "").lower()
                               == sender.lower() and bool(rx.search(ln.param(1))), timeout)
        return ln.param(1)

    def heard(self, sender: str) -> list[str]:
        """Everything `sender` said so far (PRIVMSG and NOTICE), oldest first."""
        return [ln.param(1) for ln in self.lines if ln.command in ("PRIVMSG", "NOTICE")
                and (ln.nick or "").lower() == sender.lower()]

    async def join(self, channel: str) -> None:
        self.send(f"JOIN {channel}")
        await self.expect(lambda ln: ln.command == "366" and ln.param(1).lower() == channel.lower())

    async def quit(self) -> None:
        """QUIT and wait (briefly) for the server to close the link, so the nick is free for
        the next test."""
        try:
            self.send("QUIT :bye")
            await asyncio.wait_for(self.writer.drain(), 5)
            if self._task is not None:
                await asyncio.wait_for(asyncio.shield(self._task), 5)
        except (OSError, asyncio.TimeoutError, ConnectionError):
            pass
        if self._task is not None:
            self._task.cancel()
        self.writer.close()


async def register_account(server: IrcServer, account: str) -> None:
    """Register `account` with NickServ (Anope logs the registering client in)."""
    h = await Human.connect(server, account)
    try:
        h.say("NickServ", f"REGISTER {password_for(account)} {account}@test.local")
        await h.hear("NickServ", r"(?i)registered", command="NOTICE")
    finally:
        await h.quit()


# -- servers ---------------------------------------------------------------------------------


def _register_accounts_sync(server: IrcServer, *accounts: str) -> None:
    async def go() -> None:
        for account in accounts:
            await register_account(server, account)
    asyncio.run(go())


@pytest.fixture(scope="session")
def inspircd(tmp_path_factory) -> IrcServer:
    """InspIRCd + Anope with flood limits lifted; accounts todobot, ijc and george exist."""
    server = _launch(start_inspircd, tmp_path_factory.mktemp("inspircd"), "inspircd", "anope")
    try:
        _register_accounts_sync(server, "todobot", "ijc", "george")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def inspircd_default_limits(tmp_path_factory) -> IrcServer:
    """InspIRCd with its own default flood limits (no services)."""
    server = _launch(start_inspircd, tmp_path_factory.mktemp("inspircd-defaults"), "inspircd",
                     default_limits=True, services=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oftc_like(tmp_path_factory) -> IrcServer:
    """InspIRCd + Anope shaped like OFTC: NickServ accounts, no SASL, no IRCv3 account
    capabilities; a TLS listener with a certificate of its own. Accounts todobot, ijc."""
    server = _launch(start_inspircd, tmp_path_factory.mktemp("oftc"), "inspircd", "anope",
                     "openssl", network="oftcnet", oftc_like=True, tls=True,
                     default_limits=True)
    try:
        _register_accounts_sync(server, "todobot", "ijc")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def oftc_like_no_monitor(tmp_path_factory) -> IrcServer:
    """The OFTC-like network without MONITOR (InspIRCd's `monitor` module not loaded), plain
    text. Account ijc (and todobot) exist."""
    server = _launch(start_inspircd, tmp_path_factory.mktemp("oftc-nomon"), "inspircd", "anope",
                     network="oftcnet", oftc_like=True, monitor=False, default_limits=True)
    try:
        _register_accounts_sync(server, "todobot", "ijc")
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def inspircd_account_tag_only(tmp_path_factory) -> IrcServer:
    """InspIRCd + Anope with account-tag but neither extended-join nor account-notify (the
    `ircv3` module left out). Accounts todobot, ijc and george exist."""
    server = _launch(start_inspircd, tmp_path_factory.mktemp("inspircd-tag"), "inspircd",
                     "anope", network="tagnet", without=("ircv3",))
    try:
        _register_accounts_sync(server, "todobot", "ijc", "george")
        yield server
    finally:
        server.stop()


@pytest.fixture
def inspircd_private(tmp_path) -> IrcServer:
    """An InspIRCd + Anope of this test's own (to restart it mid-test)."""
    server = _launch(start_inspircd, tmp_path / "inspircd", "inspircd", "anope")
    try:
        _register_accounts_sync(server, "todobot", "ijc")
        yield server
    finally:
        server.stop()


@pytest.fixture
def ngircd_anope(tmp_path) -> IrcServer:
    """An ngIRCd of this test's own with Anope linked (the RFC-only, OFTC-like variant), with
    the accounts `todobot` and `ijc` registered."""
    server = _launch(start_ngircd, tmp_path / "ngircd", "ngircd", "anope", network="ngsvc",
                     services=True)
    try:
        _register_accounts_sync(server, "todobot", "ijc")
        yield server
    finally:
        server.stop()


@pytest.fixture
def ngircd_private(tmp_path) -> IrcServer:
    """An ngIRCd of this test's own (to take it down mid-test)."""
    server = _launch(start_ngircd, tmp_path / "ngircd", "ngircd")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def ngircd(tmp_path_factory) -> IrcServer:
    server = _launch(start_ngircd, tmp_path_factory.mktemp("ngircd"), "ngircd")
    try:
        yield server
    finally:
        server.stop()


# -- the bot ---------------------------------------------------------------------------------


class Bot:
    def __init__(self, app: App, net: IrcNetwork) -> None:
        self.app = app
        self.net = net

    @property
    def transport(self) -> IrcTransport:
        return next(t for t in self.app.transports if isinstance(t, IrcTransport))

    @property
    def nick(self) -> str:
        conn = self.transport._conn
        return conn.nick if conn is not None else self.net.nick

    @property
    def repo(self) -> Repository:
        assert self.app.repo is not None
        return self.app.repo

    async def wait_ready(self, timeout: float = WAIT) -> None:
        await asyncio.wait_for(self.transport.ready.wait(), timeout)


def channel_name(prefix: str = "rel") -> str:
    return f"#{prefix}{os.getpid() % 1000}x{next(_ids)}"


@pytest.fixture
def bot_factory(tmp_path, monkeypatch):
    """`async with bot_factory(server, channels=[...], ...) as bot:` runs the whole App."""
    monkeypatch.setenv(BOT_PASSWORD_ENV, password_for("todobot"))

    @asynccontextmanager
    async def make(server: IrcServer, *, channels: list, sasl: bool = True, nick: str = "todobot",
                   alternates: list[str] | None = None, throttle: Throttle | None = None,
                   admins: list[str] | None = None, seed: Callable | None = None,
                   wait: bool = True, config_kw: dict | None = None, tls: bool = False,
                   **net_kw: Any) -> AsyncIterator[Bot]:
        """`tls`: connect to the server's TLS listener, verifying its certificate
        (`tls_ca` defaults to the server's own)."""
        if tls:
            net_kw.setdefault("tls_ca", server.cert)
        net = IrcNetwork(
            network=server.network, host=server.host, port=server.tls_port if tls else server.port,
            tls=tls, nick=nick,
            alternates=alternates or [f"{nick}2"], channels=channels,
            sasl_account="todobot" if sasl else None,
            sasl_password_env=BOT_PASSWORD_ENV if sasl else None,
            throttle=throttle or Throttle(burst=20, rate=20), **net_kw)
        db_path = tmp_path / f"todo-{next(_ids)}.sqlite3"
        config = Config(database=str(db_path), admins=admins or [f"irc:{server.network}/ijc"],
                        default_release="4.2", irc=[net], **(config_kw or {}))
        app = App(config)
        await app.initialize()
        try:
            if seed is not None:
                assert app.repo is not None
                async with app.repo.session("test") as s:
                    await seed(s)
            await app.start()
            bot = Bot(app, net)
            if wait:
                await bot.wait_ready()
            yield bot
        finally:
            await app.stop()

    return make


@pytest.fixture
async def humans():
    """`await humans(server, nick, account=...)`; all quit at teardown."""
    made: list[Human] = []

    async def connect(server: IrcServer, nick: str, *, account: str | None = None,
                      identify: str | None = None, channel: str | None = None,
                      user: str | None = None) -> Human:
        h = await Human.connect(server, nick, account=account, identify=identify, user=user)
        made.append(h)
        if channel:
            await h.join(channel)
        return h

    yield connect
    for h in made:
        await h.quit()


async def seed_release(s, titles: list[tuple[str, str, str]]) -> None:
    """Release 4.2 with (area, severity, title) items."""
    rel = await s.create_release("4.2")
    for area, severity, title in titles:
        await s.add_item(rel, area=area, severity=severity, title=title)
