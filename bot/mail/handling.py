"""From the actions of a reply (replies.py) to dispatcher steps, and from their replies to the
private acknowledgement. The steps run in one transaction (`Dispatcher.run_steps`).

A claim is never a guess: one that names several items (a quoted title two items share, a
top-post's original naming more than one) gets a question back, one that names none says so.
A bullet whose title an item of the release already has (the list pasted back) adds nothing
and is answered "already #N"."""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from ...commands import Context
from ...commands.claims import claim_item
from ...commands.format import SEVERITY_TITLE, summary
from ...commands.items import split_tags
from ...commands.messages import Reply, item_ref, text
from ...commands.proposals import add_proposed, read_bullet
from ...storage.layouts.xen42 import NO_AREA
from ...storage.repository import title_key

from ..dispatcher import Dispatcher, Step
from .replies import Action, Claim, Command, Propose

NOTHING = "no commands, claims or new items found outside quoted text"
MAX_ASKED = 5  # candidates named in a question; more: "which one?" alone
MIN_TITLE = 8  # characters of a title looked for in a top-post's original (shorter: too common)


def _norm(s: str) -> str:
    return " ".join(s.casefold().split()).rstrip(".")


async def _quoted_items(ctx: Context, quoted: str) -> list[int]:
    """The open items of the room's release whose title the quoted bullet starts with (the
    longest such titles)."""
    _, body = split_tags(quoted)
    q = _norm(body)
    rel = await ctx.release()
    found = [it for it in await ctx.s.items(rel) if it.title and q.startswith(_norm(it.title))]
    if not found:
        return []
    best = max(len(_norm(it.title)) for it in found)
    return [it.id for it in found if len(_norm(it.title)) == best]


async def _named_in(ctx: Context, ids: tuple[int, ...], original: str) -> list[int]:
    """The items a top-post's original names: the open items of the room's release among the
    ids it names, else those whose title it contains (as a whole phrase)."""
    rel = await ctx.release()
    items = await ctx.s.items(rel)
    if ids:
        open_ids = {it.id for it in items}
        return [i for i in ids if i in open_ids]
    said = f" {title_key(original)} "
    found = []
    for it in items:
        key = title_key(it.title).rstrip(".")
        if len(key) >= MIN_TITLE and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", said):
            found.append(it.id)
    return found


def _which(said: str, candidates: list[int], prefix: str) -> Reply:
    if len(candidates) > MAX_ASKED:
        return text(f"“{said}”: {len(candidates)} items could be meant; which one did you mean? "
                    f"Say {prefix}claim ID.", outcome="refused")
    parts: list = [f"“{said}”: which one did you mean: "]
    for i, c in enumerate(candidates):
        if i:
            parts.append(" or " if i == len(candidates) - 1 else ", ")
        parts.append(item_ref(c))
    parts.append(f"? Say {prefix}claim ID.")
    return text(*parts, outcome="refused", items=tuple(candidates))


async def _already(ctx: Context, action: Propose) -> Reply | None:
    """"already #N" when an item of the release has the bullet's title (as re-import matches)."""
    _, title, *_ = read_bullet(action.area, action.severity, action.text)
    key = title_key(title)
    rel = await ctx.release()
    for it in await ctx.s.items(rel, states=None):
        if title_key(it.title) == key:
            state = "" if it.state == "open" else f", {it.state}"
            return text(f"“{summary(it)[:60]}” is already ", item_ref(it.id), f"{state}: not added "
                        "again.", items=(it.id,))
    return None


def _propose_step(action: Propose, link: str | None) -> Step:
    async def step(ctx: Context, done: list[Reply]) -> Reply:
        if (known := await _already(ctx, action)) is not None:
            return known
        _, reply = await add_proposed(ctx, action.area, action.severity, action.text, link=link)
        return reply
    return step


def _claim_step(action: Claim) -> Step:
    async def step(ctx: Context, done: list[Reply]) -> Reply | None:
        if action.proposal is not None:
            added = done[action.proposal] if action.proposal < len(done) else None
            if added is not None and added.outcome == "info" and len(added.items) == 1:
                # the bullet was an item already ("already #N"): that item is the one meant
                return await claim_item(ctx, await ctx.item(added.items[0]), explicit=False)
            if added is None or added.outcome != "changed" or not added.items:
                return None  # the proposal was refused: that answer says why
            item = await ctx.item(added.items[0])
            reply = await claim_item(ctx, item, explicit=False)
            if reply.outcome == "changed":  # one line: "Added #20 (...) and claimed it for ..."
                item = await ctx.item(item.id)
                done[action.proposal] = text(
                    "Added ", item_ref(item.id),
                    f" ({item.area or NO_AREA}, {SEVERITY_TITLE[item.severity]}) and claimed it"
                    f" for {ctx.me}: {summary(item)}", outcome="changed", items=(item.id,))
                return None
            return reply
        said = _echo(action.said)
        if action.item_id is not None:
            candidates = [action.item_id]
        elif action.quoted:
            candidates = await _quoted_items(ctx, action.quoted)
            if not candidates:
                return text(f"“{said}”: I could not tell which item the quoted text is; "
                            f"say {ctx.prefix}claim ID.", outcome="refused")
        elif action.original is not None:
            candidates = await _named_in(ctx, action.original.ids, action.original.text)
            if not candidates:
                return text(f"“{said}”: the mail you answered names no open item I could find; "
                            f"say {ctx.prefix}claim ID.", outcome="refused")
        else:
            return text(f"“{said}”: no item comes before it, so I could not tell which one you "
                        f"meant; say {ctx.prefix}claim ID.", outcome="refused")
        if len(candidates) > 1:
            return _which(said, candidates, ctx.prefix)
        return await claim_item(ctx, await ctx.item(candidates[0]), explicit=False)
    return step


