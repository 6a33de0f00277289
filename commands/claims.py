"""Who does what: !claim, !unclaim, !assign, !status, !done, !reopen, and "I can take this one"."""

from __future__ import annotations

import re

from ..storage import Item, Person
from .args import ForName, ItemArg, Text
from .context import Context
from .format import owners_text, summary
from .messages import Reply, item_ref, text
from .natural import ClaimIntent, claim_intent
from .naming import check_name
from .registry import Refused, UsageError, command, pattern

DONE_REACTION = "✅"
MAX_OWNERS = 8  # owners of one item: a list of names is no way to mint people in bulk
_SPLIT_NAMES = re.compile(r"\s*(?:,|/|\band\b)\s*")


def split_names(text_: str) -> list[str]:
    names = [" ".join(n.split()) for n in _SPLIT_NAMES.split(text_)]
    names = [n for n in names if n]
    if not names:
        raise UsageError("names are separated by commas")
    for n in names:
        check_name(n)
    return list(dict.fromkeys(names))


def _open(ctx: Context, item: Item, action: str) -> None:
    if item.state != "open":
        extra = f" (a duplicate of #{item.duplicate_of})" if item.duplicate_of else ""
        raise Refused(f"#{item.id} is {item.state}{extra}; {ctx.prefix}reopen it before you "
                      f"{action} it.")


async def known_owner(ctx: Context, name: str) -> Person:
    """The person `name` means. Only release managers name someone new (a placeholder);
    anyone else names people the bot knows, so no typed list of names creates people."""
    found = await ctx.s.person_named(name)
    if found is not None:
        return found
    if not ctx.is_admin:
        raise Refused(f"Nobody is called {name} yet: they must say {ctx.prefix}iam {name} "
                      "first, or a release manager can assign them.")
    return await ctx.s.owner_named(name)


def _room_for(ctx: Context, item: Item, count: int) -> None:
    if count > MAX_OWNERS:
        raise Refused(f"An item has at most {MAX_OWNERS} owners; #{item.id} would have {count}.")


async def claim_item(ctx: Context, item: Item, *, explicit: bool, owner: Person | None = None) -> Reply:
    """Make `owner` (default: the sender) an owner of `item` — the claim as a domain
    operation, for chat commands, plain language and mail alike.

    An unclaimed item simply gets its first owner. A claimed one gets a co-owner only when
    the claim was explicit (`!claim ID`); a casual "I can take this one" is refused, so that a
    chat remark never silently joins someone else's work.
    """
    _open(ctx, item, "claim")
    me = await ctx.my_person()
    who = owner or me
    if who.id in item.owner_ids:
        others = [o for o, i in zip(item.owners, item.owner_ids) if i != who.id]
        with_ = f" (with {', '.join(others)})" if others else ""
        return text(f"{who.name} already owns ", item_ref(item.id), f"{with_}.", items=(item.id,))
    if item.owners and not explicit:
        return text(item_ref(item.id), f" is already claimed by {owners_text(item.owners)}; "
                    f"say {ctx.prefix}claim {item.id} to join as co-owner.", outcome="refused",
                    items=(item.id,))
    before = list(item.owners)
    _room_for(ctx, item, len(item.owner_ids) + 1)
    item = await ctx.s.update(item, owners=item.owner_ids + [who.id])
    by = f" (by {me.name})" if who.id != me.id else ""
    if before:
        msg = f" claimed by {who.name}{by} as co-owner; also owned by {owners_text(before)}."
    else:
        msg = f" claimed by {who.name}{by} (was unclaimed): {summary(item)}"
    reply = text(item_ref(item.id), msg, outcome="changed", items=(item.id,))
    reply.reaction = DONE_REACTION
    return reply


@command("claim", ItemArg(), ForName(optional=True),
         help="claim an item yourself, or for someone else", example="!claim 12")
async def claim(ctx: Context, item: Item, name: str | None) -> Reply:
    owner = None
    if name is not None:
        check_name(name)
        found = await ctx.s.person_named(name)
        me = await ctx.my_person()
        if found is None or found.id != me.id:
            if item.owners:
                ctx.require_owner(item, "claim it for someone else")
            elif not ctx.is_admin:
                raise Refused(f"Only release managers may claim an unclaimed item for someone "
                              f"else; {name} can say {ctx.prefix}claim {item.id} themselves.")
        owner = found or await known_owner(ctx, name)
    return await claim_item(ctx, item, explicit=True, owner=owner)


