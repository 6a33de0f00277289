"""The development-update layout: the weekly Xen 4.3+ "Xen-unstable ... development update".

As a release manager writes it and as `render` writes it::

    Prose before the first heading is the intro.

    = Timeline =                                  <- level 1: the timeline

    * Feature freeze: 25 March 2013               <- `* NAME: DATE`, optional `<== DONE`
    * First RC: 6 May 2013  <== WE ARE HERE

    Last updated: 13 May 2013                     <- intro too (written after the timeline)

    == Bugs ==                                    <- level 2: a section, ListItem.section

    * #12 [BUG] title                             <- an item: optional #id and [TAGS]
      owner: George Dunlap, Jan Beulich           <- owners (`?`, `???`, `none`: unclaimed)
      status: patches posted                      <- progress
      state: deferred                             <- only when the section does not say it
      severity: blocker                           <- likewise (a done blocker in Completed)
      free text, the item's details
      > http://marc.info/?l=xen-devel&m=1         <- a link
      > a note                                    <- a note
      @Ian to ask someone                         <- a note naming a person (not an owner)
      - a sub-item (external)                     <- a child; its own sub-lines indent more

    === Testing coverage ===                      <- level 3: a subsection, the item's area

The section gives the state and severity (`SECTIONS`): "Completed", "Finished", "Done" are
done; "Bugs", "Blockers" are open blockers; "Open", "Backlog", "Features on-track", "Nice to
have", "Features" are open, nice to have. An unknown heading reads as open, nice to have,
with a warning (the Markdown checklist reads its `##` headings with this table too, and the
Xen release update adds its own headings to it). Titles are kept as written, trailing parentheses included: owners only come
from `owner:` lines. Lines quoted with `>` at the margin are a reply's quotes, skipped; a
`-- ` signature ends the mail.

The writer puts each item under its own section when that section says the item's state and
severity, else under the first heading of the list that does (else "Completed", "Bugs" or
"Open"): an item marked done in chat moves to "Completed" in the next mail. Round trip:
`parse(render(L)) == L` for lists whose items already sit in such a section (children share
their parent's section, area and severity); strings normalised; titles do not start with
`#N ` or `[`; details, owners, notes and progress do not start with a sub-line keyword,
`>`, `@`, `-` or `*`; notes are not a bare link; owners contain no `,` and are not `?`/`none`;
milestone names contain no `:` and no `<==`; intro paragraphs do not start with `=`, `*`,
`>` or "Last updated" unless they are the one after the timeline.
"""

from __future__ import annotations

import re

from ..models import ListItem, Milestone, ReleaseList
from ..timeline import marks
from .common import (LINK_ONLY, MailFormatError, QuotedHeading, normalise, paragraphs, strip_marks,
                     wrap)

NAME = "xen-dev-update"

# heading (casefolded) -> (state, severity) of the items under it
SECTIONS: dict[str, tuple[str, str]] = {
    "completed": ("done", "nice"), "finished": ("done", "nice"), "done": ("done", "nice"),
    "bugs": ("open", "blocker"), "blockers": ("open", "blocker"),
    "open": ("open", "nice"), "backlog": ("open", "nice"), "features on-track": ("open", "nice"),
    "nice to have": ("open", "nice"), "features": ("open", "nice"),
}
_KINDS = {"done": ("done", "nice"), "blocker": ("open", "blocker"), "nice": ("open", "nice")}


def add_sections(headings: dict[str, str]) -> None:
    """More headings, from the config: {"Wishlist": "nice", "Fixed": "done", ...}."""
    for heading, kind in headings.items():
        SECTIONS[normalise(heading).casefold()] = _KINDS[kind]


def section_kind(name: str, number: int, warnings: list[str]) -> tuple[str, str]:
    """(state, severity) of the items under the section heading `name` on line `number`; an
    unknown heading reads as open, nice to have, and says so in `warnings`."""
    if name.casefold() not in SECTIONS:
        warnings.append(f'line {number}: unknown section "{name[:40]}": its items read as '
                        "open, nice to have")
    return kind_of(name)


