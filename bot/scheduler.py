"""The weekly digest, posted by the bot itself: schedules, and the loop that posts them.

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

Posting, exactly once per room and period (see `DigestScheduler`): the slot (release,
transport, room, period start in UTC) is claimed in SQLite with INSERT OR IGNORE in its own
transaction before the post, and marked sent after it.

Which form a room gets: a transport may say so with a `digest_form` attribute ("short" or
"full"); otherwise transports whose name starts with "irc:" get the short form (summary, open
blockers and pointers to `!todo` and the status page, within five lines: IRC has no markup and
every line is a message) and every other transport (console, Matrix) the full digest.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from commands.digest import collect, render_reply
from storage import digests
from storage.digests import SlotKey

if TYPE_CHECKING:
    from storage import Repository

    from .config import Config
    from .dispatcher import Dispatcher
    from .transport import Transport

log = logging.getLogger(__name__)

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


# -- the loop ----------------------------------------------------------------------------------

# After a long outage, at most this many missed periods per room get a row of their own.
MAX_MISSED_ROWS = 200

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Target:
    """One room that gets digests, with its effective schedule and form."""

    transport: "Transport"
    room: str
    release: str
    schedule: Schedule
    form: str  # "full" or "short"


def digest_form(transport: "Transport") -> str:
    form = getattr(transport, "digest_form", None)
    if form in ("short", "full"):
        return form
    return "short" if transport.name.startswith("irc:") else "full"


def room_override(config: "Config", transport_name: str, room: str) -> Any:
    """The per-room `digest:` override of a room, found by the room's name in the config."""
    if transport_name == "console":
        return config.console.digest if config.console.room == room else None
    entries: list[Any] = []
    if transport_name.startswith("irc:"):
        for net in config.irc:
            if f"irc:{net.network}" == transport_name:
                entries = [c for c in net.channels if not isinstance(c, str)]
        names = [(getattr(e, "name", None) or "").casefold() for e in entries]
        key = room.casefold()
    elif transport_name == "matrix" and config.matrix is not None:
        entries = [r for r in config.matrix.rooms if not isinstance(r, str)]
        names = [getattr(e, "room", None) for e in entries]
        key = room
    else:
        return None
    for entry, name in zip(entries, names):
        if name == key:
            return getattr(entry, "digest", None)
    return None


def effective_schedule(config: "Config", override: Any) -> Schedule | None:
    """The room's schedule: its override's fields over the top-level `digest:`; None when the
    room gets no digest (no schedule anywhere, or `enabled: false`)."""
    top = config.digest
    if override is not None and not override.enabled:
        return None
    every = (override.every if override is not None else None) or (top.every if top else None)
    if every is None or (top is None and (override is None or override.every is None)):
        return None
    tz = (override.timezone if override is not None else None) or (top.timezone if top else "UTC")
    return parse_schedule(every, tz)


