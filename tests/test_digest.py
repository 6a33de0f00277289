"""The digest's content, `!digest` and `!stale`, `todobot digest`, and the app posting on schedule."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import date, timezone
from html.parser import HTMLParser

import pytest

from todobot.bot.app import App
from todobot.bot.cli import main
from todobot.bot.config import Config, Web
from todobot.bot.console import ConsoleTransport
from todobot.bot.dispatcher import Dispatcher
from todobot.bot.rooms import room_settings
from todobot.commands.messages import Message, Reply, Sender
from todobot.bot.scheduler import DigestScheduler
from todobot.bot.transport import Transport
from todobot.commands.render_digest import change_counts, render_reply
from todobot.storage.dates import parse_when
from todobot.storage.digest_data import collect
from todobot.storage.timeline import effective_milestones
from todobot.storage import Database, Milestone, Repository, digests
from tests.harness import Clock, ts, ids

UTC = timezone.utc
DAY = 86400


class World:
    """A 4.2 release created on Mon 16 July 2012, with a week of changes after Mon 23 July."""

    def __init__(self, db: Database, clock: Clock, config: Config) -> None:
        self.db, self.clock, self.config = db, clock, config
        self.repo = Repository(db, clock=clock)
        self.dispatcher = Dispatcher(self.repo, config, clock=clock)

    async def say(self, text: str, nick: str = "ijc", transport: str = "console",
                  room: str = "console") -> Reply | None:
        msg = Message(transport=transport, room=room,
                      sender=Sender(f"{transport}:{nick}", nick), text=text)
        # As a transport would at start: IRC rooms are compact (the short digest).
        self.dispatcher.bind_room(transport, room, room_settings(
            self.dispatcher.config, compact=transport.startswith("irc:")))
        return await self.dispatcher.handle(msg)

    async def release(self):
        async with self.repo.session("t", write=False) as s:
            return await s.require_release("4.2")


@pytest.fixture
async def world(tmp_path):
    clock = Clock(ts(2012, 7, 16, 9))
    config = Config(admins=["console:ijc"], default_release="4.2", database=str(tmp_path / "w.sqlite3"))
    db = await Database.open(tmp_path / "w.sqlite3")
    w = World(db, clock, config)
    async with w.repo.session("console:ijc") as s:
        rel = await s.create_release("4.2")
        await s.set_milestones(rel, [Milestone("19 March", "TODO list locked down"),
                                     Milestone("2 April", "Feature Freeze"),
                                     # marked as the 4.2 mail marks them
                                     Milestone("30 July", "First release candidate", done=True),
                                     Milestone("Weekly", "RCN+1 until release", current=True)])
        await s.add_item(rel, area="tools", severity="blocker", title="libxl stable API")  # 1
        await s.add_item(rel, area="tools", severity="blocker", title="xl compatibility with xm",
                         owners=await ids(s, "George Dunlap"))  # 2
        await s.add_item(rel, area="hypervisor", severity="nice", title="vMCE save/restore changes",
                         owners=await ids(s, "Jinsong Liu"), progress="patch posted")  # 3
        await s.add_item(rel, area="tools", severity="nice", title="xl.cfg(5) documentation")  # 4
        await s.add_item(rel, area="tools", severity="blocker", title="Bump library SONAMES")  # 5
        await s.add_item(rel, area="tools", severity="nice", title="Block script support",
                         owners=await ids(s, "Ian C"))  # 6
    clock.now = ts(2012, 7, 24, 10)  # the week after the last digest (Mon 23 July 09:00)
    async with w.repo.session("console:ijc") as s:
        await s.update(await s.get(1), owners=await ids(s, "Ian Campbell"))
        await s.update(await s.get(3), progress="v2 posted")
        await s.update(await s.get(4), severity="blocker")
        await s.update(await s.get(5), state="done")
        await s.update(await s.get(6), owners=[])
        new = await s.add_item(rel, area="tools", severity="nice",
                               title="<script>alert(1)</script> leaks, see https://bugs.example.org/1")
        dup = await s.add_item(rel, area="tools", severity="nice", title="SONAMES again")
    clock.now = ts(2012, 7, 25, 10)
    async with w.repo.session("console:ijc") as s:
        await s.update(await s.get(dup.id), state="duplicate", duplicate_of=5)
        await s.update(await s.get(new.id), owners=await ids(s, "Someone"))  # claimed the same week it was new
        await s.update(await s.get(1), owners=await ids(s, "Ian Campbell", "Ian Jackson"))
        await s.update(await s.get(1), owners=await ids(s, "Ian Campbell"))  # net: still just Ian Campbell
    clock.now = ts(2012, 7, 30, 9)
    yield w
    await db.close()


# -- the timeline ------------------------------------------------------------------------------


def test_milestone_dates():
    assert parse_when("30 July", date(2012, 3, 1)) == date(2012, 7, 30)
    assert parse_when("July 30th", date(2012, 3, 1)) == date(2012, 7, 30)
    assert parse_when("2012-07-30", date(2020, 1, 1)) == date(2012, 7, 30)
    assert parse_when("15 January", date(2012, 11, 20), not_before=date(2012, 12, 10)) == date(2013, 1, 15)
    assert parse_when("Weekly", date(2012, 3, 1)) is None
    assert parse_when("29 Feb", date(2013, 6, 1)) == date(2012, 2, 29)


def test_marks_are_what_the_mail_or_a_release_manager_said():
    """No mark follows the calendar: dates long past are not DONE unless marked so, and
    nothing is WE ARE HERE unless marked so (tests/test_release_new.py imports such a mail)."""
    ms = [Milestone("19 March", "lock"), Milestone("2 April", "freeze"),
          Milestone("30 July", "rc1"), Milestone("Weekly", "rcN")]
    marks = lambda out: [("DONE" if m.done else "") + ("HERE" if m.current else "") for m in out]  # noqa: E731
    assert marks(effective_milestones(ms)) == ["", "", "", ""]
    by_hand = [Milestone("19 March", "lock", done=True), Milestone("2 April", "freeze", current=True),
               Milestone("30 July", "rc1")]
    assert marks(effective_milestones(by_hand)) == ["DONE", "HERE", ""]
    assert effective_milestones(by_hand) is not by_hand and effective_milestones(by_hand)[0] is not by_hand[0]


# -- content -----------------------------------------------------------------------------------


async def test_full_digest_says_what_changed_since_the_last_one(world):
    rel = await world.release()
    async with world.repo.session("t", write=False) as s:
        data = await collect(s, rel, since=ts(2012, 7, 23, 9))
    out = render_reply(data, "full").plain.splitlines()
    assert out[0] == "4.2 TODO digest: 3 open blockers (1 unclaimed), 3 nice to have"
    assert out[1:6] == [
        "Timeline:",
        "19 March        -- TODO list locked down",
        "2 April         -- Feature Freeze",
        "30 July         -- First release candidate  << DONE",
        "Weekly          -- RCN+1 until release      << WE ARE HERE"]
    i = out.index("Changes since Mon 23 Jul 2012:")
    changes = out[i + 1:out.index("Open items:")]
    assert changes == [
        "* New: #7 <script>alert(1)</script> leaks, see https://bugs.example.org/1 (Someone)",
        "* New: #8 SONAMES again (DUPLICATE of #5)",
        "* Done: #5 Bump library SONAMES (DONE)",
        "* Now a blocker: #4 xl.cfg(5) documentation",
        "* Claimed: #1 libxl stable API — by Ian Campbell",
        "* Unclaimed: #6 Block script support — was Ian C",
        "* Progress: #3 vMCE save/restore changes — v2 posted (was: patch posted)",
    ]
    assert out[out.index("Open items:"):] == [
        "Open items:",
        "tools, blockers:",
        "* #1 libxl stable API (Ian Campbell)",
        "* #2 xl compatibility with xm (George Dunlap)",
        "* #4 xl.cfg(5) documentation",
        "hypervisor, nice to have:",
        "* #3 vMCE save/restore changes (Jinsong Liu, v2 posted)",
        "tools, nice to have:",
        "* #6 Block script support",
        "* #7 <script>alert(1)</script> leaks, see https://bugs.example.org/1 (Someone)"]


async def test_duplicates_collapsed_and_moves_to_nice_are_reported(world):
    async with world.repo.session("console:ijc") as s:
        await s.update(await s.get(2), severity="nice")
        await s.update(await s.get(4), state="duplicate", duplicate_of=1)
    rel = await world.release()
    async with world.repo.session("t", write=False) as s:
        data = await collect(s, rel, since=ts(2012, 7, 29))
    assert render_reply(data, "full").plain.splitlines()[6:9] == [
        "Changes since Sun 29 Jul 2012:",
        "* Now nice to have: #2 xl compatibility with xm (George Dunlap)",
        "* Duplicate collapsed: #4 xl.cfg(5) documentation into #1"]
    assert change_counts(data.changes) == ["1 now nice to have", "1 duplicate"]


async def test_short_form_fits_in_a_few_lines_with_pointers(world):
    world.dispatcher.config = world.config.model_copy(
        update={"web": Web(public_url="https://todo.example.org/")})
    reply = await world.say("!digest preview", transport="irc:oftc", room="#xen-devel")
    lines = reply.plain.splitlines()
    assert reply.long is False and len(lines) <= 6
    assert lines[0] == ("4.2 TODO digest: 3 open blockers (1 unclaimed), 3 nice to have; since "
                        "Mon 23 Jul 2012: 2 new, 1 done, 1 now blocker, 1 claimed, 1 unclaimed")
    # (changes since a week ago: no digest was sent here yet; #8 is new, so not a duplicate)
    assert lines[1:4] == ["* #1 libxl stable API (Ian Campbell)",
                          "* #2 xl compatibility with xm (George Dunlap)",
                          "* #4 xl.cfg(5) documentation (unclaimed)"]
    assert lines[-1] == "Everything: !todo · https://todo.example.org/release/4.2"


async def test_digest_preview_in_the_console_is_the_full_form(world):
    reply = await world.say("!digest preview")
    assert reply.long is True
    assert reply.plain.startswith("4.2 TODO digest: 3 open blockers")
    assert "Open items:" in reply.plain and "Changes since Mon 23 Jul 2012:" in reply.plain
    assert (await world.say("!digest now")).plain == "Usage: !digest [preview]"
    assert "!stale" in (await world.say("!help")).plain


# -- stale claims ------------------------------------------------------------------------------


async def test_stale_lists_quiet_claims(world):
    # #2 (George Dunlap) has not changed since 16 July: 14 days by 30 July 09:00.
    assert (await world.say("!stale")).plain == (
        "Claimed items of 4.2 with no update for 14 days or more: 1\n"
        "* #2 — George Dunlap, no update for 14 days (xl compatibility with xm)")
    assert (await world.say("!stale 15")).plain == (
        "No claimed item of 4.2 has gone 15 days without an update.")
    out = (await world.say("!stale 5")).plain.splitlines()
    assert out[0].endswith(": 2") and out[1].startswith("* #2 — George Dunlap, no update for 14 days")
    assert (await world.say("!stale soon")).plain.startswith("Usage: !stale [DAYS]")


class Recorder(Transport):
    def __init__(self, name: str, rooms: list[str], config: Config | None = None) -> None:
        self.name = name
        self._rooms = rooms
        self.config = config
        self.posts: list[tuple[str, Reply]] = []

    async def start(self, dispatcher) -> None:
        for room in self._rooms:
            dispatcher.bind_room(self.name, room, room_settings(self.config or dispatcher.config))

    async def stop(self) -> None: ...

    def rooms(self) -> list[str]:
        return list(self._rooms)

    async def post(self, room: str, reply: Reply) -> None:
        self.posts.append((room, reply))


async def test_a_stale_claim_is_pinged_once_per_quiet_period(world):
    config = Config(default_release="4.2", digest={"every": "monday 09:00", "stale_days": 10})
    matrix = Recorder("matrix", ["!room:example.org"], config)
    await matrix.start(world.dispatcher)
    async with world.repo.session("console:ijc") as s:  # George's identity: a Matrix pill
        await s.link_identity(await s.person_named("George Dunlap"), "matrix:@george:example.org")
    world.clock.now = ts(2012, 7, 30, 8)
    sched = DigestScheduler(world.repo, config, world.dispatcher, [matrix], clock=world.clock)
    await sched.tick()  # first seen
    world.clock.now = ts(2012, 7, 30, 9, 1)
    await sched.tick()
    (room, first), = matrix.posts
    assert "* #2 — George Dunlap, no update for 14 days" in first.plain.splitlines()
    pill = [sp for ln in first.lines for sp in ln.spans if sp.mention]
    assert pill and pill[0].mention == "matrix:@george:example.org"
    world.clock.now = ts(2012, 8, 6, 9, 1)
    await sched.tick()
    assert "George Dunlap, no update" not in matrix.posts[1][1].plain  # pinged already
    assert "#2 — George Dunlap" in (await world.say("!stale")).plain  # still listed on demand
    async with world.repo.session("console:ijc") as s:
        await s.update(await s.get(2), progress="v3")
    world.clock.now = ts(2012, 8, 13, 9, 1)
    await sched.tick()
    assert "George Dunlap, no update" not in matrix.posts[2][1].plain  # 7 quiet days only
    world.clock.now = ts(2012, 8, 20, 9, 1)
    await sched.tick()
    assert "* #2 — George Dunlap, no update for 14 days" in matrix.posts[3][1].plain.splitlines()
    # "changes since" runs from the previous digest sent to this room
    assert "No changes since Mon 13 Aug 2012." in matrix.posts[3][1].plain


# -- todobot digest --------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.ids += [v for k, v in attrs if k == "id"]


async def test_cli_prints_the_digest_in_three_formats(world, capsys):
    path = world.config.database
    await world.db.close()
    world.db = await Database.open(path)  # the fixture closes this one
    assert await asyncio.to_thread(main, ["digest", "--release", "4.2", "--db", path, "--since", "2012-07-23"]) == 0
    mail = capsys.readouterr().out
    assert mail.startswith("4.2 TODO digest: 3 open blockers (1 unclaimed), 3 nice to have\n")
    assert "The time line is as follows:\n\n19 March        -- TODO list locked down" in mail
    assert "    * Done: #5 Bump library SONAMES (DONE)" in mail
    assert "The open items:\n\ntools, blockers:\n\n    * #1 libxl stable API (Ian Campbell)" in mail
    assert await asyncio.to_thread(main, ["digest", "--release", "4.2", "--db", path, "--format", "markdown"]) == 0
    md = capsys.readouterr().out
    assert md.startswith("# 4.2 TODO digest\n") and "\\<script\\>" in md
    assert await asyncio.to_thread(main, ["digest", "--release", "4.2", "--db", path, "--format", "html"]) == 0
    page = capsys.readouterr().out
    parser = _Tags()
    parser.feed(page)
    assert "script" not in parser.tags and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "item-1" in parser.ids
    assert '<a href="https://bugs.example.org/1" rel="nofollow noopener">' in page
    assert await asyncio.to_thread(main, ["digest", "--release", "9.9", "--db", path]) == 1


# -- the app posts on schedule -------------------------------------------------------------------


async def test_app_posts_the_digest_into_console_and_other_transports(tmp_path):
    """A configured digest starts with the app; a period that ended a moment ago while the
    bot was down is posted at start, into the console and any other transport's rooms."""
    out = io.StringIO()
    config = Config(database=str(tmp_path / "app.sqlite3"), default_release="4.2",
                    digest={"every": "* * * * *", "timezone": "Europe/London"})
    app = App(config)
    await app.initialize()
    console = ConsoleTransport(user="ijc", stdin=io.StringIO(""), stdout=out)
    other = Recorder("matrix", ["!a:example.org", "!b:example.org"])
    app.transports += [console, other]
    now = time.time()
    async with app.repo.session("test") as s:
        rel = await s.create_release("4.2")
        await s.add_item(rel, area="tools", severity="blocker", title="libxl stable API")
        for t, room in (("console", "console"), ("matrix", "!a:example.org"),
                        ("matrix", "!b:example.org")):
            await s.kv_set(f"digest.since/4.2/{t}/{room}", repr(now - 150))
    try:
        await app.start()
        assert app.scheduler is not None
        for _ in range(200):
            if len(other.posts) == 2 and "4.2 TODO digest" in out.getvalue():
                # Posted; stop once the last post is recorded too, not while it is being.
                async with app.repo.session("test", write=False) as s:
                    if sum(r.status == "sent" for r in await digests.slots(s, "4.2")) == 3:
                        break
            await asyncio.sleep(0.05)
        assert sorted(r for r, _ in other.posts) == ["!a:example.org", "!b:example.org"]
        assert "<todobot> 4.2 TODO digest: 1 open blocker (1 unclaimed), 0 nice to have" in out.getvalue()
        assert "<todobot> * #1 libxl stable API" in out.getvalue()
    finally:
        await app.stop()
    db = await Database.open(tmp_path / "app.sqlite3")
    try:
        async with Repository(db).session("t", write=False) as s:
            rows = await digests.slots(s, "4.2")
        sent = [r for r in rows if r.status == "sent"]
        assert sorted(r.key.room for r in sent) == ["!a:example.org", "!b:example.org", "console"]
        assert all(r.sent_at is not None for r in sent)
        # the older of the two minutes that passed while "down" is recorded as skipped
        assert {r.status for r in rows} <= {"sent", "skipped"}
    finally:
        await db.close()


