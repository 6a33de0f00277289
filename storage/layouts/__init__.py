"""Mail layouts: how a release TODO list is written as a mail, one module per layout.

Each layout module has `NAME`, `detect(text) -> float` (0 when the text does not look like
it at all), `parse(text, release) -> ReleaseList` (raising `MailFormatError` when the text
holds no list) and `render(lst, *, ids=True, width=72) -> str`; a layout that is only read has no `render`
but `WRITTEN_AS`, the layout its lists are exported in. A layout the bot writes also says how
its headings and items look in a reply that quotes them: `quoted_heading(line, following)
-> QuotedHeading | None` and `quoted_item(line) -> (id | None, text) | None`, on a quoted
line's content (the reply reader asks every layout, see below). A new layout is a new module
added to `LAYOUTS` below; nothing else changes.
"""

from __future__ import annotations

from types import ModuleType

from . import devupdate, markdown, regzbot, xen42, xenrelease
from .common import MailFormatError, QuotedHeading, find_links, normalise, unread_lines

LAYOUTS: dict[str, ModuleType] = {m.NAME: m for m in (xen42, devupdate, markdown, regzbot, xenrelease)}
DEFAULT = xen42.NAME

WRITERS = tuple(name for name, m in LAYOUTS.items() if hasattr(m, "render"))

__all__ = ["DEFAULT", "LAYOUTS", "WRITERS", "MailFormatError", "QuotedHeading", "by_name", "detect",
           "find_links", "normalise", "parse", "quoted_heading", "quoted_item", "render", "writer"]


def by_name(name: str) -> ModuleType:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def detect(text: str) -> ModuleType | None:
    """The layout the text looks most like; None when it looks like none of them."""
    scores = {name: m.detect(text) for name, m in LAYOUTS.items()}
    best = max(scores, key=lambda n: scores[n])
    return LAYOUTS[best] if scores[best] > 0 else None


def parse(text: str, release: str | None = None, layout: str | None = None):
    """Read a mail in the given layout, or the detected one. A text that looks like no layout
    is refused in one line naming the layouts tried and the first lines read."""
    module = by_name(layout) if layout else detect(text)
    if module is not None:
        return module.parse(text, release)
    prose = [(n, normalise(ln)) for n, ln in enumerate(text.split("\n"), 1) if normalise(ln)]
    first = f"; the first lines: {unread_lines(prose, 3)}" if prose else ": the text is empty"
    raise MailFormatError(f"no TODO list found in any known layout (tried {', '.join(LAYOUTS)})"
                          + first)


def writer(name: str) -> ModuleType:
    """The layout a release in layout `name` is exported in: its own, or for a layout that is
    only read (`WRITTEN_AS`), the one it names."""
    module = by_name(name)
    return by_name(module.WRITTEN_AS) if hasattr(module, "WRITTEN_AS") else module


def render(lst, *, ids: bool = True, width: int = 72, layout: str | None = None) -> str:
    """Write a list in the given layout, else its own (`lst.layout`), else the default."""
    return writer(layout or lst.layout or DEFAULT).render(lst, ids=ids, width=width)


def _quoting(prefer: str | None) -> list[ModuleType]:
    """The layouts that read quotes, the preferred one (the answered mail's) first."""
    found = [m for m in LAYOUTS.values() if hasattr(m, "quoted_heading")]
    return sorted(found, key=lambda m: m.NAME != prefer)


def quoted_heading(line: str, following: str = "", *,
                   prefer: str | None = None) -> QuotedHeading | None:
    """The heading a quoted line is in any layout (`following`: the next quoted line, for
    underlined headings), else None."""
    for m in _quoting(prefer):
        if (head := m.quoted_heading(line, following)) is not None:
            return head
    return None


def quoted_item(line: str, *, prefer: str | None = None) -> tuple[int | None, str] | None:
    """(id or None, text) when a quoted line is an item in any layout, else None."""
    for m in _quoting(prefer):
        if (item := m.quoted_item(line)) is not None:
            return item
    return None
