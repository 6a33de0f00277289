"""Who does what: !claim, !unclaim, !assign, !status, !done, !reopen."""

from __future__ import annotations

import re

from .messages import Reply, item_ref, text
from ..storage import Item

from .context import Context, split_id
from .format import owners_text, summary
from .registry import Refused, UsageError, command

DONE_REACTION = "✅"
_FOR = re.compile(r"for\s+(.+)", re.IGNORECASE)
_SPLIT_NAMES = re.compile(r"\s*(?:,|/|\band\b)\s*")


def _names(text_: str) -> list[str]:
    names = [" ".join(n.split()) for n in _SPLIT_NAMES.split(text_)]
    names = [n for n in names if n]
    if not names or any(len(n) > 64 or any(c in n for c in "()[]<>") for n in names):
        raise UsageError("names are separated by commas, each up to 64 characters")
    return list(dict.fromkeys(names))


def _open(item: Item, action: str) -> None:
    if item.state != "open":
        extra = f" (a duplicate of #{item.duplicate_of})" if item.duplicate_of else ""
        raise Refused(f"#{item.id} is {item.state}{extra}; !reopen it before you {action} it.")


async def claim_item(ctx: Context, item: Item, *, explicit: bool, name: str | None = None) -> Reply:
    """Make `name` (default: the sender) an owner of `item`.

    An unclaimed item simply gets its first owner. A claimed one gets a co-owner only when
    the claim was explicit (`!claim ID`); a casual "I can take this one" is refused, so that a
    chat remark never silently joins someone else's work.
    """
    _open(item, "claim")
    who = name or ctx.me
    lowered = [o.casefold() for o in item.owners]
    if who.casefold() in lowered:
        others = [o for o in item.owners if o.casefold() != who.casefold()]
        with_ = f" (with {', '.join(others)})" if others else ""
        return text(f"{who} already owns ", item_ref(item.id), f"{with_}.", items=(item.id,))
    if item.owners and not explicit:
        return text(item_ref(item.id), f" is already claimed by {owners_text(item.owners)}; "
                    f"say {ctx.prefix}claim {item.id} to join as co-owner.", outcome="refused",
                    items=(item.id,))
    before = list(item.owners)
    item = await ctx.s.update(item, owners=before + [who])
    by = f" (by {ctx.me})" if name and name.casefold() != ctx.me.casefold() else ""
    if before:
        msg = f" claimed by {who}{by} as co-owner; also owned by {owners_text(before)}."
    else:
        msg = f" claimed by {who}{by} (was unclaimed): {summary(item)}"
    reply = text(item_ref(item.id), msg, outcome="changed", items=(item.id,))
    reply.reaction = DONE_REACTION
    return reply


@command("claim", usage="ID [for NAME]", help="claim an item yourself, or for someone else",
         example="!claim 12")
async def claim(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args)
    name = None
    if rest:
        m = _FOR.fullmatch(rest)
        if not m:
            raise UsageError()
        name = _names(m.group(1))
        if len(name) != 1:
            raise UsageError("claim for one name at a time, or use !assign")
        name = name[0]
    item = await ctx.item(item_id)
    if name is not None and name.casefold() != ctx.me.casefold():
        if item.owners:
            ctx.require_owner(item, "claim it for someone else")
        elif not ctx.is_admin:
            raise Refused(f"Only release managers may claim an unclaimed item for someone else; "
                          f"{name} can say {ctx.prefix}claim {item.id} themselves.")
    return await claim_item(ctx, item, explicit=True, name=name)


@command("unclaim", usage="ID [NAME]", help="give up an item, or remove an owner",
         example="!unclaim 12", who="owner")
async def unclaim(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args)
    item = await ctx.item(item_id)
    who = " ".join(rest.split()) or ctx.me
    if who.casefold() == ctx.me.casefold():
        if not ctx.owns(item) and not ctx.is_admin:
            ctx.require_owner(item, "unclaim it")
    else:
        ctx.require_owner(item, "remove an owner from it")
    remaining = [o for o in item.owners if o.casefold() != who.casefold()]
    if len(remaining) == len(item.owners):
        raise Refused(f"{who} does not own #{item.id} (owners: {owners_text(item.owners)}).")
    item = await ctx.s.update(item, owners=remaining)
    now = f"still owned by {owners_text(remaining)}" if remaining else "now unclaimed"
    return text(item_ref(item.id), f" unclaimed by {who} ({now}).", outcome="changed",
                items=(item.id,))


@command("assign", usage="ID NAME[, NAME...]", help="set an item's owners", who="owner",
         example="!assign 12 Jan Beulich, George Dunlap")
async def assign(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args, rest_required=True)
    names = _names(rest)
    item = await ctx.item(item_id)
    _open(item, "assign")
    ctx.require_owner(item, "assign it")
    before = owners_text(item.owners)
    item = await ctx.s.update(item, owners=names)
    return text(item_ref(item.id), f" assigned to {owners_text(names)} (was {before}).",
                outcome="changed", items=(item.id,))


@command("status", usage="ID TEXT", help='set the progress shown in the list ("-" clears it)',
         example="!status 12 patch posted", aliases=("progress",))
async def status(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args, rest_required=True)
    if len(rest) > 200:
        raise Refused(f"That progress text is {len(rest)} characters long; the limit is 200.")
    progress = "" if rest == "-" else rest
    item = await ctx.item(item_id)
    before = item.progress or "none"
    item = await ctx.s.update(item, progress=progress)
    return text(item_ref(item.id), f" progress: {progress or 'none'} (was: {before}).",
                outcome="changed", items=(item.id,))


@command("done", usage="ID [NOTE]", help="mark an item done", who="owner",
         example="!done 12 fixed in 25745:1b3d3c7a3e46")
async def done(ctx: Context, args: str) -> Reply:
    item_id, note = split_id(args)
    item = await ctx.item(item_id)
    ctx.require_owner(item, "mark it done")
    if item.state == "done":
        return text(item_ref(item.id), " is already done.", items=(item.id,))
    _open(item, "mark done")
    item = await ctx.s.update(item, state="done")
    if note:
        await ctx.s.add_note(item, note, author=ctx.me)
    open_subs = [c for c in await ctx.s.children(item.id) if c.state == "open"]
    left = (f" ({len(open_subs)} open sub-item{'s' * (len(open_subs) != 1)} left: "
            + ", ".join(f"#{c.id}" for c in open_subs) + ")") if open_subs else ""
    reply = text(item_ref(item.id), f" done: {summary(item)}{left}", outcome="changed",
                 items=(item.id,))
    reply.reaction = DONE_REACTION
    return reply


@command("reopen", usage="ID", help="reopen a done, deferred or dropped item", who="owner",
         example="!reopen 12")
async def reopen(ctx: Context, args: str) -> Reply:
    item_id, rest = split_id(args)
    if rest:
        raise UsageError()
    item = await ctx.item(item_id)
    if item.state == "open":
        return text(item_ref(item.id), " is already open.", items=(item.id,))
    ctx.require_owner(item, "reopen it")
    before = item.state
    item = await ctx.s.update(item, state="open", duplicate_of=None)
    return text(item_ref(item.id), f" reopened (was {before}): {summary(item)}",
                outcome="changed", items=(item.id,))
