"""Digest schedules and the scheduler loop, driven by an injected clock: DST, grace, crashes."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest

from todobot.bot.config import Config, DigestRoom, IrcNetwork, RoomRelease, parse_config, ConfigError
from todobot.bot.dispatcher import Dispatcher
from todobot.commands.messages import Reply
from todobot.bot.schedule import next_run, parse_schedule
from todobot.bot.rooms import room_entry, room_settings
from todobot.bot.scheduler import DigestScheduler
from todobot.bot.transport import Transport
from todobot.storage import Database, Repository, digests

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- parsing and next_run (pure) ---------------------------------------------------------------


def test_friendly_and_cron_forms_mean_the_same():
    a = parse_schedule("monday 09:00", "Europe/London")
    b = parse_schedule("0 9 * * 1", "Europe/London")
    c = parse_schedule("Every Mon 9:00", "Europe/London")
    after = utc(2024, 5, 1)
    assert next_run(a, after) == next_run(b, after) == next_run(c, after) == utc(2024, 5, 6, 8, 0)
    assert next_run(parse_schedule("weekdays 17:30", "UTC"), utc(2024, 5, 3, 18)) == utc(2024, 5, 6, 17, 30)
    assert next_run(parse_schedule("daily 00:00", "UTC"), utc(2024, 5, 3)) == utc(2024, 5, 4)
    # cron: day-of-month and day-of-week both restricted → either matches
    s = parse_schedule("0 12 1 * fri", "UTC")
    assert next_run(s, utc(2024, 5, 1, 13)) == utc(2024, 5, 3, 12)
    assert next_run(s, utc(2024, 5, 31, 13)) == utc(2024, 6, 1, 12)
    assert next_run(parse_schedule("*/20 9-10 * jan-mar 7", "UTC"), utc(2024, 1, 7, 10, 40)) == \
        utc(2024, 1, 14, 9, 0)


@pytest.mark.parametrize("text,tz,problem", [
    ("moonday 09:00", "UTC", "is not a day"),
    ("monday 25:00", "UTC", "no such time"),
    ("0 9 * *", "UTC", "five fields"),
    ("61 9 * * *", "UTC", "between 0 and 59"),
    ("0 0 30 2 *", "UTC", "never happens"),
    ("monday 09:00", "Europe/Atlantis", "unknown time zone"),
])
def test_bad_schedules_are_refused_with_a_reason(text, tz, problem):
    with pytest.raises(ValueError, match=problem):
        parse_schedule(text, tz)


def test_config_checks_the_schedule_at_load():
    cfg = parse_config({"digest": {"every": "monday 09:00", "timezone": "Europe/London",
                                   "stale_days": 14},
                        "console": {"digest": {"every": "daily 08:00"}}})
    assert cfg.digest.grace_hours == 24.0 and cfg.console.digest.every == "daily 08:00"
    with pytest.raises(ConfigError, match=r"digest: .*not a day"):
        parse_config({"digest": {"every": "someday 9:00"}})
    with pytest.raises(ConfigError, match=r"console.digest: .*unknown time zone"):
        parse_config({"console": {"digest": {"timezone": "Nowhere/Place"}}})


def test_nonexistent_local_time_is_shifted_forward_by_the_gap():
    # Europe/London springs forward at 01:00 GMT on 31 March 2024: 01:30 does not exist.
    s = parse_schedule("daily 01:30", "Europe/London")
    at = next_run(s, utc(2024, 3, 30, 12))
    assert at == utc(2024, 3, 31, 1, 30)  # = 02:30 BST, the wall time shifted by the 1 h gap
    assert at.astimezone(s.tz).strftime("%H:%M %Z") == "02:30 BST"
    assert next_run(s, at) == utc(2024, 4, 1, 0, 30)  # back to 01:30 BST the next day
    # New York: 02:30 on 10 March 2024 does not exist → 03:30 EDT.
    ny = parse_schedule("sunday 02:30", "America/New_York")
    assert next_run(ny, utc(2024, 3, 9)) == utc(2024, 3, 10, 7, 30)


def test_repeated_local_time_runs_once_at_its_first_occurrence():
    # Europe/London falls back at 02:00 BST on 27 October 2024: 01:30 happens twice.
    s = parse_schedule("daily 01:30", "Europe/London")
    first = next_run(s, utc(2024, 10, 26, 12))
    assert first == utc(2024, 10, 27, 0, 30)  # 01:30 BST
    assert next_run(s, first) == utc(2024, 10, 28, 1, 30)  # not 01:30 GMT the same day
    hourly = parse_schedule("0 * * * *", "Europe/London")
    runs, at = [], utc(2024, 10, 26, 22, 30)  # 23:30 BST
    while at < utc(2024, 10, 27, 4):
        at = next_run(hourly, at)
        runs.append(at.astimezone(hourly.tz).strftime("%H:%M"))
    assert runs == ["00:00", "01:00", "02:00", "03:00", "04:00"]  # 01:00 once


def test_two_times_shifted_onto_one_instant_are_one_slot():
    s = parse_schedule("30 1,2 * * *", "Europe/London")
    a = next_run(s, utc(2024, 3, 31, 0))
    assert a == utc(2024, 3, 31, 1, 30)
    assert next_run(s, a) == utc(2024, 4, 1, 0, 30)


def test_weekly_schedule_keeps_local_time_across_dst():
    s = parse_schedule("monday 09:00", "Europe/London")
    at, locals_ = utc(2024, 1, 1), set()
    for _ in range(110):
        nxt = next_run(s, at)
        assert timedelta(days=7) - timedelta(hours=1) <= nxt - at or at == utc(2024, 1, 1)
        locals_.add(nxt.astimezone(s.tz).strftime("%a %H:%M"))
        at = nxt
    assert locals_ == {"Mon 09:00"}


def test_room_settings_derive_the_digest_once():
    cfg = Config(digest={"every": "monday 09:00", "timezone": "Europe/London"},
                 console={"digest": {"enabled": False}},
                 irc=[IrcNetwork(network="oftc", channels=[
                     "#plain", RoomRelease(name="#Xen-4.3", release="4.3",
                                           digest=DigestRoom(every="friday 16:00",
                                                             timezone="America/New_York"))])])
    assert room_settings(cfg, digest=cfg.console.digest).digest_every is None
    plain = room_settings(cfg, compact=True)
    assert (plain.digest_every, plain.timezone, plain.compact) == ("monday 09:00", "Europe/London", True)
    name, release, override = room_entry(cfg.irc[0].channels[1], "name")
    own = room_settings(cfg, release=release, digest=override)
    assert (own.release, own.digest_every, own.timezone) == ("4.3", "friday 16:00", "America/New_York")
    # No top-level digest: only rooms with their own schedule get one.
    cfg2 = Config(console={"digest": {"every": "daily 08:00"}})
    assert room_settings(cfg2, digest=cfg2.console.digest).digest_every == "daily 08:00"
    assert room_settings(cfg2).digest_every is None


# -- the loop, with an injected clock -----------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    @property
    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Crash(BaseException):
    """The process dies here (not an Exception: nothing in the bot may catch it)."""


@dataclass
class Post:
    at: float
    room: str
    reply: Reply


@dataclass
class FakeTransport(Transport):
    name: str
    clock: Clock
    room_list: list[str]
    posts: list[Post] = field(default_factory=list)
    # called before and after a post is "on the wire"; may raise Crash
    before: object = None
    after: object = None

    async def start(self, dispatcher) -> None: ...

    async def stop(self) -> None: ...

    def rooms(self) -> list[str]:
        return list(self.room_list)

    async def post(self, room: str, reply: Reply) -> None:
        if self.before:
            self.before(room)
        self.posts.append(Post(self.clock.now, room, reply))
        if self.after:
            self.after(room)


async def _world(tmp_path, config: Config, start: datetime, rooms: list[str],
                 transport_name: str = "irc:sim"):
    clock = Clock(start)
    db = await Database.open(tmp_path / "sched.sqlite3")
    repo = Repository(db, clock=clock)
    async with repo.session("test") as s:
        rel = await s.create_release("4.2")
        await s.add_item(rel, area="tools", severity="blocker", title="libxl stable API")
    dispatcher = Dispatcher(repo, config, clock=clock)
    compact = transport_name.startswith("irc:")
    dispatcher.bind_default(transport_name, room_settings(config, compact=compact))
    for net in config.irc:  # as the IRC transport binds its channels at start
        for name, release, override in (room_entry(c, "name") for c in net.channels):
            dispatcher.bind_room(transport_name, name, room_settings(
                config, release=release, digest=override, compact=compact))
    transport = FakeTransport(transport_name, clock, rooms)
    return clock, db, repo, dispatcher, transport


def _scheduler(repo, config, dispatcher, transport, clock, *, rescan=None, end=None, sleeps=None):
    sched: DigestScheduler

    async def sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)
        if end is not None and clock.now + delay >= end:
            clock.now = end
            sched.stop()
            return
        clock.now += delay

    sched = DigestScheduler(repo, config, dispatcher, [transport], clock=clock, sleep=sleep,
                            rescan=rescan)
    return sched


async def test_loop_sleeps_until_the_next_due_time_and_posts_once(tmp_path):
    config = Config(digest={"every": "monday 09:00", "timezone": "Europe/London"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1, 12), ["#xen"])
    try:
        sleeps: list[float] = []
        end = utc(2024, 5, 17).timestamp()
        sched = _scheduler(repo, config, disp, tr, clock, end=end, sleeps=sleeps)
        await sched.run()
        # Wed 12:00 → Mon 6 May 08:00 UTC, then a week, then the end
        assert sleeps[0] == (utc(2024, 5, 6, 8) - utc(2024, 5, 1, 12)).total_seconds()
        assert sleeps[1] == 7 * 86400
        assert [datetime.fromtimestamp(p.at, UTC) for p in tr.posts] == [utc(2024, 5, 6, 8),
                                                                         utc(2024, 5, 13, 8)]
        assert tr.posts[0].reply.plain.startswith("4.2 TODO digest: 1 open blocker")
        assert tr.posts[0].reply.long is False  # irc:sim gets the short form
        async with repo.session("t", write=False) as s:
            rows = await digests.slots(s)
        assert [(r.status, r.key.room, r.key.slot_at) for r in rows] == [
            ("sent", "#xen", int(utc(2024, 5, 6, 8).timestamp())),
            ("sent", "#xen", int(utc(2024, 5, 13, 8).timestamp()))]
        # A second scheduler (a restart, or a second process) finds the slots taken.
        again = _scheduler(repo, config, disp, tr, clock)
        await again.tick()
        assert len(tr.posts) == 2
    finally:
        await db.close()


async def test_rescan_caps_the_sleep_and_stop_wakes_the_real_sleep(tmp_path):
    config = Config(digest={"every": "monday 09:00"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1, 12), ["#xen"])
    try:
        sleeps: list[float] = []
        sched = _scheduler(repo, config, disp, tr, clock, rescan=300, end=clock.now + 900,
                           sleeps=sleeps)
        await sched.run()
        assert sleeps[:3] == [300, 300, 300]
        # The real sleep (no injection) is an Event wait: stop() ends it at once.
        real = DigestScheduler(repo, config, disp, [tr], clock=clock, rescan=None)
        task = asyncio.create_task(real.run())
        await asyncio.sleep(0.2)  # a pause, not a barrier: it shows the sleep does not end alone
        assert not task.done()  # sleeping until Monday
        real.stop()
        await asyncio.wait_for(task, 5)
    finally:
        await db.close()


async def test_first_start_does_not_post_a_period_that_ended_before(tmp_path):
    config = Config(digest={"every": "monday 09:00", "timezone": "UTC"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 6, 10), ["#xen"])
    try:
        sched = _scheduler(repo, config, disp, tr, clock)
        assert await sched.tick() == utc(2024, 5, 13, 9).timestamp()
        assert tr.posts == []
    finally:
        await db.close()


async def test_missed_digest_is_posted_within_grace_else_skipped_and_logged(tmp_path, caplog):
    config = Config(digest={"every": "monday 09:00", "timezone": "UTC", "grace_hours": 24})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1), ["#xen"])
    try:
        await _scheduler(repo, config, disp, tr, clock).tick()  # first seen on Wednesday
        clock.now = utc(2024, 5, 6, 15).timestamp()  # down over Monday 09:00, back 6 h late
        await _scheduler(repo, config, disp, tr, clock).tick()
        assert [p.at for p in tr.posts] == [clock.now]
        clock.now = utc(2024, 5, 14, 10).timestamp()  # back 25 h after Monday 13 May 09:00
        with caplog.at_level(logging.WARNING, logger="todobot.bot.scheduler"):
            await _scheduler(repo, config, disp, tr, clock).tick()
        assert len(tr.posts) == 1
        assert "period 2024-05-13 09:00 UTC: skipped, 25.0 h late" in caplog.text
        clock.now = utc(2024, 6, 3, 9, 30).timestamp()  # down three weeks
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="todobot.bot.scheduler"):
            await _scheduler(repo, config, disp, tr, clock).tick()
        assert len(tr.posts) == 2  # only the newest, 30 min late
        assert caplog.text.count("missed while the bot was down") == 2  # 20 and 27 May
        async with repo.session("t", write=False) as s:
            statuses = [r.status for r in await digests.slots(s)]
        assert statuses == ["sent", "skipped", "skipped", "skipped", "sent"]
    finally:
        await db.close()


async def test_a_claim_never_marked_sent_is_not_resent_and_is_logged(tmp_path, caplog):
    """Crash between claim and send: at-most-once, and loudly."""
    config = Config(digest={"every": "monday 09:00", "timezone": "UTC"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1), ["#xen"])
    try:
        await _scheduler(repo, config, disp, tr, clock).tick()

        def crash(room: str) -> None:
            raise Crash()

        tr.before = crash
        clock.now = utc(2024, 5, 6, 9).timestamp()
        with pytest.raises(Crash):
            await _scheduler(repo, config, disp, tr, clock).tick()
        tr.before = None
        clock.now += 600  # restarted ten minutes later, well within grace
        with caplog.at_level(logging.ERROR, logger="todobot.bot.scheduler"):
            await _scheduler(repo, config, disp, tr, clock).tick()
        assert tr.posts == []  # not re-sent
        assert "never recorded as sent" in caplog.text and "NOT re-sent" in caplog.text
        async with repo.session("t", write=False) as s:
            (row,) = await digests.slots(s)
        assert row.status == "abandoned" and row.sent_at is None
    finally:
        await db.close()


async def test_a_failing_transport_marks_the_slot_failed(tmp_path, caplog):
    config = Config(digest={"every": "monday 09:00", "timezone": "UTC"})
    clock, db, repo, disp, tr = await _world(tmp_path, config, utc(2024, 5, 1), ["#xen"])
    try:
        await _scheduler(repo, config, disp, tr, clock).tick()

        def down(room: str) -> None:
            raise ConnectionError("not connected")

        tr.before = down
        clock.now = utc(2024, 5, 6, 9).timestamp()
        await _scheduler(repo, config, disp, tr, clock).tick()
        async with repo.session("t", write=False) as s:
            (row,) = await digests.slots(s)
        assert row.status == "failed" and "not connected" in row.detail
        assert "posting failed" in caplog.text
    finally:
        await db.close()


async def test_two_years_two_time_zones_with_crashes(tmp_path, caplog):
    """Daily 01:30 in London (a DST gap and a repeated hour every year) and Sunday/Wednesday
    02:30 in New York (a gap every March), for two years, with the bot crashing between claim
    and send, after sending but before recording it, and going down for minutes to days.
    No slot is posted twice; every slot that was not posted has a row and a log line saying
    why; a slot is skipped only when the bot was down at the time and came back too late or
    after a later slot."""
    caplog.set_level(logging.WARNING, logger="todobot.bot.scheduler")
    config = Config(
        digest={"every": "daily 01:30", "timezone": "Europe/London", "grace_hours": 24},
        irc=[IrcNetwork(network="sim", channels=[
            "#london", RoomRelease(name="#newyork", digest=DigestRoom(
                every="sunday,wednesday 02:30", timezone="America/New_York"))])])
    start, end = utc(2024, 1, 1), utc(2026, 1, 1)
    clock, db, repo, disp, tr = await _world(tmp_path, config, start, ["#london", "#newyork"])
    rng = random.Random(20240331)
    outages: list[tuple[float, float]] = []  # (went down, came back)
    crashes = {"before-send": 0, "after-send": 0, "idle": 0}

    def maybe_crash(kind: str):
        def hook(room: str) -> None:
            if rng.random() < 0.03:
                crashes[kind] += 1
                raise Crash()
        return hook

    tr.before, tr.after = maybe_crash("before-send"), maybe_crash("after-send")
    try:
        while clock.now < end.timestamp():
            sched: DigestScheduler

            async def sleep(delay: float) -> None:
                if clock.now + delay >= end.timestamp():
                    clock.now = end.timestamp()
                    sched.stop()
                    return
                if rng.random() < 0.05:  # dies while idle, somewhere in the sleep
                    crashes["idle"] += 1
                    clock.now += rng.uniform(0, delay)
                    raise Crash()
                clock.now += delay

            sched = DigestScheduler(repo, config, disp, [tr], clock=clock, sleep=sleep,
                                    rescan=None)
            try:
                await sched.run()
            except Crash:
                down = clock.now
                clock.now += rng.choice([rng.uniform(60, 1800), rng.uniform(3600, 20 * 3600),
                                         rng.uniform(26 * 3600, 80 * 3600)])
                clock.now = min(clock.now, end.timestamp())
                outages.append((down, clock.now))
        tr.before = tr.after = None
        clock.now = end.timestamp()
        await DigestScheduler(repo, config, disp, [tr], clock=clock, rescan=None).tick()
        async with repo.session("t", write=False) as s:
            rows = {(r.key.room, r.key.slot_at): r for r in await digests.slots(s)}
    finally:
        await db.close()

    assert all(crashes.values()), crashes  # every kind of crash happened
    grace = 24 * 3600
    for room, sched_text, tz in (("#london", "daily 01:30", "Europe/London"),
                                 ("#newyork", "sunday,wednesday 02:30", "America/New_York")):
        schedule = parse_schedule(sched_text, tz)
        slots, at = [], start
        while True:
            at = next_run(schedule, at)
            if at > end:
                break
            slots.append(int(at.timestamp()))
        posts = [p.at for p in tr.posts if p.room == room]
        by_slot: dict[int, list[float]] = {}
        for at_ in posts:
            slot = max(s for s in slots if s <= at_)
            assert at_ - slot <= grace, "posted later than the grace"
            by_slot.setdefault(slot, []).append(at_)
        assert all(len(v) == 1 for v in by_slot.values()), "a slot was posted twice"
        for slot in slots:
            row = rows.get((room, slot))
            assert row is not None, f"silent gap at {slot} in {room}"
            stamp = datetime.fromtimestamp(slot, UTC).strftime("%Y-%m-%d %H:%M UTC")
            if row.status == "sent":
                assert len(by_slot.get(slot, [])) == 1
            elif row.status == "abandoned":
                assert len(by_slot.get(slot, [])) <= 1
                assert f"period {stamp} was claimed" in caplog.text
            else:
                assert row.status == "skipped", row
                assert slot not in by_slot
                assert f"period {stamp}: skipped" in caplog.text
                # skipped only if the bot was down at the slot and back too late, or a later
                # slot of the room was also due when it came back
                outage = next(o for o in outages if o[0] < slot <= o[1])
                later_due = any(slot < s2 <= outage[1] for s2 in slots)
                assert outage[1] - slot > grace or later_due
        sent = sum(1 for s in slots if rows[(room, s)].status == "sent")
        assert sent > 0.8 * len(slots)
        # the DST days were served like any other: 31 March 2024 01:30 → 01:30 UTC (02:30 BST)
        if room == "#london":
            assert int(utc(2024, 3, 31, 1, 30).timestamp()) in slots
            assert int(utc(2024, 10, 27, 0, 30).timestamp()) in slots
            assert int(utc(2024, 10, 27, 1, 30).timestamp()) not in slots
        else:
            assert int(utc(2024, 3, 10, 7, 30).timestamp()) in slots  # 03:30 EDT


async def test_two_schedulers_ticking_at_once_post_one_digest(tmp_path, monkeypatch):
    """Two processes on one database file (each its own connection), due at the same
    moment, both in the middle of their tick: the slot claim lets exactly one post."""
    config = Config(digest={"every": "monday 09:00"})
    start = utc(2024, 5, 6, 8, 59)
    clock, db, repo, disp, tr = await _world(tmp_path, config, start, ["#xen"])
    db2 = await Database.open(tmp_path / "sched.sqlite3")
    repo2 = Repository(db2, clock=clock)
    disp2 = Dispatcher(repo2, config, clock=clock)
    disp2.bind_default("irc:sim", room_settings(config, compact=True))
    tr2 = FakeTransport("irc:sim", clock, ["#xen"])
    both = [0]

    def count(room: str) -> None:
        both[0] += 1

    tr.before = tr2.before = count
    # Both have decided to post before either has claimed: the claim itself must decide.
    barrier = asyncio.Barrier(2)
    real_post = DigestScheduler._post

    async def post_together(self, target, slot):
        await asyncio.wait_for(barrier.wait(), 5)
        return await real_post(self, target, slot)

    try:
        first = _scheduler(repo, config, disp, tr, clock)
        second = _scheduler(repo2, config, disp2, tr2, clock)
        await asyncio.gather(first.tick(), second.tick())  # both see the room for the first time
        clock.now = utc(2024, 5, 6, 9, 0, 30).timestamp()
        monkeypatch.setattr(DigestScheduler, "_post", post_together)
        await asyncio.gather(first.tick(), second.tick())
        assert len(tr.posts) + len(tr2.posts) == 1 and both[0] == 1
        async with repo.session("t", write=False) as s:
            (row,) = await digests.slots(s)
        assert row.status == "sent"
    finally:
        await db2.close()
        await db.close()
