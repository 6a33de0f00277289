"""What the status page's templates show, as plain data: the filters of a page, the rows of
the release table, relative times, and history rows described for people (the item page's
history and the Atom feed). No HTML here: the templates (bot/web/templates/) escape everything.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from functools import lru_cache
from datetime import datetime, timedelta, tzinfo
from urllib.parse import urlencode

from ...commands.format import SEVERITY_TITLE, STATE_MARK, split_roots
from ...commands.args import SEVERITY_WORDS
from ...storage import Change, Item
from ...storage.models import STATES

MAX_FILTER = 200  # characters of one filter value
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")  # not allowed in XML 1.0
STATE_CHOICES = STATES + ("closed", "all")


class BadFilter(ValueError):
    """A query parameter the page cannot use; the message is one line for the reader."""


@dataclass(frozen=True)
class Filters:
    """`?area=&owner=&severity=&state=&q=`: all given ones must match. `owner=unclaimed` is
    the items nobody has claimed; `state` is a state, `closed` (any but open) or `all`; without
    it the open items are listed and the closed ones folded away below them."""

    area: str | None = None
    owner: str | None = None
    severity: str | None = None
    state: str | None = None
    q: str | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> "Filters":
        values: dict[str, str | None] = {}
        for f in fields(cls):
            raw = " ".join(query.get(f.name, "").split())
            if len(raw) > MAX_FILTER:
                raise BadFilter(f"{f.name} is longer than {MAX_FILTER} characters")
            values[f.name] = raw or None
        sev = values["severity"]
        if sev is not None:
            values["severity"] = SEVERITY_WORDS.get(sev.casefold().replace(" ", "-"))
            if values["severity"] is None:
                raise BadFilter(f"severity is blocker or nice, not {sev!r}")
        st = values["state"]
        if st is not None:
            if st.casefold() not in STATE_CHOICES:
                raise BadFilter(f"state is one of {', '.join(STATE_CHOICES)}, not {st!r}")
            values["state"] = st.casefold()
        return cls(**values)

    @property
    def active(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name)]

    @property
    def key(self) -> str:
        """The filters in a canonical form (part of a page's ETag)."""
        return urlencode(self.active)

    def href(self, **changes: str | None) -> str:
        """This page's query with `changes` applied (None drops a filter); the others are kept."""
        query = urlencode(replace(self, **changes).active)
        return f"?{query}" if query else "?"

    def toggle(self, name: str, value: str) -> str:
        """The link of a filter choice: sets it, or drops it when it is the current one."""
        return _toggle(self, name, value)

    def is_on(self, name: str, value: str) -> bool:
        current = getattr(self, name)
        return current is not None and current.casefold() == value.casefold()

    def without(self, name: str) -> str:
        return self.href(**{name: None})

    @property
    def shows_closed(self) -> bool:
        return self.state not in (None, "open")

    def state_ok(self, it: Item) -> bool:
        if self.state in (None, "all"):
            return True
        if self.state == "closed":
            return not it.is_open
        return it.state == self.state

    def matches(self, it: Item) -> bool:
        if self.area and it.area.casefold() != self.area.casefold():
            return False
        if self.severity and it.severity != self.severity:
            return False
        if self.owner:
            if self.owner.casefold() == "unclaimed":
                if it.owners:
                    return False
            elif self.owner.casefold() not in {o.casefold() for o in it.owners}:
                return False
        if not self.state_ok(it):
            return False
        if self.q:
            haystack = " ".join([f"#{it.id}", it.title, " ".join(it.tags), it.details, it.progress,
                                 it.area, " ".join(it.owners), " ".join(it.links)]).casefold()
            return all(word in haystack for word in self.q.casefold().split())
        return True


@lru_cache(maxsize=4096)  # a long table links the same few areas and owners on every row
def _toggle(filters: Filters, name: str, value: str) -> str:
    return filters.href(**{name: None if filters.is_on(name, value) else value})


# -- times ---------------------------------------------------------------------------------------


def relative_day(at: float, now: float, tz: tzinfo) -> str:
    """"today", "yesterday", "3 days ago", "2 weeks ago" or a date: calendar days in `tz`, so
    the words change only at midnight (a page's ETag includes the day)."""
    then = datetime.fromtimestamp(at, tz).date()
    days = (datetime.fromtimestamp(now, tz).date() - then).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 60:
        return f"{days // 7} weeks ago"
    return f"{then.day} {then:%b %Y}"


def stamp(at: float, tz: tzinfo) -> str:
    """A readable exact time: `2012-07-12 14:05 UTC`."""
    d = datetime.fromtimestamp(at, tz)
    return f"{d:%Y-%m-%d %H:%M} {d.tzname() or ''}".rstrip()


def iso(at: float, tz: tzinfo) -> str:
    """RFC 3339, as Atom and `<time datetime>` want it."""
    return datetime.fromtimestamp(at, tz).isoformat(timespec="seconds")


def start_of_day(now: float, tz: tzinfo) -> float:
    d = datetime.fromtimestamp(now, tz)
    return d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()


def end_of_day(day, tz: tzinfo, now: float) -> float:  # type: ignore[no-untyped-def]
    """The end of calendar day `day` in `tz` (today: now)."""
    end = datetime(day.year, day.month, day.day, tzinfo=tz) + timedelta(days=1)
    return min(end.timestamp() - 0.001, now)


# -- the release table ---------------------------------------------------------------------------


@dataclass
class Row:
    item: Item
    depth: int  # 0 for a top-level item, 1 under an item shown above it, ...
    changed: str  # relative day of the last change
    changed_at: str  # the exact time, for the tooltip
    changed_iso: str

    @property
    def state_mark(self) -> str:
        return STATE_MARK.get(self.item.state, "")

    @property
    def severity_title(self) -> str:
        return SEVERITY_TITLE[self.item.severity]


def ordered(items: list[Item]) -> list[tuple[Item, int]]:
    """Items in the mail's order: blockers first, then by area in order of first appearance
    (within each severity, as the mail's sections `tools, blockers:` come), each
    item followed by its sub-items (an item whose parent is not shown starts its own line)."""
    roots, children = split_roots(items)
    sections: dict[tuple[bool, str], int] = {}  # (nice?, area) in order of first appearance
    for it in roots:
        sections.setdefault((it.severity != "blocker", it.area.casefold()), len(sections))

    def section(it: Item) -> tuple[bool, int]:
        nice = it.severity != "blocker"
        return nice, sections[(nice, it.area.casefold())]

    roots.sort(key=section)
    out: list[tuple[Item, int]] = []

    def walk(it: Item, depth: int) -> None:
        out.append((it, depth))
        for child in children.get(it.id, []):
            walk(child, depth + 1)

    for it in roots:
        walk(it, 0)
    return out


def rows(items: list[Item], now: float, tz: tzinfo, part: slice = slice(None)) -> list[Row]:
    """The table's rows in order; `part`: only those of one page."""
    return [Row(it, depth, relative_day(it.updated_at, now, tz), stamp(it.updated_at, tz),
                iso(it.updated_at, tz)) for it, depth in ordered(items)[part]]


# A table shows this many rows per page: rendering a 5,000-row table took seconds (and 3.5 MB).
PAGE_ROWS = 200


@dataclass(frozen=True)
class Paging:
    """Which page of the release table is shown: each of its two tables (open, closed) shows
    its rows number (page - 1) * PAGE_ROWS onwards."""

    number: int = 1
    pages: int = 1

    @staticmethod
    def number_of(raw: str | None) -> int:
        """`?page=`: a whole number from 1, in ASCII digits."""
        if raw is None or raw == "":
            return 1
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1:
            raise BadFilter(f"page is a number from 1, not {raw[:20]!r}")
        return int(raw)

    @classmethod
    def of(cls, number: int, *table_lengths: int) -> "Paging":
        pages = max(1, -(-max(table_lengths, default=0) // PAGE_ROWS))
        if number > pages:
            raise BadFilter(f"there {'is 1 page' if pages == 1 else f'are {pages} pages'}, "
                            f"not {number}")
        return cls(number, pages)

    @property
    def part(self) -> slice:
        return slice((self.number - 1) * PAGE_ROWS, self.number * PAGE_ROWS)

    def shown(self, total: int) -> str:
        """"201–400" of a table this long ("" when it fits on one page or ends before this)."""
        start = (self.number - 1) * PAGE_ROWS
        if total <= PAGE_ROWS or start >= total:
            return ""
        return f"{start + 1}–{min(total, start + PAGE_ROWS)}"

    def href(self, filters: Filters, number: int) -> str:
        """The link of another page, with the same filters."""
        query = urlencode(filters.active + ([("page", str(number))] if number > 1 else []))
        return f"?{query}" if query else "?"


@dataclass
class Choices:
    """The values the filter links offer: areas and owners of the release."""

    areas: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, items: list[Item]) -> "Choices":
        areas: dict[str, str] = {}
        owners: dict[str, str] = {}
        for it in items:
            areas.setdefault(it.area.casefold(), it.area)
            if it.is_open:
                for o in it.owners:
                    owners.setdefault(o.casefold(), o)
        return cls(list(areas.values()), sorted(owners.values(), key=str.casefold))


# -- history, described --------------------------------------------------------------------------


def _value(raw: str | None) -> str:
    if raw is None or raw in ("", "[]"):
        return "(none)"
    if raw.startswith("["):
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        if isinstance(value, list):
            return ", ".join(str(v) for v in value) or "(none)"
    return raw


def clean(text: str) -> str:
    """Text safe to put in XML 1.0 (control characters replaced)."""
    return _CONTROL.sub("\ufffd", text)


def describe(ch: Change) -> str:
    """One history row in words: `done (was open)`, `claimed by Ian Campbell`, ..."""
    before, after = _value(ch.before), _value(ch.after)
    if ch.field == "created":
        return f"added: {after}"
    if ch.field == "release" and ch.item_id is None:
        return f"release {after} created"
    if ch.field == "milestones":
        return "timeline changed"
    if ch.field == "intro":
        return "introduction changed"
    if ch.field == "note":
        return f"note: {after}"
    if ch.field == "state" and after == "open":
        return f"reopened (was {before})"
    if ch.field == "state":
        return f"{STATE_MARK.get(after, after).lower()} (was {before})"
    if ch.field == "owners":
        if after == "(none)":
            return f"unclaimed (was {before})"
        return f"owners: {after}" + (f" (was {before})" if before != "(none)" else "")
    if ch.field == "severity":
        return f"now {SEVERITY_TITLE.get(after, after)} (was {SEVERITY_TITLE.get(before, before)})"
    if ch.field == "progress":
        return f"progress: {after}"
    if ch.field in ("parent", "duplicate_of"):
        what = "under" if ch.field == "parent" else "duplicate of"
        return f"{what} #{after}" if after != "(none)" else f"no longer {what} #{before}"
    return f"{ch.field}: {after} (was {before})"


@dataclass
class Event:
    """A history row as the item page and the feed show it."""

    id: int
    item_id: int | None
    actor: str
    what: str
    when: str  # relative day
    at: str  # exact
    iso: str


def events(changes: list[Change], now: float, tz: tzinfo) -> list[Event]:
    return [Event(ch.id, ch.item_id, clean(ch.actor), clean(describe(ch)),
                  relative_day(ch.at, now, tz), stamp(ch.at, tz), iso(ch.at, tz)) for ch in changes]


__all__ = ["BadFilter", "Choices", "Event", "Filters", "Row", "describe", "end_of_day", "events",
           "iso", "ordered", "relative_day", "rows", "stamp", "start_of_day"]
