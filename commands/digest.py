"""The release digest — what the release manager's weekly mail says — and `!digest`, `!stale`.

`collect` reads everything a digest needs in one session; the renderers turn it into a `Reply`
(the full form, or the short form for IRC), the plain-text mail, Markdown or HTML. The digest's
shape follows the mail: the timeline with `<< DONE` / `<< WE ARE HERE`, a one-line summary,
what changed since the last digest (from the history table), stale claims, then the open items
by area and severity.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone, tzinfo

from .messages import Reply, Span, bold, item_ref, link, person
from ..storage import Change, Item, ListItem, Milestone, Release, ReleaseList, Session, digests
from ..storage.dates import parse_when
from ..storage.repository import list_tree

from .context import Context
from .links import safe_url, segments
from .format import item_spans, list_reply, owners_text, summary
from .args import Count, Word
from .registry import command
from .timeline import summary_line, timeline_lines

UTC = timezone.utc
DAY = 86400.0
SHORT_BLOCKERS = 3  # blocker lines in the short (IRC) form


def release_url(status_url: str | None, release: str) -> str | None:
    from urllib.parse import quote
    return f"{status_url.rstrip('/')}/release/{quote(release, safe='')}" if status_url else None


# -- the timeline --------------------------------------------------------------------------------

def effective_milestones(milestones: list[Milestone], today: date, created: date) -> list[Milestone]:
    """The timeline with its marks as of `today`.

    When a milestone is marked current (`!milestone here`, or an imported `<< WE ARE HERE`),
    the stored marks are the release manager's word and stay. Otherwise milestones whose date
    has come are DONE and the first one not done is WE ARE HERE — the phase being worked
    towards, which is how the mail reads ("30 July RC1 << DONE, Weekly RCN+1 << WE ARE HERE")."""
    out = [replace(m) for m in milestones]
    if any(m.current for m in out):
        return out
    prev: date | None = None
    dated = False
    for m in out:
        d = parse_when(m.when, prev or created, not_before=prev)
        if d is not None:
            dated = True
            prev = d
            m.done = m.done or d <= today
    if dated:
        for m in out:
            if not m.done:
                m.current = True
                break
    return out


# -- what changed ------------------------------------------------------------------------------


@dataclass
class Changes:
    new: list[Item] = field(default_factory=list)
    done: list[Item] = field(default_factory=list)
    to_blocker: list[Item] = field(default_factory=list)
    to_nice: list[Item] = field(default_factory=list)
    claimed: list[tuple[Item, list[str]]] = field(default_factory=list)  # who took it
    unclaimed: list[tuple[Item, list[str]]] = field(default_factory=list)  # who let go
    progress: list[tuple[Item, str, str]] = field(default_factory=list)  # before, after
    duplicates: list[Item] = field(default_factory=list)
    reopened: list[Item] = field(default_factory=list)
    closed: list[Item] = field(default_factory=list)  # deferred or dropped

    def counts(self) -> list[str]:
        parts = [(len(self.new), "new"), (len(self.done), "done"),
                 (len(self.to_blocker), "now blocker"), (len(self.to_nice), "now nice to have"),
                 (len(self.claimed), "claimed"), (len(self.unclaimed), "unclaimed"),
                 (len(self.duplicates), "duplicate"), (len(self.reopened), "reopened"),
                 (len(self.closed), "deferred or dropped")]
        return [f"{n} {what}" for n, what in parts if n]

    def __bool__(self) -> bool:
        return bool(self.new or self.done or self.to_blocker or self.to_nice or self.claimed
                    or self.unclaimed or self.progress or self.duplicates or self.reopened
                    or self.closed)


def _owners(value: str | None) -> list[str]:
    import json
    try:
        out = json.loads(value) if value else []
    except ValueError:
        return []
    return [str(o) for o in out] if isinstance(out, list) else []


async def summarise_changes(s: Session, changes: list[Change]) -> Changes:
    """History rows → what a reader wants to know. Several changes to one field of one item
    count once, from the first value to the last (claimed then unclaimed is no change)."""
    created: set[int] = set()
    net: dict[tuple[int, str], list[str | None]] = {}
    for ch in changes:
        if ch.item_id is None:
            continue
        if ch.field == "created" or (ch.field == "release"):
            created.add(ch.item_id)  # new here, or moved in from another release
            continue
        key = (ch.item_id, ch.field)
        if key in net:
            net[key][1] = ch.after
        else:
            net[key] = [ch.before, ch.after]
    out = Changes()
    items = await s.get_many(created | {item_id for item_id, _ in net})
    for item_id in sorted(created):
        if item_id in items:
            out.new.append(items[item_id])
    for (item_id, fld), (before, after) in sorted(net.items()):
        if before == after or item_id in created or item_id not in items:
            continue
        it = items[item_id]
        if fld == "state":
            if after == "done":
                out.done.append(it)
            elif after == "duplicate":
                out.duplicates.append(it)
            elif after == "open":
                out.reopened.append(it)
            elif after in ("deferred", "dropped"):
                out.closed.append(it)
        elif fld == "severity":
            (out.to_blocker if after == "blocker" else out.to_nice).append(it)
        elif fld == "owners":
            old, new = _owners(before), _owners(after)
            folded = {o.casefold() for o in old}
            added = [o for o in new if o.casefold() not in folded]
            if added:
                out.claimed.append((it, added))
            elif old and not new:
                out.unclaimed.append((it, old))
        elif fld == "progress" and (after or "") and it.is_open:
            out.progress.append((it, before or "", after or ""))
    return out


# -- stale claims ------------------------------------------------------------------------------


@dataclass
class StaleClaim:
    item: Item
    owners: list[tuple[str, str | None]]  # (name, identity when known)
    days: int

    @property
    def key(self) -> tuple[int, float]:
        """A claim is stale once per quiet period: the next change to the item starts a new one."""
        return (self.item.id, self.item.updated_at)


async def stale_claims(s: Session, items: Iterable[Item], days: int, now: float) -> list[StaleClaim]:
    out = []
    items = [it for it in items if it.is_open and it.owners and now - it.updated_at >= days * DAY]
    idents = await s.identities_of([i for it in items for i in it.owner_ids])
    for it in items:
        owners = [(name, _mention(idents.get(pid, []))) for name, pid in zip(it.owners, it.owner_ids)]
        out.append(StaleClaim(it, owners, int((now - it.updated_at) // DAY)))
    out.sort(key=lambda c: (-c.days, c.item.id))
    return out


def _mention(identities: list[str]) -> str | None:
    """The identity to mention a person by: a Matrix one where it has one (a pill)."""
    return next((i for i in identities if i.startswith("matrix:")), identities[0] if identities else None)


def stale_spans(c: StaleClaim) -> list[Span | str]:
    parts: list[Span | str] = [item_ref(c.item.id), " — "]
    for i, (name, identity) in enumerate(c.owners):
        parts += [", "] if i else []
        parts.append(person(name, identity))
    parts.append(f", no update for {c.days} day{'s' * (c.days != 1)}")
    return parts


# -- collecting --------------------------------------------------------------------------------


@dataclass
class DigestData:
    release: Release
    now: float
    since: float
    tz: tzinfo
    summary: str
    milestones: list[Milestone]
    changes: Changes
    items: list[Item]  # open items, list order
    stale_days: int | None
    stale: list[StaleClaim]  # the claims this digest pings
    open_list: ReleaseList  # the open items as the mail format's tree

    @property
    def new_stale_keys(self) -> list[tuple[int, float]]:
        return [c.key for c in self.stale]

    @property
    def blockers(self) -> list[Item]:
        return [it for it in self.items if it.severity == "blocker"]


def _open_tree(nodes: list[ListItem]) -> list[ListItem]:
    """Open items only; an open child of a closed item moves up to its place. No notes."""
    out: list[ListItem] = []
    for n in nodes:
        kids = _open_tree(n.children)
        if n.state == "open":
            out.append(replace(n, notes=[], children=kids))
        else:
            out.extend(kids)
    return out


async def collect(s: Session, release: Release, *, since: float, stale_days: int | None = None,
                  transport: str | None = None, room: str | None = None,
                  tz: tzinfo | None = None) -> DigestData:
    """Everything a digest says, read in one session. With `transport` and `room`, stale
    claims already pinged there in an earlier digest are left out (each is pinged once)."""
    tz = tz or UTC
    now = s.now
    everything = await s.items(release, states=None)  # one read serves the summary and the tree
    items = [it for it in everything if it.is_open]
    today = datetime.fromtimestamp(now, tz).date()
    created = datetime.fromtimestamp(release.created_at or now, tz).date()
    milestones = effective_milestones(await s.milestones(release), today, created)
    changes = await summarise_changes(s, await s.changes_since(release, since))
    stale: list[StaleClaim] = []
    if stale_days:
        stale = await stale_claims(s, items, stale_days, now)
        if transport is not None and room is not None:
            done = await digests.pinged(s, transport, room, [c.key for c in stale])
            stale = [c for c in stale if c.key not in done]
    open_list = ReleaseList(release.name, [], _open_tree(list_tree(everything)), "",
                            layout=release.layout)
    return DigestData(release, now, since, tz, await summary_line(s, release), milestones,
                      changes, items, stale_days, stale, open_list)


# -- the Reply forms ---------------------------------------------------------------------------


def _day(ts: float, tz: tzinfo) -> str:
    d = datetime.fromtimestamp(ts, tz)
    return f"{d:%a} {d.day} {d:%b %Y}"


def head_reply(data: DigestData) -> Reply:
    return Reply().add(bold(f"{data.release.name} TODO digest"), ": ", data.summary)


def _layout_lines(data: DigestData, lst: ReleaseList) -> list[str] | None:
    """The list's lines in the release's own mail layout; None for the 4.2 layout, which the
    Reply forms already follow (with bold ids and links)."""
    from ..storage.layouts import DEFAULT, render
    if data.release.layout == DEFAULT:
        return None
    return [ln for ln in render(lst, ids=True, layout=data.release.layout).splitlines() if ln.strip()]


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
    if data.items and (lines := _layout_lines(data, data.open_list)):
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
    counts = data.changes.counts()
    tail = f"; since {_day(data.since, data.tz)}: {', '.join(counts)}" if counts else ""
    reply = Reply(long=False).add(bold(f"{data.release.name} TODO digest"), f": {data.summary}{tail}")
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
    import textwrap
    return "\n".join(textwrap.wrap(text, width, initial_indent=first, subsequent_indent=rest,
                                   break_long_words=False, break_on_hyphens=False)) or first.rstrip()


def render_text(data: DigestData, *, status_url: str | None = None) -> str:
    """The digest as a plain-text mail: the list part is the release's own mail layout."""
    from ..storage.layouts import DEFAULT as DEFAULT_LAYOUT
    from ..storage.layouts import render

    blocks = [head_reply(data).plain]
    url = release_url(status_url, data.release.name)
    if url:
        blocks.append(f"Status page: {url}")
    if data.milestones and data.release.layout != DEFAULT_LAYOUT:  # the timeline in its layout too
        blocks.append(render(ReleaseList(None, data.milestones), layout=data.release.layout).rstrip())
    elif data.milestones:
        blocks.append("The time line is as follows:\n\n" + "\n".join(timeline_lines(data.milestones)))
    for part in (changes_reply(data), stale_reply(data)):
        if part.lines:
            head, *bullets = part.lines
            blocks.append("\n".join([head.plain] + ([""] if bullets else [])
                                    + [_wrapped(ln.plain, "    * ", "      ") for ln in bullets]))
    if data.items:
        blocks.append("The open items:\n\n" + render(data.open_list, ids=True).rstrip("\n"))
    else:
        blocks.append("No open items.")
    return "\n\n".join(b.rstrip() for b in blocks) + "\n"


