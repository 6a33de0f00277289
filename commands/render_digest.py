"""The digest's renderers: `DigestData` (storage/digest_data.py) as a chat `Reply` (the full
form, or the short form for IRC), a plain-text mail, Markdown or an HTML page.

The shape follows the release mail: the timeline with `<< DONE` / `<< WE ARE HERE`, a one-line
summary, what changed since the last digest, stale claims, then the open items by area and
severity. In a release with its own mail layout, the timeline and the list use that layout.
"""

from __future__ import annotations

import re
import textwrap
from datetime import datetime, tzinfo
from urllib.parse import quote

from ..storage import ReleaseList
from ..storage.digest_data import Changes, DigestData, StaleClaim
from ..storage.formats import md_escape
from ..storage.layouts import DEFAULT as DEFAULT_LAYOUT
from ..storage.layouts import render as render_layout
from .format import item_spans, list_reply, owners_text, summary
from .messages import Reply, Span, bold, item_ref, link, person
from .timeline import summary_text, timeline_lines

SHORT_BLOCKERS = 3  # blocker lines in the short (IRC) form


def release_url(status_url: str | None, release: str) -> str | None:
    return f"{status_url.rstrip('/')}/release/{quote(release, safe='')}" if status_url else None


def change_counts(ch: Changes) -> list[str]:
    """`3 new, 1 done, ...`: the week's changes counted, for the short form."""
    parts = [(len(ch.new), "new"), (len(ch.done), "done"),
             (len(ch.to_blocker), "now blocker"), (len(ch.to_nice), "now nice to have"),
             (len(ch.claimed), "claimed"), (len(ch.unclaimed), "unclaimed"),
             (len(ch.duplicates), "duplicate"), (len(ch.reopened), "reopened"),
             (len(ch.closed), "deferred or dropped")]
    return [f"{n} {what}" for n, what in parts if n]


def stale_spans(c: StaleClaim) -> list[Span | str]:
    parts: list[Span | str] = [item_ref(c.item.id), " — "]
    for i, (name, identity) in enumerate(c.owners):
        parts += [", "] if i else []
        parts.append(person(name, identity))
    parts.append(f", no update for {c.days} day{'s' * (c.days != 1)}")
    return parts


# -- the Reply forms ---------------------------------------------------------------------------


def _day(ts: float, tz: tzinfo) -> str:
    d = datetime.fromtimestamp(ts, tz)
    return f"{d:%a} {d.day} {d:%b %Y}"


def head_reply(data: DigestData) -> Reply:
    return Reply().add(bold(f"{data.title} TODO digest"), ": ", summary_text(data.totals))


def _layout_lines(data: DigestData, lst: ReleaseList) -> list[str] | None:
    """The list's lines in the release's own mail layout; None for the 4.2 layout, which the
    Reply forms already follow (with bold ids and links)."""
    if data.release.layout == DEFAULT_LAYOUT:
        return None
    return [ln for ln in render_layout(lst, ids=True, layout=data.release.layout).splitlines()
            if ln.strip()]


def timeline_reply(data: DigestData) -> Reply:
    reply = Reply()
    if data.milestones and (lines := _layout_lines(data, ReleaseList(None, data.milestones))):
        reply.heading(lines[0])
        for line in lines[1:]:
            reply.add(line)
    elif data.milestones:
        reply.heading("Timeline:")
        for line in timeline_lines(data.milestones):
            reply.add(line)
    return reply


def changes_reply(data: DigestData) -> Reply:
    ch = data.changes
    reply = Reply()
    since = _day(data.since, data.tz)
    if not ch:
        return reply.add(f"No changes since {since}.")
    reply.heading(f"Changes since {since}:")
    for label, its in (("New", ch.new), ("Done", ch.done), ("Now a blocker", ch.to_blocker),
                       ("Now nice to have", ch.to_nice), ("Reopened", ch.reopened),
                       ("Deferred or dropped", ch.closed)):
        for it in its:
            reply.bullet(f"{label}: ", *item_spans(it))
    for it, who in ch.claimed:
        reply.bullet("Claimed: ", item_ref(it.id), f" {summary(it)} — by {', '.join(who)}")
    for it, who in ch.unclaimed:
        reply.bullet("Unclaimed: ", item_ref(it.id), f" {summary(it)} — was {', '.join(who)}")
    for it, before, after in ch.progress:
        was = f" (was: {before})" if before else ""
        reply.bullet("Progress: ", item_ref(it.id), f" {summary(it)} — {after}{was}")
    for it in ch.duplicates:
        target = [" into ", item_ref(it.duplicate_of)] if it.duplicate_of else []
        reply.bullet("Duplicate collapsed: ", item_ref(it.id), f" {summary(it)}", *target)
    reply.items = tuple(dict.fromkeys(
        [it.id for it in ch.new + ch.done + ch.to_blocker + ch.to_nice + ch.reopened + ch.closed
         + ch.duplicates] + [it.id for it, _ in ch.claimed + ch.unclaimed]
        + [it.id for it, _, _ in ch.progress]))
    return reply


def stale_reply(data: DigestData) -> Reply:
    reply = Reply()
    if data.stale:
        reply.heading(f"Claims with no update for {data.stale_days} days or more:")
        for c in data.stale:
            reply.bullet(*stale_spans(c))
        reply.items = tuple(c.item.id for c in data.stale)
    return reply


