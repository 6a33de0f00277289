"""`!digest` and `!stale`: the digest's data (storage/digest_data.py) rendered for chat
(commands/render_digest.py)."""

from __future__ import annotations

from ..storage.digest_data import collect, since_for_room, stale_claims
from .args import Count, Word
from .context import Context
from .format import summary
from .messages import Reply
from .registry import command
from .render_digest import render_reply, stale_spans


@command("digest", Word("preview", optional=True, choices=("preview",)),
         help="the digest of this room's release as the bot posts "
         "it on schedule: timeline, summary, what changed since the last one, open items",
         example="!digest preview", writes=False)
async def digest(ctx: Context, preview: str | None) -> Reply:
    rel = await ctx.release()
    msg = ctx.message
    settings = ctx.settings
    data = await collect(ctx.s, rel, since=await since_for_room(ctx.s, rel, msg.transport, msg.room),
                         stale_days=settings.stale_days, tz=settings.tz, project=settings.project)
    return render_reply(data, "short" if settings.compact else "full", prefix=ctx.prefix,
                        status_url=settings.status_url)


@command("stale", Count("DAYS", optional=True, low=1, high=3650),
         help="claimed items with no change for DAYS days (default: "
         "the digest's stale_days, else 14)", example="!stale 10", writes=False)
async def stale(ctx: Context, days: int | None) -> Reply:
    days = days or ctx.settings.stale_days or 14
    rel = await ctx.release()
    claims = await stale_claims(ctx.s, await ctx.s.items(rel), days, ctx.s.now)
    if not claims:
        return Reply().add(f"No claimed item of {rel.name} has gone {days} days without an update.")
    reply = Reply(long=len(claims) > 8).add(
        f"Claimed items of {rel.name} with no update for {days} days or more: {len(claims)}")
    for c in claims:
        reply.bullet(*stale_spans(c), f" ({summary(c.item)})")
    reply.items = tuple(c.item.id for c in claims)
    return reply
