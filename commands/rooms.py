"""!leave: room membership, for transports where the bot joins rooms by itself (Matrix)."""

from __future__ import annotations

from .messages import Reply, text

from .context import Context
from .registry import Refused, command


@command("leave", help="make the bot leave this room (Matrix)", who="admin", writes=False)
async def leave(ctx: Context) -> Reply:
    if "leave" not in ctx.message.actions:
        raise Refused("I cannot leave rooms here; remove me from the configuration instead.")
    reply = text("Leaving this room.")
    reply.action = "leave"
    return reply
