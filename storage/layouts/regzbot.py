"""The regzbot layout, read only: the Linux kernel regression tracking bot's weekly report
("[regzbot] ... report" mails). Its lists are exported in the Markdown checklist layout.

The report, as the bot writes it::

    Hi, this is regzbot, the Linux kernel regression tracking bot.   <- prose: not read
    ...
    ======================================================            <- a section, over- and
    current cycle (v6.7.. aka v6.8-rc), culprit identified                underlined with `=`:
    ======================================================                the items' area

    [ *NEW* ] net: frobnic: link stays down after resume              <- an entry's title,
    ----------------------------------------------------                underlined with `-`
    https://linux-regtracking.leemhuis.info/regzbot/regression/...    <- links
    https://lore.kernel.org/regressions/<message-id>/

    By Jane Tester; 5 days ago; 4 activities, latest 1 days ago.      <- the reporter
    Introduced in 0123456789ab (v6.7..v6.8-rc1)                       <- the culprit

    Fix incoming:                                                     <- progress "fix incoming"
    * net: frobnic: restore link state on resume
      https://lore.kernel.org/netdev/<message-id>/

    Noteworthy links:                                                 <- more links
    * ...

    =============
    End of report                                                     <- the rest is the footer
    =============

Each entry is an open blocker in the area named after its section. Its details say who
reported it ("By NAME;" or "Reported by: NAME"), where it was introduced or bisected to, and
the fix that is coming; its links are every URL and <message-id> of the entry, plus the culprit
commit on git.kernel.org when it is a commit id. "[ *NEW* ]" and the day counts, which change
every week, are not kept. Lines in a section that belong to no entry are warned about.
"""

from __future__ import annotations

import re

from ..models import ListItem, ReleaseList
from .common import MailFormatError, find_links, normalise

NAME = "regzbot"
WRITTEN_AS = "markdown-checklist"

_RULE = re.compile(r"={3,}")
_UNDERLINE = re.compile(r"-{3,}")
_NEW = re.compile(r"\[ ?\*?NEW\*? ?\] ?", re.I)
_BY = re.compile(r"(?:By|Reported[- ]by:?) ([^;]+?)(?:;.*)?", re.I)
_CULPRIT = re.compile(r"(Introduced in|Bisected(?: to)?:?|Culprit:?) (\S+)(?: (.*))?", re.I)
_COMMIT = re.compile(r"[0-9a-f]{12,40}")
_FIX = re.compile(r"fix incoming:?", re.I)
_BLOCK = re.compile(r"(?:noteworthy links|.*patch(?:es| postings?)? (?:is |are )?associated.*):?",
                    re.I)
_END = re.compile(r"end of report", re.I)
COMMIT_URL = "https://git.kernel.org/torvalds/c/{}"


def detect(text: str) -> float:
    """Only a text that names regzbot: entries with "Introduced in" lines and `=` sections."""
    if "regzbot" not in text.casefold():
        return 0.0
    score = 1.0
    for raw in text.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if _CULPRIT.fullmatch(line) or _NEW.match(line):
            score += 3
        elif _RULE.fullmatch(line):
            score += 1
    return score


def parse(text: str, release: str | None = None) -> ReleaseList:
    lines = [ln.rstrip() for ln in text.replace("\r\n", "\n").split("\n")]
    items: list[ListItem] = []
    warnings: list[str] = []
    area: str | None = None
    sections = 0
    entry: dict | None = None
    i = 0
    while i < len(lines):
        line = normalise(lines[i])
        nxt = normalise(lines[i + 1]) if i + 1 < len(lines) else ""
        if lines[i].startswith(">"):  # a reply's quote
            i += 1
            continue
        if _RULE.fullmatch(line) and i + 2 < len(lines) and _RULE.fullmatch(normalise(lines[i + 2])):
            if entry:
                items.append(_item(entry))
                entry = None
            if _END.fullmatch(nxt):
                break
            area, sections = nxt, sections + 1
            i += 3
            continue
        if area is not None and line and _UNDERLINE.fullmatch(nxt) and not _UNDERLINE.fullmatch(line):
            if entry:
                items.append(_item(entry))
            entry = {"title": normalise(_NEW.sub("", line, count=1)), "area": area, "lines": [],
                     "block": None}
            i += 2
            continue
        if area is not None and line:
            if entry is None:
                warnings.append(f'line {i + 1}: not understood: "{line[:60]}"')
            else:
                entry["lines"].append(line)
        i += 1
    if entry:
        items.append(_item(entry))
    if not sections:
        prose = [(n, normalise(ln)) for n, ln in enumerate(lines, 1) if normalise(ln)]
        raise MailFormatError("no TODO list found: expected regzbot's sections, over- and "
                              "underlined with '='", prose[:5])
    return ReleaseList(release=release, items=items, layout=NAME, warnings=warnings)


def _item(entry: dict) -> ListItem:
    it = ListItem(area=entry["area"], severity="blocker", title=entry["title"])
    facts: list[str] = []
    commit_links: list[str] = []
    block = ""
    for line in entry["lines"]:
        if _FIX.fullmatch(line):
            block, it.progress = "fix", "fix incoming"
        elif _BLOCK.fullmatch(line):
            block = "links"
        elif (m := _BY.fullmatch(line)) and not block:
            facts.append(f"Reported by {m[1]}")
        elif (m := _CULPRIT.fullmatch(line)) and not block:
            facts.append(" ".join(p for p in (m[1].rstrip(":"), m[2], m[3]) if p))
            if _COMMIT.fullmatch(m[2]):
                commit_links.append(COMMIT_URL.format(m[2]))
        elif block == "fix" and line.startswith("* ") and not find_links(line):
            facts.append(f"Fix incoming: {line[2:]}")
    it.details = "; ".join(facts) + ("." if facts else "")
    found = find_links(*entry["lines"])
    it.links = found + [c for c in commit_links if c not in found]
    return it