def kind_of(name: str) -> tuple[str, str]:
    return SECTIONS.get(name.casefold(), ("open", "nice"))


def quoted_section(name: str) -> QuotedHeading:
    """A quoted section heading in a reply: new bullets under it are proposals of its kind."""
    state, severity = kind_of(name)
    return QuotedHeading("", severity, state != "done")


_DEFAULT_HEADING = {("done", "nice"): "Completed", ("done", "blocker"): "Completed",
                    ("open", "blocker"): "Bugs", ("open", "nice"): "Open"}

_HEADING = re.compile(r"(=+) (\S(?:.*\S)?) (=+)")
_MARK = re.compile(r"(.*?) ?<== ?(DONE|WE ARE HERE)", re.I)
_BULLET = re.compile(r"([*-])(?: (.*))?")
_SUBLINE = re.compile(r"(owners?|status|state|severity):(?: (.*))?", re.I)
_SEVERITY = {"blocker": "blocker", "blockers": "blocker", "nice": "nice", "nice to have": "nice"}
_STATE = re.compile(r"(open|done|duplicate|deferred|dropped)(?: of #([0-9]+))?", re.I)
_ID = re.compile(r"#([0-9]+)(?: |$)")
_TAG = re.compile(r"\[([^\[\]\s]+)\] ?")
_UNCLAIMED = {"?", "??", "???", "none", "nobody", "n/a", "tbd"}
_GLUE = re.compile(r"(?:owners?|status|state):.*|[>@*-].*|=+", re.I)
_LAST_UPDATED = re.compile(r"last updated\b", re.I)


def _heading_of(raw: str) -> tuple[int, str] | None:
    if raw[:1] != "=":
        return None
    m = _HEADING.fullmatch(normalise(raw))
    if m is None or len(m[1]) != len(m[3]):
        return None
    return len(m[1]), m[2]


def detect(text: str) -> float:
    """Headings `= X =` / `== X ==` at the margin and `<== WE ARE HERE` marks."""
    score = 0.0
    for raw in text.replace("\r\n", "\n").split("\n"):
        if _heading_of(raw):
            score += 3
        elif "<== " in raw:
            score += 1
    return score


# ---------------------------------------------------------------- reading


def _item_head(text: str, section: str, area: str, state: str, severity: str) -> ListItem:
    it = ListItem(area=area, severity=severity, title="", state=state, section=section)
    if m := _ID.match(text):
        it.id, text = int(m[1]), text[m.end():]
    while m := _TAG.match(text):
        it.tags.append(m[1])
        text = text[m.end():]
    it.title = text
    return it


def _subline(it: ListItem, line: str, details: dict[int, list[str]]) -> None:
    if m := _SUBLINE.fullmatch(line):
        key, value = m[1].lower(), m[2] or ""
        if key.startswith("owner"):
            it.owners += [o for o in (normalise(p) for p in value.split(","))
                          if o and o.casefold() not in _UNCLAIMED]
        elif key == "severity" and value.casefold() in _SEVERITY:
            it.severity = _SEVERITY[value.casefold()]
            for child in walk(it.children):
                child.severity = it.severity
        elif key == "status":
            it.progress = f"{it.progress}; {value}" if it.progress else value
        elif (s := _STATE.fullmatch(value)):
            it.state = s[1].lower()
            it.duplicate_of = int(s[2]) if s[2] else None
        else:
            details.setdefault(id(it), []).append(line)
    elif line.startswith(">"):
        text = line[1:].strip()
        if LINK_ONLY.fullmatch(text):
            it.links.append(text)
        elif text:
            it.notes.append(text)
    elif line.startswith("@"):
        it.notes.append(line)
    else:
        details.setdefault(id(it), []).append(line)


