"""Fixtures for the mail transport against real servers: Dovecot (IMAP, IDLE) holds the bot's
mailbox, and an aiosmtpd server stands in for the list's mail server, keeping every message
it receives byte for byte. Mail is delivered to the bot with IMAP APPEND.

Dovecot is started once per session; each test reads its own IMAP folder, so tests do not
see each other's mail.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import aioimaplib
import pytest
from aiosmtpd.controller import Controller

from todobot.bot.app import App
from todobot.bot.config import Config
from todobot.bot.mail import MailTransport
from todobot.storage import Repository
from todobot.storage.layouts.xen42 import parse_mail
from tests.servers.dovecot import Dovecot, start_dovecot

BOT = "todobot@example.org"
BOT_PASSWORD = "imap-secret-4711"
PASSWORD_ENV = "TODOBOT_IT_IMAP_PASSWORD"
LIST = "xen-devel@lists.example.org"
AUTHSERV = "mx.example.org"
SEED = Path(__file__).parents[3] / "storage" / "seed" / "xen-4.2.txt"
WAIT = 30.0
# Unauthenticated mail names its sender by the address, never the From display name.
IAN = "ian.jackson@eu.citrix.com"
_folders = itertools.count(1)
_barriers = itertools.count(1)
BARRIER = "barrier@example.org"  # sends the barrier mails; its acknowledgements are not the test's


def unavailable(reason: str) -> None:
    if os.environ.get("TODOBOT_REQUIRE_SERVERS") == "1":
        pytest.fail(f"mail server required but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dovecot() -> Dovecot:
    # Not under pytest's temp root: pytest keeps that at mode 700, and Dovecot's processes
    # (dovenull) must reach their files.
    workdir = Path(tempfile.mkdtemp(prefix="todobot-dovecot-"))
    try:
        server = start_dovecot(workdir, {BOT: BOT_PASSWORD})
    except FileNotFoundError:
        shutil.rmtree(workdir, ignore_errors=True)
        unavailable("dovecot is not installed (run scripts/install-mail-servers.sh)")
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


# -- the list's SMTP server -------------------------------------------------------------------


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes  # the DATA exactly as it arrived

    @property
    def msg(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=default)


@dataclass
class SmtpSink:
    """aiosmtpd as the receiving server; `refuse` makes it answer 451 (try again later)."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    refuse: int = 0  # this many DATA commands are refused
    refused: int = 0
    # Called with each mail kept, before the sender is told (a test kills the sender there).
    on_received: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refused < self.refuse:
            self.refused += 1
            return "451 4.3.0 try again later"
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                      bytes(envelope.original_content or envelope.content)))
        if self.on_received is not None:
            self.on_received(self.received[-1])
        return "250 2.0.0 OK"

    async def wait(self, count: int, timeout: float = WAIT) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} mails arrived, expected {count}: "
                                     f"{[r.msg['Subject'] for r in self.received]}")
            await asyncio.sleep(0.05)
        return list(self.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.rcpt_tos]


