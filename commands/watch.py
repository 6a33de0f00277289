"""Following items: !watch, !unwatch, !watching — and what watchers are told of a change.

A change is what a command wrote to the history; `notices` turns the rows of one command into
one line per watcher and item (`#4 progress: patch posted (by Jan Beulich)`), never for the
person who made it. Delivering them (batched, through the transports) is the bot's business.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..storage import Change, Item, Session, actor_identity
from .args import ItemArg, Word, parse_id
from .context import Context
from .format import SEVERITY_TITLE, list_reply
from .messages import Reply, text
from .registry import Refused, command

# The history fields a watcher hears about, and how a state change reads.
_STATES = {"done": "done", "open": "reopened", "duplicate": "duplicated", "deferred": "deferred",
           "dropped": "dropped"}


@dataclass(frozen=True)
class Notice:
    person_id: int
    identities: tuple[str, ...]  # where the person may be reached, any one of them
    line: str


def describe(ch: Change, by: str) -> str | None:
    """What one history row (written by `by`) says to a watcher, or None for changes
    watchers do not hear of."""
    if ch.field == "state":
        return _STATES.get(ch.after or "")
    if ch.field == "progress":
        return f"progress: {ch.after}" if ch.after else "progress cleared"
    if ch.field == "owners":
        before, after = json.loads(ch.before or "[]"), json.loads(ch.after or "[]")
        added = [n for n in after if n not in before]
        if added == [by]:
            return "claimed"
        return f"given to {', '.join(added)}" if added else "unclaimed" if not after else \
            f"owners: {', '.join(after)}"
    if ch.field == "severity":
        return f"moved to {SEVERITY_TITLE.get(ch.after or '', ch.after)}"
    if ch.field == "area":
        return f"moved to {ch.after}"
    return None


async def notices(s: Session, changes: list[Change], *, owners: bool) -> list[Notice]:
    """The lines to tell each watcher of these changes (one command's history rows)."""
    said = []
    for ch in changes:
        if ch.item_id is None:
            continue
        by = await s.person_of(actor_identity(ch.actor))
        name = by.name if by is not None else ch.actor.split(":", 1)[-1]
        if (what := describe(ch, name)) is not None:
            said.append((ch.item_id, what, ch.actor, by, name))
    if not said:
        return []
    watchers = await s.watchers([item_id for item_id, *_ in said], owners=owners)
    out: list[Notice] = []
    for item_id, what, actor, by, name in said:
        for person_id in sorted(watchers.get(item_id, ())):
            if by is not None and person_id == by.id:
                continue  # never told of one's own change
            person = await s.person(person_id)
            if person is None or not person.identities:
                continue
            out.append(Notice(person_id, tuple(person.identities), f"#{item_id} {what} (by {name})"))
    return out


async def _watcher(ctx: Context) -> int:
    """The sender's person: watches go to identities, so a nick anyone may take next gets none."""
    if not ctx.authenticated:
        raise Refused("Log in to your account to watch items: a nick alone may be someone "
                      "else's tomorrow.")
    return (await ctx.my_person()).id


@command("watch", Word("ID|on|off"), help="be told when someone else changes an item "
         "(off/on: all of it)", example="!watch 3", usage="ID|on|off")
async def watch(ctx: Context, what: str) -> Reply:
    person_id = await _watcher(ctx)
    key = what.casefold()
    if key in ("on", "off"):
        await ctx.s.set_watch_off(person_id, key == "off")
        return text("You will be told of changes to the items you watch again." if key == "on"
                    else f"You will be told of no changes until {ctx.prefix}watch on.",
                    outcome="changed")
    item = await ctx.item(parse_id(what))
    await ctx.s.set_watch(person_id, item.id, True)
    off = (f" (watching is off: {ctx.prefix}watch on turns it on)"
           if await ctx.s.watch_is_off(person_id) else "")
    return text(f"You watch #{item.id} now: changes others make to it are sent to you{off}.",
                outcome="changed", items=(item.id,))


@command("unwatch", ItemArg(), help="stop being told of changes to an item (your own too)",
         example="!unwatch 3")
async def unwatch(ctx: Context, item: Item) -> Reply:
    await ctx.s.set_watch(await _watcher(ctx), item.id, False)
    return text(f"You no longer watch #{item.id}.", outcome="changed", items=(item.id,))


@command("watching", help="the items you watch", example="!watching", writes=False)
async def watching(ctx: Context) -> Reply:
    if ctx.person is None:
        return text(f"You watch nothing; {ctx.prefix}watch ID follows an item.")
    ids = await ctx.s.watched(ctx.person.id)
    items = list((await ctx.s.get_many(ids)).values())
    off = " (watching is off)" if await ctx.s.watch_is_off(ctx.person.id) else ""
    return list_reply(items, heading=f"Items you watch{off}: {len(items)}",
                      empty=f"You watch nothing{off}; {ctx.prefix}watch ID follows an item.")
