"""The Xen 4.2 layout: the "4.2 TODO / Release Plan" mail (`tools, blockers:` sections).

The mail, as a release manager writes it and as `render_mail` writes it::

    Plan for a 4.2 release:                      <- prose before the list: ReleaseList.intro
    http://lists.xen.org/archives/...

    The time line is as follows:                 <- (prose between timeline and list: intro too)

    19 March        -- TODO list locked down     <- Milestone; `<< DONE` / `<< WE ARE HERE` flags
    Weekly          -- RCN+1 until release          << WE ARE HERE

    tools, blockers:                             <- section: area "tools", severity "blocker"
                                                    (`<area>, nice to have:` -> "nice")
        * #12 [BUG] title. details (Ian C, Jan Beulich, patch posted, DONE)
          wrapped continuation, indented more than the `*`
            * child bullet: deeper indent, same area and severity

Timeline lines (`DATE -- NAME`) count only in a timeline block: after a line naming the
"time line"/"timeline", or two or more consecutive ones; a ` -- ` in prose is prose. A
`<< WE ARE HERE` / `<< DONE` on a line of its own marks the milestone before it.

Bullet text: optional `#12` id, any number of `[TAG]`s, then the text. A trailing
parenthesised group holds owners (leading parts that look like names), progress (the rest)
and a state word: DONE, DEFERRED, DROPPED, DUPLICATE or `DUPLICATE of #7`. The group is
only taken when it has an owner, a state word or reads as progress (a word like "patch",
"posted", "WIP", "v2", "review", "pending", "ping"); otherwise (`(qemu)`, `(external)`,
`(>10 individuals)`, `(Linux)`, a URL or message-id) it stays in the title. A name is 1-4
capitalised words, no digits, no all-caps word of 3+ letters, no OS/vendor/project word. The text splits into title and details at the
first " -- " (dropped) or ". " (the period stays with the title). URLs and message-ids in
title, details and progress become `links`; they also stay in the text. A bullet that is
only "None", "No known issues", "N/A" or "Nothing" is no item. Lines quoted with `>` are
skipped; a non-indented line after a blank line ends the list, while one right after a
bullet line continues it (bullets wrapped at the margin). Lines under a section that are no
bullet, and prose after the list up to a signature (`-- `) or list footer (`____`), are
named with their line numbers in `ReleaseList.warnings`.

Escape syntax. The renderer writes the natural form above when parsing it back gives the
same item; otherwise (a title containing ". ", progress that looks like a name, a title
that starts with `[X]`/`#5` or ends in a "(...)" group, a title "None", ...) it writes the
explicit form, where nothing is guessed::

    * #12 [BUG] Title: <title, verbatim>
      Details: <details>
      Owners: <owner>, <owner>
      Progress: <progress>
      State: <open|done|duplicate|deferred|dropped>[ of #<id>]

Fields other than `Title:` are omitted when empty/default. In both forms two more kinds of
line may follow the bullet: `Links: <link> <link>` when the item's links differ from those
found in its text, and one `Note: <text>` per note. These keywords are only recognised at
the start of a continuation line, and the renderer never wraps a line so that one starts
with them (nor with a lone `*`/`-`, which would read as a bullet).

Round trip: `parse_mail(render_mail(L), L.release) == L` for lists whose strings are
normalised (`normalise(s) == s`: no newlines, single spaces, no leading/trailing space);
tags and links contain no whitespace or brackets; owners contain no `,`; items are grouped by
(area, severity) and children share their parent's area and severity; milestone `when`s are
at most 24 characters without "--" and names contain no "<<"; intro lines do not look like
timeline lines, section headers or quotes. When no intro paragraph names the time line, the
writer puts `Timeline:` before the timeline (a lone `DATE -- NAME` line would be prose) and the
reader drops it again. The release name is not part of the mail body.
With `ids=False` neither `#id`s nor `DUPLICATE of #id` references are written. A list with
no items and no milestones is written with an `all, blockers:` section holding `* None`, so
that it still reads back as a (empty) list. Items without an area are written under
`(no area), blockers:` / `(no area), nice to have:`, which read back as area "".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ..models import ListItem, Milestone, ReleaseList
from ..timeline import marks
from .common import LINK_ONLY as _LINK_ONLY
from .common import (MailFormatError, QuotedHeading, find_links, normalise, paragraphs, strip_marks,
                     wrap)

NAME = "xen-4.2"
__all__ = ["NAME", "MailFormatError", "detect", "find_links", "normalise", "parse", "parse_mail",
           "quoted_heading", "quoted_item", "render", "render_mail"]

# Patterns below run on normalised lines (single spaces), which keeps them simple and linear.
_HEADER = re.compile(r"(.+?) ?, ?(blockers?|nice[ -]to[ -]have) ?:", re.I)
_TIMELINE = re.compile(r"(\S.{0,23}?) --(?: (.*))?")
_MARK = re.compile(r"(.*?) ?<< ?(DONE|WE ARE HERE)", re.I)
_BULLET = re.compile(r"([*-])(?: (.*))?")
_FIELD = re.compile(r"(Details|Owners|Progress|State|Links|Note):(?: (.*))?")
_GLUE = re.compile(r"[*-]|(?:Details|Owners|Progress|State|Links|Note):")
_ID = re.compile(r"#([0-9]+)(?: |$)")
_TAG = re.compile(r"\[([^\[\]\s]+)\] ?")
_TITLE_KEY = re.compile(r"Title:(?: (.*))?")
_PLACEHOLDER = re.compile(r"(?:none|no known issues|n/a|nothing)\.?|", re.I)  # or empty
_STATE_PART = re.compile(r"(done|deferred|dropped|duplicate)(?: of #([0-9]+))?", re.I)
_STATE_FIELD = re.compile(r"(open|done|duplicate|deferred|dropped)(?: of #([0-9]+))?", re.I)
_SPLIT = re.compile(r" -- |\.(?= )")
_TIMELINE_INTRO = re.compile(r"time ?line.*:$", re.I)
_RENDERED_HEADING = "Timeline:"  # written before a timeline when the intro has no heading
_TIMELINE_HEADING = re.compile(r"(?:^|\W)time ?line(?:\W|$)", re.I)
_LONE_MARK = re.compile(r"<< ?(DONE|WE ARE HERE)", re.I)
_SIGNATURE = re.compile(r"--|_{5,}.*")
_PROGRESS = re.compile(
    r".*\b(?:patch(?:es)?|posted|wip|progress|review(?:ed|ing)?|pending|ping(?:ed)?|sent|"
    r"discussion|v[0-9]+|rfc|ack(?:ed)?|applied|committed|tbd|blocked|waiting|testing|fixed|"
    r"needs?|plan(?:ned)?|investigating|draft)\b.*", re.I)
_NOT_NAMES = {"linux", "netbsd", "freebsd", "windows", "arm", "x86", "intel", "amd", "xen",
              "qemu", "debian", "fedora", "suse", "opensuse", "ubuntu"}
_PARTICLES = {"de", "van", "von", "da", "der", "den", "di", "du", "del", "la", "le"}
# The section of items without an area (a development update's items outside any `===`
# subsection): every item needs a heading the reader knows, and this one reads back as "".
NO_AREA = "(no area)"
_STATE_WORD = {"done": "DONE", "duplicate": "DUPLICATE", "deferred": "DEFERRED", "dropped": "DROPPED"}



# ---------------------------------------------------------------- parsing one bullet


def _area_read(area: str) -> str:
    return "" if area == NO_AREA else area


def _is_placeholder(body: str) -> bool:
    return _PLACEHOLDER.fullmatch(body) is not None


def _is_name(part: str) -> bool:
    words = part.split(" ")
    if not 1 <= len(words) <= 4 or any(c.isdigit() for c in part):
        return False
    if any(w.casefold() in _NOT_NAMES for w in words):  # "(Linux)", "(Xen ARM)"
        return False
    # "WIP", "TBD", "RFC": all-caps words of 3+ letters are progress, not people.
    return all(w in _PARTICLES or (w[0].isupper() and not (len(w) > 2 and w.isupper()))
               for w in words)


def _trailing_group(text: str) -> tuple[str, str] | None:
    """Split "text (group)" into (text, group) when the text ends in a balanced group."""
    if not text.endswith(")"):
        return None
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        if text[i] == ")":
            depth += 1
        elif text[i] == "(":
            depth -= 1
            if depth == 0:
                break
    # Unbalanced, glued to a word ("xl.cfg(5)") or the whole text: not an owners group.
    if depth != 0 or i < 2 or text[i - 1] != " ":
        return None
    return text[: i - 1], text[i + 1: -1]


def _group(inner: str) -> ListItem | None:
    """Owners, progress and state from a trailing group; None if it is not such a group."""
    inner = normalise(inner)
    if _LINK_ONLY.fullmatch(inner):
        return None
    it = ListItem(area="", severity="", title="")
    rest = []
    for part in filter(None, (p.strip() for p in re.split(r",| / ", inner))):
        if m := _STATE_PART.fullmatch(part):
            it.state = m[1].lower()
            it.duplicate_of = int(m[2]) if m[2] else None
        else:
            rest.append(part)
    while rest and _is_name(rest[0]):
        it.owners.append(rest.pop(0))
    it.progress = ", ".join(rest)
    if it.owners or it.state != "open" or _PROGRESS.fullmatch(it.progress):
        return it
    return None  # "(qemu)", "(external)", "(>10 individuals)": part of the title


def _split_title(text: str) -> tuple[str, str]:
    # A period inside a URL is never followed by a space (links end at whitespace and lose
    # a trailing period), so the first ". " or " -- " is always prose.
    m = _SPLIT.search(text)
    if m is None:
        return text, ""
    if m[0] == " -- ":
        return text[: m.start()], text[m.end():]
    return text[: m.start() + 1], text[m.end() + 1:]


def _parse_body(body: str) -> ListItem:
    """The bullet's own text (normalised, without field lines) as an item without links/notes."""
    it = ListItem(area="", severity="", title="")
    if m := _ID.match(body):
        it.id, body = int(m[1]), body[m.end():]
    while m := _TAG.match(body):
        it.tags.append(m[1])
        body = body[m.end():]
    if m := _TITLE_KEY.fullmatch(body):
        it.title = m[1] or ""
        return it
    if (split := _trailing_group(body)) and (group := _group(split[1])):
        body = split[0]
        group.id, group.tags = it.id, it.tags
        it = group
    it.title, it.details = _split_title(body)
    return it


