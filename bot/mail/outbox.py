"""Mails the bot writes (the weekly mail, acknowledgements, change notices) and sending them with aiosmtplib.

Every mail gets a real Message-ID from the bot's own domain; the weekly mails thread through
In-Reply-To / References. Acknowledgements carry `Auto-Submitted: auto-replied` so that no
other robot answers them (RFC 3834), and go to the sender's bare address only.

Every header value passes through `_set`, the one place that keeps what a sender wrote
(a Subject, a Message-ID) from adding header lines: control characters become spaces and
the value is cut to a bounded length.
"""

from __future__ import annotations

import re
import ssl
import time
from collections.abc import Awaitable, Callable
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formatdate, make_msgid, parseaddr
from datetime import datetime, timezone

import aiosmtplib

from ..config import MailList

MAX_REFERENCES = 10  # keep References short: the thread's root and the latest weeks
MAX_HEADER = 998  # RFC 5322's line limit, the longest value any header here may have
MAX_SUBJECT = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(value: str, limit: int = MAX_HEADER) -> str:
    """`value` as one line without control characters (CR, LF, NUL...), at most `limit` long:
    for headers, and for logging what a sender wrote."""
    return " ".join(_CONTROL.sub(" ", value).split())[:limit]


def _set(msg: EmailMessage, name: str, value: str, limit: int = MAX_HEADER) -> None:
    msg[name] = one_line(value, limit)


def domain_of(cfg: MailList) -> str:
    return parseaddr(cfg.from_)[1].rsplit("@", 1)[-1] or "todobot.invalid"


def new_message_id(cfg: MailList) -> str:
    return make_msgid(domain=domain_of(cfg))


def _message(cfg: MailList, *, to: str, subject: str, body: str, message_id: str,
             at: float | None) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    _set(msg, "From", cfg.from_)
    _set(msg, "To", to)
    _set(msg, "Subject", subject, MAX_SUBJECT)
    _set(msg, "Date", format_datetime(datetime.fromtimestamp(at, timezone.utc)) if at is not None
         else formatdate(time.time(), usegmt=True))
    _set(msg, "Message-ID", message_id)
    # UTF-8 text sent as written (8BITMIME, which every current server offers), so the lines
    # the list reads are the lines the layout wrote, never re-wrapped by an encoding.
    cte = "7bit" if body.isascii() else "8bit"
    msg.set_content(body, charset="utf-8", cte=cte)
    return msg


def weekly_message(cfg: MailList, *, release: str, body: str, message_id: str,
                   previous: list[str], at: float | None = None, subject: str = "") -> EmailMessage:
    msg = _message(cfg, to=cfg.list, subject=subject or cfg.subject_for(release), body=body,
                   message_id=message_id, at=at)
    if previous:
        refs = previous[:1] + previous[1:][-(MAX_REFERENCES - 1):]
        _set(msg, "In-Reply-To", previous[-1])
        _set(msg, "References", " ".join(dict.fromkeys(refs)))
    return msg


def ack_message(cfg: MailList, *, to: str, subject: str, in_reply_to: str | None,
                references: list[str], body: str, message_id: str) -> EmailMessage:
    """To the bare address: a display name is the sender's text, not worth echoing."""
    subject = subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
    msg = _message(cfg, to=str(Address(addr_spec=to)), subject=subject, body=body,
                   message_id=message_id, at=None)
    _set(msg, "Auto-Submitted", "auto-replied")
    if in_reply_to:
        _set(msg, "In-Reply-To", in_reply_to)
        _set(msg, "References", " ".join(dict.fromkeys(
            references[-(MAX_REFERENCES - 1):] + [in_reply_to])))
    return msg


def notice_message(cfg: MailList, *, to: str, body: str, message_id: str) -> EmailMessage:
    """A change notice (`!watch`) to the watcher's bare address; `auto-generated`: it
    answers nothing, and no robot should answer it."""
    msg = _message(cfg, to=str(Address(addr_spec=to)), subject="Changes to items you watch",
                   body=body, message_id=message_id, at=None)
    _set(msg, "Auto-Submitted", "auto-generated")
    return msg


async def send(cfg: MailList, msg: EmailMessage, *, password: str | None,
               ssl_context: ssl.SSLContext | None = None,
               committing: Callable[[], Awaitable[None]] | None = None) -> None:
    """One attempt; raises on failure. TLS (from the start, or STARTTLS) is verified against
    the system's CAs unless the caller supplies its own context. `committing` is awaited once
    connected, greeted and logged in, just before the mail itself is handed over: from then
    on the server may have it even if the attempt fails (the caller records that)."""
    smtp = cfg.smtp
    context = ssl_context or (ssl.create_default_context() if smtp.tls or smtp.starttls else None)
    client = aiosmtplib.SMTP(hostname=smtp.host, port=smtp.port, use_tls=smtp.tls,
                             start_tls=smtp.starttls if not smtp.tls else False,
                             tls_context=context, username=smtp.username, password=password,
                             timeout=smtp.timeout)
    async with client:
        if committing is not None:
            await committing()
        await client.send_message(msg)
