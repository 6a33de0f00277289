"""Reading the list: !blockers, !todo, !show, !history."""

from __future__ import annotations

import time

from .messages import Reply, bold, item_ref, link

from ..storage import Item
from .args import Count, ItemArg, Word
from .context import Context
from .links import safe_url
from .format import LIST_LIMIT, SEVERITY_TITLE, STATE_MARK, item_spans, list_reply, owners_text, summary
from .registry import command


@command("blockers", Word("AREA", optional=True),
         help="the open blockers of this room's release, by area", example="!blockers tools",
         writes=False)
async def blockers(ctx: Context, area: str | None) -> Reply:
    rel = await ctx.release()
    filters = dict(severity="blocker", area=area)
    items, total, unclaimed = await ctx.s.page(rel, limit=LIST_LIMIT, **filters)
    where = f" in {area}" if area else ""
    return list_reply(items, heading=f"Open blockers for {rel.name}{where}: {total}"
                      f" ({unclaimed} unclaimed)", total=total,
                      narrow="" if area else f" (say {ctx.prefix}blockers AREA to narrow it down)",
                      empty=f"No open blockers for {rel.name}{where}.")


@command("todo", Word("AREA|mine|unclaimed|all", optional=True),
         help="open items, blockers first (\"all\" includes closed ones)",
         example="!todo unclaimed", writes=False)
async def todo(ctx: Context, what: str | None) -> Reply:
    rel = await ctx.release()
    what = what or ""
    key = what.casefold()
    filters: dict = {}
    if key == "all":
        filters, label = {"states": None}, "All items"
    elif key == "mine":
        owner = ctx.person.id if ctx.person is not None else -1
        filters, label = {"owner": owner}, f"Open items owned by {ctx.me}"
    elif key == "unclaimed":
        filters, label = {"unclaimed": True}, "Open unclaimed items"
    elif what:
        filters, label = {"area": what}, f"Open items in {what}"
    else:
        label = "Open items"
    items, total, _ = await ctx.s.page(rel, limit=LIST_LIMIT, count_unclaimed=False, **filters)
    narrow = f" (say {ctx.prefix}todo AREA to narrow it down)" if not what or key == "all" else ""
    return list_reply(items, heading=f"{label} for {rel.name}: {total}", total=total, narrow=narrow,
                      empty=f"Nothing: {label.lower()} for {rel.name} is an empty list.")


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


@command("show", ItemArg(), help="everything about one item, sub-items included",
         example="!show 12", writes=False)
async def show(ctx: Context, item: Item) -> Reply:
    reply = Reply(items=(item.id,))
    state = item.state if item.state != "open" else "open"
    reply.add(*item_spans(item)[:3], f"  ({item.release}, {item.area}, "
              f"{SEVERITY_TITLE[item.severity]}, {STATE_MARK.get(state, state).lower()})")
    if item.details:
        reply.add("Details: ", item.details)
    reply.add("Owners: ", owners_text(item.owners), " · Progress: ", item.progress or "none")
    if item.parent is not None:
        parent = await ctx.item(item.parent)
        reply.add("Under ", item_ref(parent.id), " ", summary(parent))
    if item.duplicate_of is not None:
        reply.add("Duplicate of ", item_ref(item.duplicate_of))
    for url in item.links:
        reply.add("Link: ", link(url) if safe_url(url) else url)
    children = await ctx.s.children(item.id)
    for child in children:
        reply.bullet(*item_spans(child), level=1)
    for note in await ctx.s.notes(item.id):
        reply.add("Note: ", note["text"], f" — {note['author']}, {_when(note['at'])}")
    reply.add(f"Created by {item.created_by} {_when(item.created_at)}; "
              f"last change by {item.updated_by} {_when(item.updated_at)}.")
    reply.items = (item.id, *(c.id for c in children))
    reply.long = len(reply.lines) > 8
    return reply


@command("history", ItemArg(), Count("COUNT", optional=True, low=1, high=200),
         help="who changed what on an item, newest last", example="!history 12", writes=False)
async def history(ctx: Context, item: Item, count: int | None) -> Reply:
    count = count or 10
    changes = await ctx.s.history(item.id, limit=count)
    reply = Reply(items=(item.id,), long=len(changes) > 8)
    reply.add(bold(f"History of #{item.id}"), f" ({len(changes)} most recent):")
    for ch in changes:
        if ch.field == "created":
            what = f"created: {ch.after}"
        elif ch.field == "note":
            what = f"note: {ch.after}"
        else:
            what = f"{ch.field}: {_short(ch.before)} → {_short(ch.after)}"
        reply.bullet(f"{_when(ch.at)} {ch.actor} {what}")
    return reply


def _short(value: str | None) -> str:
    if value is None or value in ("", "[]"):
        return "(none)"
    return value if len(value) <= 80 else value[:77] + "..."
