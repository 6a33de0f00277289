"""Items proposed in prose rather than by command: a bullet written under a section heading of
the weekly mail (a reply on the list). The bullet is read as the mail format reads it — tags,
title (first sentence), details, a trailing `(progress)` — and added as `!add` would, with a
link to where it was proposed. Who claims it is the reply's business (a claim after it).
"""

from __future__ import annotations

import re

from .messages import Reply, item_ref, text
from ..storage import Item
from ..storage.layouts.common import MailFormatError
from ..storage.layouts.xen42 import NO_AREA, parse_mail

from .context import Context
from .format import SEVERITY_TITLE, summary
from .items import MAX_TITLE, check_rate, check_title
from .registry import Refused, UsageError

_SENTENCE_END = re.compile(r"[.!?]\)?$")


def read_bullet(area: str, severity: str, bullet: str) -> tuple[list[str], str, str, str, list[str]]:
    """(tags, title, details, progress, links) of a bullet as the mail format reads it."""
    heading = "blockers" if severity == "blocker" else "nice to have"
    try:
        lst = parse_mail(f"{area or NO_AREA}, {heading}:\n\n    * {' '.join(bullet.split())}\n")
    except MailFormatError:
        lst = None
    if lst is None or not lst.items:
        raise UsageError("an empty bullet")
    it = lst.items[0]
    details, progress = it.details, it.progress
    if it.owners:  # "(George Dunlap, patch posted)": owners come from claims, not from prose
        progress = ", ".join(filter(None, [", ".join(it.owners), progress]))
    if progress and _SENTENCE_END.search(progress):
        # "(In fact, I'd be open to ... more testing.)" is an aside, not progress.
        details, progress = " ".join(filter(None, [details, f"({progress})"])), ""
    return list(it.tags), it.title, details, progress, list(it.links)


async def add_proposed(ctx: Context, area: str, severity: str, bullet: str, *,
                       link: str | None = None) -> tuple[Item, Reply]:
    """Add the item a bullet proposes to the room's release."""
    tags, title, details, progress, links = read_bullet(area, severity, bullet)
    if len(title) > MAX_TITLE:  # no sentence break early on: keep the whole text as details
        title, details = title[:MAX_TITLE].rsplit(" ", 1)[0] + " …", " ".join([title, details]).strip()
    if not title:
        raise Refused("That bullet has no title.")
    title = check_title(title)
    if link and link not in links:
        links.append(link)
    rel = await ctx.release()
    await check_rate(ctx)
    item = await ctx.s.add_item(rel, area=area, severity=severity, title=title, tags=tags,
                                details=details, progress=progress, links=links)
    reply = text("Added ", item_ref(item.id), f" ({area or NO_AREA}, {SEVERITY_TITLE[severity]}): "
                 f"{summary(item)}", outcome="changed", items=(item.id,))
    return item, reply
