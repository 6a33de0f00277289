"""Mail files as saved from a mail client: plain text, one RFC 5322 message (`.eml`), or an
mbox. Decoded with the standard library's `email` package (policy=default): transfer
encodings and charsets, multipart/alternative -> its text/plain part, format=flowed
unwrapped. A reply's quoted lines (`> `) are left to the layouts, which skip them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime

from .names import clean

# A subject that looks like a release list mail: "4.2 TODO / Release Plan",
# "Xen 4.3 development update", "[ANNOUNCE] status of 4.3", "Xen 4.16 release update",
# "[regzbot] Linux regressions report for mainline [2027-01-15]".
_LIST_SUBJECT = re.compile(r"todo|status|release plan|development update|dev update|"
                           r"release update|regressions? report|tracking list", re.I)
_REPLY = re.compile(r"\s*(?:re|aw|sv)\s*:", re.I)
_HEADER_LINE = re.compile(rb"[A-Za-z][A-Za-z0-9-]*:[ \t]")
# "From sender@example.org Mon May 13 12:00:00 2013": the line that starts each mbox message.
_MBOX_FROM = re.compile(rb"^From \S+ +\w{3} \w{3} +\d.*$", re.M)


@dataclass
class MailText:
    text: str
    source: str | None = None  # "Message-ID <x@y>, Date ..." for the history; None: plain text
    message_id: str | None = None
    subject: str = ""  # the Subject: header, decoded and cleaned; "" for plain text


def read_mail_file(raw: bytes, message_id: str | None = None) -> MailText:
    """The list text of a file: the body of a message (the newest list-looking one of an
    mbox, or the one with `message_id`), or the file itself when it is plain text."""
    if _MBOX_FROM.match(raw):
        return _from_message(_pick(_mbox_messages(raw), message_id))
    if _looks_like_message(raw):
        msg = _parse(raw)
        if message_id and _mid(msg) != _norm_mid(message_id):
            raise LookupError(f"no message {message_id} in the file")
        return _from_message(msg)
    if message_id:
        raise LookupError("--message-id needs a .eml or mbox file")
    return MailText(raw.decode("utf-8", errors="replace"))


def _looks_like_message(raw: bytes) -> bool:
    head = raw.lstrip(b"\r\n").split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    lines = head.splitlines()
    if not lines or not _HEADER_LINE.match(lines[0]):
        return False
    names = {ln.split(b":", 1)[0].lower() for ln in lines if _HEADER_LINE.match(ln)}
    return bool(names & {b"from", b"subject", b"message-id", b"date"}) and len(names) >= 2


def _parse(raw: bytes) -> EmailMessage:
    return BytesParser(policy=policy.default).parsebytes(raw)  # type: ignore[return-value]


def _mbox_messages(raw: bytes) -> list[EmailMessage]:
    starts = [m.start() for m in _MBOX_FROM.finditer(raw)] + [len(raw)]
    out = []
    for a, b in zip(starts, starts[1:]):
        body = raw[a:b].split(b"\n", 1)[1] if b"\n" in raw[a:b] else b""
        body = re.sub(rb"^>(>*From )", rb"\1", body, flags=re.M)  # mboxrd un-escaping
        out.append(_parse(body))
    return out


def _norm_mid(mid: str) -> str:
    return mid.strip().strip("<>").strip()


def _mid(msg: EmailMessage) -> str:
    return _norm_mid(str(msg.get("Message-ID", "")))


def _pick(messages: list[EmailMessage], message_id: str | None) -> EmailMessage:
    if message_id:
        for msg in messages:
            if _mid(msg) == _norm_mid(message_id):
                return msg
        raise LookupError(f"no message {message_id} in the mbox")
    listy = [m for m in messages if _LIST_SUBJECT.search(str(m.get("Subject", "")))]
    # A reply carries the list's subject but not the list: the list itself is preferred.
    listy = [m for m in listy if not _REPLY.match(str(m.get("Subject", "")))] or listy
    if not listy:
        raise LookupError("no message in the mbox has a TODO or status subject; "
                          "choose one with --message-id")

    def when(item: tuple[int, EmailMessage]) -> tuple[float, int]:
        n, msg = item
        try:
            return parsedate_to_datetime(str(msg["Date"])).timestamp(), n
        except (TypeError, ValueError):
            return 0.0, n  # no usable date: file order decides
    return max(enumerate(listy), key=when)[1]


def _from_message(msg: EmailMessage) -> MailText:
    part = msg.get_body(preferencelist=("plain",))
    if part is None:
        raise LookupError("the message has no text/plain part")
    text = part.get_content().replace("\r\n", "\n")
    if str(part.get_param("format", "")).lower() == "flowed":
        text = _unflow(text, str(part.get_param("delsp", "")).lower() == "yes")
    mid = str(msg.get("Message-ID", "")).strip()
    date = str(msg.get("Date", "")).strip()
    source = ", ".join(p for p in (f"Message-ID {mid}" if mid else "", f"Date {date}" if date else "")
                       if p)
    # A release keeps its mail's subject for its weekly mail: one clean line, never a header
    # injection (the header parser has decoded it; clean drops controls and newlines).
    subject = clean(str(msg.get("Subject", "")))[:200]
    return MailText(text, source or "a mail without Message-ID", mid or None, subject)


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676: a line ending in a space continues on the next one (not for the signature
    separator "-- "); space-stuffing is undone."""
    out: list[str] = []
    joining, depth = False, 0
    for line in text.split("\n"):
        line = line.removesuffix("\r")
        quotes = len(line) - len(line.lstrip(">"))
        if line[quotes:].startswith(" "):
            line = line[:quotes] + line[quotes + 1:]
        if joining and quotes == depth:  # only lines of the same quote depth flow together
            out[-1] += line[quotes:]
        else:
            out.append(line)
        depth = quotes
        joining = line.endswith(" ") and line[quotes:] != "-- "
        if joining and delsp:
            out[-1] = out[-1][:-1]
    return "\n".join(out)