def items_reply(data: DigestData) -> Reply:
    # The layout is looked at first: the 4.2 layout's reply does without the mail tree.
    if data.items and data.release.layout != DEFAULT_LAYOUT and (
            lines := _layout_lines(data, data.open_list)):
        reply = Reply(long=True).add("Open items:")
        for line in lines:
            reply.add(line)
        reply.items = tuple(it.id for it in data.items)
        return reply
    return list_reply(data.items, heading="Open items:", empty="No open items.")


def full_reply(data: DigestData) -> Reply:
    reply = Reply(long=True)
    for part in (head_reply(data), timeline_reply(data), changes_reply(data), stale_reply(data),
                 items_reply(data)):
        reply.extend(part)
    reply.long = True
    return reply


def short_reply(data: DigestData, *, prefix: str = "!", status_url: str | None = None) -> Reply:
    """A handful of lines: summary with the week's counts, open blockers, stale pings, pointers."""
    counts = change_counts(data.changes)
    tail = f"; since {_day(data.since, data.tz)}: {', '.join(counts)}" if counts else ""
    reply = Reply(long=False).add(bold(f"{data.title} TODO digest"), f": {summary_text(data.totals)}{tail}")
    open_blockers = {it.id for it in data.blockers}
    roots = [it for it in data.blockers if it.parent not in open_blockers]
    shown = roots if len(roots) <= SHORT_BLOCKERS else roots[:SHORT_BLOCKERS - 1]
    for it in shown:
        reply.bullet(item_ref(it.id), f" {summary(it)} ({owners_text(it.owners)})")
    if len(shown) < len(roots):
        reply.bullet(f"… and {len(roots) - len(shown)} more blockers: {prefix}blockers")
    if data.stale:
        parts: list[Span | str] = ["No update for a while: "]
        for i, c in enumerate(data.stale[:4]):
            parts += ["; "] if i else []
            parts += [item_ref(c.item.id), " "]
            for j, (name, identity) in enumerate(c.owners):
                parts += [", "] if j else []
                parts.append(person(name, identity))
            parts.append(f" ({c.days} days)")
        if len(data.stale) > 4:
            parts.append(f"; {len(data.stale) - 4} more: {prefix}stale")
        reply.add(*parts)
    url = release_url(status_url, data.release.name)
    reply.add(f"Everything: {prefix}todo", *([" · ", link(url)] if url else []))
    reply.items = tuple(it.id for it in shown) + tuple(c.item.id for c in data.stale[:4])
    return reply


def render_reply(data: DigestData, form: str, *, prefix: str = "!",
                 status_url: str | None = None) -> Reply:
    return short_reply(data, prefix=prefix, status_url=status_url) if form == "short" \
        else full_reply(data)


# -- text forms: mail, Markdown, HTML ----------------------------------------------------------


def _wrapped(text: str, first: str, rest: str, width: int = 72) -> str:
    return "\n".join(textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                                   break_long_words=False, break_on_hyphens=False)) or first.rstrip()


def render_text(data: DigestData, *, status_url: str | None = None) -> str:
    """The digest as a plain-text mail: the list part is the release's own mail layout."""
    blocks = [head_reply(data).plain]
    url = release_url(status_url, data.release.name)
    if url:
        blocks.append(f"Status page: {url}")
    if data.milestones and data.release.layout != DEFAULT_LAYOUT:  # the timeline in its layout too
        blocks.append(render_layout(ReleaseList(None, data.milestones), layout=data.release.layout).rstrip())
    elif data.milestones:
        blocks.append("The time line is as follows:\n\n" + "\n".join(timeline_lines(data.milestones)))
    for part in (changes_reply(data), stale_reply(data)):
        if part.lines:
            head, *bullets = part.lines
            blocks.append("\n".join([head.plain] + ([""] if bullets else [])
                                    + [_wrapped(ln.plain, "    * ", "      ") for ln in bullets]))
    if data.items:
        blocks.append("The open items:\n\n" + render_layout(data.open_list, ids=True).rstrip("\n"))
    else:
        blocks.append("No open items.")
    return "\n\n".join(b.rstrip() for b in blocks) + "\n"


def render_markdown(data: DigestData, *, status_url: str | None = None) -> str:
    from .render_markdown import reply_markdown  # the mail and web forms only: not for chat
    out = [f"# {md_escape(data.title)} TODO digest", "", md_escape(summary_text(data.totals)), ""]
    url = release_url(status_url, data.release.name)
    if url:
        out += [f"Status page: <{url}>", ""]
    if data.milestones:
        out += ["## Timeline", "", "```", *timeline_lines(data.milestones), "```", ""]
    for part in (changes_reply(data), stale_reply(data), items_reply(data)):
        out += reply_markdown(part)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def render_html(data: DigestData, *, status_url: str | None = None) -> str:
    import html

    from .render_html import reply_html  # as reply_markdown: the mail and web forms only
    title = html.escape(f"{data.title} TODO digest")
    parts = [f"<h2>{title}</h2>", f"<p>{html.escape(summary_text(data.totals))}</p>"]
    url = release_url(status_url, data.release.name)
    if url:
        parts.append(f'<p>Status page: <a href="{html.escape(url)}">{html.escape(url)}</a></p>')
    if data.milestones:
        parts.append("<h3>Timeline</h3><pre>" + html.escape("\n".join(timeline_lines(data.milestones)))
                     + "</pre>")
    item_base = f"{url}/item" if url else None
    parts.append(reply_html(changes_reply(data), document=True, item_base=item_base))
    parts.append(reply_html(stale_reply(data), document=True, item_base=item_base))
    parts.append(reply_html(items_reply(data), document=True, anchors=True,
                            item_base=item_base))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title
            + "</title></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")