@dataclass
class _Block:
    """The lines of one bullet: its own line, then continuation and field lines."""

    indent: int
    area: str
    severity: str
    section: int
    lines: list[str] = field(default_factory=list)


def _parse_block(block: _Block) -> ListItem | None:
    chunks: list[tuple[str, list[str]]] = [("", [block.lines[0]])]
    for line in block.lines[1:]:
        if m := _FIELD.fullmatch(line):
            chunks.append((m[1], [m[2] or ""]))
        else:
            chunks[-1][1].append(line)
    body, *fields = [(key, normalise(" ".join(lines))) for key, lines in chunks]
    if not fields and _is_placeholder(body[1]):
        return None
    it = _parse_body(body[1])
    it.area, it.severity = block.area, block.severity
    links = None
    for key, value in fields:
        if key == "Details":
            it.details = value
        elif key == "Owners":
            it.owners = [o.strip() for o in value.split(",") if o.strip()]
        elif key == "Progress":
            it.progress = value
        elif key == "State" and (m := _STATE_FIELD.fullmatch(value)):
            it.state = m[1].lower()
            it.duplicate_of = int(m[2]) if m[2] else None
        elif key == "Links":
            links = value.split()
        elif key == "Note":
            it.notes.append(value)
    it.links = find_links(it.title, it.details, it.progress) if links is None else links
    return it


