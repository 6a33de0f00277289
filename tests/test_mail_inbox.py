"""Reading the mailbox (bot/mail/inbox.py) against a scripted IMAP server in place of
aioimaplib's client: what is fetched, what is flagged seen and what is left unseen, and how a
refused login, a lost connection, a silent server or an unexpected error is logged and retried.
The real Dovecot path is in tests/integration/mail/."""

from __future__ import annotations

import asyncio
import logging
import ssl
from types import SimpleNamespace

import pytest

from tests.harness import Chat
from todobot.bot.config import MailImap
from todobot.bot.mail import MailTransport
from todobot.bot.mail import inbox as inbox_mod
from todobot.bot.mail.inbox import Inbox

from .test_mail_transport import LIST, FakeSmtp, mail

OK = "OK"


def resp(result: str = OK, *lines, tail: str = "completed") -> SimpleNamespace:
    """As aioimaplib answers: the untagged lines, then the tagged line's text."""
    return SimpleNamespace(result=result, lines=[x.encode() if isinstance(x, str) else x
                                                 for x in lines] + [tail.encode()])


class Mailbox:
    """The server's side: its messages (uid -> raw, None for one without a body), who may log
    in, whether it offers IDLE; `sessions` records each connection's commands."""

    def __init__(self, *, idle: bool = False) -> None:
        self.messages: dict[int, bytes | None] = {}
        self.seen: set[int] = set()
        self.idle = idle
        self.refuse_login = 0  # the next N logins are refused
        self.broken_select = 0  # the next N selects raise (a bug somewhere)
        self.silent: str | None = None  # a command the server never answers
        self.sessions: list[FakeImap] = []
        self.connections = asyncio.Queue()  # each new connection, for tests to wait on
        self.arrives: bytes | None = None  # a mail that arrives during the next search

    def unseen(self) -> list[int]:
        return sorted(set(self.messages) - self.seen)


class FakeImap:
    """What Inbox uses of aioimaplib.IMAP4, answering from a Mailbox."""

    box: Mailbox

    def __init__(self, host, port, *, timeout, ssl_context, conn_lost_cb) -> None:
        self.host, self.port, self.ssl_context = host, port, ssl_context
        self.lost_cb = conn_lost_cb
        self.commands: list[str] = []
        self.closed = False
        self.pushed = asyncio.Event()
        self.idle_ended = asyncio.Event()
        self.protocol = SimpleNamespace(transport=SimpleNamespace(close=self._close))
        self.box.sessions.append(self)
        self.box.connections.put_nowait(self)

    def _close(self) -> None:
        self.closed = True

    async def _answer(self, name: str, value):
        self.commands.append(name)
        if self.box.silent == name:
            await asyncio.Event().wait()
        return value

    async def wait_hello_from_server(self):
        return await self._answer("hello", None)

    async def login(self, user, password):
        if self.box.refuse_login:
            self.box.refuse_login -= 1
            return await self._answer("login", resp("NO", tail="[AUTHENTICATIONFAILED] bad password"))
        return await self._answer("login", resp())

    async def select(self, folder):
        if self.box.broken_select:
            self.box.broken_select -= 1
            raise RuntimeError("select exploded")
        return await self._answer(f"select {folder}", resp())

    def has_capability(self, cap: str) -> bool:
        return cap == "IDLE" and self.box.idle

    async def uid_search(self, criteria, charset=None):
        lines = [" ".join(str(u) for u in self.box.unseen())]
        if self.box.arrives is not None:  # announced in this answer, not in its uid list
            self.box.messages[9] = self.box.arrives
            self.box.arrives = None
            lines.append("9 EXISTS")
        return await self._answer("search", resp(OK, *lines))

    async def uid(self, command, uid, *args):
        n = int(uid)
        if command == "fetch":
            raw = self.box.messages[n]
            lines = [f"{n} FETCH (UID {n} BODY[] {{{len(raw or b'')}}}"]
            if raw is not None:
                lines.append(bytearray(raw))
            return await self._answer(f"fetch {n}", resp(OK, *lines))
        self.box.seen.add(n)
        return await self._answer(f"store {n}", resp())

    async def idle_start(self, timeout):
        self.commands.append("idle")
        return asyncio.ensure_future(self.idle_ended.wait())

    async def wait_server_push(self, timeout):
        await self.pushed.wait()
        self.pushed.clear()
        return [b"* 1 EXISTS"]

    def idle_done(self) -> None:
        self.commands.append("done")
        self.idle_ended.set()

    async def logout(self):
        self.commands.append("logout")

    def drop(self) -> None:
        """The server goes away (aioimaplib calls conn_lost_cb)."""
        self.lost_cb(ConnectionResetError("reset"))