class SinkController(Controller):
    """aiosmtpd listening on a port the kernel picks (port 0), read back into `sink.port` once
    it listens: no port is chosen, closed and bound again. Overrides aiosmtpd 1.4's
    `_create_server` (its controller can only bind the port it is given)."""

    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(sink, hostname="127.0.0.1", port=0, **kwargs)
        self.sink = sink

    async def _listen(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(self._factory_invoker, host=self.hostname, port=0,
                                               ssl=self.ssl_context)
        self.port = self.sink.port = server.sockets[0].getsockname()[1]
        return server

    def _create_server(self) -> Any:
        return self._listen()


@pytest.fixture
def smtp_sink() -> SmtpSink:
    sink = SmtpSink()
    controller = SinkController(sink)
    controller.start()
    yield sink
    controller.stop()


# -- the bot's mailbox ------------------------------------------------------------------------


class Mailbox:
    """The test's side of the bot's IMAP account: deliver with APPEND, read flags."""

    def __init__(self, server: Dovecot, folder: str) -> None:
        self.server = server
        self.folder = folder

    @asynccontextmanager
    async def _imap(self) -> AsyncIterator[aioimaplib.IMAP4]:
        imap = aioimaplib.IMAP4("127.0.0.1", self.server.port, timeout=10)
        await imap.wait_hello_from_server()
        assert (await imap.login(BOT, BOT_PASSWORD)).result == "OK"
        try:
            yield imap
        finally:
            await imap.logout()

    async def create(self) -> None:
        async with self._imap() as imap:
            await imap.create(self.folder)

    async def deliver(self, raw: bytes) -> None:
        async with self._imap() as imap:
            r = await imap.append(raw, mailbox=self.folder)
            assert r.result == "OK", r

    async def flags(self) -> list[bytes]:
        """The FLAGS of every message in the folder, in order."""
        async with self._imap() as imap:
            await imap.select(self.folder)
            r = await imap.fetch("1:*", "(FLAGS)")
            return [bytes(line) for line in r.lines if b"FETCH" in bytes(line)]

    async def count(self) -> int:
        return len(await self.flags())

    async def wait_all_seen(self, n: int, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            flags = await self.flags()
            if len(flags) >= n and all(b"\\Seen" in f for f in flags):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not all seen: {flags}")
            await asyncio.sleep(0.1)


@pytest.fixture
async def mailbox(dovecot) -> Mailbox:
    box = Mailbox(dovecot, f"test{next(_folders)}")
    await box.create()
    return box


# -- the bot ------------------------------------------------------------------------------------


@dataclass
class Bot:
    app: App
    transport: MailTransport

    @property
    def repo(self) -> Repository:
        assert self.app.repo is not None
        return self.app.repo

    async def item_titles(self) -> list[str]:
        async with self.repo.session("test", write=False) as s:
            rel = await s.require_release("4.2")
            return [it.title for it in await s.items(rel)]


def mail_config(tmp_path: Path, dovecot: Dovecot, sink: SmtpSink, folder: str, **extra: Any) -> Config:
    entry = {"list": LIST, "from": f"todobot <{BOT}>", "release": "4.2",
             "authserv_id": AUTHSERV,
             "smtp": {"host": "127.0.0.1", "port": sink.port, "starttls": False, "tls": False},
             "imap": {"host": "127.0.0.1", "port": dovecot.port, "tls": False, "username": BOT,
                      "password_env": PASSWORD_ENV, "folder": folder}}
    entry.update(extra.pop("entry", {}))
    entry["imap"].update(extra.pop("imap", {}))
    return Config(database=str(tmp_path / "todo.sqlite3"), default_release="4.2",
                  admins=["mail:Ian.Campbell@citrix.com"], mail=[entry], **extra)


async def seed_42(repo: Repository) -> None:
    """The Xen 4.2 list of 6 August 2012, as `todobot demo` has it."""
    async with repo.session("test") as s:
        if await s.release("4.2") is None:
            await s.import_list("4.2", parse_mail(SEED.read_text(encoding="utf-8"), "4.2"))


@pytest.fixture
def bot_factory(tmp_path, dovecot, smtp_sink, mailbox, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, BOT_PASSWORD)

    @asynccontextmanager
    async def make(seed=None, **config_kw: Any) -> AsyncIterator[Bot]:
        config = mail_config(tmp_path, dovecot, smtp_sink, mailbox.folder, **config_kw)
        app = App(config)
        await app.initialize()
        assert app.repo is not None
        await seed_42(app.repo)
        if seed is not None:
            async with app.repo.session("test") as s:
                await seed(s)
        await app.start()
        transport = next(t for t in app.transports if isinstance(t, MailTransport))
        try:
            if transport.inbox is not None:
                await asyncio.wait_for(transport.inbox.connected.wait(), WAIT)
            yield Bot(app, transport)
        finally:
            await app.stop()

    return make


def eml(name: str, **headers: str) -> bytes:
    """A mail of tests/data/mail with some headers replaced (e.g. In-Reply-To the bot's mail)."""
    raw = (Path(__file__).parents[2] / "data" / "mail" / name).read_bytes()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    out: list[bytes] = []
    skip = False
    names = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not skip:
                out.append(line)
            continue
        key = line.split(b":", 1)[0].decode().lower()
        skip = key in names
        if not skip:
            out.append(line)
    out += [f"{k.title()}: {v}".encode() for k, v in names.items() if v]
    return b"\r\n".join(out) + b"\r\n\r\n" + body


def mail(from_: str, body: str, *, subject: str = "Re: Xen 4.2 TODO / Release Plan",
         message_id: str, in_reply_to: str | None = None, **headers: str) -> bytes:
    lines = [f"From: {from_}", f"To: {LIST}", f"Subject: {subject}", f"Message-ID: {message_id}",
             "Date: Mon, 13 Aug 2012 08:05:00 +0100", "MIME-Version: 1.0",
             "Content-Type: text/plain; charset=utf-8"]
    if in_reply_to:
        lines += [f"In-Reply-To: {in_reply_to}", f"References: {in_reply_to}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


async def barrier(bot: Bot, mailbox: Mailbox, sink: SmtpSink, *, in_reply_to: str) -> None:
    """Everything the bot would send for the mail delivered so far has been sent.

    Delivers a `!whoami` to the thread and waits for its acknowledgement, then for no
    acknowledgement to be left pending: the inbox handles mail in order and commits each
    acknowledgement before the next mail, and one is deleted only after it was sent. Count
    mail with `not_barrier` afterwards."""
    message_id = f"<barrier-{next(_barriers)}@example.org>"
    await mailbox.deliver(mail(f"Barrier <{BARRIER}>", "!whoami\n", message_id=message_id,
                               in_reply_to=in_reply_to))
    deadline = time.monotonic() + WAIT
    while True:
        async with bot.repo.session("test", write=False) as s:
            pending = await s.kv_prefixed("mail.ack-pending/")
        if not pending and any(r.msg["In-Reply-To"] == message_id for r in sink.to(BARRIER)):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the barrier {message_id} was not answered; pending: {pending}")
        await asyncio.sleep(0.05)


def not_barrier(received: list[Received]) -> list[Received]:
    return [r for r in received if BARRIER not in r.rcpt_tos]


# -- a real mailing list: Mailman 3 with Postfix, delivering to Dovecot -------------------------

LIST_AUTHSERV = "lists.example.org"  # the list's receiving server (Postfix "in")
MEMBER_PASSWORD = "member-secret-1234"
MEMBERS = {"george.dunlap@eu.citrix.com": "George Dunlap", "jbeulich@suse.com": "Jan Beulich",
           "ian.campbell@citrix.com": "Ian Campbell"}
MEMBER_DOMAINS = ["example.org", "eu.citrix.com", "suse.com", "citrix.com"]


@pytest.fixture(scope="module")
def mailing_list():
    """Dovecot (the bot's and the members' mailboxes), Postfix and Mailman, for one module;
    each test makes its own list and bot address (`list_bot`)."""
    from tests.servers.mailman import missing, start_mailing_list

    if gone := missing():
        unavailable(f"{', '.join(gone)} not installed (run scripts/install-mailman.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="todobot-list-"))
    users = {BOT: BOT_PASSWORD, **{m: MEMBER_PASSWORD for m in MEMBERS}}
    servers = start_mailing_list(workdir, users, MEMBER_DOMAINS, mx_id=AUTHSERV,
                                 list_id=LIST_AUTHSERV)
    yield servers
    servers.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@asynccontextmanager
async def list_bot(servers, name: str, *, list_authserv_id: str | None = LIST_AUTHSERV,
                   tmp_path: Path, seed=None, **entry_extra: Any) -> AsyncIterator[tuple[Bot, str]]:
    """A list NAME@lists.example.org with the members and a bot of its own (todobot-NAME@,
    subscribed), reading its INBOX and sending through Postfix. Yields (bot, list address)."""
    bot_addr = f"todobot-{name}@example.org"
    servers.add_user(bot_addr, BOT_PASSWORD)
    address = await asyncio.to_thread(servers.create_list, name,
                                      members={bot_addr: "todobot", **MEMBERS})
    before = os.environ.get(PASSWORD_ENV)
    os.environ[PASSWORD_ENV] = BOT_PASSWORD
    entry = {"list": address, "from": f"todobot <{bot_addr}>", "release": "4.2",
             "authserv_id": AUTHSERV, "list_authserv_id": list_authserv_id,
             "smtp": {"host": "127.0.0.1", "port": servers.smtp_in, "starttls": False, "tls": False},
             "imap": {"host": "127.0.0.1", "port": servers.dovecot.port, "tls": False,
                      "username": bot_addr, "password_env": PASSWORD_ENV, "folder": "INBOX"},
             **entry_extra}
    config = Config(database=str(tmp_path / f"{name}.sqlite3"), default_release="4.2",
                    admins=["mail:Ian.Campbell@citrix.com"], mail=[entry])
    app = App(config)
    await app.initialize()
    assert app.repo is not None
    await seed_42(app.repo)
    if seed is not None:
        async with app.repo.session("test") as s:
            await seed(s)
    await app.start()
    transport = next(t for t in app.transports if isinstance(t, MailTransport))
    try:
        assert transport.inbox is not None
        await asyncio.wait_for(transport.inbox.connected.wait(), WAIT)
        yield Bot(app, transport), address
    finally:
        await app.stop()
        if before is None:
            os.environ.pop(PASSWORD_ENV, None)
        else:
            os.environ[PASSWORD_ENV] = before


async def read_mailbox(servers, user: str, password: str = MEMBER_PASSWORD) -> list[EmailMessage]:
    """Every mail in USER's INBOX on the list's Dovecot."""
    imap = aioimaplib.IMAP4("127.0.0.1", servers.dovecot.port, timeout=10)
    await imap.wait_hello_from_server()
    assert (await imap.login(user, password)).result == "OK"
    try:
        await imap.select("INBOX")
        r = await imap.fetch("1:*", "(BODY.PEEK[])")
        return [message_from_bytes(bytes(line), policy=default) for line in r.lines
                if isinstance(line, (bytes, bytearray)) and len(line) > 200]
    finally:
        await imap.logout()


async def wait_mail(servers, user: str, match, *, password: str = MEMBER_PASSWORD,
                    timeout: float = 90.0) -> EmailMessage:
    """The first mail in USER's INBOX for which `match(msg)` holds, once it has arrived."""
    deadline = time.monotonic() + timeout
    while True:
        found = [m for m in await read_mailbox(servers, user, password) if match(m)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no such mail for {user} within {timeout} s\n{servers.logs()}")
        await asyncio.sleep(0.2)
