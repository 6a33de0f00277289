"""Creating and describing items: !add, !sub, !edit, !link, !note."""

from __future__ import annotations

import re

from ..storage import Item
from ..storage.names import clean, visible
from .args import Area, ItemArg, Severity, Text
from .context import Context
from .format import SEVERITY_TITLE, summary
from .links import LINK
from .messages import Reply, item_ref, text
from .registry import Refused, UsageError, command

MAX_TITLE = 300
_TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9_-]*(?:\(\?\))?)\]\s*")


def split_tags(title: str) -> tuple[list[str], str]:
    """`[BUG] [CHECK] title` → (["BUG", "CHECK"], "title")."""
    tags = []
    while m := _TAG.match(title):
        tags.append(m.group(1).upper())
        title = title[m.end():]
    return tags, title.strip()


def check_title(title: str) -> str:
    title = clean(title)
    if not title or not visible(title):
        raise UsageError("the title is empty")
    if len(title) > MAX_TITLE:
        raise Refused(f"That title is {len(title)} characters long; the limit is {MAX_TITLE}. "
                      "Put the rest in a note (!note ID TEXT).")
    return title


async def check_rate(ctx: Context) -> None:
    """Anyone may add, but not without end: a per-person limit per hour (release managers
    are exempt), counted from the history over all the person's identities, so adding under
    several names, transports or mails does not help."""
    limit = ctx.settings.max_adds_per_hour
    if ctx.is_admin or limit is None:
        return
    person = await ctx.s.person_of(ctx.identity)
    identities = person.identities if person is not None and person.identities else [ctx.identity]
    added = await ctx.s.count_created_by(identities, since=ctx.s.now - 3600)
    if added >= limit:
        raise Refused(f"You have added {added} items in the last hour; the limit is {limit}. "
                      "A release manager can add more.")


async def _check_depth(ctx: Context, parent: Item) -> None:
    limit = ctx.settings.max_depth
    if await ctx.s.depth(parent.id) >= limit:
        raise Refused(f"Sub-items nest at most {limit} deep; #{parent.id} is already "
                      f"{limit} deep. Add it to a shallower item.")


@command("add", Area(), Severity(), Text("TITLE"), help="add an item to this room's release",
         example="!add tools nice [BUG] vcpu-set doesn't take effect on guest")
async def add(ctx: Context, area: str, severity: str, rest: str) -> Reply:
    tags, title = split_tags(rest)
    title = check_title(title)
    rel = await ctx.release()
    await check_rate(ctx)
    item = await ctx.s.add_item(rel, area=area, severity=severity, title=title, tags=tags,
                                links=LINK.findall(title))
    return text("Added ", item_ref(item.id), f" ({area}, {SEVERITY_TITLE[severity]}): "
                f"{summary(item)}", outcome="changed", items=(item.id,))


@command("sub", ItemArg(), Text("TITLE"), help="add a sub-item under an item (same area and severity)",
         example="!sub 12 libxl_device_pci_add (and remove)")
async def sub(ctx: Context, parent: Item, rest: str) -> Reply:
    if parent.state != "open":
        raise Refused(f"#{parent.id} is {parent.state}; reopen it before adding sub-items.")
    tags, title = split_tags(rest)
    title = check_title(title)
    await _check_depth(ctx, parent)
    await check_rate(ctx)
    rel = await ctx.s.require_release(parent.release)
    item = await ctx.s.add_item(rel, area=parent.area, severity=parent.severity, title=title,
                                tags=tags, parent=parent.id, links=LINK.findall(title))
    return text("Added ", item_ref(item.id), " under ", item_ref(parent.id),
                f" ({item.area}, {SEVERITY_TITLE[item.severity]}): {summary(item)}",
                outcome="changed", items=(item.id,))


@command("edit", ItemArg(), Text("TITLE"), who="admin", help="change an item's title (and tags)",
         example="!edit 12 [BUG] xl allows same PCI device to be assigned to multiple guests")
async def edit(ctx: Context, item: Item, rest: str) -> Reply:
    tags, title = split_tags(rest)
    title = check_title(title)
    before = summary(item)
    links = item.links + [u for u in LINK.findall(title) if u not in item.links]
    item = await ctx.s.update(item, title=title, tags=tags or item.tags, links=links)
    return text(item_ref(item.id), f" is now: {summary(item)} (was: {before})",
                outcome="changed", items=(item.id,))


@command("link", ItemArg(), Text("URL|<message-id>"),
         help="attach a link, bug URL or mail message-id",
         example="!link 12 https://bugs.example.org/show_bug.cgi?id=1822")
async def link_(ctx: Context, item: Item, url: str) -> Reply:
    if not LINK.fullmatch(url):
        raise UsageError("give one URL (http://..., https://...) or a message-id <...@...>")
    if url in item.links:
        return text(item_ref(item.id), f" already links to {url}.", items=(item.id,))
    item = await ctx.s.update(item, links=item.links + [url])
    n = len(item.links)
    return text(item_ref(item.id), f" now links to {url} ({n} link{'s' * (n != 1)}).",
                outcome="changed", items=(item.id,))


@command("note", ItemArg(), Text("TEXT", max_len=1000), help="add a note to an item",
         example="!note 12 needs a backport to 4.1")
async def note(ctx: Context, item: Item, body: str) -> Reply:
    await ctx.s.add_note(item, body, author=ctx.me)
    count = len(await ctx.s.notes(item.id))
    return text("Noted on ", item_ref(item.id), f" ({count} note{'s' * (count != 1)}).",
                outcome="changed", items=(item.id,))
