"""!iam and !whoami: the display names that appear as owners."""

from __future__ import annotations

import re

from .messages import Reply, text

from .context import Context
from .registry import Refused, UsageError, command

# Owner names live inside "(A, B / C, progress)" groups in the mail: keep them parseable.
# A name shaped like a Matrix user id (@user:server) would pass for that account.
_MXID = re.compile(r"@[^\s:]+:\S+")
_NAME = re.compile(r"[^\s,/()\[\]<>#][^,/()\[\]<>]{0,62}[^\s,/()\[\]<>]|[^\s,/()\[\]<>#]")


@command("iam", usage="NAME", help="set the name shown when you own an item",
         example="!iam George Dunlap")
async def iam(ctx: Context, args: str) -> Reply:
    name = " ".join(args.split())
    if not name:
        raise UsageError()
    if not _NAME.fullmatch(name):
        raise UsageError("a name is 1-64 characters without , / ( ) [ ] < > and does not start with #")
    if _MXID.fullmatch(name):
        raise Refused("That is a Matrix user id, not a name: say a name, like !iam Ada Lovelace.")
    if not ctx.message.sender.authenticated:
        raise Refused("Log in to your account first: a name is bound to an account, not a nick.")
    holder = await ctx.s.identity_of(name)
    if holder is not None and holder != ctx.identity and not ctx.is_admin:
        raise Refused(f"The name {name} belongs to {holder}; a release manager can reassign it.")
    old = ctx.me
    await ctx.s.set_display_name(ctx.identity, name)
    moved = 0
    # Items claimed under the old name (often the bare nick) follow the person, unless that
    # old name is someone else's.
    if old.casefold() != name.casefold() and await ctx.s.identity_of(old) in (None, ctx.identity):
        moved = await ctx.s.rename_owner(old, name)
    was = f" (was {old})" if old != name else ""
    items = f"; {moved} item{'s' * (moved != 1)} now show {name} as owner" if moved else ""
    return text(f"You are now {name}{was}{items}.", outcome="changed")


@command("whoami", help="show your identity, name and rights", writes=False)
async def whoami(ctx: Context, args: str) -> Reply:
    sender = ctx.message.sender
    parts = [f"You are {sender.identity}"]
    if not sender.authenticated:
        parts.append(" (not logged in to an account)")
    parts.append(f", shown as {ctx.me}")
    if not ctx.has_name:
        parts.append(f" (set a name with {ctx.prefix}iam NAME)")
    if ctx.is_admin:
        parts.append("; you are a release manager")
    return text("".join(parts) + ".")
