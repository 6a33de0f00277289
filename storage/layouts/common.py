"""What every layout shares: the "not a list" error, whitespace normalising, link finding,
word wrapping, and how a reply's quoted heading is described."""

from __future__ import annotations

import re
from dataclasses import dataclass


class MailFormatError(ValueError):
    """The text is not a TODO list at all. The message is one line; `unread` holds the first
    lines that were not understood, as (line number, text), and `warnings` what reading the
    text reported, for the caller to show."""

    def __init__(self, message: str, unread: list[tuple[int, str]] | None = None,
                 warnings: list[str] | None = None) -> None:
        super().__init__(message)
        self.unread = unread or []
        self.warnings = warnings or []


def normalise(s: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends (what parsing does)."""
    return " ".join(s.split())


_LINK = re.compile(r"(?:https?|ftp)://[^\s<>\"]+|<[^\s<>@]+@[^\s<>]+>")
LINK_ONLY = re.compile(r"(?:(?:https?|ftp)://\S+|<[^\s<>@]+@[^\s<>]+>)")


def find_links(*texts: str) -> list[str]:
    """URLs and <message-id>s in the texts, in order, without duplicates."""
    found: dict[str, None] = {}
    for text in texts:
        for m in _LINK.finditer(text):
            link = m[0]
            if not link.startswith("<"):
                link = _trim_url(link)
            if not re.fullmatch(r"\w+://", link):
                found.setdefault(link)
    return list(found)


def paragraphs(lines: list[str | None]) -> list[str]:
    """Lines with None for each blank line, joined into paragraphs."""
    paras, cur = [], []
    for line in lines + [None]:
        if line is not None:
            cur.append(line)
        elif cur:
            paras.append("\n".join(cur))
            cur = []
    return paras


def link_lines(it, sub: str) -> list[str]:  # it: ListItem
    """An item's links as the heading-based writers put them: the links its text does not
    already show, one a line after `sub`; or all of them on one `Links:` line when a bare
    line would read back differently (an order or a repeat the text alone cannot give)."""
    found = find_links(it.title, it.details, it.progress)
    extra = it.links[len(found):]
    if it.links[: len(found)] == found and len(set(extra)) == len(extra) \
            and not set(extra) & set(found):
        return [sub + link for link in extra]
    return [f"{sub}Links: {' '.join(it.links)}"]


def _trim_url(url: str) -> str:
    # "see http://x/y." or "(http://x/y)": the closing punctuation belongs to the prose.
    while url and (url[-1] in ".,;:!?'" or (url[-1] == ")" and url.count(")") > url.count("("))):
        url = url[:-1]
    return url


def unread_lines(lines: list[tuple[int, str]], limit: int = 5) -> str:
    """`line 3: "text"` for the first few lines, for one-line warnings."""
    shown = [f'line {n}: "{text[:60]}"' for n, text in lines[:limit]]
    more = f" and {len(lines) - limit} more" if len(lines) > limit else ""
    return "; ".join(shown) + more


def wrap(text: str, first: str, rest: str, width: int, glue: re.Pattern[str]) -> list[str]:
    """Greedy word wrap that never breaks a word (so never a URL) and never starts a
    continuation line with a word that `glue` matches (something the layout's reader would
    take for a bullet or a key): such a word stays on the line before."""
    words: list[str] = []
    for word in text.split(" "):
        if words and glue.fullmatch(word):
            words[-1] += " " + word
        else:
            words.append(word)
    lines, line = [], first + words[0]
    for word in words[1:]:
        if len(line) + 1 + len(word) > width:
            lines.append(line)
            line = rest + word
        else:
            line += " " + word
    lines.append(line)
    return [ln.rstrip() for ln in lines]


def strip_marks(text: str, mark: re.Pattern[str]) -> tuple[str, bool, bool]:
    """`text` without its trailing DONE / WE ARE HERE marks (as `mark` matches them: group 1
    the rest, group 2 the mark), and whether it had each."""
    done = current = False
    while m := mark.fullmatch(text):
        text = m[1]
        if m[2].upper() == "DONE":
            done = True
        else:
            current = True
    return text, done, current


@dataclass(frozen=True)
class QuotedHeading:
    """A layout's heading as a reply quotes it: what new bullets written under it propose.
    None keeps the enclosing heading's value (a subsection names the area only); `items`
    False for a heading with no items under it (a timeline), where bullets propose nothing."""

    area: str | None
    severity: str | None
    items: bool = True
