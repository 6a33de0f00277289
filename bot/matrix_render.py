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
