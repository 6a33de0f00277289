"""The Xen release update layout: the 2020-2021 release status mails on xen-devel.

As a release manager writes it and as `render` writes it::

    Prose before the first heading is the intro.

    Friday 15th January PASSED Last posting date    <- a dated line: a milestone (PASSED:
    Friday 12th February **tentative** Code freeze      done; `<== WE ARE HERE`: current)

    Schedule:                                       <- the writer's block: dated lines and
                                                       `WHEN -- NAME` lines for other dates
    OPEN ISSUES AND BLOCKERS                        <- a section, underlined with `=`
    ========================

    Tools                                           <- a subsection, underlined with `-`:
    -----                                              the items' area

    #12 [BUG] xl crashes when the config is empty   <- an issue: a line at the margin,
      Information from                                 optional #id and [TAGS]
        Alice Example <alice@example.org>           <- one note "Information from NAME" each
      Free text, the issue's details.
      https://lists.xenproject.org/archives/...     <- a line holding only a link: a link
      <message-id@example.org>
      Owners: A, B / Progress: / State: / Severity: / Note: / Links: / Details: / Title:
      - a sub-issue                                 <- a child; its own lines indent more

The section names state and severity through the development update's table (`devupdate.
SECTIONS`, to which this module adds Xen's own headings and `mail_sections:` in the config
adds more): OPEN ISSUES AND BLOCKERS, BLOCKERS are open blockers; OPEN ISSUES, ISSUES open
and nice to have; COMPLETED, FIXED, RESOLVED done; any other heading reads as open, nice to
have, with a warning. The writer puts items under headings as the development update does
(`devupdate.heading_for`), writes a `State:` / `Severity:` line only where the section does not
say it, and `Title:` / `Details:` where the plain form would be misread. Lines quoted with `>`
at the margin are a reply's quotes, skipped; a `-- ` signature ends the mail.

Round trip: `parse(render(L)) == L` under the development update's constraints, and: titles
non-empty or written `Title:`; notes "Information from X" stay such notes; milestone dates are
written as dated lines when they read back as one, else `WHEN -- NAME` (WHEN without "--");
intro paragraphs do not start with a date, `>` or `Schedule:` and are not underlined.
"""

from __future__ import annotations

import re

from ..models import ListItem, Milestone, ReleaseList
from .common import (LINK_ONLY, MailFormatError, QuotedHeading, find_links, link_lines, normalise,
                     paragraphs, wrap)
from .devupdate import add_sections, quoted_section, section_kind, sections_of, walk

NAME = "xen-release-update"

add_sections({"Open issues and blockers": "blocker", "Open issues": "nice", "Issues": "nice",
              "Fixed": "done", "Resolved": "done", "Completed issues": "done"})

_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DAY = r"\d{1,2}(?:st|nd|rd|th)?"
_DATE = (rf"(?:(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day |Week of )?(?:{_DAY} {_MONTH}|"
         rf"{_MONTH} {_DAY})(?: \d{{4}})?")
_DATED = re.compile(rf"({_DATE}) (?:(PASSED) )?(.+?)(?: ?<== ?WE ARE HERE)?")
_DASHED = re.compile(r"(\S.*?)? ?-- (?:(PASSED) )?(.+?)(?: ?<== ?WE ARE HERE)?")
_HERE = re.compile(r".*<== ?WE ARE HERE", re.I)
_SCHEDULE = "Schedule:"
_ID = re.compile(r"#([0-9]+)(?: |$)")
_TAG = re.compile(r"\[([^\[\]\s]+)\] ?")
_KEY = re.compile(r"(Title|Owners|Progress|State|Severity|Note|Links|Details):(?: (.*))?")
_STATE = re.compile(r"(open|done|duplicate|deferred|dropped)(?: of #([0-9]+))?", re.I)
_INFO = "Information from"
_CHILD = re.compile(r"-(?: (.*))?")
_GLUE = re.compile(r"(?:Title|Owners|Progress|State|Severity|Note|Links|Details):.*|-|Information"
                   r"|(?:https?|ftp)://.*|<.*")
_MISREAD_TITLE = re.compile(r"#[0-9]+(?: |$)|\[|>|--$|(?:Title|Owners|Progress|State|Severity|"
                            r"Note|Links|Details):")


def _underline(line: str | None) -> str | None:
    """'=' or '-' when the line underlines the one before it."""
    if line and len(line) >= 3 and line[0] in "=-" and line == line[0] * len(line):
        return line[0]
    return None


