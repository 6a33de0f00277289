"""When digests are due: schedule parsing and `next_run`, pure functions over zoneinfo.

Schedules are written `monday 09:00`, `mon,thu 17:30`, `daily 08:00`, `weekdays 09:00`, or as a
five-field cron expression (`0 9 * * 1`), in an IANA time zone. `next_run` is a pure function.

Daylight saving, decided once and the same everywhere:
- A local time that does not exist (the clocks jump 01:00 → 02:00 and the schedule says 01:30)
  runs at the instant the wall clock would have shown it without the jump: the time shifted
  forward by the length of the gap (01:30 → 02:30 summer time). This is PEP 495's `fold=0`
  reading, so the period is never lost, only moved.
- A local time that happens twice (the clocks go back 02:00 → 01:00 and the schedule says
  01:30) runs once, at its first occurrence. Each wall-clock time fires at most once a day.
- Two schedule times that land on the same instant (01:30 shifted into 02:30, and 02:30) are
  one slot: slots are keyed by their UTC instant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
_DAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 0}
_MONTHS = {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
_FRIENDLY = re.compile(r"(?P<days>[a-z,]+)\s+(?P<h>\d{1,2}):(?P<m>\d{2})")
_DAY_WORDS = {w: n for n, ws in enumerate((
    "sun sunday sundays", "mon monday mondays", "tue tues tuesday tuesdays",
    "wed weds wednesday wednesdays", "thu thur thurs thursday thursdays", "fri friday fridays",
    "sat saturday saturdays")) for w in ws.split()}
# How far next_run looks ahead: "0 0 29 2 1" (29 February on a Monday) recurs every 28 years.
_HORIZON_DAYS = 366 * 29


# -- schedules ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    """When digests are due, as cron fields (the friendly form is translated to them)."""

    text: str
    tz: ZoneInfo
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]  # of the month, 1-31
    months: frozenset[int]
    weekdays: frozenset[int]  # cron numbering: 0 = Sunday
    days_restricted: bool  # cron: when both days and weekdays are restricted, either matches
    weekdays_restricted: bool

    def matches_date(self, d: date) -> bool:
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return dom or dow
        return dom and dow

    @property
    def times(self) -> list[tuple[int, int]]:
        return sorted((h, m) for h in self.hours for m in self.minutes)


def _field(text: str, lo: int, hi: int, names: dict[str, int] | None = None) -> tuple[set[int], bool]:
    """One cron field → (values, restricted?)."""
    out: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"bad step in {text!r}")
            step = int(step_text)
        if part == "*":
            a, b = lo, hi
        elif "-" in part:
            a_text, b_text = part.split("-", 1)
            a, b = _value(a_text, lo, hi, names), _value(b_text, lo, hi, names)
        else:
            a = _value(part, lo, hi, names)
            b = hi if step > 1 else a
        if a > b:
            raise ValueError(f"empty range in {text!r}")
        out.update(range(a, b + 1, step))
    return out, text != "*"


def _value(text: str, lo: int, hi: int, names: dict[str, int] | None) -> int:
    key = text.casefold()[:3]
    if names and key in names and text.isalpha():
        return names[key]
    if not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"{text!r} is not between {lo} and {hi}")
    return int(text)


def parse_schedule(text: str, tz: str = "UTC") -> Schedule:
    """`monday 09:00`, `mon,thu 17:30`, `daily 08:00`, `weekdays 09:00`, `weekends 10:00`, or a
    five-field cron expression. Raises ValueError with a message fit for a config error."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz!r} (use an IANA name like Europe/London)") from None
    spec = " ".join(text.strip().casefold().split())
    if spec.startswith("every "):
        spec = spec[6:]
    m = _FRIENDLY.fullmatch(spec)
    if m:
        hour, minute = int(m["h"]), int(m["m"])
        if hour > 23 or minute > 59:
            raise ValueError(f"{text!r}: no such time of day")
        days: set[int] = set()
        for word in m["days"].split(","):
            if word in ("daily", "day"):
                days.update(range(7))
            elif word == "weekdays":
                days.update(range(1, 6))
            elif word == "weekends":
                days.update((0, 6))
            elif word in _DAY_WORDS:
                days.add(_DAY_WORDS[word])
            else:
                raise ValueError(f"{text!r}: {word!r} is not a day (monday … sunday, daily, "
                                 "weekdays, weekends)")
        cron = f"{minute} {hour} * * {','.join(str(d) for d in sorted(days))}"
    else:
        cron = spec
    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"{text!r}: expected 'DAY HH:MM' (like 'monday 09:00'), 'daily HH:MM' "
                         "or a cron expression with five fields")
    try:
        minutes, _ = _field(fields[0], 0, 59)
        hours, _ = _field(fields[1], 0, 23)
        dom, dom_r = _field(fields[2], 1, 31)
        months, _ = _field(fields[3], 1, 12, _MONTHS)
        dow, dow_r = _field(fields[4], 0, 7, _DAYS)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if 7 in dow:  # cron allows 7 for Sunday too
        dow = (dow - {7}) | {0}
    sched = Schedule(text, zone, frozenset(minutes), frozenset(hours), frozenset(dom),
                     frozenset(months), frozenset(dow), dom_r, dow_r)
    next_run(sched, datetime(2000, 1, 1, tzinfo=UTC))  # "31 2 *": never — fail at start
    return sched


def local_to_utc(d: date, hour: int, minute: int, tz: ZoneInfo) -> datetime:
    """The instant a schedule's wall-clock time means on day `d` (see the module docstring
    for nonexistent and repeated times): PEP 495 fold=0 in both cases."""
    return datetime(d.year, d.month, d.day, hour, minute, tzinfo=tz, fold=0).astimezone(UTC)


def next_run(schedule: Schedule, after: datetime) -> datetime:
    """The first scheduled instant strictly after `after` (an aware datetime), in UTC."""
    if after.tzinfo is None:
        raise ValueError("next_run needs an aware datetime")
    start = after.astimezone(schedule.tz).date() - timedelta(days=1)
    times = schedule.times
    best: datetime | None = None
    for offset in range(_HORIZON_DAYS):
        d = start + timedelta(days=offset)
        if best is not None and d > best.astimezone(schedule.tz).date() + timedelta(days=1):
            break  # a later day cannot be earlier (checked one extra day for shifted times)
        if not schedule.matches_date(d):
            continue
        for hour, minute in times:
            at = local_to_utc(d, hour, minute, schedule.tz)
            # Every time of the day is tried: a time shifted out of a DST gap may land after
            # a later wall-clock time (01:30 → 02:30 summer time, but 02:00 stays 02:00).
            if at > after and (best is None or at < best):
                best = at
    if best is None:
        raise ValueError(f"{schedule.text!r} never happens")
    return best