_MD_ACTIVE = re.compile(r"([\\`*_{}\[\]<>#|])")


def _md(text: str) -> str:
    return _MD_ACTIVE.sub(r"\\\1", text)


def _span_md(sp: Span) -> str:
    body = _md(sp.text)
    target = safe_url(sp.link)
    if target:
        body = f"[{body}](<{target}>)"
    return f"**{body}**" if sp.bold and body.strip() else body


def reply_markdown(reply: Reply) -> list[str]:
    out = []
    for ln in reply.lines:
        text = "".join(_span_md(sp) for sp in ln.spans)
        if ln.kind == "heading":
            out += ["", f"### {text}", ""]
        elif ln.kind == "bullet":
            out.append(f"{'  ' * ln.level}- {text}")
        else:
            out += [text, ""]
    return out


def render_markdown(data: DigestData, *, status_url: str | None = None) -> str:
    out = [f"# {_md(data.release.name)} TODO digest", "", _md(data.summary), ""]
    url = release_url(status_url, data.release.name)
    if url:
        out += [f"Status page: <{url}>", ""]
    if data.milestones:
        out += ["## Timeline", "", "```", *timeline_lines(data.milestones), "```", ""]
    for part in (changes_reply(data), stale_reply(data), items_reply(data)):
        out += reply_markdown(part)
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def _a(url: str, label: str) -> str:
    return f'<a href="{html.escape(url)}" rel="nofollow noopener">{html.escape(label)}</a>'


