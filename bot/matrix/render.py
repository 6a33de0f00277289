"""A `Reply` as a Matrix message: a plain `body` and an HTML `formatted_body`.

The HTML comes from the one Reply → HTML renderer (commands/render_html.py: escaped text,
only safe links, nested `<ul>` lists); what is Matrix's own is here: owners with a Matrix
identity become pills (matrix.to links that clients render as names), the event content,
its size in bytes as the server counts it (encrypted or not), splitting an answer under the
event size limit, and the text people saw of someone's message (what a client shows of its
HTML; a reply's body without the quoted original).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any
from urllib.parse import quote

from ...commands.messages import Line, Reply, Span
from ...commands.render_html import one_line, reply_html

HTML_FORMAT = "org.matrix.custom.html"
_MATRIX_ID = re.compile(r"@[^\s:/]+:[A-Za-z0-9.\-\[\]:]+")


def pill_url(mention: str | None) -> str | None:
    """`matrix:@u:server` -> the matrix.to URL clients show as a pill; other identities: None."""
    if not mention or not mention.startswith("matrix:"):
        return None
    user_id = mention[len("matrix:"):]
    if not _MATRIX_ID.fullmatch(user_id):
        return None
    return "https://matrix.to/#/" + quote(user_id, safe="@:")


def line_plain(line: Line) -> str:
    return one_line(line.indented)


def render_body(reply: Reply) -> str:
    return "\n".join(line_plain(ln) for ln in reply.lines)


def render_html(reply: Reply) -> str:
    return reply_html(reply, mention_href=pill_url)


def render(reply: Reply) -> dict[str, str]:
    """The content of an `m.notice` for this reply (relations are added by the caller)."""
    return {"msgtype": "m.notice", "body": render_body(reply), "format": HTML_FORMAT,
            "formatted_body": render_html(reply)}


# Matrix refuses an event over 64 KiB (M_TOO_LARGE), counted in bytes of the event as the
# server keeps it: the UTF-8 JSON of its content (in an encrypted room, the Megolm envelope) plus
# the server's own fields (ids, hashes, signatures: a few hundred bytes). Parts are cut to
# 24 KiB of content as sent, measured exactly, which leaves a wide margin.
MAX_EVENT_BYTES = 24 * 1024
# A line whose own event would be over half that is cut into text pieces of at most this
# many characters, halved again until each fits.
_PIECE = 2000
MEGOLM = "m.megolm.v1.aes-sha2"
# What an encrypted event carries beside the ciphertext (Curve25519 key and session id are 43
# base64 characters; device ids are short, 32 is generous).
_ENVELOPE = {"algorithm": MEGOLM, "sender_key": "k" * 43, "ciphertext": "", "session_id": "s" * 43,
             "device_id": "d" * 32}
# A Megolm message around the AES-CBC ciphertext: version byte, the message index and the
# ciphertext's length as protobuf fields (tag + varint, at most 6 and 4 bytes), an 8-byte MAC
# and a 64-byte Ed25519 signature.
_MEGOLM_FRAME = 1 + 6 + 4 + 8 + 64

Measure = Callable[[Reply], int]


def content_bytes(content: dict[str, Any]) -> int:
    """Bytes of an event content as the server stores it (UTF-8 JSON, nothing escaped)."""
    return len(json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode())


def encrypted_bytes(content: dict[str, Any], room_id: str,
                    event_type: str = "m.room.message") -> int:
    """Bytes of the `m.room.encrypted` content matrix-nio makes of `content`: the JSON it
    encrypts is ASCII (`\\uXXXX` escapes: 6 bytes for a character of the BMP, 12 for one
    beyond, like an emoji), padded to 16 bytes by AES-CBC, framed, then base64 (4/3); the
    relation travels in the clear beside it."""
    plain = len(json.dumps({"content": content, "type": event_type, "room_id": room_id},
                           separators=(",", ":")))
    megolm = _MEGOLM_FRAME + (plain // 16 + 1) * 16
    envelope = dict(_ENVELOPE)
    if "m.relates_to" in content:
        envelope["m.relates_to"] = content["m.relates_to"]
    return content_bytes(envelope) + -(-megolm * 4 // 3)


def plain_size(reply: Reply) -> int:
    return content_bytes(render(reply))


def _blocks(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped so that a split never separates a bullet from its sub-items."""
    out: list[list[Line]] = []
    for line in lines:
        if out and line.kind == "bullet" and line.level > 0:
            out[-1].append(line)
        else:
            out.append([line])
    return out


