"""The Markdown checklist layout: a release-tracking issue as on GitHub or GitLab.

As people write it and as `render` writes it::

    # 4.3 TODO                                    <- a level-1 heading: the title, not read

    Prose before the first `##` heading is the intro.

    ## Timeline                                   <- the milestones

    - [x] 25 March 2013: Feature freeze           <- `[x]`: done; `WHEN: NAME` (or just NAME)
    - [ ] 6 May 2013: First RC — **we are here**

    ## Blockers                                   <- a section: ListItem.section

    - [ ] **#12** [BUG] title (@Alice, @Bob; patch posted)
      Free text: the item's details.              <- `Details: text` when it would be misread
      https://lore.kernel.org/r/x@y               <- a line holding only a link: one more link
      > a note
      status: patch posted                        <- progress, when there is no owner group
      state: deferred                             <- only when box and section do not say it
      severity: blocker                           <- likewise (a done blocker in Completed)
      - [ ] a sub-item                            <- a child; its own lines indent more

    ### Testing coverage                          <- a subsection: the items' area

The section says state and severity with the development update's headings (`devupdate.
SECTIONS`, which `mail_sections:` in the config extends): Blockers, Bugs are blockers; Nice to
have, Backlog, Open nice to have; Done, Completed done; any other heading reads as open, nice
to have, with a warning. A checked box is done. Items before any `##` heading are open, nice
to have. Owners and progress: a trailing `(@alice, @bob; patch posted)` or ` — @alice`; titles
keep everything else as written. An `**#N**` id is the bot's (a bare `#N` is an issue reference
and stays in the title). URLs and <message-id>s in the title, details or progress are links; a
`Links: a b` line replaces them when the item's links differ. A `- ` bullet without a box
is an item too. Lines quoted with `>` at the margin are a reply's quotes, skipped; a `-- `
signature ends the text; `---` rules are skipped.

Text is escaped with `formats.md_escape`, plus `@` (no GitHub pings either), `;` in owners
and `:` in milestones; the reader undoes every backslash escape. The writer puts
items under headings as the development update does (`devupdate.heading_for`). Round trip:
`parse(render(L)) == L` under the development update's constraints (see `devupdate`), except
that titles, details and notes may start with anything (notes not with a bare link); milestone
names are not empty; intro paragraphs do not start with `#`, `-`, `+`, `*` or `>`, nor hold a
`- [ ]` line.
"""

from __future__ import annotations

import re

from ..formats import md_escape
from ..models import ListItem, Milestone, ReleaseList
from .common import (LINK_ONLY, MailFormatError, QuotedHeading, find_links, link_lines, normalise,
                     paragraphs)
from .devupdate import quoted_section, section_kind, sections_of, walk

NAME = "markdown-checklist"

_HEADING = re.compile(r"(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*")
_ITEM = re.compile(r"[-*+](?: \[([ xX])\])?(?: (.*))?")
_ID = re.compile(r"\*\*#([0-9]+)\*\*(?: |$)")
_TAG = re.compile(r"\[((?:\\.|[^\[\]\s\\])+)\](?: |$)")
_GROUP = re.compile(r"(?:^| )\(@")
_DASH = re.compile(r"(?:^| )— @")
_KEY = re.compile(r"(status|state|severity|details|links):(?: (.*))?", re.I)
_STATE = re.compile(r"(open|done|duplicate|deferred|dropped)(?: of #([0-9]+))?", re.I)
_SEVERITY = {"blocker": "blocker", "blockers": "blocker", "nice": "nice", "nice to have": "nice"}
_RULE = re.compile(r"(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,}")
_MARKS = re.compile(r"(.*?) — \*\*(done|we are here)\*\*", re.I)
_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
_SEMI = re.compile(r"(?<!\\)(?:\\\\)*; ")
_COLON = re.compile(r"(?<!\\)(?:\\\\)*: ")
# a details line the reader would take for something else
_MISREAD = re.compile(r"[-+*>]( |$)|\d+[.)]( |$)|(?:status|state|severity|details|links):", re.I)
TIMELINE = "timeline"


def _esc(text: str) -> str:
    return md_escape(text).replace("@", "\\@")


def _unesc(text: str) -> str:
    return _UNESCAPE.sub(r"\1", text)


def detect(text: str) -> float:
    """Checkbox items and `##` headings."""
    score = 0.0
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if line.startswith(("- [ ]", "- [x]", "- [X]", "* [ ]", "* [x]")):
            score += 2
        elif line.startswith("## "):
            score += 1
    return score


# ---------------------------------------------------------------- reading


def _split_group(body: str) -> tuple[str, list[str], str] | None:
    """(title, owners, progress) when the line ends in an owner group, else None."""
    starts = [m for m in _GROUP.finditer(body)]
    if starts and body.endswith(")"):
        m = starts[-1]
        return (body[: m.start()], *_owners(body[m.end(): -1]))
    dashes = [m for m in _DASH.finditer(body)]
    if dashes:
        m = dashes[-1]
        return (body[: m.start()], *_owners(body[m.end():]))
    return None


