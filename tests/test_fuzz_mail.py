"""Hostile mail: any MIME message reaches a clear answer, and quoted text never commands.

- the importer (`todobot import`'s reading: mail file -> text -> layout) and the inbox's
  reading of a reply (plain body -> actions) take any message, however its headers, charsets,
  transfer encodings and multiparts are mangled, and either read it or say why not
  (`LookupError`, `MailFormatError`), never a traceback;
- in a reply, a line under `>` is someone else's words: it never becomes a command, whatever
  it says and whatever surrounds it.

Run big with `HYPOTHESIS_PROFILE=nightly` (100,000 examples each).
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.policy import default as default_policy
from email.parser import BytesParser
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from todobot.bot.mail import _plain_body
from todobot.bot.mail.replies import Claim, Command, parse_reply
from todobot.storage import layouts
from todobot.storage.layouts.common import MailFormatError
from todobot.storage.mailfile import read_mail_file
from todobot.storage.names import clean

# -------------------------------------------------------------------- MIME messages

_LIST_LINES = ["tools, blockers:", "hypervisor, nice to have:", "    * #5 libxl stable API",
               "      (Ian C, DONE)", "* [BUG] x", "== Open ==", "19 March -- x << DONE",
               "> quoted", "-- ", "!claim 1", "I can take this one.", "=C3=A9", "=\n", "é漢",
               "From x@y Mon May 13 12:00:00 2013", ">From me", "\x00", "\r", ""]
_body_text = st.lists(st.one_of(st.sampled_from(_LIST_LINES), st.text(max_size=20)),
                      max_size=12).map("\n".join)
_body_bytes = st.one_of(_body_text.map(lambda s: s.encode("utf-8", "surrogatepass")),
                        st.binary(max_size=200))
_charset = st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "utf-16", "x-unknown", "",
                            "utf-8\"; x=\"", "cp1252", "utf-7", "UTF8", "7bit", "\u00e9"])
_cte = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "binary", "x-uuencode",
                        "bogus", ""])
_ctype = st.sampled_from(["text/plain", "text/html", "text/plain; format=flowed",
                          "text/plain; format=flowed; delsp=yes", "application/octet-stream",
                          "text", "", "multipart/alternative", "message/rfc822", "text/plain;;;"])
_header_value = st.one_of(
    st.sampled_from(["4.2 TODO / Release Plan", "Re: Xen 4.3 development update",
                     "<a@b>", "<<>>", "=?utf-8?b?w6k=?=", "=?x-bad?q?=ZZ?=", "Mon, 6 Aug 2012",
                     "not a date", "Ian <ijc@example.org>", "\"\" <>", ""]),
    st.text(max_size=30).filter(lambda s: "\n" not in s and "\r" not in s))


@st.composite
def _part(draw, depth: int = 0) -> bytes:
    ctype = draw(_ctype)
    if ctype.startswith("multipart") and depth < 2:
        boundary = draw(st.sampled_from(["b1", "b2", "=_x", ""]))
        parts = draw(st.lists(_part(depth + 1), max_size=3))
        head = f"Content-Type: {ctype}; boundary=\"{boundary}\"\n\n".encode()
        body = b"".join(b"--" + boundary.encode() + b"\n" + p + b"\n" for p in parts)
        return head + body + (b"--" + boundary.encode() + b"--\n" if draw(st.booleans()) else b"")
    head = f"Content-Type: {ctype}; charset=\"{draw(_charset)}\"\n"
    if draw(st.booleans()):
        head += f"Content-Transfer-Encoding: {draw(_cte)}\n"
    return head.encode("utf-8", "surrogatepass") + b"\n" + draw(_body_bytes)


@st.composite
def mime_messages(draw) -> bytes:
    names = draw(st.lists(st.sampled_from(["From", "Subject", "Message-ID", "Date", "To",
                                           "In-Reply-To", "References", "MIME-Version"]),
                          min_size=1, max_size=6))
    head = "".join(f"{n}: {draw(_header_value)}\n" for n in names)
    raw = head.encode("utf-8", "surrogatepass") + draw(_part())
    if draw(st.booleans()):
        raw = raw.replace(b"\n", b"\r\n")
    if draw(st.booleans()):  # an mbox of one or two
        raw = b"From x@y Mon May 13 12:00:00 2013\n" + raw + (
            b"\nFrom z@y Tue May 14 12:00:00 2013\n" + raw if draw(st.booleans()) else b"")
    return raw


_SEED_LINES = (Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"
               ).read_text(encoding="utf-8").splitlines()


@st.composite
def wellformed(draw, bodies: st.SearchStrategy[str]) -> bytes:
    """A valid message around `bodies`, in a transfer encoding chosen at random: the
    properties below must hold on mail that reads, not only on mail that is refused."""
    msg = EmailMessage()
    msg["From"], msg["Subject"], msg["Message-ID"] = "Ian <ijc@example.org>", "Re: 4.2 TODO", "<a@b>"
    msg.set_content(draw(bodies), cte=draw(st.sampled_from(["base64", "quoted-printable"])))
    return bytes(msg)


@st.composite
def _list_bodies(draw) -> str:
    """A stretch of the real 4.2 list with stray lines dropped in."""
    start = draw(st.integers(0, len(_SEED_LINES) - 1))
    lines = _SEED_LINES[start:start + draw(st.integers(1, 60))]
    for _ in range(draw(st.integers(0, 4))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(_LIST_LINES)))
    return "\n".join(lines)


def _one_line(reason: object) -> bool:
    text = str(reason)
    return bool(text.strip()) and "\n" not in text and "Traceback" not in text


def _words_of(text: str) -> set[str]:
    return set(text.split()) | set(clean(text).split())


def _walk(items):
    for it in items:
        yield it
        yield from _walk(it.children)


@given(st.one_of(mime_messages(), wellformed(_list_bodies())), st.sampled_from([None, "<a@b>"]))
def test_any_mime_message_imports_or_says_why_not(raw, message_id):
    """Either every item read has a title made of words of the decoded text, or the refusal
    is one line."""
    try:
        mail = read_mail_file(raw, message_id)
    except LookupError as exc:  # no such message / no text part: the command line says so
        assert _one_line(exc), repr(exc)
        return
    assert isinstance(mail.text, str)
    try:
        lst = layouts.parse(mail.text, "4.2")
    except MailFormatError as exc:
        assert _one_line(exc), repr(exc)
        return
    words = _words_of(mail.text)
    for it in _walk(lst.items):
        assert it.title and all(any(w in t for t in words) for w in it.title.split()), (
            it.title, mail.text)


# A line is someone else's words when it starts with ">" (after at most one space).
_QUOTED = re.compile(r"\s?>")


def _reply_bodies() -> st.SearchStrategy[str]:
    return _lines.map(lambda lines: "\n".join((q + t) if quoted else t for quoted, q, t in lines))


@given(st.one_of(mime_messages(), st.deferred(lambda: wellformed(_reply_bodies()))))
def test_any_mime_reply_reads_into_actions(raw):
    """Whatever a reply asks for comes from its own, unquoted lines."""
    msg = BytesParser(policy=default_policy).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    body = _plain_body(msg)
    if body is None:
        return
    own = [ln for ln in body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
           if not _QUOTED.match(ln)]
    own_lines, own_words = {ln.strip() for ln in own}, set(" ".join(own).split())
    for action in parse_reply(body):
        if isinstance(action, Command):
            assert action.line in own_lines, (action, body)
        else:
            said = action.said if isinstance(action, Claim) else action.text
            assert set(said.split()) <= own_words, (action, body)


# -------------------------------------------------------------------- quoted lines

_QUOTE_MARKS = st.sampled_from([">", "> ", ">>", "> > ", " >", " > >", ">\t"])
_LINE_WORDS = st.sampled_from([
    "!claim 1", "!done 3", "!status 8 patch posted", "!", "!!", "  !claim 2", "tools, blockers:",
    "hypervisor, nice to have:", "* #10 Bump SONAMES", "* new item", "- another", "I can take this one.",
    "mine", "On Mon, 6 Aug 2012, Ian Campbell wrote:", "-- ", "--", " -George", "", " ", "\t!x"])
_line_text = st.one_of(_LINE_WORDS, st.text(max_size=30)).map(
    lambda s: s.replace("\r", "").replace("\n", ""))
_lines = st.lists(st.tuples(st.booleans(), _QUOTE_MARKS, _line_text), max_size=25)


@given(_lines, st.sampled_from(["!", "@", "todobot:"]))
def test_quoted_lines_never_become_commands(lines, prefix):
    text = [(q + s) if quoted else s for quoted, q, s in lines]
    body = "\n".join(p.replace("!", prefix) if p.lstrip().startswith("!") else p for p in text)
    unquoted = {ln.strip() for ln, (quoted, _, _) in zip(body.split("\n"), lines) if not quoted}
    for action in parse_reply(body, prefix=prefix):
        if isinstance(action, Command):
            assert action.line in unquoted, (action, body)
    # Quoted only: nothing at all is asked.
    only_quoted = "\n".join(q + s for _, q, s in lines)
    assert parse_reply(only_quoted, prefix=prefix) == []
