"""A `Reply` as HTML: one renderer for the Matrix `formatted_body` and the HTML digest.

Text is escaped (control characters and line breaks neutralised first), so nothing a user
typed can open a tag; only targets `links.safe_url` accepts become links. Bullets become
nested `<ul>` lists and bold spans `<b>`. Two forms:

- a chat message (default): headings bold, text lines separated by `<br>`, one string;
  `mention_href` turns a person's identity into a link (Matrix pills);
- a `document` (the HTML digest): `<h3>` headings, `<p>` paragraphs, item ids linked to their
  page (`item_base`/ID) or to `#item-ID`, URLs in text linked with `rel="nofollow noopener"`,
  and with `anchors` a bullet that starts with an item id gets `id="item-ID"`.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from .links import safe_url, segments
from .messages import Reply, Span

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def one_line(s: str) -> str:
    """Text for one line: no control characters, no embedded line breaks."""
    return _CONTROL.sub("\ufffd", s.replace("\r\n", " ").replace("\n", " ").replace("\r", " "))


def esc(s: str) -> str:
    return html.escape(one_line(s), quote=True)


def _a(url: str, label_html: str, *, document: bool) -> str:
    rel = ' rel="nofollow noopener"' if document else ""
    return f'<a href="{html.escape(url, quote=True)}"{rel}>{label_html}</a>'


def text_html(text: str) -> str:
    """Escaped text with its safe URLs as links (commands/links.py decides; the rest is text)."""
    return "".join(_a(url, esc(piece), document=True) if url else esc(piece)
                   for piece, url in segments(text))


def span_html(sp: Span, *, document: bool = False, item_base: str | None = None,
              mention_href: Callable[[str], str | None] | None = None) -> str:
    if document and sp.item is not None:
        href = f"{item_base}/{sp.item}" if item_base else f"#item-{sp.item}"
        body = f'<a class="id" href="{html.escape(href, quote=True)}">{esc(sp.text)}</a>'
    else:
        target = (mention_href(sp.mention) if mention_href and sp.mention else None) \
            or safe_url(sp.link)
        if target is not None:
            body = _a(target, esc(sp.text), document=document)
        else:
            body = text_html(sp.text) if document else esc(sp.text)
    return f"<b>{body}</b>" if sp.bold else body


def reply_html(reply: Reply, *, document: bool = False, anchors: bool = False,
               item_base: str | None = None,
               mention_href: Callable[[str], str | None] | None = None) -> str:
    out: list[str] = []
    depth = 0  # open <ul> elements; each one has an open <li> once it holds an item
    after_text = False  # a chat text line was the last thing written: the next one needs <br>

    def close_to(level: int) -> None:
        nonlocal depth
        while depth > level:
            out.append("</li></ul>")
            depth -= 1

    for ln in reply.lines:
        body = "".join(span_html(sp, document=document, item_base=item_base,
                                 mention_href=mention_href) for sp in ln.spans)
        if ln.kind != "bullet":
            if not depth and after_text:
                out.append("<br>")
            close_to(0)
            if document:
                out.append(f"<h3>{body}</h3>" if ln.kind == "heading" else f"<p>{body}</p>")
            else:
                out.append(f"<b>{body}</b>" if ln.kind == "heading" else body)
                after_text = True
            continue
        want = ln.level + 1
        if want > depth:
            while depth < want:
                out.append("<ul>")
                depth += 1
        else:
            close_to(want)
            out.append("</li>")
        first = ln.spans[0] if ln.spans else None
        anchor = f' id="item-{first.item}"' if anchors and first is not None and first.item else ""
        out.append(f"<li{anchor}>{body}")
        after_text = False
    close_to(0)
    return ("\n" if document else "").join(out)