def detect(text: str) -> float:
    """Headings underlined with `=` (not over-lined too), "Information from", dated lines."""
    lines = [normalise(ln) for ln in text.replace("\r\n", "\n").split("\n")]
    score = 0.0
    for i, line in enumerate(lines):
        over = i > 0 and _underline(lines[i - 1]) == "="
        if line and not _underline(line) and i + 1 < len(lines) and not over \
                and _underline(lines[i + 1]) == "=":
            score += 3
        elif line == _INFO or (_DATED.fullmatch(line) and _DATED.fullmatch(line)[2]):
            score += 1
    return score


# ---------------------------------------------------------------- reading


def _milestone(line: str, schedule: bool) -> Milestone | None:
    """A dated line, or in the writer's schedule block a `WHEN -- NAME` line, as a milestone."""
    m = (schedule and _DASHED.fullmatch(line)) or _DATED.fullmatch(line)
    if not m:
        return None
    return Milestone(when=m[1] or "", name=m[3], done=bool(m[2]),
                     current=bool(_HERE.fullmatch(line)))


def _head(text: str, section: str, area: str, state: str, severity: str) -> ListItem:
    it = ListItem(area=area, severity=severity, title="", state=state, section=section)
    if m := _ID.match(text):
        it.id, text = int(m[1]), text[m.end():]
    while m := _TAG.match(text):
        it.tags.append(m[1])
        text = text[m.end():]
    if m := _KEY.fullmatch(text):
        if m[1] == "Title":
            text = m[2] or ""
    it.title = text
    return it


class _Item:
    """Reading state of one item: its details and links as read so far."""

    def __init__(self, it: ListItem) -> None:
        self.it, self.details, self.extra = it, [], []
        self.links: list[str] | None = None
        self.info: int | None = None  # indent of an open "Information from" block


def _subline(state: _Item, line: str, indent: int) -> None:
    it = state.it
    if state.info is not None and indent > state.info:
        it.notes.append(f"{_INFO} {line}")
        return
    state.info = None
    if line == _INFO:
        state.info = indent
    elif line.startswith(_INFO + " "):
        it.notes.append(line)
    elif LINK_ONLY.fullmatch(line):
        state.extra.append(line)
    elif m := _KEY.fullmatch(line):
        key, value = m[1], m[2] or ""
        if key == "Owners":
            it.owners += [o.strip() for o in value.split(",") if o.strip()]
        elif key == "Progress":
            it.progress = value
        elif key == "State" and (s := _STATE.fullmatch(value)):
            it.state, it.duplicate_of = s[1].lower(), int(s[2]) if s[2] else None
        elif key == "Severity" and value in ("blocker", "nice"):
            it.severity = value
            for child in walk(it.children):
                child.severity = value
        elif key == "Note":
            it.notes.append(value)
        elif key == "Links":
            state.links = value.split()
        elif key == "Details":
            state.details.append(value)
        else:
            state.details.append(line)
    else:
        state.details.append(line)


def parse(text: str, release: str | None = None) -> ReleaseList:
    lines = text.replace("\r\n", "\n").split("\n")
    norm = [normalise(ln) for ln in lines]
    intro: list[str | None] = []
    milestones: list[Milestone] = []
    items: list[ListItem] = []
    states: list[_Item] = []
    warnings: list[str] = []
    mode = "intro"  # intro | schedule | section
    headings = 0
    section, area, state, severity = "", "", "open", "nice"
    stack: list[tuple[int, _Item]] = []
    skip = False
    for i, raw in enumerate(lines):
        line = norm[i]
        if skip:  # the underline of a heading
            skip = False
            continue
        if raw.startswith(">"):
            continue
        if raw.rstrip() == "--":
            break
        if not line:
            if mode != "section":
                intro.append(None)
            continue
        indent = len(raw[: len(raw) - len(raw.lstrip())].expandtabs(8))
        nxt = lines[i + 1].rstrip() if i + 1 < len(lines) else ""
        under = _underline(nxt) if indent == 0 and nxt[:1] in ("=", "-") else None
        if under and not _underline(line):
            skip, stack, headings = True, [], headings + 1
            if under == "=":
                mode, section, area = "section", line, ""
                state, severity = section_kind(line, i + 1, warnings)
            else:
                mode, area = "section", line
            continue
        if mode != "section":
            if line == _SCHEDULE and indent == 0:
                mode = "schedule"
            elif ms := _milestone(line, mode == "schedule"):
                milestones.append(ms)
            else:
                intro.append(raw.rstrip())
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        top = stack[-1][1] if stack else None
        child = top is not None and _CHILD.fullmatch(line) \
            and (top.info is None or indent <= top.info)  # not a name under "Information from"
        if indent == 0 or child:
            parent = stack[-1][1].it if stack and indent else None
            it = _head(line[2:] if indent else line, section,
                       parent.area if parent else area, state,
                       parent.severity if parent else severity)
            (parent.children if parent else items).append(it)
            states.append(_Item(it))
            stack.append((indent, states[-1]))
        elif stack:
            _subline(stack[-1][1], line, indent)
        else:
            warnings.append(f'line {i + 1}: not understood: "{line[:60]}"')
    if not headings:
        prose = [(n, t) for n, t in enumerate(norm, 1) if t]
        raise MailFormatError("no TODO list found: expected headings underlined with '===' "
                              "such as 'OPEN ISSUES AND BLOCKERS'", prose[:5])
    for st in states:
        st.it.details = normalise(" ".join(st.details))
        if st.links is not None:
            st.it.links = st.links
        else:
            found = find_links(st.it.title, st.it.details, st.it.progress)
            st.it.links = found + [x for x in dict.fromkeys(st.extra) if x not in found]
    return ReleaseList(release=release, milestones=milestones, items=items,
                       intro="\n\n".join(paragraphs(intro)), layout=NAME, warnings=warnings)


# ---------------------------------------------------------------- writing


def render(lst: ReleaseList, *, ids: bool = True, width: int = 72) -> str:
    blocks = [p for p in lst.intro.split("\n\n") if p.strip()]
    if lst.milestones:
        blocks.append(_SCHEDULE + "\n\n" + "\n".join(_render_milestone(m) for m in lst.milestones))
    for heading, implied, areas in sections_of(lst, placeholder=True):
        blocks.append(f"{heading}\n{'=' * max(3, len(heading))}")
        for area, items in areas.items():
            if area:
                blocks.append(f"{area}\n{'-' * max(3, len(area))}")
            for it in items:
                blocks.append("\n".join(_render_item(it, 0, implied, ids, width)))
    return "\n\n".join(blocks) + "\n"


def _render_milestone(m: Milestone) -> str:
    here = "  <== WE ARE HERE" if m.current else ""
    line = f"{m.when} {'PASSED ' if m.done else ''}{m.name}{here}"
    if _milestone(normalise(line), True) == m:
        return line
    return f"{m.when} -- {'PASSED ' if m.done else ''}{m.name}{here}".lstrip()


def _render_item(it: ListItem, depth: int, implied: tuple[str, str], ids: bool,
                 width: int) -> list[str]:
    lead = "" if depth == 0 else " " * (2 * depth) + "- "
    sub = " " * (2 * depth + 2)
    prefix = ([f"#{it.id}"] if ids and it.id is not None else []) + [f"[{t}]" for t in it.tags]
    title = it.title
    if not title or _MISREAD_TITLE.match(title):
        title = f"Title: {title}".rstrip()
    out = [lead + " ".join(prefix + [title])]
    if it.owners:
        out.append(f"{sub}Owners: {', '.join(it.owners)}")
    if it.progress:
        out.append(f"{sub}Progress: {it.progress}")
    dup = ids and it.duplicate_of is not None
    if it.state != implied[0] or dup:
        out.append(f"{sub}State: {it.state}" + (f" of #{it.duplicate_of}" if dup else ""))
    if it.severity != implied[1]:
        out.append(f"{sub}Severity: {it.severity}")
    if it.details:
        first = "Details: " if _GLUE.fullmatch(it.details.split(" ")[0]) else ""
        out += wrap(first + it.details, sub, sub, width, _GLUE)
    out += link_lines(it, sub)
    info = False
    for note in it.notes:
        if note.startswith(_INFO + " "):
            if not info:
                out.append(sub + _INFO)
            out.append(f"{sub}  {note[len(_INFO) + 1:]}")
            info = True
        else:
            out.append(f"{sub}Note: {note}")
            info = False
    for child in it.children:
        out += _render_item(child, depth + 1, (implied[0], it.severity), ids, width)
    return out


# ---------------------------------------------------------------- as a reply quotes it

_QUOTED_ITEM = re.compile(r"#(?P<id>[0-9]{1,12}) (?P<text>\S.*)|\s+- (?P<child>\S.*)")


def quoted_heading(line: str, following: str = "") -> QuotedHeading | None:
    """A heading at the margin underlined (the `following` line) with `=` (a section: state
    and severity from the sections table) or `-` (an area)."""
    name = normalise(line)
    if not name or line[:1].isspace() or _underline(name):
        return None
    under = _underline(normalise(following))
    if under == "=":
        return quoted_section(name)
    if under == "-":
        return QuotedHeading(name, None, None)
    return None


def quoted_item(line: str) -> tuple[int | None, str] | None:
    """An issue `#12 [BUG] title` at the margin (the bot's mails carry ids; a line without one
    is prose), or a sub-issue `  - title`."""
    m = _QUOTED_ITEM.fullmatch(line.rstrip())
    if m is None:
        return None
    return (int(m["id"]), m["text"].strip()) if m["id"] else (None, m["child"].strip())