@pattern("claim", claim_intent)
async def casual_claim(ctx: Context, intent: ClaimIntent) -> Reply | None:
    """"I can take this one", "I'll take #12", "mine": the item named, else the one being
    talked about; several candidates get a question, none gets silence. "I'll take #4 and
    #7" claims each item named."""
    if intent.also:
        return await claim_each(ctx, intent.item_ids)
    if intent.item_id is not None:
        candidates: tuple[int, ...] = (intent.item_id,)
    elif ctx.refers_to is not None:  # the transport knows what the message answers
        candidates = ctx.refers_to
        if not candidates:
            return text(f"Which one? Say {ctx.prefix}claim ID.", outcome="refused")
    else:
        candidates = ctx.recent
    if not candidates:
        return None  # nothing was being discussed: a remark, not a claim
    if len(candidates) > 1:
        if len(candidates) > 5:
            return text(f"Which one? Say {ctx.prefix}claim ID.", outcome="refused")
        parts: list = ["Which one: "]
        for i, c in enumerate(candidates):
            if i:
                parts.append(" or " if i == len(candidates) - 1 else ", ")
            parts.append(item_ref(c))
        parts.append(f"? Say {ctx.prefix}claim ID.")
        return text(*parts, outcome="refused", items=candidates)
    return await claim_item(ctx, await ctx.item(candidates[0]), explicit=False)


async def claim_each(ctx: Context, ids: tuple[int, ...]) -> Reply:
    """A casual claim of each item named, one line each; one refused does not stop the rest."""
    out = Reply()
    for item_id in ids:
        try:
            one = await claim_item(ctx, await ctx.item(item_id), explicit=False)
        except (Refused, LookupError) as exc:
            one = text(str(exc), outcome="refused")
        out.extend(one)
        if one.outcome == "changed" or (one.outcome == "refused" and out.outcome == "info"):
            out.outcome = one.outcome
    return out


@command("unclaim", ItemArg(), Text("NAME", optional=True), who="owner", does="unclaim it",
         help="give up an item, or remove an owner", example="!unclaim 12")
async def unclaim(ctx: Context, item: Item, name: str | None) -> Reply:
    me = await ctx.my_person()
    who = await ctx.s.person_named(name) if name else me
    if who is None or who.id not in item.owner_ids:
        raise Refused(f"{name or me.name} does not own #{item.id} (owners: "
                      f"{owners_text(item.owners)}).")
    remaining = [i for i in item.owner_ids if i != who.id]
    item = await ctx.s.update(item, owners=remaining)
    now = f"still owned by {owners_text(item.owners)}" if remaining else "now unclaimed"
    return text(item_ref(item.id), f" unclaimed by {who.name} ({now}).", outcome="changed",
                items=(item.id,))


@command("assign", ItemArg(), Text("NAME[, NAME...]"), who="owner", does="assign it",
         help="set an item's owners", example="!assign 12 Jan Beulich, George Dunlap")
async def assign(ctx: Context, item: Item, names_text: str) -> Reply:
    names = split_names(names_text)
    _open(ctx, item, "assign")
    before = owners_text(item.owners)
    _room_for(ctx, item, len(names))
    people = [await known_owner(ctx, n) for n in names]
    item = await ctx.s.update(item, owners=list(dict.fromkeys(p.id for p in people)))
    return text(item_ref(item.id), f" assigned to {owners_text(item.owners)} (was {before}).",
                outcome="changed", items=(item.id,))


@command("status", ItemArg(), Text("TEXT", max_len=200), aliases=("progress",),
         help='set the progress shown in the list ("-" clears it)', example="!status 12 patch posted")
async def status(ctx: Context, item: Item, progress: str) -> Reply:
    progress = "" if progress == "-" else progress
    before = item.progress or "none"
    item = await ctx.s.update(item, progress=progress)
    return text(item_ref(item.id), f" progress: {progress or 'none'} (was: {before}).",
                outcome="changed", items=(item.id,))


@command("done", ItemArg(), Text("NOTE", optional=True, max_len=1000), who="owner", does="mark it done",
         help="mark an item done", example="!done 12 fixed in 25745:1b3d3c7a3e46")
async def done(ctx: Context, item: Item, note: str | None) -> Reply:
    if item.state == "done":
        return text(item_ref(item.id), " is already done.", items=(item.id,))
    _open(ctx, item, "mark done")
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


@command("reopen", ItemArg(), who="owner", does="reopen it", help="reopen a done, deferred or dropped item",
         example="!reopen 12")
async def reopen(ctx: Context, item: Item) -> Reply:
    if item.state == "open":
        return text(item_ref(item.id), " is already open.", items=(item.id,))
    before = item.state
    item = await ctx.s.update(item, state="open", duplicate_of=None)
    return text(item_ref(item.id), f" reopened (was {before}): {summary(item)}",
                outcome="changed", items=(item.id,))
