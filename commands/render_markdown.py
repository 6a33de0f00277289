"""A `Reply` as Markdown (the Markdown digest). Text is escaped with storage's one escaper."""

from __future__ import annotations

from ..storage.formats import md_escape
from .links import safe_url
from .messages import Reply, Span


def span_md(sp: Span) -> str:
    body = md_escape(sp.text)
    target = safe_url(sp.link)
    if target:
        body = f"[{body}](<{target}>)"
    return f"**{body}**" if sp.bold and body.strip() else body


def reply_markdown(reply: Reply) -> list[str]:
    out = []
    for ln in reply.lines:
        text = "".join(span_md(sp) for sp in ln.spans)
        if ln.kind == "heading":
            out += ["", f"### {text}", ""]
        elif ln.kind == "bullet":
            out.append(f"{'  ' * ln.level}- {text}")
        else:
            out += [text, ""]
    return out
