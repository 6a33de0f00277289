"""Reading the bot's mailbox with aioimaplib: IDLE where the server offers it, else a poll.

Each pass fetches the UNSEEN messages (BODY.PEEK, so fetching marks nothing), hands each to
the transport, and only then flags it `\\Seen`. Nothing is ever deleted or expunged. The flag
is a hint, not the guarantee: a message is handled at most once because its Message-ID is
recorded in the same transaction as its effects, so a crash between the two only means it
is fetched again and skipped.

A lost connection is retried every few seconds (never more than `RETRY_MAX` apart), so the
bot is back within seconds of the server's return.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable

import aioimaplib

from ..config import MailImap

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # seconds an IMAP command may take
RETRY_MAX = 5.0  # seconds between reconnection attempts, at most
IDLE_CYCLE = 300.0  # re-issue IDLE this often (servers drop IDLE after 30 min)
_UID = re.compile(rb"UID (\d+)")


class ImapError(Exception):
    pass


def _ok(response, what: str) -> None:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {detail}")


class Inbox:
    def __init__(self, cfg: MailImap, *, password: str | None,
                 handle: Callable[[bytes], Awaitable[bool]], where: str,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.cfg = cfg
        self.password = password
        self.handle = handle
        self.where = where  # for logs: the list this mailbox serves
        self.ssl_context = ssl_context
        self.connected = asyncio.Event()  # set while logged in and selected (tests, status)
        self.failed: set[int] = set()  # UIDs whose handling failed: left unseen, not retried here

    async def run(self) -> None:
        delay = 1.0
        while True:
            lost = asyncio.Event()
            try:
                await self._session(lost)
            except asyncio.CancelledError:
                raise
            except (OSError, asyncio.TimeoutError, ImapError, aioimaplib.Abort,
                    aioimaplib.CommandTimeout) as exc:
                log.warning("mail %s: IMAP %s:%d: %s; retrying in %.0f s", self.where,
                            self.cfg.host, self.cfg.port, exc or type(exc).__name__, delay)
            except Exception:
                log.exception("mail %s: IMAP session failed; retrying in %.0f s", self.where, delay)
            finally:
                self.connected.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    async def _session(self, lost: asyncio.Event) -> None:
        cfg = self.cfg
        context = None
        if cfg.tls:
            context = self.ssl_context or ssl.create_default_context()
        imap = aioimaplib.IMAP4(cfg.host, cfg.port, timeout=COMMAND_TIMEOUT, ssl_context=context,
                                conn_lost_cb=lambda exc: lost.set())
        call = _Caller(lost)
        try:
            await call(imap.wait_hello_from_server())
            if cfg.username:
                _ok(await call(imap.login(cfg.username, self.password or "")), "login")
            _ok(await call(imap.select(cfg.folder)), f"select {cfg.folder}")
            self.connected.set()
            idle = imap.has_capability("IDLE")
            log.info("mail %s: reading %s on %s:%d (%s)", self.where, cfg.folder, cfg.host,
                     cfg.port, "IDLE" if idle else f"polling every {cfg.poll_seconds:.0f} s")
            while not lost.is_set():
                await self._drain(imap, call)
                if idle:
                    await self._idle(imap, lost, call)
                else:
                    await _wait(lost, cfg.poll_seconds)
            raise ImapError("connection lost")
        finally:
            try:
                if not lost.is_set():
                    await asyncio.wait_for(imap.logout(), 2)
            except Exception:
                pass
            if imap.protocol is not None and imap.protocol.transport is not None:
                imap.protocol.transport.close()

    async def _idle(self, imap: aioimaplib.IMAP4, lost: asyncio.Event, call: "_Caller") -> None:
        idle = await call(imap.idle_start(timeout=IDLE_CYCLE + 60))
        push = asyncio.ensure_future(imap.wait_server_push(timeout=IDLE_CYCLE))
        gone = asyncio.ensure_future(lost.wait())
        try:
            await asyncio.wait({push, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            push.cancel()
            gone.cancel()
        if lost.is_set():
            idle.cancel()
            return
        imap.idle_done()
        await call(idle)

    async def _drain(self, imap: aioimaplib.IMAP4, call: "_Caller") -> None:
        """Handle UNSEEN messages until a pass finds none. A message that arrives during a
        pass is announced in the untagged part of some response (and not again in IDLE), so
        any `EXISTS` seen means: look again."""
        again = True
        while again:
            response = await call(imap.uid_search("UNSEEN", charset=None))
            _ok(response, "search")
            again = _announces_mail(response)
            uids = [int(u) for line in response.lines[:-1] if not _announces_mail_line(line)
                    for u in bytes(line).split() if u.isdigit()]
            for uid in sorted(set(uids) - self.failed):
                again = True
                fetched = await call(imap.uid("fetch", str(uid), "(BODY.PEEK[])"))
                _ok(fetched, f"fetch {uid}")
                raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
                if raw is None:
                    log.warning("mail %s: message uid %d has no body; flagging it seen",
                                self.where, uid)
                elif not await self.handle(raw):  # never raises; False: it failed (logged)
                    self.failed.add(uid)  # not again in this process; unseen for the next
                    continue
                stored = await call(imap.uid("store", str(uid), "+FLAGS.SILENT", r"(\Seen)"))
                _ok(stored, f"store {uid}")


class _Caller:
    """Awaits one IMAP command, but gives up when the connection is lost or the command
    takes too long: aioimaplib leaves a command pending forever when the server goes away
    before answering (IDLE's continuation, notably)."""

    def __init__(self, lost: asyncio.Event) -> None:
        self.lost = lost

    async def __call__(self, awaitable):
        work = asyncio.ensure_future(awaitable)
        gone = asyncio.ensure_future(self.lost.wait())
        try:
            done, _ = await asyncio.wait({work, gone}, timeout=COMMAND_TIMEOUT,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
        if work in done:
            return work.result()
        work.cancel()
        raise ImapError("connection lost" if self.lost.is_set() else
                        f"no answer within {COMMAND_TIMEOUT:.0f} s")


def _announces_mail_line(line) -> bool:
    return not isinstance(line, bytearray) and bytes(line).endswith((b" EXISTS", b" RECENT"))


def _announces_mail(response) -> bool:
    return any(_announces_mail_line(line) for line in response.lines)


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass
