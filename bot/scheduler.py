"""The weekly digest, posted by the bot itself: the loop that posts it on schedule (when is
`bot/schedule.py`'s business).

Posting, exactly once per room and period (see `DigestScheduler`): the slot (release,
transport, room, period start in UTC) is claimed in SQLite with INSERT OR IGNORE in its own
transaction before the post, and marked sent after it.

What each room gets comes from its settings (`todobot.bot.rooms`), resolved by its transport:
the schedule and time zone (its own `digest:` over the top-level one), and the form — compact
rooms (IRC: no markup, every line is a message) get the short form, the others the full digest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..commands.render_digest import render_reply
from ..storage import digests
from ..storage import Session
from ..storage.digest_data import DigestData, collect
from ..storage.digests import SlotKey

from ..commands.settings import Settings
from .schedule import UTC, Schedule, next_run, parse_schedule
from .logs import log_failure

if TYPE_CHECKING:
    from ..storage import Repository

    from .config import Config
    from .dispatcher import Dispatcher
    from .transport import Transport

log = logging.getLogger(__name__)

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
    settings: Settings


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
                 sleep: Sleep | None = None, rescan: float | None = 300.0) -> None:
        self.repo = repo
        self.config = config
        self.dispatcher = dispatcher
        self.transports = transports
        self.clock = clock
        self._sleep = sleep or self._wait_for_stop
        self.rescan = rescan
        grace = config.digest.grace_hours if config.digest is not None else 24.0
        self.grace = grace * 3600.0
        self._stop = asyncio.Event()
        self._wake = asyncio.Event()
        self._inflight: set[Any] = set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def reconfigure(self, config: "Config") -> None:
        """A reloaded config: the rooms' schedules are re-read at once, not at the next rescan."""
        self.config = config
        self.grace = (config.digest.grace_hours if config.digest is not None else 24.0) * 3600.0
        self._wake.set()

    def wake(self) -> None:
        """Look at the transports' rooms again now (a reload joined or left some)."""
        self._wake.set()

    async def _wait_for_stop(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, delay))
        except asyncio.TimeoutError:
            pass
        self._wake.clear()

    async def run(self) -> None:
        log.info("digest scheduler started")
        while not self._stop.is_set():
            try:
                wake = await self.tick()
            except Exception:
                log_failure(log, "digest scheduler: tick failed; retrying later")
                wake = self.clock() + (self.rescan or 300.0)
            if self._stop.is_set():
                break
            now = self.clock()
            delay = float("inf") if wake is None else wake - now
            if self.rescan is not None:
                delay = min(delay, self.rescan)
            if delay == float("inf"):
                await self._wake.wait()  # nothing will ever be due: sleep until stopped or reloaded
                self._wake.clear()
                continue
            await self._sleep(max(delay, 0.0))
        log.info("digest scheduler stopped")

    # -- one wake-up ---------------------------------------------------------------------------
    async def targets(self) -> list[Target]:
        out = []
        for transport in self.transports:
            for room in transport.rooms():
                settings = self.dispatcher.settings_for(transport.name, room)
                if settings.digest_every is None:
                    continue
                try:
                    schedule = parse_schedule(settings.digest_every, settings.timezone)
                except ValueError as exc:
                    log.error("digest for %s %s: %s", transport.name, room, exc)
                    continue
                async with self.repo.session(self.ACTOR, write=False) as s:
                    release = await self.dispatcher.resolve_release(s, transport.name, room)
                if release is None:
                    continue
                out.append(Target(transport, room, release, schedule, settings))
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
                settings = target.settings

                async def gather(s: Session) -> DigestData:
                    release = await s.require_release(target.release)
                    since = await digests.last_sent_at(s, target.release, target.transport.name,
                                                       target.room)
                    if since is None:  # the first digest here: changes over one period
                        period = next_run(target.schedule, slot) - slot
                        since = (slot - period).timestamp()
                    return await collect(s, release, since=since, stale_days=settings.stale_days,
                                         transport=target.transport.name, room=target.room,
                                         tz=settings.tz, project=settings.project)
                # Read in one hand-off to the database thread (see Repository.run).
                data = await self.repo.run(self.ACTOR, gather, write=False)
                # A transport that writes the digest itself (mail: the release's own layout)
                # gets the data; the others get the chat Reply.
                post_digest = getattr(target.transport, "post_digest", None)
                if post_digest is not None:
                    detail = await post_digest(target.room, data)
                else:
                    form = "short" if settings.compact else "full"
                    reply = render_reply(data, form, prefix=settings.prefix,
                                         status_url=settings.status_url)
                    await target.transport.post(target.room, reply)
                    detail = f"{len(reply.lines)} lines, {form}"
            except Exception as exc:
                log.exception("digest for %s in %s %s, period %s: posting failed; not retried",
                              target.release, target.transport.name, target.room, _iso(slot))
                async with self.repo.session(self.ACTOR) as s:
                    await digests.mark(s, key, "failed", f"{type(exc).__name__}: {exc}"[:500])
                return
            async with self.repo.session(self.ACTOR) as s:
                await digests.mark(s, key, "sent", detail)
                await digests.record_pings(s, target.transport.name, target.room,
                                           data.new_stale_keys)
            log.info("digest for %s posted in %s %s (period %s)", target.release,
                     target.transport.name, target.room, _iso(slot))
            self.dispatcher.metrics.digest_sent(target.transport.name, target.room)
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
    overrides += [m.digest for m in config.mail]
    return any(o is not None and o.every and o.enabled for o in overrides)