def text_html(text: str) -> str:
    """Escaped text with its safe URLs as links (commands/links.py decides; the rest is text)."""
    return "".join(_a(url, piece) if url else html.escape(piece) for piece, url in segments(text))


def span_html(sp: Span, item_base: str | None = None) -> str:
    """One span; an item id links to `item_base`/ID (the status page) or to `#item-ID`."""
    target = safe_url(sp.link)
    if sp.item is not None:
        href = f"{item_base}/{sp.item}" if item_base else f"#item-{sp.item}"
        body = f'<a class="id" href="{html.escape(href)}">{html.escape(sp.text)}</a>'
    elif target:
        body = _a(target, sp.text)
    else:
        body = text_html(sp.text)
    return f"<b>{body}</b>" if sp.bold else body


def reply_html(reply: Reply, *, anchors: bool = False, item_base: str | None = None) -> str:
    """Headings, nested bullet lists and paragraphs. With `anchors`, a bullet that starts with
    an item id gets `id="item-N"` so `#item-N` links land on it. With `item_base` (the status
    page's `/release/NAME/item`), ids link to the item pages."""
    out: list[str] = []
    depth = 0  # open <ul> levels

    def close_to(level: int) -> None:
        nonlocal depth
        while depth > level:
            out.append("</li></ul>")
            depth -= 1

    for ln in reply.lines:
        body = "".join(span_html(sp, item_base) for sp in ln.spans)
        if ln.kind != "bullet":
            close_to(0)
            out.append(f"<h3>{body}</h3>" if ln.kind == "heading" else f"<p>{body}</p>")
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
    close_to(0)
    return "\n".join(out)


