"""Mail as a transport: the weekly mail goes to a list, replies on the list act like chat.

One `MailTransport` per configured list (`mail:` in the config). Its one "room" is the list
address. Out: the scheduler hands it the digest data (`post_digest`), which it mails in the
release's mail layout (weekly.py) with threading headers; a failed send is retried with
backoff in the background. In: inbox.py reads the mailbox; each message is checked
(auth.py), read into actions (replies.py) and applied in one transaction recorded by its
Message-ID (handling.py, `Dispatcher.run_steps`); a private acknowledgement goes to the
sender saying what was understood: what changed, what was refused and why, or that nothing
could be acted on and why. The acknowledgement is stored in the same
transaction and deleted once sent, so a crash before sending delays it but never loses it.

Never an amplifier: a mail the trusted server fails (auth.py) is dropped with one log line
and no answer; an address gets at most `acks_per_hour` acknowledgements an hour, each a
bounded summary (handling.py). An acknowledgement that cannot be built, that the server
refuses for good, or that still fails after ACK_ROUNDS rounds of attempts is logged and
dropped, so one bad mail never holds up the others'.

Nothing is mailed twice. Before each SMTP attempt, the stored mail (an acknowledgement, or a
weekly mail being retried) is marked with this process's token; a failed attempt clears the
mark. A mark left by another process means that process died while sending, and the server
may have accepted the mail: it is not sent again but logged at ERROR (at-most-once, as for
the digest slots — a receiver has no way to drop a duplicate).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import secrets
import ssl
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.policy import SMTP
from email.policy import default as default_policy
from email.utils import parseaddr
from typing import TYPE_CHECKING, Any

import aiosmtplib

from ...commands.messages import Message, Reply

from ..config import Config, MailImap, MailList
from ..rooms import room_settings
from ..transport import Transport
from . import outbox
from .auth import Verdict, automated, from_address, header, message_ids, sender_of, verdict
from .handling import NOTHING, ack_text, limit, read_outcome, steps_for
from .html_text import html_to_text
from .inbox import Inbox
from .lists import munged_sender
from .replies import parse_reply
from .signatures import signed_by
from .weekly import weekly_body
from ..logs import log_failure

if TYPE_CHECKING:
    from ...storage.digest_data import DigestData
    from ..dispatcher import Dispatcher, Step

log = logging.getLogger(__name__)

TRANSPORT = "mail"
_PENDING = "mail.ack-pending/"  # kv: acknowledgements committed but not yet sent
_SENT = "mail.sent/"  # kv: Message-IDs of mails the bot wrote (replies to them are for us)
_RETRY = "mail.weekly-retry/"  # kv: weekly mails whose first attempt failed, still being retried
_ACKED = "mail.acked/"  # kv: per address, when it was last sent acknowledgements (the hour's)
_ACKED_ALL = "mail.acked-all/"  # kv: per list, when any private mail was sent (the hour's)
_ARCHIVE = "mail.archive/"  # kv: per archive read, its UIDVALIDITY and the last UID handled
ACK_ROUNDS = 5  # rounds of 3 attempts (one per flush: new mail, restart) before an ack is dropped
MAX_MIME_DEPTH = 30  # multiparts nested deeper than this are not read
MAX_REFS = 100  # In-Reply-To and References ids looked up (the bot's mail is among the first)


def _thread_key(list_addr: str, release: str) -> str:
    return f"mail.weekly/{list_addr.lower()}/{release}"


class MailTransport(Transport):
    name = TRANSPORT

    def __init__(self, cfg: MailList, config: Config, *, ssl_context: ssl.SSLContext | None = None,
                 retry_base: float = 5.0, retry_for: float = 6 * 3600.0) -> None:
        # A weekly mail that fails is retried from `retry_base` seconds apart (doubling, at
        # most 30 min) for `retry_for` seconds, across restarts; later it would be stale.
        self.cfg = cfg
        self.config = config
        self.ssl_context = ssl_context  # tests: trust a test CA; default: the system's
        self.retry_base = retry_base
        self.retry_for = retry_for
        where = f"mail[{cfg.list}]"
        self.smtp_password = cfg.smtp.password(where)  # a missing secret stops the start
        self.imap_password = cfg.imap.password(where) if cfg.imap is not None else None
        self.own = {parseaddr(cfg.from_)[1].lower()}
        self.dispatcher: Dispatcher | None = None
        self.inbox: Inbox | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._cap_warned = False  # private_mails_per_hour reached: said once until it frees
        self._flushing = asyncio.Lock()
        self._token = secrets.token_hex(8)  # marks this process's attempts at sending (see top)
        self.dkim_dns = None  # verify_dkim's TXT lookup: dkimpy's own (DNS) unless replaced

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self, dispatcher: "Dispatcher") -> None:
        self.dispatcher = dispatcher
        dispatcher.bind_room(TRANSPORT, self.cfg.list, room_settings(
            self.config, release=self.cfg.release, digest=self.cfg.digest))
        self._spawn(self._flush_pending(), "mail-acks")
        self._spawn(self._resume_retries(), "mail-retries")
        if self.cfg.imap is not None:
            marks = _ArchiveMarks(self, self.cfg.imap) if self.cfg.imap.archive else None
            self.inbox = Inbox(self.cfg.imap, password=self.imap_password, handle=self.handle_raw,
                               where=self.cfg.list, ssl_context=self.ssl_context, marks=marks)
            self._spawn(self.inbox.run(), f"mail-inbox {self.cfg.list}")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def rooms(self) -> list[str]:
        return [self.cfg.list]

    async def queue_lengths(self) -> dict[str, int]:
        """Mails stored to be sent and not sent yet: acknowledgements and weekly mails being
        retried. Every list's, as the acknowledgements are flushed by whichever list's
        transport comes first: each mail transport answers the same number."""
        if self.dispatcher is None:
            return {}
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}", write=False) as s:
            return {"outbox": len(await s.kv_prefixed(_PENDING)) + len(await s.kv_prefixed(_RETRY))}

    @property
    def repo(self):
        assert self.dispatcher is not None, "start() first"
        return self.dispatcher.repo

    # -- out ----------------------------------------------------------------------------------
    async def post(self, room: str, reply: Reply) -> None:
        """Anything else the bot posts unprompted goes to the list as a plain mail."""
        release = self.dispatcher.release_for(TRANSPORT, room) if self.dispatcher else None
        await self._send_weekly(reply.plain + "\n", release or "")

    async def post_digest(self, room: str, data: "DigestData") -> str:
        """The weekly mail (the scheduler prefers this to `post`). Returns what happened, for
        the slot's record. A failed first attempt is retried in the background."""
        settings = self.dispatcher.settings_for(TRANSPORT, room) if self.dispatcher else None
        body = weekly_body(data, status_url=settings.status_url if settings else None)
        return await self._send_weekly(body, data.release.name, data.subject(self.cfg.subject))

    async def _send_weekly(self, body: str, release: str, subject: str = "") -> str:
        key = _thread_key(self.cfg.list, release)
        message_id = outbox.new_message_id(self.cfg)
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            previous = json.loads(await s.kv_get(key) or "[]")
            await s.kv_set(_SENT + message_id, "weekly")  # before sending: replies may be fast
        msg = outbox.weekly_message(self.cfg, release=release, subject=subject, body=body, message_id=message_id,
                                    previous=previous)
        try:
            await self._send(msg)
        except Exception as exc:
            log.warning("mail %s: sending the weekly mail %s failed (%s); retrying in the "
                        "background", self.cfg.list, message_id, exc)
            # Kept until sent or given up, so a restart goes on retrying the same mail.
            until = time.time() + self.retry_for
            async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
                await s.kv_set(_RETRY + message_id, json.dumps(
                    {"key": key, "until": until,
                     "mail": base64.b64encode(msg.as_bytes()).decode("ascii")}))
            self._spawn(self._retry(msg, key, until), f"mail-retry {message_id}")
            return f"mail {message_id}: first attempt failed, retrying"
        await self._threaded(key, message_id)
        log.info("mail %s: weekly mail %s sent", self.cfg.list, message_id)
        return f"mail {message_id}"

    async def _threaded(self, key: str, message_id: str) -> None:
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            chain = json.loads(await s.kv_get(key) or "[]")
            chain = (chain[:1] + chain[1:][-(outbox.MAX_REFERENCES - 2):] + [message_id])
            await s.kv_set(key, json.dumps(chain))
            await s.kv_delete(_RETRY + message_id)

    async def _resume_retries(self) -> None:
        """Weekly mails whose sending failed before a restart: retried until their deadline."""
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}", write=False) as s:
            pending = await s.kv_prefixed(_RETRY)
        for key, value in pending:
            p = json.loads(value)
            msg = message_from_bytes(base64.b64decode(p["mail"]), policy=SMTP)
            if not str(msg.get("To", "")).lower() == self.cfg.list.lower():
                continue  # another list's
            if p.get("sending"):
                await self._abandon(key, f"the weekly mail {msg['Message-ID']}")
                continue
            self._spawn(self._retry(msg, p["key"], p["until"]), f"mail-retry {msg['Message-ID']}")

    async def _retry(self, msg: EmailMessage, key: str, until: float) -> None:
        """The same mail (same Message-ID, so a list that did get it can tell), with backoff,
        until `until` (epoch seconds)."""
        delay = self.retry_base
        retry_key = _RETRY + str(msg["Message-ID"])
        while time.time() + delay < until:
            await asyncio.sleep(delay)
            try:
                await self._send_marked(retry_key, msg)
            except Exception as exc:
                log.warning("mail %s: retrying %s failed (%s); next try in %.0f s", self.cfg.list,
                            msg["Message-ID"], exc, min(delay * 2, 1800))
                delay = min(delay * 2, 1800)
                continue
            await self._threaded(key, str(msg["Message-ID"]))
            log.info("mail %s: weekly mail %s sent after retrying", self.cfg.list, msg["Message-ID"])
            return
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            await s.kv_delete(_RETRY + str(msg["Message-ID"]))
        log.error("mail %s: the weekly mail %s could not be sent in time; given up (not re-sent "
                  "later: it would be stale)", self.cfg.list, msg["Message-ID"])

    async def _send(self, msg: EmailMessage, committing=None) -> None:
        await outbox.send(self.cfg, msg, password=self.smtp_password, ssl_context=self.ssl_context,
                          committing=committing)

    async def _send_marked(self, key: str, msg: EmailMessage) -> None:
        """One attempt at sending the mail stored under `key`, marked as under way while the
        server may be taking it (committed before the mail is handed over, once connected and
        logged in, so that a process that dies in between leaves the mark)."""
        marked = False

        async def committing() -> None:
            nonlocal marked
            await self._mark(key, self._token)
            marked = True
        try:
            await self._send(msg, committing)
        except Exception:
            if marked:
                await self._mark(key, None)  # refused or failed: not accepted, may be tried again
            raise
        # Cancelled mid-attempt (the bot stopping): accepted or not is unknown, the mark stays.

    async def _mark(self, key: str, token: str | None) -> None:
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            value = await s.kv_get(key)
            if value is None:
                return
            p = json.loads(value)
            p.pop("sending", None)
            if token is not None:
                p["sending"] = token
            await s.kv_set(key, json.dumps(p))

    async def _abandon(self, key: str, what: str) -> None:
        """A mail whose sending a previous process began and never finished: maybe sent."""
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            await s.kv_delete(key)
        log.error("mail %s: %s was being sent when the bot stopped; the server may have "
                  "accepted it, so it is NOT sent again (a mail is never sent twice)",
                  self.cfg.list, what)

    # -- in -----------------------------------------------------------------------------------
    async def handle_raw(self, raw: bytes) -> bool:
        """One message from the mailbox; False when it could not be handled (logged; the
        inbox leaves it unseen, to be tried again after a restart). Never raises. Counted in
        `todobot_mails_read_total` by what became of it."""
        try:
            outcome = await self._handle(raw)
        except asyncio.CancelledError:
            raise
        except Exception:
            log_failure(log, "mail %s: could not handle a message of %d bytes; left unseen",
                        self.cfg.list, len(raw))
            outcome = "failed"
        if self.dispatcher is not None:
            self.dispatcher.metrics.mail_read(outcome)
        return outcome != "failed"

    async def _handle(self, raw: bytes) -> str:
        """Handle one message; what became of it (metrics.MAIL_OUTCOMES)."""
        assert self.dispatcher is not None
        head = BytesHeaderParser(policy=default_policy).parsebytes(raw)  # never recurses
        ids = message_ids(header(head, "Message-ID"))
        message_id = ids[0] if ids else "<sha256:" + hashlib.sha256(raw).hexdigest() + ">"
        refs = list(dict.fromkeys(message_ids(header(head, "In-Reply-To"))
                                  + message_ids(header(head, "References"))))[:MAX_REFS]
        release = self.dispatcher.release_for(TRANSPORT, self.cfg.list)

        async def look(s) -> tuple[bool, list[str], Any, bool]:
            return (await s.seen_event(TRANSPORT, message_id),
                    [r for r in refs if await s.kv_get(_SENT + r) is not None],
                    await s.release(release) if release else None,
                    await s.kv_get(_SENT + message_id) is not None)
        # Every read the mail needs in one hand-off to the database thread: each hop there
        # and back is a wait in the path from a reply to its change.
        seen, to_bot, rel, ours = await self.repo.run(f"{TRANSPORT}:{self.cfg.list}", look,
                                                      write=False)
        if seen:
            return "duplicate"
        msg = _parse(raw)
        if msg is None:
            await self._drop(message_id, from_address(head)[1],
                             f"MIME parts nested deeper than {MAX_MIME_DEPTH}")
            return "dropped"
        why = automated(msg, replies_to_bot=bool(to_bot), own_addresses=self.own)
        addr = from_address(msg)[1]
        trust = verdict(msg, self.cfg.authserv_id, addr)
        forged = not why and trust is Verdict.FAIL
        if forged:
            why = f"forged: {self.cfg.authserv_id}'s Authentication-Results fail it"
        # From the list itself (From munged for DMARC): its proven author, or nobody (lists.py).
        sender = munged_sender(msg, list_address=self.cfg.list, authserv_id=self.cfg.authserv_id,
                               list_authserv_id=self.cfg.list_authserv_id)
        if not why and sender is not None:
            if ours or sender.identity.removeprefix("mail:") in self.own:
                why = "our own mail, back from the list"
        signer = None
        if not why and sender is None and trust is Verdict.NONE and self.cfg.verify_dkim and addr:
            signer = await asyncio.to_thread(signed_by, raw, addr.rsplit("@", 1)[-1], self.dkim_dns)
        if sender is None:
            sender = sender_of(msg, authserv_id=self.cfg.authserv_id, proven=signer is not None)
        # In a thread: a large HTML body takes a while to convert, and the loop serves chat.
        body = await asyncio.to_thread(_plain_body, msg) if not why else None
        actions = limit(parse_reply(body, prefix=self.dispatcher.prefix,
                                    layout=rel.layout if rel else None)) if body else []
        if why or sender is None:
            await self._drop(message_id, addr, why)
            return "forged" if forged else "dropped"
        # A mail read that asks for nothing is answered too (bounded like every
        # acknowledgement), so that nobody believes a reply the bot could not read worked.
        nothing = NOTHING if body is not None else "the mail has no text part I could read"
        message = Message(transport=TRANSPORT, room=self.cfg.list, sender=sender,
                          text=outbox.one_line(header(msg, "Subject") or "", 200), msg_id=message_id)
        steps = steps_for(actions, self.dispatcher, link=message_id)
        steps.append(self._ack_step(msg, sender.identity, message_id, refs, actions, nothing))
        # History names the mail: "mail:jan@suse.com via <5028C2F3...@nat28.tlf.novell.com>".
        replies = await self.dispatcher.run_steps(message, steps,
                                                  actor=f"{sender.identity} via {message_id}")
        if replies is None:
            return "duplicate"
        log.info("mail %s: %s from %s (%s): %d action(s)", self.cfg.list, message_id,
                 sender.identity, "authenticated" if sender.authenticated else "unauthenticated",
                 len(actions))
        self._spawn(self._flush_pending(), "mail-acks")  # the inbox never waits on SMTP
        return read_outcome(replies[:len(actions)])

    async def _drop(self, message_id: str, addr: str, why: str | None) -> None:
        """Handled without effect nor answer (`why`, when given, logged in one line)."""
        if why:
            log.info("mail %s: ignoring %s from %s: %s", self.cfg.list,
                     outbox.one_line(message_id, 200), outbox.one_line(addr, 200) or "?", why)
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            await s.record_event(TRANSPORT, message_id)

    def _ack_step(self, msg: EmailMessage, identity: str, message_id: str, refs: list[str],
                  actions: list, nothing: str) -> "Step":
        """The last step: store the acknowledgement with the effects it reports (or, `nothing`,
        why nothing could be done), unless the address had its `acks_per_hour` already."""
        to = identity.removeprefix("mail:")

        async def step(ctx, done: list[Reply]) -> None:
            if self._is_list(to):
                # A list mail whose author is not proven "is" the list: a private answer to it
                # would go to every member.
                log.info("mail %s: no acknowledgement of %s: it is from the list itself",
                         self.cfg.list, message_id)
                return None
            body = ack_text(actions, done, nothing=nothing)
            if not await self._take_hourly(ctx.s, to):
                log.info("mail %s: no acknowledgement of %s to %s: %d sent in the last hour",
                         self.cfg.list, message_id, to, self.cfg.acks_per_hour)
                return None
            ack_id = outbox.new_message_id(self.cfg)
            pending = {"to": to, "subject": (header(msg, "Subject") or "")[:outbox.MAX_SUBJECT],
                       "in_reply_to": message_id, "references": refs[-outbox.MAX_REFERENCES:],
                       "body": body,
                       "message_id": ack_id}
            await ctx.s.kv_set(_PENDING + message_id, json.dumps(pending))
            await ctx.s.kv_set(_SENT + ack_id, "ack")
            return None
        return step

    def _is_list(self, to: str) -> bool:
        return to.lower() == self.cfg.list.lower() or to.lower() in self.own

    async def _take_hourly(self, s, to: str) -> bool:
        """Count one private mail to `to` (an acknowledgement or a change notice) against its
        `acks_per_hour` and the list's `private_mails_per_hour`; False, and nothing counted,
        when either is used up for this hour."""
        now = s.now
        sent = [t for t in json.loads(await s.kv_get(_ACKED + to) or "[]") if t > now - 3600]
        everyone = [t for t in json.loads(await s.kv_get(_ACKED_ALL + self.cfg.list) or "[]") if t > now - 3600]
        if len(sent) >= self.cfg.acks_per_hour:
            return False
        if len(everyone) >= self.cfg.private_mails_per_hour:
            if not self._cap_warned:
                log.warning("mail %s: %d private mails sent in the last hour, the "
                            "private_mails_per_hour limit: no more until the hour passes",
                            self.cfg.list, len(everyone))
            self._cap_warned = True
            return False
        self._cap_warned = False
        await s.kv_set(_ACKED + to, json.dumps(sent + [now]))
        await s.kv_set(_ACKED_ALL + self.cfg.list, json.dumps(everyone + [now]))
        return True

    async def notify(self, identity: str, reply: Reply) -> bool:
        """A change notice as one private mail to the watcher's address: never to the list,
        within the address's `acks_per_hour`. Sent once; a failure drops it (a courtesy)."""
        to = identity.removeprefix(f"{TRANSPORT}:").lower()
        if to == identity.lower() or not to or self.dispatcher is None or self._is_list(to):
            return False
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            if not await self._take_hourly(s, to):
                log.info("mail %s: no change notice to %s: %d mails sent to it in the last hour",
                         self.cfg.list, to, self.cfg.acks_per_hour)
                return False
        try:
            msg = outbox.notice_message(self.cfg, to=to, body=reply.plain + "\n",
                                        message_id=outbox.new_message_id(self.cfg))
            await self._send(msg)
        except Exception as exc:
            log.warning("mail %s: a change notice to %s failed (%s)", self.cfg.list,
                        outbox.one_line(to, 200), exc)
            return False
        return True

    async def _flush_pending(self) -> None:
        """Send the acknowledgements committed but not yet sent (also after a restart)."""
        async with self._flushing:
            await self._flush_pending_locked()

    async def _flush_pending_locked(self) -> None:
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}", write=False) as s:
            rows = await s.kv_prefixed(_PENDING)
        for key, value in rows:
            try:
                p = json.loads(value)
                what = (f"the acknowledgement of {outbox.one_line(str(p['in_reply_to']), 200)} "
                        f"to {outbox.one_line(str(p['to']), 200)}")
                if p.get("sending") and p["sending"] != self._token:
                    await self._abandon(key, what)
                    continue
                ack = outbox.ack_message(self.cfg, to=p["to"], subject=p["subject"],
                                         in_reply_to=p["in_reply_to"], references=p["references"],
                                         body=p["body"], message_id=p["message_id"])
            except Exception as exc:  # stored by an older version, or a value no header takes
                await self._give_up(key, f"an acknowledgement ({key}) that cannot be built ({exc})")
                continue
            for attempt in range(3):
                try:
                    await self._send_marked(key, ack)
                    break
                except Exception as exc:
                    log.warning("mail %s: %s failed (%s)", self.cfg.list, what, exc)
                    if _permanent(exc):
                        await self._give_up(key, f"{what}, refused by the server")
                        break
                    if attempt < 2:
                        await asyncio.sleep(self.retry_base * (attempt + 1))
            else:
                rounds = int(p.get("rounds", 0)) + 1
                if rounds >= ACK_ROUNDS:
                    await self._give_up(key, f"{what}, after {rounds * 3} attempts")
                    continue
                async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
                    if await s.kv_get(key) is not None:  # tried again with the next mail or at restart
                        await s.kv_set(key, json.dumps({**p, "rounds": rounds}))
                continue
            async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
                await s.kv_delete(key)

    async def _give_up(self, key: str, what: str) -> None:
        async with self.repo.session(f"{TRANSPORT}:{self.cfg.list}") as s:
            await s.kv_delete(key)
        log.error("mail %s: dropped %s", self.cfg.list, what)


