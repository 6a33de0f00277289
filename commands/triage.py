"""Release-manager moves: !blocker, !nice, !dup, !defer."""

from __future__ import annotations

from .messages import Reply, item_ref, text

from ..storage import Item
from .args import ItemArg, ReleaseName
from .context import Context
from .format import SEVERITY_TITLE, summary
from .registry import Refused, command


async def _move(ctx: Context, item: Item, severity: str) -> Reply:
    if item.severity == severity:
        return text(item_ref(item.id), f" is already in {SEVERITY_TITLE[severity]}.",
                    items=(item.id,))
    before = item.severity
    item = await ctx.s.update(item, severity=severity)
    moved = 0
    for sub in await ctx.s.descendants(item.id):  # sub-items, closed ones too, travel along
        if sub.severity != severity:
            await ctx.s.update(sub, severity=severity)
            moved += 1
    subs = f", with {moved} sub-item{'s' * (moved != 1)}" if moved else ""
    return text(item_ref(item.id), f" moved to {SEVERITY_TITLE[severity]} (was "
                f"{SEVERITY_TITLE[before]}{subs}): {summary(item)}", outcome="changed",
                items=(item.id,))


@command("blocker", ItemArg(), help="make an item a blocker", who="admin", example="!blocker 12")
async def blocker(ctx: Context, item: Item) -> Reply:
    return await _move(ctx, item, "blocker")


@command("nice", ItemArg(), help="make an item nice to have", who="admin", example="!nice 12")
async def nice(ctx: Context, item: Item) -> Reply:
    return await _move(ctx, item, "nice")


@command("dup", ItemArg(), ItemArg("OTHER"), who="admin", example="!dup 14 9",
         help="mark #ID a duplicate of #OTHER: its owners, links, notes and sub-items move there")
async def dup(ctx: Context, item: Item, target: Item) -> Reply:
    return await merge_duplicate(ctx, item, target)


async def merge_duplicate(ctx: Context, item: Item, target: Item) -> Reply:
    """`item` duplicates `target` (or the item `target` was itself collapsed into): owners,
    links, notes and sub-items move there — the domain operation behind !dup."""
    seen = {item.id}
    while target.state == "duplicate" and target.duplicate_of is not None:  # follow to the survivor
        if target.id in seen:
            break
        seen.add(target.id)
        target = await ctx.item(target.duplicate_of)
    if target.id == item.id:
        raise Refused("An item cannot be a duplicate of itself.")
    if item.state == "duplicate":
        raise Refused(f"#{item.id} is already a duplicate of #{item.duplicate_of}.")
    if target.id in {d.id for d in await ctx.s.descendants(item.id)}:
        raise Refused(f"#{target.id} is a sub-item of #{item.id}; a duplicate cannot absorb its parent.")
    owner_ids = list(dict.fromkeys(target.owner_ids + item.owner_ids))
    new_links = [u for u in item.links if u not in target.links]
    target = await ctx.s.update(target, owners=owner_ids, links=target.links + new_links)
    owners = target.owners
    notes = await ctx.s.move_notes(item, target)
    subs = await ctx.s.children(item.id)
    for child in subs:  # adopted into the survivor's section, with their own sub-items
        await ctx.s.update(child, parent=target.id, area=target.area, severity=target.severity)
        for sub in await ctx.s.descendants(child.id):
            await ctx.s.update(sub, area=target.area, severity=target.severity)
    await ctx.s.update(item, state="duplicate", duplicate_of=target.id, owners=[], links=[])
    target = await ctx.item(target.id)
    moved = (f"owners {', '.join(owners) if owners else 'none'}; {_n(len(new_links), 'link')}, "
             f"{_n(notes, 'note')}, {_n(len(subs), 'sub-item')} moved")
    return text(item_ref(item.id), " is a duplicate of ", item_ref(target.id),
                f": collapsed into it ({moved}): {summary(target)}",
                outcome="changed", items=(target.id,))


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


@command("defer", ItemArg(), ReleaseName(optional=True), who="admin", example="!defer 12 4.3",
         help="take an item out of this release (into RELEASE when given)")
async def defer(ctx: Context, item: Item, target_name: str | None) -> Reply:
    return await defer_item(ctx, item, target_name)


async def defer_item(ctx: Context, item: Item, target_name: str | None) -> Reply:
    """Out of this release; with a target release, a copy opens there (the release is
    created if new) — the domain operation behind !defer."""
    if item.state != "open":
        raise Refused(f"#{item.id} is {item.state}; only open items can be deferred.")
    if target_name and target_name == item.release:
        raise Refused(f"#{item.id} is already in {target_name}.")
    subs = [d for d in await ctx.s.descendants(item.id) if d.state == "open"]
    for it in [item, *subs]:
        await ctx.s.update(it, state="deferred")
    if not target_name:
        extra = f" with {len(subs)} open sub-item{'s' * (len(subs) != 1)}" if subs else ""
        return text(item_ref(item.id), f" deferred out of {item.release}{extra}: {summary(item)}",
                    outcome="changed", items=(item.id,))
    # The copy in the target release keeps the old one's history readable where it happened.
    rel = await ctx.s.ensure_release(target_name)
    copies: dict[int, int] = {}
    for it in [item, *subs]:
        parent = copies.get(it.parent) if it.parent is not None else None
        new = await ctx.s.add_item(rel, area=it.area, severity=it.severity, title=it.title,
                                   tags=it.tags, details=it.details, owners=it.owner_ids,
                                   progress=it.progress, links=it.links, parent=parent)
        copies[it.id] = new.id
        await ctx.s.add_note(it, f"deferred to {rel.name} as #{new.id}", author=ctx.me)
        await ctx.s.add_note(new, f"deferred from {it.release} (was #{it.id})", author=ctx.me)
    return text(item_ref(item.id), f" deferred to {rel.name} as ", item_ref(copies[item.id]),
                f": {summary(item)}", outcome="changed", items=(copies[item.id],))