def _owners(inner: str) -> tuple[list[str], str]:
    m = _SEMI.search(inner)
    names, progress = (inner[: m.start() + len(m[0]) - 2], inner[m.end():]) if m else (inner, "")
    owners = [normalise(_unesc(n.strip().removeprefix("@"))) for n in names.split(", ")]
    return [o for o in owners if o], normalise(_unesc(progress))


def _item(body: str, checked: bool, section: str, area: str, state: str,
          severity: str) -> ListItem:
    it = ListItem(area=area, severity=severity, title="", section=section,
                  state="done" if checked else state)
    if m := _ID.match(body):
        it.id, body = int(m[1]), body[m.end():]
    while m := _TAG.match(body):
        it.tags.append(_unesc(m[1]))
        body = body[m.end():]
    if split := _split_group(body):
        body, it.owners, it.progress = split
    it.title = normalise(_unesc(body))
    return it


def _milestone(body: str, checked: bool) -> Milestone:
    done, current = checked, False
    while m := _MARKS.fullmatch(body):
        body = m[1]
        if m[2].lower() == "done":
            done = True
        else:
            current = True
    m = _COLON.search(body)
    when, name = (body[: m.start() + len(m[0]) - 2], body[m.end():]) if m else ("", body)
    return Milestone(when=normalise(_unesc(when)), name=normalise(_unesc(name)), done=done,
                     current=current)


class _Reader:
    def __init__(self) -> None:
        self.details: dict[int, list[str]] = {}
        self.links: dict[int, list[str] | None] = {}
        self.extra: dict[int, list[str]] = {}

    def subline(self, it: ListItem, line: str) -> None:
        if line.startswith(">"):
            text = normalise(line[1:])
            if LINK_ONLY.fullmatch(text):
                self.extra.setdefault(id(it), []).append(text)
            elif text:
                it.notes.append(normalise(_unesc(text)))
            return
        if LINK_ONLY.fullmatch(line):
            self.extra.setdefault(id(it), []).append(line)
            return
        m = _KEY.fullmatch(line)
        if m is None:
            self.details.setdefault(id(it), []).append(_unesc(line))
            return
        key, value = m[1].lower(), m[2] or ""
        if key == "status":
            value = normalise(_unesc(value))
            it.progress = f"{it.progress}; {value}" if it.progress else value
        elif key == "state" and (s := _STATE.fullmatch(value)):
            it.state = s[1].lower()
            it.duplicate_of = int(s[2]) if s[2] else None
        elif key == "severity" and value.casefold() in _SEVERITY:
            it.severity = _SEVERITY[value.casefold()]
            for child in walk(it.children):
                child.severity = it.severity
        elif key == "details":
            self.details.setdefault(id(it), []).append(_unesc(value))
        elif key == "links":
            self.links[id(it)] = value.split()
        else:
            self.details.setdefault(id(it), []).append(_unesc(line))

    def finish(self, items: list[ListItem]) -> None:
        for it in walk(items):
            it.details = normalise(" ".join(self.details.get(id(it), [])))
            explicit = self.links.get(id(it))
            if explicit is not None:
                it.links = explicit
            else:
                found = find_links(it.title, it.details, it.progress)
                it.links = found + [x for x in dict.fromkeys(self.extra.get(id(it), []))
                                    if x not in found]


def parse(text: str, release: str | None = None) -> ReleaseList:
    intro: list[str | None] = []
    milestones: list[Milestone] = []
    items: list[ListItem] = []
    warnings: list[str] = []
    reader = _Reader()
    mode = "intro"  # intro | timeline | section
    marks = 0  # headings and boxes seen: a list has at least one
    section, area, state, severity = "", "", "open", "nice"
    stack: list[tuple[int, ListItem]] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").split("\n"), 1):
        if raw.startswith(">"):  # a reply's quote
            continue
        if raw.rstrip() == "--":  # signature
            break
        stripped = raw.lstrip()
        indent = len(raw[: len(raw) - len(stripped)].expandtabs(4))
        line = stripped.rstrip()
        if not line:
            if mode == "intro":
                intro.append(None)
            continue
        if indent == 0 and (head := _HEADING.fullmatch(line)):
            level, name = len(head[1]), normalise(_unesc(head[2]))
            stack = []
            if level == 1:
                continue  # the title: the release is named on the command line
            marks += 1
            if level == 2 and name.casefold() == TIMELINE:
                mode = "timeline"
            elif level == 2:
                mode, section, area = "section", name, ""
                state, severity = section_kind(name, number, warnings)
            else:
                mode, area = "section", name
            continue
        if indent == 0 and _RULE.fullmatch(line):
            continue
        bullet = _ITEM.fullmatch(line)
        if mode == "intro" and not (bullet and bullet[1] is not None):
            intro.append(raw.rstrip())
            continue
        if mode == "intro":
            mode = "section"  # a checklist without headings
        if mode == "timeline":
            if bullet and indent == 0:
                milestones.append(_milestone(bullet[2] or "", (bullet[1] or " ") in "xX"))
            else:
                warnings.append(f'line {number}: not understood: "{normalise(line)[:60]}"')
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if bullet and (indent == 0 or stack):
            marks += bullet[1] is not None
            parent = stack[-1][1] if stack else None
            it = _item(bullet[2] or "", (bullet[1] or " ") in "xX", section,
                       parent.area if parent else area, state,
                       parent.severity if parent else severity)
            (parent.children if parent else items).append(it)
            stack.append((indent, it))
        elif stack and indent > stack[-1][0]:
            reader.subline(stack[-1][1], line)
        else:
            warnings.append(f'line {number}: not understood: "{normalise(line)[:60]}"')
    if not marks:
        prose = [(n, normalise(ln)) for n, ln in enumerate(text.split("\n"), 1) if normalise(ln)]
        raise MailFormatError("no TODO list found: expected '## ' headings or '- [ ]' items",
                              prose[:5])
    reader.finish(items)
    return ReleaseList(release=release, milestones=milestones, items=items,
                       intro="\n\n".join(paragraphs(intro)), layout=NAME, warnings=warnings)