def parse(text: str, release: str | None = None) -> ReleaseList:
    intro: list[str | None] = []
    after: list[str | None] = []  # prose between the timeline and the first section
    milestones: list[Milestone] = []
    items: list[ListItem] = []
    warnings: list[str] = []
    details: dict[int, list[str]] = {}
    mode = "intro"  # intro | timeline | section
    headings = 0
    section, area, state, severity = "", "", "open", "nice"
    stack: list[tuple[int, ListItem]] = []  # open items by indent, outermost first
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if raw.startswith(">"):  # a reply's quote
            continue
        if raw.rstrip() == "--":  # signature
            break
        stripped = raw.lstrip()
        indent = len(raw[: len(raw) - len(stripped)].expandtabs(8))
        line = normalise(stripped)
        if not line:
            (intro if mode == "intro" else after).append(None)
            continue
        if head := _heading_of(raw):
            level, name = head
            headings += 1
            stack = []
            if level == 1:
                mode = "timeline"
            elif level == 2:
                mode, section, area = "section", name, ""
                state, severity = section_kind(name, number, warnings)
            else:
                mode, area = "section", name
            continue
        if mode == "intro":
            intro.append(raw.rstrip())
            continue
        bullet = _BULLET.fullmatch(line)
        if mode == "timeline":
            if bullet and line.startswith("*"):
                milestones.append(_milestone(bullet[2] or ""))
            else:
                after.append(raw.rstrip())
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if bullet and (indent == 0 or stack):
            parent = stack[-1][1] if stack else None
            it = _item_head(bullet[2] or "", section, parent.area if parent else area,
                            state, parent.severity if parent else severity)
            (parent.children if parent else items).append(it)
            stack.append((indent, it))
        elif stack and indent > stack[-1][0]:
            _subline(stack[-1][1], line, details)
        else:
            warnings.append(f'line {number}: not understood: "{line[:60]}"')
    if not headings:
        prose = [(n, normalise(ln)) for n, ln in enumerate(text.split("\n"), 1) if normalise(ln)]
        raise MailFormatError("no TODO list found: expected headings such as '= Timeline =' "
                              "or '== Open =='", prose[:5])
    for it in walk(items):
        it.details = " ".join(details.get(id(it), []))
    paras = paragraphs(intro) + paragraphs(after)
    return ReleaseList(release=release, milestones=milestones, items=items,
                       intro="\n\n".join(paras), layout=NAME, warnings=warnings)


def walk(items: list[ListItem]):
    for it in items:
        yield it
        yield from walk(it.children)


def _milestone(text: str) -> Milestone:
    text, done, current = strip_marks(text, _MARK)
    name, _, when = text.partition(": ")
    return Milestone(when=when.strip(), name=name.strip(), done=done, current=current)


# ---------------------------------------------------------------- writing


def _fits(heading: str, state: str, severity: str) -> bool:
    got = SECTIONS.get(heading.casefold())
    if got is None:
        return False
    return got[0] == "done" if state == "done" else got == (state, severity)


def heading_for(it: ListItem, headings: list[str]) -> str:
    """The section an item is written under (see the module docstring)."""
    if it.state not in ("open", "done"):  # no section says deferred: `state:` line instead
        return it.section or _DEFAULT_HEADING[("open", it.severity)]
    if it.section and _fits(it.section, it.state, it.severity):
        return it.section
    for h in headings:
        if _fits(h, it.state, it.severity):
            return h
    return _DEFAULT_HEADING[(it.state, it.severity)]


def sections_of(lst: ReleaseList, *, placeholder: bool
                ) -> list[tuple[str, tuple[str, str], dict[str, list[ListItem]]]]:
    """The items as a heading-based writer lays them out, in list order: (heading, the
    (state, severity) a reader gives items under it, the items by area, "" first). With no
    items and `placeholder`, one empty "Open" section, so an empty list still reads back as
    a list. The development update, the Markdown checklist and the Xen release update share it."""
    headings = list(dict.fromkeys(it.section for it in lst.items if it.section))
    groups: dict[str, dict[str, list[ListItem]]] = {}
    for it in lst.items:
        groups.setdefault(heading_for(it, headings), {"": []}).setdefault(it.area, []).append(it)
    if not groups and placeholder:
        groups["Open"] = {"": []}
    return [(heading, kind_of(heading), areas)
            for heading, areas in groups.items()]


def render(lst: ReleaseList, *, ids: bool = True, width: int = 72) -> str:
    paras = lst.intro.split("\n\n") if lst.intro.strip() else []
    before = [p for p in paras if not _LAST_UPDATED.match(p)]
    later = [p for p in paras if _LAST_UPDATED.match(p)]
    blocks = before
    if lst.milestones:
        blocks.append("= Timeline =\n\n" + "\n".join(_render_milestone(m) for m in lst.milestones))
    blocks += later
    for heading, implied, areas in sections_of(lst, placeholder=not lst.milestones):
        blocks.append(f"== {heading} ==")
        for area, items in areas.items():
            if area:
                blocks.append(f"=== {area} ===")
            for it in items:
                blocks.append("\n".join(_render_item(it, 0, implied, ids, width)))
    return "\n\n".join(blocks) + "\n"


def _render_milestone(m: Milestone) -> str:
    line = f"* {m.name}: {m.when}" if m.when else f"* {m.name}"
    return line + "".join(f"  <== {k}" for k in marks(m))


def _render_item(it: ListItem, depth: int, implied: tuple[str, str], ids: bool,
                 width: int) -> list[str]:
    """`implied`: the (state, severity) a reader gives the item from where it is written."""
    lead = "* " if depth == 0 else " " * (2 * depth) + "- "
    sub = " " * (2 * depth + 2)
    prefix = ([f"#{it.id}"] if ids and it.id is not None else []) + [f"[{t}]" for t in it.tags]
    out = [(lead + " ".join(prefix + [it.title])).rstrip()]
    if it.owners:
        out.append(f"{sub}owner: {', '.join(it.owners)}")
    if it.progress:
        out.append(f"{sub}status: {it.progress}")
    dup = ids and it.duplicate_of is not None
    if it.severity != implied[1]:  # a done blocker under "Completed"; sub-items follow
        out.append(f"{sub}severity: {it.severity}")
    if it.state != implied[0] or dup:
        ref = f" of #{it.duplicate_of}" if dup else ""
        out.append(f"{sub}state: {it.state}{ref}")
    if it.details:
        out += _wrap(it.details, sub, width)
    out += [f"{sub}> {link}" for link in it.links]
    out += [f"{sub}{note}" if note.startswith("@") else f"{sub}> {note}" for note in it.notes]
    for child in it.children:
        out += _render_item(child, depth + 1, (implied[0], it.severity), ids, width)
    return out


def _wrap(text: str, indent: str, width: int) -> list[str]:
    """Never starts a line with something a sub-line reads as a key."""
    return wrap(text, indent, indent, width, _GLUE)


# ---------------------------------------------------------------- as a reply quotes it

# not `* [ ] text`: a Markdown checkbox
_QUOTED_ITEM = re.compile(
    r"\s*[*-]\s+(?:#(?P<id>[0-9]{1,12})\s+)?(?!\[[ xX]\] )(?P<text>\S.*)")


def quoted_heading(line: str, following: str = "") -> QuotedHeading | None:
    """`== Open ==` (state and severity from SECTIONS; no area), `=== Area ===` (the area),
    `= Timeline =` (no items under it). A done section takes no new items either."""
    head = _heading_of(line)
    if head is None:
        return None
    level, name = head
    if level == 1:
        return QuotedHeading(None, None, False)
    if level == 2:
        return quoted_section(name)
    return QuotedHeading(name, None, None)


def quoted_item(line: str) -> tuple[int | None, str] | None:
    """`* #4 [BUG] title` or a sub-item `  - title`: (4 or None, its text)."""
    m = _QUOTED_ITEM.fullmatch(line)
    return (int(m["id"]) if m["id"] else None, m["text"].strip()) if m else None
