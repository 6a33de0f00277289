"""A `Reply` as a Matrix message: a plain `body` and an HTML `formatted_body`.

The HTML comes from the one Reply → HTML renderer (commands/render_html.py: escaped text,
only safe links, nested `<ul>` lists); what is Matrix's own is here: owners with a Matrix
identity become pills (matrix.to links that clients render as names), the event content,
and splitting an answer under the event size limit.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ..commands.messages import Line, Reply, Span
from ..commands.render_html import one_line, reply_html

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


# Matrix refuses events over 64 KiB (M_TOO_LARGE). One event carries the plain body and the
# HTML; keeping each under 16 KiB leaves room for JSON escaping, relations and signatures.
MAX_EVENT_CHARS = 16 * 1024
# A block whose own rendering is over this is cut into text pieces of this many characters.
_PIECE = 2000


def _size(lines: list[Line]) -> int:
    """Characters of both renderings of these lines (tags of nested lists included)."""
    r = Reply(lines=lines)
    return len(render_body(r)) + len(render_html(r))


def _blocks(lines: list[Line]) -> list[list[Line]]:
    """Lines grouped so that a split never separates a bullet from its sub-items."""
    out: list[list[Line]] = []
    for line in lines:
        if out and line.kind == "bullet" and line.level > 0:
            out[-1].append(line)
        else:
            out.append([line])
    return out


def _pieces(line: Line) -> list[Line]:
    """A line too long for one event, as plain text lines of `_PIECE` characters."""
    plain = line.plain
    return [Line((Span(plain[i:i + _PIECE]),), line.kind if i == 0 else "text", line.level)
            for i in range(0, len(plain), _PIECE)]


def _items_in(lines: list[Line], items: tuple[int, ...]) -> tuple[int, ...]:
    named = {s.item for ln in lines for s in ln.spans if s.item is not None}
    return tuple(i for i in items if i in named)


def split_reply(reply: Reply, limit: int = MAX_EVENT_CHARS) -> list[Reply]:
    """`reply` as consecutive replies that each render (body + HTML) in `limit` characters,
    cut between items (a bullet stays with its sub-items, a heading with what follows it).
    Each part keeps the items its own lines name; a reply that fits is returned as is."""
    if _size(reply.lines) <= limit:
        return [reply]
    blocks: list[list[Line]] = []
    for block in _blocks(reply.lines):
        if _size(block) <= limit:
            blocks.append(block)
        else:  # a huge item (long notes): line by line, and cut any line that alone is too big
            for line in block:
                blocks.extend([p] for p in ([line] if _size([line]) <= limit // 2
                                            else _pieces(line)))
    parts: list[list[Line]] = []
    current: list[Line] = []
    size = 0
    for block in blocks:
        # Estimated as the sum of the blocks; checked exactly below.
        cost = _size(block) + 32
        if current and size + cost > limit:
            parts.append(current)
            current, size = [], 0
        current = current + block
        size += cost
    if current:
        parts.append(current)
    # A heading at the end of a part belongs to the next one.
    for i in range(len(parts) - 1):
        if len(parts[i]) > 1 and parts[i][-1].kind == "heading":
            parts[i + 1].insert(0, parts[i].pop())
    out: list[Reply] = []
    for lines in parts:
        if _size(lines) > limit and len(lines) > 1:  # the estimate was wrong: halve
            half = len(lines) // 2
            for side in (lines[:half], lines[half:]):
                out += split_reply(Reply(lines=side, outcome=reply.outcome, long=reply.long,
                                         items=_items_in(side, reply.items)), limit)
            continue
        out.append(Reply(lines=lines, outcome=reply.outcome, long=reply.long,
                         items=_items_in(lines, reply.items)))
    return out
