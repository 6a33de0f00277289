"""The release timeline, decided in one place: which milestones are DONE and which one is WE
ARE HERE (what the mail or a release manager said), and the marks each carries. Every form of it (the mail layouts in
layouts/, the chat, Markdown and HTML forms in commands/ and bot/, the Markdown export) takes
its rows from here and only chooses how they look."""

from __future__ import annotations

from dataclasses import replace
from datetime import tzinfo
from typing import TYPE_CHECKING

from .models import Milestone, Release

if TYPE_CHECKING:  # the layouts import this module, and the repository the layouts
    from .repository import Session

DONE = "DONE"
HERE = "WE ARE HERE"


def marks(m: Milestone) -> list[str]:
    """The marks of a milestone, in the order the mails write them (a form that shows one
    shows the last: where we are says more than done)."""
    return [DONE] * m.done + [HERE] * m.current


def effective_milestones(milestones: list[Milestone]) -> list[Milestone]:
    """The timeline with its marks: DONE and WE ARE HERE exactly where the mail or a release
    manager (`!milestone done|here`) put them. A date that has passed marks nothing: a
    development update lists past dates it does not call done, and a milestone that slipped
    is not done because its day came."""
    return [replace(m) for m in milestones]


async def release_timeline(s: Session, release: Release, tz: tzinfo | None = None) -> list[Milestone]:
    """The release's milestones with their marks: what every view of the timeline shows.
    (`tz`, the viewer's zone, changes nothing now that no mark follows the calendar.)"""
    return effective_milestones(await s.milestones(release))
