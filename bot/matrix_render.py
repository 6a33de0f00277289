"""A `Reply` as a Matrix message: a plain `body` and an HTML `formatted_body`.

The HTML is built from escaped text only: nothing a user typed can open a tag, and only
http/https targets become links (commands/links.py, the status page's rule too). Bullets
become nested `<ul>` lists, ids and headings bold, and owners with a Matrix identity become
pills (matrix.to links that clients render as names).
"""

from __future__ import annotations

import html
import re
from urllib.parse import quote

from ..commands.links import safe_url
from ..commands.messages import Line, Reply, Span

HTML_FORMAT = "org.matrix.custom.html"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_MATRIX_ID = re.compile(r"@[^\s:/]+:[A-Za-z0-9.\-\[\]:]+")


def _clean(s: str) -> str:
    """One line of text: no control characters, no embedded line breaks."""
    return _CONTROL.sub("\ufffd", s.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def _esc(s: str) -> str:
    return html.escape(_clean(s), quote=True)


def pill_url(mention: str | None) -> str | None:
    """`matrix:@u:server` -> the matrix.to URL clients show as a pill; other identities: None."""
    if not mention or not mention.startswith("matrix:"):
        return None
    user_id = mention[len("matrix:"):]
    if not _MATRIX_ID.fullmatch(user_id):
        return None
    return "https://matrix.to/#/" + quote(user_id, safe="@:")


def span_html(span: Span) -> str:
    out = _esc(span.text)
    target = pill_url(span.mention) or (safe_url(span.link) if span.link else None)
    if target is not None:
        out = f'<a href="{html.escape(target, quote=True)}">{out}</a>'
    if span.bold:
        out = f"<b>{out}</b>"
    return out


def line_html(line: Line) -> str:
    inner = "".join(span_html(s) for s in line.spans)
    return f"<b>{inner}</b>" if line.kind == "heading" else inner


def line_plain(line: Line) -> str:
    lead = "  " * line.level + ("* " if line.kind == "bullet" else "")
    return lead + _clean(line.plain)


def render_body(reply: Reply) -> str:
    return "\n".join(line_plain(ln) for ln in reply.lines)


def render_html(reply: Reply) -> str:
    out: list[str] = []
    depth = 0  # open <ul> elements; each one has an open <li> once it holds an item
    after_text = False  # a text line was the last thing written: the next one needs <br>
    for line in reply.lines:
        if line.kind == "bullet":
            want = line.level + 1
            if depth >= want:
                out.append("</li>")
                while depth > want:
                    out.append("</ul></li>")
                    depth -= 1
            while depth < want:
                out.append("<ul>")
                depth += 1
            out.append("<li>" + line_html(line))
            after_text = False
        else:
            if depth:
                out.append("</li>" + "</ul></li>" * (depth - 1) + "</ul>")
                depth = 0
            elif after_text:
                out.append("<br>")
            out.append(line_html(line))
            after_text = True
    if depth:
        out.append("</li>" + "</ul></li>" * (depth - 1) + "</ul>")
    return "".join(out)


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
