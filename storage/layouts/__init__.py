"""Mail layouts: how a release TODO list is written as a mail, one module per layout.

Each layout module has `NAME`, `detect(text) -> float` (0 when the text does not look like
it at all), `parse(text, release) -> ReleaseList` (raising `MailFormatError` when the text
holds no list) and `render(lst, *, ids=True, width=72) -> str`. A new layout is a new module
added to `LAYOUTS` below; nothing else changes.
"""

from __future__ import annotations

from types import ModuleType

from . import devupdate, xen42
from .common import MailFormatError, find_links, normalise

LAYOUTS: dict[str, ModuleType] = {m.NAME: m for m in (xen42, devupdate)}
DEFAULT = xen42.NAME

__all__ = ["DEFAULT", "LAYOUTS", "MailFormatError", "by_name", "detect", "find_links",
           "normalise", "parse", "render"]


def by_name(name: str) -> ModuleType:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise ValueError(f"unknown layout {name!r}; known: {', '.join(LAYOUTS)}") from None


def detect(text: str) -> ModuleType:
    """The layout the text looks most like (the 4.2 layout when none fits)."""
    scores = {name: m.detect(text) for name, m in LAYOUTS.items()}
    best = max(scores, key=lambda n: scores[n])
    return LAYOUTS[best] if scores[best] > 0 else LAYOUTS[DEFAULT]


def parse(text: str, release: str | None = None, layout: str | None = None):
    """Read a mail in the given layout, or the detected one."""
    return (by_name(layout) if layout else detect(text)).parse(text, release)


def render(lst, *, ids: bool = True, width: int = 72, layout: str | None = None) -> str:
    """Write a list in the given layout, else its own (`lst.layout`), else the default."""
    return by_name(layout or lst.layout or DEFAULT).render(lst, ids=ids, width=width)
