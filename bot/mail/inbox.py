"""Reading the bot's mailbox with aioimaplib: IDLE where the server offers it, else a poll.

Each pass fetches the UNSEEN messages (BODY.PEEK, so fetching marks nothing), hands each to
the transport, and only then flags it `\\Seen`. Nothing is ever deleted or expunged. The flag
is a hint, not the guarantee: a message is handled at most once because its Message-ID is
recorded in the same transaction as its effects, so a crash between the two only means it
is fetched again and skipped.

A lost connection is retried every few seconds (never more than `RETRY_MAX` apart), so the
bot is back within seconds of the server's return.

An archive (`imap.archive`: public-inbox-imapd, as lore.kernel.org serves lists) is
read-only and shared: nothing can be flagged there. Its mailbox is the inbox's newsgroup,
served in slices (`NEWSGROUP.0`, `.1`, ...) whose UIDs run on from one to the next; the
newest slice is read, and the last UID handled (with the UIDVALIDITY it belongs to) is kept
by the transport (`Marks`) instead of `\\Seen`. The mark moves past a message only once it
and every one before it were handled, so a failed one is fetched again after a restart as an
unseen one would be. A first start, or a rebuilt archive (a new UIDVALIDITY), begins at the
archive's end: the bot reads what arrives from then on, never the list's history.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from typing import Protocol

import aioimaplib

from ..config import MailImap

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0  # seconds an IMAP command may take
RETRY_MAX = 5.0  # seconds between reconnection attempts, at most
IDLE_CYCLE = 300.0  # re-issue IDLE this often (servers drop IDLE after 30 min)
_UID = re.compile(rb"UID (\d+)")
_STATUS_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_SLICE = re.compile(r"\.(\d+)$")


class Marks(Protocol):
    """Where an archive's reading stands, kept in the database: (UIDVALIDITY, last UID
    handled), or None before the first start."""

    async def load(self) -> tuple[int, int] | None: ...

    async def save(self, uidvalidity: int, last: int) -> None: ...


class ImapError(Exception):
    pass


def _ok(response, what: str) -> None:
    if response.result != "OK":
        detail = b" ".join(bytes(x) for x in response.lines[-1:]).decode("utf-8", "replace")
        raise ImapError(f"{what}: {response.result} {detail}")


class Inbox:
    def __init__(self, cfg: MailImap, *, password: str | None,
                 handle: Callable[[bytes], Awaitable[bool]], where: str,
                 ssl_context: ssl.SSLContext | None = None, marks: Marks | None = None) -> None:
        self.cfg = cfg
        self.marks = marks  # an archive's: read-only, UIDs kept here instead of \\Seen
        self.password = password
        self.handle = handle
        self.where = where  # for logs: the list this mailbox serves
        self.ssl_context = ssl_context
        self.connected = asyncio.Event()  # set while logged in and selected (tests, status)
        self.failed: set[int] = set()  # UIDs whose handling failed: left unseen, not retried here
        self._uidvalidity = self._last = 0  # an archive's: where the reading stands
        self._beyond: set[int] = set()  # an archive's UIDs handled past a failed one

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
            user = cfg.username or ("anonymous" if self.marks else None)  # an archive is public
            if user:
                _ok(await call(imap.login(user, self.password or "")), "login")
            folder = await self._newest_slice(imap, call) if self.marks else cfg.folder
            selected = await call(imap.select(folder))
            _ok(selected, f"select {folder}")
            if self.marks is not None:
                await self._begin(selected)
            self.connected.set()
            idle = imap.has_capability("IDLE")
            log.info("mail %s: reading %s on %s:%d (%s%s)", self.where, folder, cfg.host,
                     cfg.port, "IDLE" if idle else f"polling every {cfg.poll_seconds:.0f} s",
                     ", a read-only archive" if self.marks else "")
            while not lost.is_set():
                await (self._drain_archive if self.marks else self._drain)(imap, call)
                if idle:
                    await self._idle(imap, lost, call)
                else:
                    await _wait(lost, cfg.poll_seconds)
                if self.marks is not None and await self._newest_slice(imap, call) != folder:
                    raise ImapError(f"the archive went on from {folder} to a new slice")
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

    # -- a read-only archive ----------------------------------------------------------------
    async def _newest_slice(self, imap: aioimaplib.IMAP4, call: "_Caller") -> str:
        """The archive's newest slice of the newsgroup `folder` (the folder itself when the
        server lists no slices)."""
        listed = await call(imap.list('""', f"{self.cfg.folder}.*"))
        _ok(listed, f"list {self.cfg.folder}.*")
        return newest_slice(self.cfg.folder, listed.lines)

    async def _begin(self, selected) -> None:
        """Where to read from in the selected archive (see the top)."""
        codes = {m.group(1): int(m.group(2)) for line in selected.lines
                 if not isinstance(line, bytearray) for m in _STATUS_CODE.finditer(bytes(line))}
        validity, uidnext = codes.get(b"UIDVALIDITY"), codes.get(b"UIDNEXT")
        if validity is None or uidnext is None:
            raise ImapError("the archive names no UIDVALIDITY or UIDNEXT")
        kept = await self.marks.load()
        if kept is not None and kept[0] == validity:
            self._uidvalidity, self._last = kept
            return
        if kept is not None:
            log.warning("mail %s: the archive's UIDVALIDITY changed (%d, was %d): it was "
                        "rebuilt; reading from its end", self.where, validity, kept[0])
        self._uidvalidity, self._last = validity, uidnext - 1
        await self.marks.save(validity, self._last)

    async def _drain_archive(self, imap: aioimaplib.IMAP4, call: "_Caller") -> None:
        """Handle the messages after the mark until a pass finds none (as `_drain`)."""
        again = True
        while again:
            response = await call(imap.uid_search(f"UID {self._last + 1}:*", charset=None))
            _ok(response, "search")
            again = _announces_mail(response)
            # "N:*" always names the highest UID, even one below N.
            uids = sorted({int(u) for line in response.lines[:-1]
                           if not _announces_mail_line(line)
                           for u in bytes(line).split() if u.isdigit()} - {0})
            blocked = False
            for uid in (u for u in uids if u > self._last):
                if uid in self.failed:
                    blocked = True
                    continue
                if uid in self._beyond:
                    continue
                again = True
                fetched = await call(imap.uid("fetch", str(uid), "(BODY.PEEK[])"))
                _ok(fetched, f"fetch {uid}")
                raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), None)
                if raw is None:
                    log.warning("mail %s: message uid %d has no body; passing it", self.where, uid)
                elif not await self.handle(raw):  # never raises; False: it failed (logged)
                    self.failed.add(uid)  # not again in this process; again after a restart
                    blocked = True
                    continue
                if blocked:
                    self._beyond.add(uid)  # handled, but the mark waits behind a failed one
                else:
                    self._last = uid
                    await self.marks.save(self._uidvalidity, uid)


def newest_slice(folder: str, lines) -> str:
    """From a LIST answer, the slice `folder.N` with the highest N; `folder` when none."""
    best: tuple[int, str] | None = None
    for line in lines:
        if isinstance(line, bytearray):
            continue
        name = bytes(line).decode("utf-8", "replace").rsplit(" ", 1)[-1].strip('"')
        m = _SLICE.search(name)
        if m and name[:m.start()] == folder and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), name)
    return best[1] if best else folder


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
