"""!help: the list of commands, and the usage and example of one."""

from __future__ import annotations

from .messages import Reply, bold, text

from .args import Word
from .context import Context
from .registry import Refused, all_commands, command, lookup

WHO = {"anyone": "anyone", "owner": "the item's owners and release managers",
       "admin": "release managers"}


@command("help", Word("COMMAND", optional=True), help="list the commands, or show how to use one",
         example="!help claim", writes=False)
async def help_(ctx: Context, name: str | None) -> Reply:
    name = (name or "").lstrip(ctx.prefix).casefold()
    if not name:
        groups: dict[str, list[str]] = {}
        for cmd in all_commands():
            groups.setdefault(cmd.group, []).append(ctx.prefix + cmd.name)
        reply = Reply(long=True).add(bold("Commands"), f" (say {ctx.prefix}help COMMAND for more):")
        for names in groups.values():
            reply.add(" ".join(names))
        reply.add('Or just say "I can take this one" after the bot names an item.')
        return reply
    cmd = lookup(name)
    if cmd is None:
        raise Refused(f"No command {ctx.prefix}{name}. Say {ctx.prefix}help for the list.")
    reply = text(bold(cmd.usage_line(ctx.prefix)), f" — {cmd.help}.")
    reply.add(f"Example: {cmd.example.replace('!', ctx.prefix, 1)}")
    if cmd.who != "anyone":
        reply.add(f"Who: {WHO[cmd.who]}.")
    return reply