class _ArchiveMarks:
    """Where the reading of a read-only archive stands (inbox.Marks), in the kv table: one
    key per list, server and newsgroup."""

    def __init__(self, transport: MailTransport, imap: MailImap) -> None:
        self.transport = transport
        self.key = f"{_ARCHIVE}{transport.cfg.list.lower()}/{imap.host}:{imap.port}/{imap.folder}"

    async def load(self) -> tuple[int, int] | None:
        async with self.transport.repo.session(f"{TRANSPORT}:{self.transport.cfg.list}",
                                               write=False) as s:
            value = await s.kv_get(self.key)
        if value is None:
            return None
        kept = json.loads(value)
        return int(kept["uidvalidity"]), int(kept["last"])

    async def save(self, uidvalidity: int, last: int) -> None:
        async with self.transport.repo.session(f"{TRANSPORT}:{self.transport.cfg.list}") as s:
            await s.kv_set(self.key, json.dumps({"uidvalidity": uidvalidity, "last": last}))


def _permanent(exc: Exception) -> bool:
    """An SMTP 5xx answer: the same mail will be refused again."""
    code = getattr(exc, "code", None)
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        code = min((getattr(r, "code", 0) for r in exc.recipients), default=None)
    return isinstance(code, int) and 500 <= code < 600


def _parse(raw: bytes) -> EmailMessage | None:
    """The whole message; None when its MIME parts nest deeper than MAX_MIME_DEPTH (the parser
    itself would run out of stack well before a hostile 2,000)."""
    try:
        msg = BytesParser(policy=default_policy).parsebytes(raw)
    except RecursionError:
        return None
    stack = [(msg, 0)]
    while stack:
        part, depth = stack.pop()
        if depth > MAX_MIME_DEPTH:
            return None
        if part.is_multipart():
            stack += [(p, depth + 1) for p in part.get_payload() if isinstance(p, EmailMessage)]
    return msg


def _plain_body(msg: EmailMessage) -> str | None:
    """The text a reply is read from: its plain part, else its HTML part as text (quotes as
    `> ` lines, html_text.py); None when it has neither."""
    part = msg.get_body(preferencelist=("plain",))
    html = part is None
    if html:
        part = msg.get_body(preferencelist=("html",))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset: read what can be read
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", "replace")
    if not isinstance(content, str):
        return None
    return html_to_text(content) if html else content