class DigestScheduler:
    """Posts each room's digest once per period, across crashes and restarts.

    Each wake-up, for every room the transports serve now: the slots due since the room's last
    slot row are settled. The newest one is posted if it is at most `grace` late; older ones, and
    a newest one later than that, are recorded as skipped and logged — no period passes without
    a row saying what happened to it. A room seen for the first time starts from now: enabling
    digests does not post one for a period that ended before.

    A slot claimed but never marked sent (the process died between claim and send) is not sent
    again: at-most-once. The transports cannot tell whether a message reached the room before
    the crash (IRC has no acknowledgement; a Matrix send may succeed and the crash follow), so a
    re-send may double-post, and a duplicate digest in a busy room is worse than a missing
    one that `!digest preview` or the status page can stand in for. The row is marked
    `abandoned` and logged at ERROR, so the gap is never silent. A post that raises is marked
    `failed` for the same reason (a multi-line IRC post may have gone out in part).

    Between due times the loop sleeps; it wakes on `stop()`, and at least every `rescan`
    seconds to pick up rooms that were joined late (their missed slot is then posted within
    grace) and to survive wall-clock jumps. `clock` and `sleep` are injectable for tests.
    """

    ACTOR = "todobot:digest"
    # A claim this old that is neither sent nor failed belongs to a process that died.
    STUCK_AFTER = 120.0
    # Missed slots further back than this are not listed one by one after a long outage.
    LOOKBACK = timedelta(days=400)

    def __init__(self, repo: "Repository", config: "Config", dispatcher: "Dispatcher",
                 transports: list["Transport"], *, clock: Callable[[], float] = time.time,
                 sleep: Sleep | None = None, rescan: float | None = 300.0,
                 status_url: str | None = None) -> None:
        self.repo = repo
        self.config = config
        self.dispatcher = dispatcher
        self.transports = transports
        self.clock = clock
        self._sleep = sleep or self._wait_for_stop
        self.rescan = rescan
        self.status_url = status_url
        grace = config.digest.grace_hours if config.digest is not None else 24.0
        self.grace = grace * 3600.0
        self.stale_days = config.digest.stale_days if config.digest is not None else None
        self._stop = asyncio.Event()
        self._inflight: set[Any] = set()

    def stop(self) -> None:
        self._stop.set()

    async def _wait_for_stop(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), timeout=max(0.0, delay))
        except asyncio.TimeoutError:
            pass

    async def run(self) -> None:
        log.info("digest scheduler started")
        while not self._stop.is_set():
            try:
                wake = await self.tick()
            except Exception:
                log.exception("digest scheduler: tick failed; retrying later")
                wake = self.clock() + (self.rescan or 300.0)
            if self._stop.is_set():
                break
            now = self.clock()
            delay = float("inf") if wake is None else wake - now
            if self.rescan is not None:
                delay = min(delay, self.rescan)
            if delay == float("inf"):
                await self._stop.wait()  # nothing will ever be due: sleep until stopped
                break
            await self._sleep(max(delay, 0.0))
        log.info("digest scheduler stopped")

    # -- one wake-up ---------------------------------------------------------------------------
    async def targets(self) -> list[Target]:
        out = []
        latest: str | None = None
        for transport in self.transports:
            for room in transport.rooms():
                try:
                    schedule = effective_schedule(self.config,
                                                  room_override(self.config, transport.name, room))
                except ValueError as exc:
                    log.error("digest for %s %s: %s", transport.name, room, exc)
                    continue
                if schedule is None:
                    continue
                release = self.dispatcher.release_for(transport.name, room)
                if release is None:
                    if latest is None:
                        async with self.repo.session(self.ACTOR, write=False) as s:
                            rel = await s.latest_release()
                        latest = rel.name if rel else ""
                    release = latest or None
                if release is None:
                    continue
                out.append(Target(transport, room, release, schedule, digest_form(transport)))
        return out

    async def tick(self) -> float | None:
        """Settle every due slot; returns when the next one is due (epoch seconds)."""
        now = self.clock()
        await self._report_stuck(now)
        wake: float | None = None
        for target in await self.targets():
            base = await self._base(target, now)
            due: deque[datetime] = deque(maxlen=MAX_MISSED_ROWS)
            dropped = 0
            at = next_run(target.schedule, base)
            while at.timestamp() <= now:
                dropped += len(due) == due.maxlen
                due.append(at)
                at = next_run(target.schedule, at)
            wake = at.timestamp() if wake is None else min(wake, at.timestamp())
            if dropped:
                log.warning("digest for %s in %s %s: %d more periods before %s were missed while "
                            "the bot was down (not listed one by one)", target.release,
                            target.transport.name, target.room, dropped, _iso(due[0]))
            for slot in list(due)[:-1]:
                await self._skip(target, slot, now, "missed while the bot was down; a later "
                                 "period was due by restart")
            if not due:
                continue
            slot = due[-1]
            late = now - slot.timestamp()
            if late > self.grace:
                await self._skip(target, slot, now, f"{_hours(late)} late, over the "
                                 f"{_hours(self.grace)} grace")
                continue
            await self._post(target, slot)
        return wake

    async def _base(self, target: Target, now: float) -> datetime:
        """Where to look for due slots from: the target's last slot row, else when it was first
        seen (recorded so a restart does not move it)."""
        async with self.repo.session(self.ACTOR) as s:
            last = await digests.last_slot_at(s, target.release, target.transport.name, target.room)
            if last is not None:
                base = float(last)
            else:
                key = f"digest.since/{target.release}/{target.transport.name}/{target.room}"
                seen = await s.kv_get(key)
                if seen is None:
                    await s.kv_set(key, repr(now))
                    base = now
                else:
                    base = float(seen)
        base = max(base, now - self.LOOKBACK.total_seconds())
        return datetime.fromtimestamp(base, UTC)

    async def _skip(self, target: Target, slot: datetime, now: float, why: str) -> None:
        key = self._key(target, slot)
        async with self.repo.session(self.ACTOR) as s:
            recorded = await digests.claim(s, key, status="skipped", detail=why)
        if recorded:
            log.warning("digest for %s in %s %s, period %s: skipped, %s", target.release,
                        target.transport.name, target.room, _iso(slot), why)

    async def _post(self, target: Target, slot: datetime) -> None:
        key = self._key(target, slot)
        async with self.repo.session(self.ACTOR) as s:
            if not await digests.claim(s, key):
                return  # another process (or an earlier run) has this slot
        self._inflight.add(key)
        try:
            try:
                async with self.repo.session(self.ACTOR, write=False) as s:
                    release = await s.require_release(target.release)
                    since = await digests.last_sent_at(s, target.release, target.transport.name,
                                                       target.room)
                    if since is None:  # the first digest here: changes over one period
                        period = next_run(target.schedule, slot) - slot
                        since = (slot - period).timestamp()
                    data = await collect(s, release, since=since, stale_days=self.stale_days,
                                         transport=target.transport.name, room=target.room)
                reply = render_reply(data, target.form, prefix=self.dispatcher.prefix,
                                     status_url=self.status_url)
                await target.transport.post(target.room, reply)
            except Exception as exc:
                log.exception("digest for %s in %s %s, period %s: posting failed; not retried",
                              target.release, target.transport.name, target.room, _iso(slot))
                async with self.repo.session(self.ACTOR) as s:
                    await digests.mark(s, key, "failed", f"{type(exc).__name__}: {exc}"[:500])
                return
            async with self.repo.session(self.ACTOR) as s:
                await digests.mark(s, key, "sent", f"{len(reply.lines)} lines, {target.form}")
                await digests.record_pings(s, target.transport.name, target.room,
                                           data.new_stale_keys)
            log.info("digest for %s posted in %s %s (period %s)", target.release,
                     target.transport.name, target.room, _iso(slot))
        finally:
            self._inflight.discard(key)

    async def _report_stuck(self, now: float) -> None:
        async with self.repo.session(self.ACTOR) as s:
            stuck = [slot for slot in await digests.stuck_claims(s, now - self.STUCK_AFTER)
                     if slot.key not in self._inflight]
            for slot in stuck:
                await digests.mark(s, slot.key, "abandoned",
                                   "claimed but never recorded as sent (the bot stopped while "
                                   "posting?); not re-sent")
        for slot in stuck:
            k = slot.key
            log.error("digest for %s in %s %s, period %s was claimed at %s but never recorded "
                      "as sent — the bot probably died while posting it. It is NOT re-sent "
                      "(at-most-once); check the room and post `!digest preview` by hand if it "
                      "is missing.", k.release, k.transport, k.room,
                      _iso(datetime.fromtimestamp(k.slot_at, UTC)),
                      _iso(datetime.fromtimestamp(slot.claimed_at, UTC)))

    @staticmethod
    def _key(target: Target, slot: datetime) -> SlotKey:
        return SlotKey(target.release, target.transport.name, target.room, int(slot.timestamp()))


def _hours(seconds: float) -> str:
    h = seconds / 3600
    return f"{h:.1f} h" if h < 48 else f"{h / 24:.1f} days"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def wants_digest(config: "Config") -> bool:
    """Whether any room can get a digest: a top-level `digest:` or a room override with `every`."""
    if config.digest is not None:
        return True
    overrides = [config.console.digest]
    for net in config.irc:
        overrides += [getattr(c, "digest", None) for c in net.channels if not isinstance(c, str)]
    if config.matrix is not None:
        overrides += [getattr(r, "digest", None) for r in config.matrix.rooms if not isinstance(r, str)]
    return any(o is not None and o.every and o.enabled for o in overrides)