# ---------------------------------------------------------------- writing


def render(lst: ReleaseList, *, ids: bool = True, width: int = 72) -> str:
    """Markdown does not need wrapping: `width` is accepted and ignored."""
    blocks = [f"# {md_escape(lst.release)} TODO"] if lst.release else []
    blocks += [p for p in lst.intro.split("\n\n") if p.strip()]
    if lst.milestones:
        blocks.append("## Timeline\n\n" + "\n".join(_render_milestone(m) for m in lst.milestones))
    for heading, implied, areas in sections_of(lst, placeholder=not lst.milestones):
        blocks.append(f"## {_esc(heading)}")
        for area, items in areas.items():
            if area:
                blocks.append(f"### {_esc(area)}")
            if items:
                lines: list[str] = []
                for it in items:
                    _render_item(it, 0, implied, ids, lines)
                blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _render_milestone(m: Milestone) -> str:
    def esc(s: str) -> str:
        return _esc(s).replace(":", "\\:")
    text = f"{esc(m.when)}: {esc(m.name)}" if m.when else esc(m.name)
    return f"- [{'x' if m.done else ' '}] {text}" + (" — **we are here**" if m.current else "")


def _render_item(it: ListItem, depth: int, implied: tuple[str, str], ids: bool,
                 out: list[str]) -> None:
    """`implied`: the (state, severity) a reader gives an unchecked item from where it is."""
    sub = " " * (2 * depth + 2)
    checked = it.state != "open"
    head = [f"**#{it.id}**"] if ids and it.id is not None else []
    head += [f"[{md_escape(t)}]" for t in it.tags]
    if it.title:
        head.append(_esc(it.title))
    if it.owners:
        group = ", ".join("@" + _esc(o).replace(";", "\\;") for o in it.owners)
        head.append(f"({group}; {_esc(it.progress)})" if it.progress else f"({group})")
    out.append(f"{' ' * (2 * depth)}- [{'x' if checked else ' '}] {' '.join(head)}".rstrip())
    if it.progress and not it.owners:
        out.append(f"{sub}status: {_esc(it.progress)}")
    dup = ids and it.duplicate_of is not None
    if it.state != ("done" if checked else implied[0]) or dup:
        ref = f" of #{it.duplicate_of}" if dup else ""
        out.append(f"{sub}state: {it.state}{ref}")
    if it.severity != implied[1]:
        out.append(f"{sub}severity: {it.severity}")
    if it.details:
        line = _esc(it.details)
        out.append(f"{sub}Details: {line}" if _MISREAD.match(line) or LINK_ONLY.fullmatch(line)
                   else sub + line)
    out += link_lines(it, sub)
    out += [f"{sub}> {_esc(note)}" for note in it.notes]
    for child in it.children:
        _render_item(child, depth + 1, (implied[0], it.severity), ids, out)


# ---------------------------------------------------------------- as a reply quotes it


def quoted_heading(line: str, following: str = "") -> QuotedHeading | None:
    """`## Blockers` (state and severity from the sections table; no area), `### area`,
    `## Timeline` (no items under it), `# title` (items before any section: open, nice)."""
    head = _HEADING.fullmatch(line.rstrip()) if line[:1] == "#" else None
    if head is None:
        return None
    level, name = len(head[1]), normalise(_unesc(head[2]))
    if level == 1:
        return QuotedHeading("", "nice", True)
    if level == 2 and name.casefold() == TIMELINE:
        return QuotedHeading(None, None, False)
    if level == 2:
        return quoted_section(name)
    return QuotedHeading(name, None, None)


def quoted_item(line: str) -> tuple[int | None, str] | None:
    """`- [ ] **#12** [BUG] title (@alice)`, or a bullet without a box: (12 or None, text)."""
    m = _ITEM.fullmatch(line.strip())
    if m is None or not (body := (m[2] or "").strip()):
        return None
    item_id = None
    if i := _ID.match(body):
        item_id, body = int(i[1]), body[i.end():]
    return item_id, normalise(_unesc(body))
