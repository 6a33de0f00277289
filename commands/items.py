"""Creating and describing items: !add, !sub, !edit, !link, !note."""

from __future__ import annotations

import re

from .messages import Reply, item_ref, text

from .context import Context, split_id
from .format import SEVERITY_TITLE, summary
from .registry import Refused, UsageError, command

MAX_TITLE = 300
_TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9_-]*(?:\(\?\))?)\]\s*")
_AREA = re.compile(r"[\w.+-]{1,40}")
SEVERITY_WORDS = {"blocker": "blocker", "blockers": "blocker", "nice": "nice",
                  "nice-to-have": "nice", "nice_to_have": "nice", "nth": "nice"}
_LINK = re.compile(r"(?:https?|ftp)://[^\s<>\"]+|<[^\s<>@]+@[^\s<>]+>")


def split_tags(title: str) -> tuple[list[str], str]:
    """`[BUG] [CHECK] title` → (["BUG", "CHECK"], "title")."""
    tags = []
    while m := _TAG.match(title):
        tags.append(m.group(1).upper())
        title = title[m.end():]
    return tags, title.strip()


def check_title(title: str) -> str:
    if not title:
        raise UsageError("the title is empty")
    if len(title) > MAX_TITLE:
        raise Refused(f"That title is {len(title)} characters long; the limit is {MAX_TITLE}. "
                      "Put the rest in a note (!note ID TEXT).")
    return title


@command("add", usage="AREA blocker|nice TITLE", help="add an item to this room's release",
         example="!add tools nice [BUG] vcpu-set doesn't take effect on guest")
async def add(ctx: Context, args: str) -> Reply:
    parts = args.split(None, 2)
    if len(parts) < 3:
        raise UsageError()
    area, sev_word, rest = parts
    severity = SEVERITY_WORDS.get(sev_word.casefold())
    if severity is None:
        raise UsageError(f"severity is blocker or nice, not {sev_word!r}")
    if not _AREA.fullmatch(area):
        raise UsageError("AREA is one word, like hypervisor, tools or docs")
    tags, title = split_tags(rest)
    rel = await ctx.release()
    item = await ctx.s.add_item(rel, area=area, severity=severity, title=check_title(title),
                                tags=tags, links=_LINK.findall(title))
    return text("Added ", item_ref(item.id), f" ({area}, {SEVERITY_TITLE[severity]}): "
                f"{summary(item)}", outcome="changed", items=(item.id,))


@command("sub", usage="ID TITLE", help="add a sub-item under an item (same area and severity)",
         example="!sub 12 libxl_device_pci_add (and remove)")
async def sub(ctx: Context, args: str) -> Reply:
    parent_id, rest = split_id(args, rest_required=True)
    parent = await ctx.item(parent_id)
    if parent.state != "open":
        raise Refused(f"#{parent.id} is {parent.state}; reopen it before adding sub-items.")
    tags, title = split_tags(rest)
    rel = await ctx.s.require_release(parent.release)
    item = await ctx.s.add_item(rel, area=parent.area, severity=parent.severity,
                                title=check_title(title), tags=tags, parent=parent.id,
                                links=_LINK.findall(title))
    return text("Added ", item_ref(item.id), " under ", item_ref(parent.id),
                f" ({item.area}, {SEVERITY_TITLE[item.severity]}): {summary(item)}",
                outcome="changed", items=(item.id,))


@command("edit", usage="ID TITLE", help="change an item's title (and tags)", who="admin",
         example="!edit 12 [BUG] xl allows same PCI device to be assigned to multiple guests")
async def edit(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args, rest_required=True)
    item = await ctx.item(item_id)
    tags, title = split_tags(rest)
    before = summary(item)
    links = item.links + [u for u in _LINK.findall(title) if u not in item.links]
    item = await ctx.s.update(item, title=check_title(title), tags=tags or item.tags, links=links)
    return text(item_ref(item.id), f" is now: {summary(item)} (was: {before})",
                outcome="changed", items=(item.id,))


@command("link", usage="ID URL|<message-id>", help="attach a link, bug URL or mail message-id",
         example="!link 12 http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822")
async def link_(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args, rest_required=True)
    if not _LINK.fullmatch(rest):
        raise UsageError("give one URL (http://..., https://...) or a message-id <...@...>")
    item = await ctx.item(item_id)
    if rest in item.links:
        return text(item_ref(item.id), f" already links to {rest}.", items=(item.id,))
    item = await ctx.s.update(item, links=item.links + [rest])
    n = len(item.links)
    return text(item_ref(item.id), f" now links to {rest} ({n} link{'s' * (n != 1)}).",
                outcome="changed", items=(item.id,))


@command("note", usage="ID TEXT", help="add a note to an item", example="!note 12 needs a backport to 4.1")
async def note(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args, rest_required=True)
    if len(rest) > 1000:
        raise Refused(f"That note is {len(rest)} characters long; the limit is 1000.")
    item = await ctx.item(item_id)
    await ctx.s.add_note(item, rest, author=ctx.me)
    count = len(await ctx.s.notes(item.id))
    return text("Noted on ", item_ref(item.id), f" ({count} note{'s' * (count != 1)}).",
                outcome="changed", items=(item.id,))
