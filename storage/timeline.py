"""The release timeline, decided in one place: which milestones are DONE and which one is WE
ARE HERE as of a day, and the marks each carries. Every form of it (the mail layouts in
layouts/, the chat, Markdown and HTML forms in commands/ and bot/, the Markdown export) takes
its rows from here and only chooses how they look."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING

from .dates import parse_when
from .models import Milestone, Release

if TYPE_CHECKING:  # the layouts import this module, and the repository the layouts
    from .repository import Session

DONE = "DONE"
HERE = "WE ARE HERE"


def marks(m: Milestone) -> list[str]:
    """The marks of a milestone, in the order the mails write them (a form that shows one
    shows the last: where we are says more than done)."""
    return [DONE] * m.done + [HERE] * m.current


def effective_milestones(milestones: list[Milestone], today: date, created: date) -> list[Milestone]:
    """The timeline with its marks as of `today`.

    When a milestone is marked current (`!milestone here`, or an imported `<< WE ARE HERE`),
    the stored marks are the release manager's word and stay. Otherwise milestones whose date
    has come are DONE and the first one not done is WE ARE HERE — the phase being worked
    towards, which is how the mail reads ("30 July RC1 << DONE, Weekly RCN+1 << WE ARE HERE")."""
    out = [replace(m) for m in milestones]
    if any(m.current for m in out):
        return out
    prev: date | None = None
    dated = False
    for m in out:
        d = parse_when(m.when, prev or created, not_before=prev)
        if d is not None:
            dated = True
            prev = d
            m.done = m.done or d <= today
    if dated:
        for m in out:
            if not m.done:
                m.current = True
                break
    return out


async def release_timeline(s: Session, release: Release, tz: tzinfo) -> list[Milestone]:
    """The release's milestones with their marks as of today in `tz` (the room's digest
    zone, or the status page's): what every view of the timeline shows."""
    now = s.now
    today = datetime.fromtimestamp(now, tz).date()
    created = datetime.fromtimestamp(release.created_at or now, tz).date()
    return effective_milestones(await s.milestones(release), today, created)