def render_html(data: DigestData, *, status_url: str | None = None) -> str:
    title = html.escape(f"{data.release.name} TODO digest")
    parts = [f"<h2>{title}</h2>", f"<p>{html.escape(data.summary)}</p>"]
    url = release_url(status_url, data.release.name)
    if url:
        parts.append(f'<p>Status page: <a href="{html.escape(url)}">{html.escape(url)}</a></p>')
    if data.milestones:
        parts.append("<h3>Timeline</h3><pre>" + html.escape("\n".join(timeline_lines(data.milestones)))
                     + "</pre>")
    item_base = f"{url}/item" if url else None
    parts.append(reply_html(changes_reply(data), item_base=item_base))
    parts.append(reply_html(stale_reply(data), item_base=item_base))
    parts.append(reply_html(items_reply(data), anchors=True, item_base=item_base))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + title
            + "</title></head><body>\n" + "\n".join(parts) + "\n</body></html>\n")


# -- commands ------------------------------------------------------------------------------------


async def since_for_room(s: Session, release: Release, transport: str, room: str) -> float:
    """Changes since this room's last digest, or over the last week when it had none."""
    last = await digests.last_sent_at(s, release.name, transport, room)
    return last if last is not None else s.now - 7 * DAY


@command("digest", Word("preview", optional=True, choices=("preview",)),
         help="the digest of this room's release as the bot posts "
         "it on schedule: timeline, summary, what changed since the last one, open items",
         example="!digest preview", writes=False)
async def digest(ctx: Context, preview: str | None) -> Reply:
    rel = await ctx.release()
    msg = ctx.message
    settings = ctx.settings
    data = await collect(ctx.s, rel, since=await since_for_room(ctx.s, rel, msg.transport, msg.room),
                         stale_days=settings.stale_days, tz=settings.tz)
    return render_reply(data, "short" if settings.compact else "full", prefix=ctx.prefix,
                        status_url=settings.status_url)


@command("stale", Count("DAYS", optional=True, low=1, high=3650),
         help="claimed items with no change for DAYS days (default: "
         "the digest's stale_days, else 14)", example="!stale 10", writes=False)
async def stale(ctx: Context, days: int | None) -> Reply:
    days = days or ctx.settings.stale_days or 14
    rel = await ctx.release()
    claims = await stale_claims(ctx.s, await ctx.s.items(rel), days, ctx.s.now)
    if not claims:
        return Reply().add(f"No claimed item of {rel.name} has gone {days} days without an update.")
    reply = Reply(long=len(claims) > 8).add(
        f"Claimed items of {rel.name} with no update for {days} days or more: {len(claims)}")
    for c in claims:
        reply.bullet(*stale_spans(c), f" ({summary(c.item)})")
    reply.items = tuple(c.item.id for c in claims)
    return reply


__all__ = ["Changes", "DigestData", "collect", "effective_milestones",
           "full_reply", "parse_when", "render_html", "render_markdown", "render_reply",
           "render_text", "reply_html", "short_reply", "stale_claims", "text_html"]
