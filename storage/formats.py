"""JSON and Markdown forms of a release list (the mail forms live in `layouts/`).

The JSON form is stable and documented in the README: items are flat, in list order, with
`parent` and `duplicate_of` as ids.
"""

from __future__ import annotations

import json
from typing import Any

from .models import ListItem, Milestone, ReleaseList

JSON_ITEM_KEYS = ("id", "area", "severity", "tags", "title", "details", "owners", "progress",
                  "state", "parent", "duplicate_of", "links", "notes")


def _flatten(items: list[ListItem], parent: int | None = None) -> list[tuple[ListItem, int | None]]:
    out = []
    for it in items:
        out.append((it, parent))
        out.extend(_flatten(it.children, it.id))
    return out


def to_json(lst: ReleaseList) -> str:
    doc: dict[str, Any] = {
        "release": lst.release,
        "milestones": [{"when": m.when, "name": m.name, "done": m.done, "current": m.current}
                       for m in lst.milestones],
        "items": [{"id": it.id, "area": it.area, "severity": it.severity, "tags": it.tags,
                   "title": it.title, "details": it.details, "owners": it.owners,
                   "progress": it.progress, "state": it.state, "parent": parent,
                   "duplicate_of": it.duplicate_of, "links": it.links, "notes": it.notes}
                  | ({"section": it.section} if it.section else {})
                  for it, parent in _flatten(lst.items)],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def from_json(text: str) -> ReleaseList:
    """Read the JSON form back (so an export can be imported elsewhere)."""
    try:
        doc = json.loads(text)
        milestones = [Milestone(str(m["when"]), str(m["name"]), bool(m.get("done")),
                                bool(m.get("current"))) for m in doc.get("milestones", [])]
        nodes: dict[int, ListItem] = {}
        roots: list[ListItem] = []
        for raw in doc["items"]:
            it = ListItem(area=raw["area"], severity=raw["severity"], title=raw["title"],
                          tags=list(raw.get("tags", [])), details=raw.get("details", ""),
                          owners=list(raw.get("owners", [])), progress=raw.get("progress", ""),
                          state=raw.get("state", "open"), links=list(raw.get("links", [])),
                          notes=list(raw.get("notes", [])), id=raw.get("id"),
                          duplicate_of=raw.get("duplicate_of"), section=raw.get("section", ""))
            if it.id is not None:
                nodes[it.id] = it
            parent = nodes.get(raw.get("parent")) if raw.get("parent") is not None else None
            (parent.children if parent else roots).append(it)
        return ReleaseList(doc.get("release"), milestones, roots, doc.get("intro", ""))
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a todobot JSON export: {exc}") from None


def to_markdown(lst: ReleaseList) -> str:
    out = [f"# {lst.release} TODO", ""]
    if lst.milestones:
        out += ["## Timeline", ""]
        for m in lst.milestones:
            mark = " — **we are here**" if m.current else " — done" if m.done else ""
            out.append(f"- {_md(m.when)}: {_md(m.name)}{mark}")
        out.append("")
    sections: dict[tuple[str, str], list[ListItem]] = {}
    for it in lst.items:
        sections.setdefault((it.area, it.severity), []).append(it)
    for (area, sev), items in sorted(sections.items(), key=lambda kv: kv[0][1] != "blocker"):
        out += [f"## {_md(area)}, {'blockers' if sev == 'blocker' else 'nice to have'}", ""]
        for it in items:
            _md_item(it, 0, out)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def _md_item(it: ListItem, depth: int, out: list[str]) -> None:
    box = "x" if it.state != "open" else " "
    ident = f"**#{it.id}** " if it.id is not None else ""
    tags = "".join(f"[{t}] " for t in it.tags)
    group = list(it.owners) + ([it.progress] if it.progress else [])
    if it.state != "open":
        group.append(it.state.upper())
    tail = f" ({_md(', '.join(group))})" if group else ""
    body = _md(f"{tags}{it.title}" + (f" {it.details}" if it.details else ""))
    out.append(f"{'  ' * depth}- [{box}] {ident}{body}{tail}")
    for child in it.children:
        _md_item(child, depth + 1, out)


def _md(text: str) -> str:
    """Escape Markdown's active characters so item text renders as text."""
    for ch in "\\`*_{}[]<>#|":
        text = text.replace(ch, "\\" + ch)
    return text