# ---------------------------------------------------------------- parsing the mail


def _timeline_rows(lines: list[str]) -> set[int]:
    """Indexes of the lines that are milestones: `DATE -- NAME` lines in a timeline block,
    i.e. after a line naming the time line, or two or more in a row. A lone `<< WE ARE
    HERE` line between them does not break a run."""
    cand, mark = [], []
    for raw in lines:
        stripped = raw.lstrip()
        line = normalise(stripped)
        indent = len(raw[: len(raw) - len(stripped)].expandtabs(8))
        cand.append(bool(line) and indent <= 4 and not raw.startswith(">")
                    and not _BULLET.fullmatch(line) and _TIMELINE.fullmatch(line) is not None)
        mark.append(_LONE_MARK.fullmatch(line) is not None)
    rows: set[int] = set()
    heading = False  # inside the block a "time line" heading opened, until the next prose
    prev = None  # the previous candidate in the current run, skipping mark-only lines
    for i, raw in enumerate(lines):
        line = normalise(raw)
        if cand[i]:
            if heading or (prev is not None and prev == i - 1):
                rows.add(i)
            if prev is not None and prev == i - 1:
                rows.add(prev)
            prev = i
            continue
        if mark[i] and prev is not None and prev == i - 1:
            prev = i  # keeps the run going: "Weekly -- RCN+1" / "<< WE ARE HERE" / next
            continue
        prev = None
        if not line:
            continue
        heading = _TIMELINE_HEADING.search(line) is not None and not _HEADER.fullmatch(line)
    # mark-only lines joined runs; they are no milestones themselves
    return {r for r in rows if cand[r]}


