"""Release-manager moves: !blocker, !nice, !dup, !defer."""

from __future__ import annotations

from .messages import Reply, item_ref, text

from .context import Context, parse_id, split_id
from .format import SEVERITY_TITLE, summary
from .registry import Refused, UsageError, command


async def _move(ctx: Context, args: str, severity: str) -> Reply:
    if len(args.split()) != 1:
        raise UsageError()
    item = await ctx.item(parse_id(args))
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


@command("blocker", usage="ID", help="make an item a blocker", who="admin", example="!blocker 12")
async def blocker(ctx: Context, args: str) -> Reply:
    return await _move(ctx, args, "blocker")


@command("nice", usage="ID", help="make an item nice to have", who="admin", example="!nice 12")
async def nice(ctx: Context, args: str) -> Reply:
    return await _move(ctx, args, "nice")


@command("dup", usage="ID OTHER", who="admin", example="!dup 14 9",
         help="mark #ID a duplicate of #OTHER: its owners, links, notes and sub-items move there")
async def dup(ctx: Context, args: str) -> Reply:
    parts = args.split()
    if len(parts) != 2:
        raise UsageError()
    dup_id, other_id = parse_id(parts[0]), parse_id(parts[1])
    item, target = await ctx.item(dup_id), await ctx.item(other_id)
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
    known = {o.casefold() for o in target.owners}
    owners = target.owners + [o for o in item.owners if o.casefold() not in known]
    new_links = [u for u in item.links if u not in target.links]
    await ctx.s.update(target, owners=owners, links=target.links + new_links)
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


@command("defer", usage="ID [RELEASE]", who="admin", example="!defer 12 4.3",
         help="take an item out of this release (into RELEASE when given)")
async def defer(ctx: Context, args: str) -> Reply:
    item_id, target_name = split_id(args)
    if len(target_name.split()) > 1:
        raise UsageError()
    item = await ctx.item(item_id)
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
                                   tags=it.tags, details=it.details, owners=it.owners,
                                   progress=it.progress, links=it.links, parent=parent)
        copies[it.id] = new.id
        await ctx.s.add_note(it, f"deferred to {rel.name} as #{new.id}", author=ctx.me)
        await ctx.s.add_note(new, f"deferred from {it.release} (was #{it.id})", author=ctx.me)
    return text(item_ref(item.id), f" deferred to {rel.name} as ", item_ref(copies[item.id]),
                f": {summary(item)}", outcome="changed", items=(copies[item.id],))