@pytest.fixture
def box(monkeypatch):
    mailbox = Mailbox()
    cls = type("BoundImap", (FakeImap,), {"box": mailbox})
    monkeypatch.setattr(inbox_mod.aioimaplib, "IMAP4", cls)
    return mailbox


class Reader:
    """An Inbox whose handler keeps each raw mail; `fail` lists bodies it fails on."""

    def __init__(self, cfg: MailImap) -> None:
        self.handled: list[bytes] = []
        self.fail: set[bytes] = set()
        self.done = asyncio.Event()
        self.inbox = Inbox(cfg, password="pw", handle=self.handle, where="list@example.org",
                           ssl_context=None)

    async def handle(self, raw: bytes) -> bool:
        self.handled.append(raw)
        self.done.set()
        return raw not in self.fail


async def running(reader: Reader):
    task = asyncio.create_task(reader.inbox.run())
    return task


async def stop(task: asyncio.Task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def plain(**kw) -> MailImap:
    return MailImap(host="127.0.0.1", port=1143, tls=False, username="bot", poll_seconds=3600, **kw)


async def test_each_unseen_mail_is_handled_once_then_flagged_seen_and_a_failure_stays_unseen(
        box, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    box.messages = {1: b"first", 2: b"breaks the handler", 3: None, 4: b"fourth"}
    reader = Reader(plain())
    reader.fail = {b"breaks the handler"}
    task = await running(reader)
    await reader.inbox.connected.wait()
    imap = box.sessions[0]
    while imap.commands.count("search") < 2:  # the pass that finds nothing new
        await asyncio.sleep(0)
    # Fetched in order, BODY.PEEK (nothing flagged by the fetch); flagged only once handled.
    assert reader.handled == [b"first", b"breaks the handler", b"fourth"]
    assert box.seen == {1, 3, 4}
    assert reader.inbox.failed == {2}
    # The failed one is not fetched again by this process, though the second search lists it.
    assert imap.commands.count("fetch 2") == 1
    logs = [r.getMessage() for r in caplog.records]
    assert any("uid 3 has no body; flagging it seen" in m for m in logs)
    assert any("polling every 3600 s" in m for m in logs)
    await stop(task)
    assert imap.closed and not reader.inbox.connected.is_set()


async def test_a_refused_login_is_logged_and_tried_again(box, caplog):
    box.refuse_login = 1
    box.messages = {7: b"hello"}
    reader = Reader(plain())
    task = await running(reader)
    await reader.done.wait()
    [warning] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "IMAP 127.0.0.1:1143: login: NO [AUTHENTICATIONFAILED] bad password" in warning.getMessage()
    assert "retrying in 1 s" in warning.getMessage()
    assert len(box.sessions) == 2 and box.sessions[0].closed
    assert box.sessions[0].commands[-1] == "logout"  # the refused session said goodbye
    await stop(task)
    assert box.seen == {7}


async def test_an_unexpected_error_is_logged_with_its_traceback_and_the_inbox_goes_on(box, caplog):
    box.broken_select = 1
    box.messages = {1: b"after the error"}
    reader = Reader(plain())
    task = await running(reader)
    await reader.done.wait()
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "IMAP session failed; retrying in 1 s" in error.getMessage() and error.exc_info
    await stop(task)
    assert reader.handled == [b"after the error"]


async def test_a_server_that_never_answers_is_given_up_on_and_reconnected(box, caplog,
                                                                          monkeypatch):
    monkeypatch.setattr(inbox_mod, "COMMAND_TIMEOUT", 0.01)
    box.silent = "select INBOX"
    reader = Reader(plain())
    task = await running(reader)
    while len(box.sessions) < 2:
        await box.connections.get()
    await stop(task)
    assert any("no answer within 0 s" in r.getMessage() for r in caplog.records)


async def test_idle_wakes_on_a_push_and_a_lost_connection_is_reconnected(box, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    box.idle = True
    reader = Reader(MailImap(host="127.0.0.1", port=1143, tls=False))  # no login: no username
    task = await running(reader)
    await reader.inbox.connected.wait()
    imap = box.sessions[0]
    while imap.commands[-1:] != ["idle"]:
        await asyncio.sleep(0)
    assert "login" not in imap.commands
    assert any("(IDLE)" in r.getMessage() for r in caplog.records)
    # New mail: the server pushes, IDLE is ended, the mail is fetched.
    box.messages[1] = b"pushed"
    imap.pushed.set()
    await reader.done.wait()
    while imap.commands.count("idle") < 2:
        await asyncio.sleep(0)
    assert "done" in imap.commands and box.seen == {1}
    # The server goes away during IDLE: no logout to a dead connection, a warning, a new session.
    imap.drop()
    while len(box.sessions) < 2:
        await box.connections.get()
    assert "logout" not in imap.commands and imap.closed
    assert any("IMAP 127.0.0.1:1143: connection lost; retrying in 1 s" in r.getMessage()
               for r in caplog.records)
    box.messages[2] = b"after the outage"
    reader.done.clear()
    await reader.done.wait()
    await stop(task)
    assert reader.handled == [b"pushed", b"after the outage"]


async def test_mail_announced_during_a_pass_is_fetched_without_waiting_for_the_poll(box):
    box.arrives = b"late"  # the mailbox is empty when searched; this arrives meanwhile
    reader = Reader(plain())
    task = await running(reader)
    await reader.done.wait()  # the poll is an hour: only the look again finds it
    imap = box.sessions[0]
    while box.unseen():
        await asyncio.sleep(0)
    await stop(task)
    assert reader.handled == [b"late"] and box.seen == {9}
    assert imap.commands[:6] == ["hello", "login", "select INBOX", "search", "search", "fetch 9"]


async def test_tls_uses_the_given_context_or_the_systems(box):
    context = ssl.create_default_context()
    for given in (context, None):
        reader = Reader(MailImap(host="127.0.0.1", port=993, username="bot"))
        reader.inbox.ssl_context = given
        task = await running(reader)
        await reader.inbox.connected.wait()
        await stop(task)
    assert box.sessions[0].ssl_context is context
    assert isinstance(box.sessions[1].ssl_context, ssl.SSLContext)
    assert box.sessions[1].ssl_context is not context


async def test_the_transport_reads_its_mailbox_and_answers_the_mail_it_finds(box, tmp_path):
    entry = {"list": LIST, "from": "todobot <todobot@example.org>", "release": "4.2",
             "smtp": {"host": "127.0.0.1", "port": 25, "starttls": False},
             "imap": {"host": "127.0.0.1", "port": 1143, "tls": False}}
    chat = await Chat.open(tmp_path / "todo.sqlite3", default_release="4.2", mail=[entry])
    try:
        async with chat.repo.session("test") as s:
            await s.add_item(await s.create_release("4.2"), area="tools", severity="nice",
                             title="item 1")
        transport = MailTransport(chat.config.mail[0], chat.config)
        transport._send = smtp = FakeSmtp()
        box.messages = {1: mail("dev@example.org", "!claim 1\n", message_id="<m1@x>")}
        await transport.start(chat.dispatcher)
        while box.unseen():
            await asyncio.sleep(0)
        while not smtp.sent:
            await asyncio.sleep(0)
        await transport.stop()
        assert (await chat.item(1)).owners == ["dev@example.org"]
        assert [str(m["To"]) for m in smtp.sent] == ["dev@example.org"]
        assert transport.inbox is not None and not transport.inbox.connected.is_set()
    finally:
        await chat.close()