def parse_mail(text: str, release: str | None = None) -> ReleaseList:
    """Read a release TODO mail (see the module docstring) into a ReleaseList."""
    intro: list[str | None] = []  # None marks a paragraph break
    milestones: list[Milestone] = []
    blocks: list[_Block] = []
    section: tuple[str, str] | None = None
    sections = 0
    cur: _Block | None = None
    after_bullet_line = False  # for lazy continuation lines at the margin
    after_milestone = False  # for a "<< WE ARE HERE" on a line of its own
    signed = False  # after a signature or list footer nothing more is read or reported
    unread: list[tuple[int, str]] = []
    lines = text.replace("\r\n", "\n").split("\n")
    timeline = _timeline_rows(lines)
    for number, raw in enumerate(lines, 1):
        stripped = raw.lstrip()
        indent = len(raw[: len(raw) - len(stripped)].expandtabs(8))
        line = normalise(stripped)
        if not line or raw.startswith(">"):  # blank, or quoted from another mail
            after_bullet_line = False
            if not sections:
                intro.append(None)
            continue
        bullet = _BULLET.fullmatch(line)
        if not sections and number - 1 in timeline and (m := _TIMELINE.fullmatch(line)):
            if not milestones and _RENDERED_HEADING in _paragraphs(intro).split("\n\n")[-1:]:
                while intro and intro[-1] is None:  # the writer's own heading: not intro
                    intro.pop()
                intro.pop()
            milestones.append(_milestone(m[1], m[2] or ""))
            intro.append(None)
            after_milestone = True
            continue
        if not sections and after_milestone and (m := _LONE_MARK.fullmatch(line)):
            last = milestones[-1]
            if m[1].upper() == "DONE":
                last.done = True
            else:
                last.current = True
            continue
        after_milestone = False
        at_margin = cur is None or indent <= cur.indent
        head = _HEADER.fullmatch(line) if at_margin and not bullet else None
        if head:
            severity = "blocker" if head[2][0] in "bB" else "nice"
            area = normalise(head[1])
            section, sections, cur = (_area_read(area), severity), sections + 1, None
            after_bullet_line = False
            continue
        if not sections:
            intro.append(raw.rstrip())
            continue
        if signed or (indent == 0 and not after_bullet_line and _SIGNATURE.fullmatch(line)):
            signed = True
            continue
        if section is None:  # prose after the list: reported, never silently dropped
            unread.append((number, line))
            continue
        if bullet:
            cur = _Block(indent, section[0], section[1], sections, [bullet[2] or ""])
            blocks.append(cur)
        elif cur is not None and (indent > 0 or after_bullet_line):
            cur.lines.append(line)
        elif cur is not None:  # prose at the margin after a blank line: the list has ended
            section = cur = None
            unread.append((number, line))
        else:  # text under a section header before any bullet
            unread.append((number, line))
        after_bullet_line = cur is not None
    if not sections and not milestones:
        prose = [(n, normalise(ln)) for n, ln in enumerate(lines, 1) if normalise(ln)]
        raise MailFormatError("no TODO list found: expected a timeline or a section header "
                              "such as 'tools, blockers:'", prose[:5])
    warnings = [f'line {n}: not understood: "{t[:60]}"' for n, t in unread]
    return ReleaseList(release=release, milestones=milestones, items=_build_tree(blocks),
                       intro=_paragraphs(intro), layout=NAME, warnings=warnings)


