"""The JSON form of a release list, and the Markdown escaper (the mail forms, the Markdown
checklist among them, live in `layouts/`).

The JSON form is stable and documented in the README: items are flat, in list order, with
`parent` and `duplicate_of` as ids.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .models import SEVERITIES, STATES, ListItem, Milestone, ReleaseList
from .names import clean, visible

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
        "intro": lst.intro,
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


class JsonImportError(ValueError):
    """The JSON is not an export todobot can take; the message names the item."""


MAX_ID = 10**12
_UNSAFE = re.compile(r"[\r\n\x00]")
_LINK_OK = re.compile(r"(?:https?|ftp)://[^\s<>\"]+|<[^\s<>@]+@[^\s<>]+>")


def _text(raw: dict, key: str, where: str, *, required: bool = False) -> str:
    value = raw.get(key, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise JsonImportError(f"{where}: {key} must be text")
    if _UNSAFE.search(value):
        raise JsonImportError(f"{where}: {key} holds a line break or NUL")
    value = clean(value)
    if required and not visible(value):
        raise JsonImportError(f"{where}: {key} is empty")
    return value


def _texts(raw: dict, key: str, where: str) -> list[str]:
    values = raw.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise JsonImportError(f"{where}: {key} must be a list of text")
    if any(_UNSAFE.search(v) for v in values):
        raise JsonImportError(f"{where}: {key} holds a line break or NUL")
    return [clean(v) for v in values if clean(v)]


def _id(value: object, where: str, key: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_ID:
        raise JsonImportError(f"{where}: {key} must be a whole number from 1 to {MAX_ID}")
    return value


def from_json(text: str) -> ReleaseList:
    """Read the JSON form back (so an export can be imported elsewhere), checked as chat
    input is: ids in range, titles present, no line breaks, links that are links, parents
    that come earlier in the file, no item its own parent or duplicate."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JsonImportError(f"not JSON: {exc}") from None
    except RecursionError:  # the decoder recurses once per [ or {; an export nests a few deep
        raise JsonImportError("not a todobot JSON export: nested too deep") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise JsonImportError("not a todobot JSON export: no \"items\" list")
    milestones = []
    for n, m in enumerate(doc.get("milestones") or [], 1):
        if not isinstance(m, dict):
            raise JsonImportError(f"milestone {n}: not an object")
        where = f"milestone {n}"
        milestones.append(Milestone(_text(m, "when", where, required=True),
                                    _text(m, "name", where, required=True),
                                    bool(m.get("done")), bool(m.get("current"))))
    nodes: dict[int, ListItem] = {}
    roots: list[ListItem] = []
    dups: dict[int, int] = {}
    for n, raw in enumerate(doc["items"], 1):
        if not isinstance(raw, dict):
            raise JsonImportError(f"item {n}: not an object")
        item_id = _id(raw.get("id"), f"item {n}", "id")
        where = f"item {n}" + (f" (#{item_id})" if item_id else "")
        severity, state = raw.get("severity"), raw.get("state", "open")
        if severity not in SEVERITIES:
            raise JsonImportError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
        if state not in STATES:
            raise JsonImportError(f"{where}: state must be one of {', '.join(STATES)}")
        links = _texts(raw, "links", where)
        bad = [u for u in links if not _LINK_OK.fullmatch(u)]
        if bad:
            raise JsonImportError(f"{where}: {bad[0]!r} is not an http(s)/ftp URL or <message-id>")
        it = ListItem(area=_text(raw, "area", where, required=True), severity=severity,
                      title=_text(raw, "title", where, required=True), tags=_texts(raw, "tags", where),
                      details=_text(raw, "details", where), owners=_texts(raw, "owners", where),
                      progress=_text(raw, "progress", where), state=state, links=links,
                      notes=_texts(raw, "notes", where), id=item_id,
                      duplicate_of=_id(raw.get("duplicate_of"), where, "duplicate_of"),
                      section=_text(raw, "section", where))
        parent_id = _id(raw.get("parent"), where, "parent")
        if item_id is not None:
            if item_id in nodes:
                raise JsonImportError(f"{where}: the id #{item_id} appears twice")
            if parent_id == item_id or it.duplicate_of == item_id:
                raise JsonImportError(f"{where}: an item cannot be its own parent or duplicate")
            nodes[item_id] = it
            if it.duplicate_of is not None:
                dups[item_id] = it.duplicate_of
        if parent_id is not None and parent_id not in nodes:
            raise JsonImportError(f"{where}: its parent #{parent_id} does not come before it")
        (nodes[parent_id].children if parent_id is not None else roots).append(it)
    for start in dups:  # duplicate_of chains must end, not loop
        seen, at = {start}, dups[start]
        while at in dups:
            if at in seen:
                raise JsonImportError(f"item #{start}: its duplicate_of chain loops back to #{at}")
            seen.add(at)
            at = dups[at]
    release = doc.get("release")
    intro = doc.get("intro", "")
    if not isinstance(intro, str) or "\x00" in intro:
        raise JsonImportError("intro must be text")
    return ReleaseList(release if isinstance(release, str) else None, milestones, roots, intro)


def md_escape(text: str) -> str:
    """Escape Markdown's active characters so item text renders as text."""
    for ch in "\\`*_{}[]<>#|":
        text = text.replace(ch, "\\" + ch)
    return text