MAX_ACTIONS = 20  # per mail; a reply is a conversation, not a batch job


@dataclass(frozen=True)
class Skipped:
    """The actions past MAX_ACTIONS, left out (the sender is told)."""

    count: int


def limit(actions: list[Action]) -> list[Action | Skipped]:
    """At most MAX_ACTIONS actions, then one saying how many were left out."""
    if len(actions) <= MAX_ACTIONS:
        return list(actions)
    return [*actions[:MAX_ACTIONS], Skipped(len(actions) - MAX_ACTIONS)]


def _skipped_step(action: Skipped) -> Step:
    async def step(ctx: Context, done: list[Reply]) -> Reply:
        return text(f"Only the first {MAX_ACTIONS} items, claims and commands of a mail are "
                    f"applied; {action.count} more were ignored.", outcome="refused")
    return step


def steps_for(actions: list[Action | Skipped], dispatcher: Dispatcher, *,
              link: str | None) -> list[Step]:
    out: list[Step] = []
    for action in actions:
        if isinstance(action, Skipped):
            out.append(_skipped_step(action))
        elif isinstance(action, Propose):
            out.append(_propose_step(action, link))
        elif isinstance(action, Claim):
            out.append(_claim_step(action))
        elif isinstance(action, Command):
            out.append(dispatcher.command_step(action.line))
    return out


_WIDTH = 72
# An acknowledgement is a short summary, never the sender's text in bulk: it may go to an
# address that did not write the mail (unauthenticated From).
MAX_ACK_LINES = 40
MAX_ACK_CHARS = 3000
MAX_ECHO = 60  # characters of a command quoted back


def _wrap(line: str) -> list[str]:
    return textwrap.wrap(line, _WIDTH, initial_indent="  * ", subsequent_indent="    ",
                         break_long_words=False, break_on_hyphens=False) or ["  *"]


def _echo(said: str) -> str:
    return said if len(said) <= MAX_ECHO else said[:MAX_ECHO - 1].rstrip() + "…"


def _bounded(lines: list[str]) -> list[str]:
    """At most MAX_ACK_LINES lines and MAX_ACK_CHARS characters, then what was left out."""
    out: list[str] = []
    size = 0
    for n, line in enumerate(lines):
        line = line[:_WIDTH * 2]
        if n >= MAX_ACK_LINES or size + len(line) + 1 > MAX_ACK_CHARS:
            out.append(f"({len(lines) - n} more lines left out.)")
            break
        out.append(line)
        size += len(line) + 1
    return out


def read_outcome(replies: list[Reply]) -> str:
    """What a read mail's actions came to, for `todobot_mails_read_total`: `acted` when one
    changed something, else `answered` when a command answered, else `refused`, else
    (no actions, or none that said anything) `nothing`."""
    said = [r.outcome for r in replies if r.lines]
    if "changed" in said:
        return "acted"
    if "info" in said:
        return "answered"
    return "refused" if said else "nothing"


def ack_text(actions: list[Action | Skipped], replies: list[Reply], *,
             nothing: str = NOTHING) -> str:
    """The private acknowledgement: what was applied, what was refused and why, what else a
    command answered, bounded (see MAX_ACK_LINES); for a mail that asked for nothing (ordinary
    discussion), that nothing could be acted on and why (`nothing`)."""
    skipped: list[str] = []
    applied: list[str] = []
    refused: list[str] = []
    answers: list[str] = []
    for action, reply in zip(actions, replies):
        if not reply.lines:
            continue
        said = _echo(action.line) if isinstance(action, Command) else None
        body = reply.plain
        if isinstance(action, Skipped):
            skipped.append(body)  # first: the bound below must never hide it
        elif reply.outcome == "changed":
            applied.append(body)
        elif reply.outcome in ("refused", "error"):
            refused.append(f"{said}: {body}" if said else body)
        else:
            answers.append(f"{said}\n{body}" if said else body)
    if not (skipped or applied or refused or answers):
        return "\n".join(textwrap.wrap(f"Nothing I could act on: {nothing}.", _WIDTH)) + "\n"
    out: list[str] = []
    for entry in skipped:
        out += textwrap.wrap(entry, _WIDTH) + [""]
    for title, entries in (("Applied:", applied), ("Not applied:", refused)):
        if entries:
            out += [title, ""]
            for entry in entries:
                first, *rest = entry.split("\n")
                out += _wrap(first) + ["    " + r for r in rest]
            out.append("")
    for entry in answers:
        out += [re.sub(r"\s+$", "", ln) for ln in entry.split("\n")] + [""]
    while out and not out[-1]:
        out.pop()
    return "\n".join(_bounded(out)).rstrip() + "\n"