def detect(text: str) -> float:
    """How much the text looks like this layout: section headers and timeline rows."""
    lines = text.replace("\r\n", "\n").split("\n")
    heads = sum(1 for ln in lines if not ln.startswith((" ", "\t", ">"))
                and _HEADER.fullmatch(normalise(ln)))
    return 2.0 * heads + len(_timeline_rows(lines))


def _milestone(when: str, name: str) -> Milestone:
    name, done, current = strip_marks(name, _MARK)
    return Milestone(when=when, name=name.strip(), done=done, current=current)


def _paragraphs(lines: list[str | None]) -> str:
    return "\n\n".join(paragraphs(lines))


def _build_tree(blocks: list[_Block]) -> list[ListItem]:
    items: list[ListItem] = []
    stack: list[tuple[int, ListItem]] = []
    section = 0
    for block in blocks:
        if block.section != section:
            section, stack = block.section, []
        while stack and stack[-1][0] >= block.indent:
            stack.pop()
        item = _parse_block(block)
        if item is None:  # a placeholder: deeper bullets after it go to the nearest real one
            continue
        (stack[-1][1].children if stack else items).append(item)
        stack.append((block.indent, item))
    return items


# ---------------------------------------------------------------- rendering


def render_mail(lst: ReleaseList, *, ids: bool = True, width: int = 72) -> str:
    """Write the list as the release mail; `ids=False` is the form posted to a mailing list."""
    paras = lst.intro.split("\n\n") if lst.intro.strip() else []
    # The timeline goes after "The time line is as follows:" when the intro has it.
    at = next((i + 1 for i, p in enumerate(paras) if _TIMELINE_INTRO.search(p.rstrip())),
              len(paras))
    timeline = [_render_milestone(m) for m in lst.milestones]
    if timeline and at == len(paras) and not any(_TIMELINE_INTRO.search(p) for p in paras):
        timeline.insert(0, _RENDERED_HEADING + "\n")  # lone DATE -- NAME lines are prose
    blocks = paras[:at] + (["\n".join(timeline)] if timeline else []) + paras[at:]
    groups: dict[tuple[str, str], list[ListItem]] = {}
    for it in lst.items:
        groups.setdefault((it.area, it.severity), []).append(it)
    if not groups and not timeline:
        groups[("all", "blocker")] = []  # an empty list still reads back as a list
    for (area, severity), items in groups.items():
        kind = "blockers" if severity == "blocker" else "nice to have"
        lines = [f"{area or NO_AREA}, {kind}:", ""]
        for it in items:
            _render_item(it, 1, ids, width, lines)
        if not items:
            lines += ["    * None", ""]
        blocks.append("\n".join(lines[:-1]))
    return "\n\n".join(blocks) + "\n"


