"""Finding items: !find."""

from __future__ import annotations

from ..storage.search import COUNT_MAX, BadQuery
from .args import Text, Word
from .context import Context
from .errors import UsageError
from .format import LIST_LIMIT, list_reply
from .messages import Reply
from .registry import command


@command("find", Word("--all", optional=True, choices=("--all",)), Text("TEXT", max_len=200),
         help="items whose title, details, notes or links hold all these words, best first "
              "(--all: in every release)", example="!find SONAMES", writes=False)
async def find(ctx: Context, everywhere: str | None, text: str) -> Reply:
    rel = None if everywhere else await ctx.release()
    try:
        items, total = await ctx.s.search(text, rel, limit=LIST_LIMIT)
    except BadQuery as exc:
        raise UsageError(str(exc)) from None
    where = f"in {rel.name}" if rel is not None else "in all releases"
    narrow = " (add a word to narrow it down)"
    counted = total <= COUNT_MAX  # past it, the search stopped counting
    reply = list_reply(items, heading=f'Items matching "{text}" {where}: '
                       + (str(total) if counted else f"more than {COUNT_MAX}"),
                       total=total if counted else None, narrow=narrow,
                       empty=f'Nothing {where} matches "{text}".')
    if not counted:
        reply.add(f"… and more{narrow}.")
    return reply
