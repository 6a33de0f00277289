"""How items look in replies: shared by every command that lists or names items.

This builds protocol-neutral spans (bold ids, links); each transport renders them.
"""

from __future__ import annotations

from collections.abc import Iterable

from .messages import Reply, Span, item_ref
from ..storage import Item
from ..storage.repository import RENDER_DEPTH

SPACE = Span(" ")  # one immutable span for the space after every listed item's id
SEVERITY_TITLE = {"blocker": "blockers", "nice": "nice to have"}
STATE_MARK = {"done": "DONE", "duplicate": "DUPLICATE", "deferred": "DEFERRED", "dropped": "DROPPED"}


def owners_text(owners: Iterable[str]) -> str:
    owners = list(owners)
    return ", ".join(owners) if owners else "unclaimed"


def summary(item: Item) -> str:
    """`[BUG] title` — how a reply names an item after its id."""
    if not item.tags:  # most items: no string to build
        return item.title
    tags = "".join(f"[{t}] " for t in item.tags)
    return f"{tags}{item.title}"


def item_spans(item: Item, *, details: bool = False) -> list[Span | str]:
    """`#12 [BUG] title (owner, progress)` as in the release mail, plus the state when closed."""
    parts: list[Span | str] = [item_ref(item.id), SPACE, summary(item)]
    if details and item.details:
        parts.append(f" {item.details}")
    group = list(item.owners)
    if item.progress:
        group.append(item.progress)
    if item.state != "open":
        mark = STATE_MARK[item.state]
        if item.state == "duplicate" and item.duplicate_of:
            group.append(f"{mark} of ")
            parts += [f" ({', '.join(group)}", item_ref(item.duplicate_of), ")"]
            return parts
        group.append(mark)
    if group:
        parts.append(f" ({', '.join(group)})")
    return parts


def section_key(item: Item) -> tuple[str, str]:
    return item.area, item.severity


def split_roots(items: list[Item]) -> tuple[list[Item], dict[int, list[Item]]]:
    """The items that start a line (no parent among `items`) and each item's shown children,
    in list order."""
    shown = {it.id for it in items}
    children: dict[int, list[Item]] = {}
    roots: list[Item] = []
    for it in items:
        if it.parent is not None and it.parent in shown:
            children.setdefault(it.parent, []).append(it)
        else:
            roots.append(it)
    return roots, children


# A chat answer longer than this is not read; past it the list says how to narrow it down.
LIST_LIMIT = 50


def list_reply(items: list[Item], *, heading: str, empty: str, total: int | None = None,
               narrow: str = "") -> Reply:
    """Items grouped into mail-style sections (`tools, blockers:`), sub-items nested.

    `items` are the ones to show; an item whose parent is not shown is listed at the top of
    its section. Sections come blockers first, then by area in order of first appearance.
    `total` > len(items) adds a last line saying how many more there are and `narrow`.
    """
    reply = Reply(long=len(items) > 8)
    if not items:
        return reply.add(empty)
    roots, children = split_roots(items)
    sections: dict[tuple[str, str], list[Item]] = {}
    for sev in ("blocker", "nice"):
        for it in roots:
            if it.severity == sev:
                sections.setdefault(section_key(it), []).append(it)
    reply.add(heading)
    order: list[int] = []

    for (area, sev), its in sections.items():
        # Items of a development update without a subsection have no area.
        title = SEVERITY_TITLE[sev]
        reply.heading(f"{area}, {title}:" if area else f"{title[0].upper()}{title[1:]}:")
        # Depth first without recursion; past RENDER_DEPTH levels stop indenting further.
        stack = [(it, 0) for it in reversed(its)]
        while stack:
            it, level = stack.pop()
            order.append(it.id)
            reply.bullet(*item_spans(it), level=min(level, RENDER_DEPTH))
            stack.extend((child, level + 1) for child in reversed(children.get(it.id, [])))
    if total is not None and total > len(items):
        reply.add(f"… and {total - len(items)} more{narrow}.")
    reply.items = tuple(order)
    return reply