def _render_milestone(m: Milestone) -> str:
    if not (flags := marks(m)):
        return f"{m.when:<15} -- {m.name}".rstrip()
    return f"{m.when:<15} -- {m.name:<28}" + "".join(f" << {k}" for k in flags)


def _render_item(it: ListItem, depth: int, ids: bool, width: int, out: list[str]) -> None:
    want = replace(it, area="", severity="", links=[], notes=[], children=[],
                   id=it.id if ids else None, duplicate_of=it.duplicate_of if ids else None)
    body = _natural(want)
    fields: list[str] = []
    if _is_placeholder(body) or _parse_body(body) != want:
        body, fields = _explicit(want)
    if it.links != find_links(it.title, it.details, it.progress):
        fields.append(" ".join(["Links:", *it.links]))
    fields += [f"Note: {note}" for note in it.notes]
    indent = " " * (4 * depth)
    out += wrap(body, indent + "* ", indent + "  ", width, _GLUE)
    for line in fields:
        out += wrap(line, indent + "  ", indent + "  ", width, _GLUE)
    out.append("")
    for child in it.children:
        _render_item(child, depth + 1, ids, width, out)


def _prefix(it: ListItem) -> list[str]:
    return ([f"#{it.id}"] if it.id is not None else []) + [f"[{t}]" for t in it.tags]


def _state_words(it: ListItem) -> list[str]:
    if it.state == "open":
        return []
    ref = f" of #{it.duplicate_of}" if it.duplicate_of is not None else ""
    return [_STATE_WORD.get(it.state, it.state.upper()) + ref]


def _natural(it: ListItem) -> str:
    text = it.title
    if it.details:
        text += (" " if text.endswith(".") else " -- ") + it.details
    group = it.owners + ([it.progress] if it.progress else []) + _state_words(it)
    if group:
        text += f" ({', '.join(group)})"
    return normalise(" ".join(_prefix(it) + [text]))


def _explicit(it: ListItem) -> tuple[str, list[str]]:
    fields = []
    if it.details:
        fields.append(f"Details: {it.details}")
    if it.owners:
        fields.append("Owners: " + ", ".join(it.owners))
    if it.progress:
        fields.append(f"Progress: {it.progress}")
    if it.state != "open" or it.duplicate_of is not None:
        ref = f" of #{it.duplicate_of}" if it.duplicate_of is not None else ""
        fields.append(f"State: {it.state}{ref}")
    return " ".join(_prefix(it) + ["Title:", it.title]).rstrip(), fields


parse = parse_mail
render = render_mail


# ---------------------------------------------------------------- as a reply quotes it

# Stricter than the reader's `_HEADER`: a quoted "So, blockers:" in prose is no heading.
_QUOTED_HEADER = re.compile(r"(?P<area>[\w.+()/-]+(?: [\w.+()/-]+){0,3}) ?, ?"
                            r"(?P<sev>blockers?|nice[ -]to[ -]have) ?:", re.I)
# not `* [ ] text`: a Markdown checkbox
_QUOTED_ITEM = re.compile(
    r"\s*\*\s+(?:#(?P<id>[0-9]{1,12})\s+)?(?!\[[ xX]\] )(?P<text>\S.*)")


def quoted_heading(line: str, following: str = "") -> QuotedHeading | None:
    """`tools, blockers:` / `hypervisor, nice to have:` as quoted in a reply."""
    m = _QUOTED_HEADER.fullmatch(normalise(line))
    if m is None:
        return None
    return QuotedHeading(_area_read(m["area"]),
                         "blocker" if m["sev"].lower().startswith("blocker") else "nice", True)


def quoted_item(line: str) -> tuple[int | None, str] | None:
    """`    * #10 Bump library SONAMES as necessary.`: (10, its text)."""
    m = _QUOTED_ITEM.fullmatch(line)
    return (int(m["id"]) if m["id"] else None, m["text"].strip()) if m else None