def _pieces(line: Line, fits: Callable[[list[Line]], bool]) -> list[Line]:
    """A line too long for one event, as plain text lines that each `fits`."""
    plain = line.plain
    texts: list[str] = []

    def cut(text: str) -> None:
        if len(text) <= 1 or fits([Line((Span(text),), "text", line.level)]):
            texts.append(text)
        else:
            half = len(text) // 2
            cut(text[:half])
            cut(text[half:])
    for i in range(0, len(plain), _PIECE):
        cut(plain[i:i + _PIECE])
    return [Line((Span(t),), line.kind if i == 0 else "text", line.level)
            for i, t in enumerate(texts)]


def _items_in(lines: list[Line], items: tuple[int, ...]) -> tuple[int, ...]:
    named = {s.item for ln in lines for s in ln.spans if s.item is not None}
    return tuple(i for i in items if i in named)


def split_reply(reply: Reply, limit: int = MAX_EVENT_BYTES,
                measure: Measure = plain_size) -> list[Reply]:
    """`reply` as consecutive replies whose events `measure` at most `limit` bytes each (by
    default the plain content; an encrypted room measures the ciphertext), cut between items
    (a bullet stays with its sub-items, a heading with what follows it). Each part keeps the
    items its own lines name; a reply that fits is returned as is."""
    def size(lines: list[Line]) -> int:
        return measure(Reply(lines=lines))

    if size(reply.lines) <= limit:
        return [reply]
    base = size([])  # what every event costs (keys, relation, encryption's frame)
    half = base + (limit - base) // 2
    blocks: list[list[Line]] = []
    for block in _blocks(reply.lines):
        if size(block) <= limit:
            blocks.append(block)
        else:  # a huge item (long notes): line by line, and cut any line that alone is too big
            for line in block:
                blocks.extend([p] for p in ([line] if size([line]) <= half
                                            else _pieces(line, lambda ls: size(ls) <= half)))
    parts: list[list[Line]] = []
    current: list[Line] = []
    total = base
    for block in blocks:
        # Estimated as the sum of the blocks; checked exactly below.
        cost = size(block) - base + 32
        if current and total + cost > limit:
            parts.append(current)
            current, total = [], base
        current = current + block
        total += cost
    if current:
        parts.append(current)
    # A heading at the end of a part belongs to the next one.
    for i in range(len(parts) - 1):
        if len(parts[i]) > 1 and parts[i][-1].kind == "heading":
            parts[i + 1].insert(0, parts[i].pop())
    out: list[Reply] = []
    for lines in parts:
        if size(lines) > limit and len(lines) > 1:  # the estimate was wrong: halve
            half = len(lines) // 2
            for side in (lines[:half], lines[half:]):
                out += split_reply(Reply(lines=side, outcome=reply.outcome, long=reply.long,
                                         items=_items_in(side, reply.items)), limit, measure)
            continue
        out.append(Reply(lines=lines, outcome=reply.outcome, long=reply.long,
                         items=_items_in(lines, reply.items)))
    return out


class _Shown(HTMLParser):
    """The text of an HTML body as clients show it: tags dropped, entities decoded, line
    breaks for block elements, the reply fallback (`<mx-reply>`) left out."""

    _BREAKS = frozenset({"br", "p", "div", "li", "ul", "ol", "blockquote", "pre", "tr",
                         "h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "mx-reply":
            self._hidden += 1
        elif tag in self._BREAKS and not self._hidden:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "mx-reply" and self._hidden:
            self._hidden -= 1
        elif tag in self._BREAKS and not self._hidden:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def shown_text(content: dict[str, Any]) -> str | None:
    """What a client shows for a message that has an HTML `formatted_body`; None without one
    (then clients show the plain `body`)."""
    html_body = content.get("formatted_body")
    if content.get("format") != HTML_FORMAT or not isinstance(html_body, str):
        return None
    parser = _Shown()
    parser.feed(html_body)
    parser.close()
    return "".join(parser.parts).strip()


_REPLY_FALLBACK = re.compile(r"\A(?:>[^\n]*\n)+\n?", re.DOTALL)


def strip_reply_fallback(body: str) -> str:
    """A reply's body starts with the quoted original (`> <@u:s> text`); drop it."""
    return _REPLY_FALLBACK.sub("", body, count=1)