async def test_digest_of_a_development_update_release_is_in_its_layout(tmp_path):
    from pathlib import Path

    from tests.harness import Chat
    from todobot.storage.layouts import devupdate
    text = (Path(__file__).resolve().parent / "data" / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    chat = await Chat.open(tmp_path / "t.sqlite3", admins=["console:ijc"], default_release="4.3")
    try:
        async with chat.repo.session("t") as s:
            await s.import_list("4.3", devupdate.parse(text, "4.3"))
        lines = (await chat.say("!digest preview")).splitlines()
        assert "= Timeline =" in lines and "* First RC: 6 May 2013  <== WE ARE HERE" in lines
        assert "== Bugs ==" in lines and "* #6 xl, compat mode, and older kernels" in lines
        assert "=== Testing coverage ===" in lines and "tools, blockers:" not in lines
        assert "Nice to have:" in (await chat.say("!todo")).splitlines()
    finally:
        await chat.close()


async def test_scheduled_digest_and_preview_agree_in_auckland(world):
    """Monday 08:00 in Auckland is Sunday 20:00 UTC: both say "Changes since Mon 23 Jul" and
    mark 30 July (today there, tomorrow in UTC) done."""
    config = Config(default_release="4.2",
                    digest={"every": "monday 08:00", "timezone": "Pacific/Auckland"})
    world.dispatcher.config = config
    room = Recorder("matrix", ["!nz:example.org"], config)
    await room.start(world.dispatcher)
    sched = DigestScheduler(world.repo, config, world.dispatcher, [room], clock=world.clock)
    world.clock.now = ts(2012, 7, 29, 19)
    await sched.tick()  # the room is seen for the first time
    world.clock.now = ts(2012, 7, 29, 20, 0, 30)
    preview = await world.say("!digest preview", transport="matrix", room="!nz:example.org")
    await sched.tick()
    (_, posted), = room.posts
    assert posted.plain == preview.plain
    assert "Changes since Mon 23 Jul 2012:" in posted.plain
    assert "30 July         -- First release candidate  << DONE" in posted.plain


async def test_release_marks_the_milestones_the_digest_marks(world):
    """`!release` shows the marks the digest and the status page show: those the mail (here,
    the fixture) and release managers set, and no others (19 March has passed: no mark)."""
    def timeline(reply: Reply) -> list[str]:
        return [ln for ln in reply.plain.splitlines() if " -- " in ln]

    shown = timeline(await world.say("!release"))
    assert shown == timeline(await world.say("!digest preview"))
    assert "First release candidate  << DONE" in shown[2]
    assert shown[3].endswith("RCN+1 until release      << WE ARE HERE")
    assert "<<" not in shown[0] + shown[1]
    await world.say("!milestone done Feature Freeze")
    shown = timeline(await world.say("!release"))
    assert shown == timeline(await world.say("!digest preview"))
    assert shown[1].endswith("Feature Freeze           << DONE")
