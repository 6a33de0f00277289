"""!watch, !unwatch, !watching: who is told of a change, when, and never of their own."""

from __future__ import annotations

import asyncio
import io

import pytest

from todobot.bot.console import ConsoleTransport
from todobot.bot.notify import Notifier
from todobot.bot.transport import Transport
from todobot.commands.messages import text


class Told:
    """The chat fixture with a notifier on its clock, delivering through a console."""

    def __init__(self, chat) -> None:
        self.chat = chat
        self.out = io.StringIO()
        self.console = ConsoleTransport(user="ijc", stdin=io.StringIO(), stdout=self.out)
        self.notifier = Notifier([self.console], clock=chat.clock)
        chat.dispatcher.on_changes = self.notifier.add

    async def lines(self) -> list[str]:
        """What the notifier sends now, as the console prints it."""
        await self.notifier.flush()
        lines = self.out.getvalue().splitlines()
        self.out.seek(0)
        self.out.truncate()
        return lines


@pytest.fixture
def told(chat):
    return Told(chat)


async def test_a_watcher_is_told_of_someone_elses_change(chat, told):
    assert "You watch #1 now" in await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 patch posted", "bob")
    assert await told.lines() == ["-> alice: #1 progress: patch posted (by bob)"]
    assert await chat.say("!watching", "alice") == "Items you watch: 1\ntools, blockers:\n* #1 libxl stable API (patch posted)"


async def test_never_of_ones_own_change(chat, told):
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 mine now", "alice")
    assert await chat.say("!claim 1", "alice")
    assert await told.lines() == []


async def test_changes_within_the_window_come_in_one_message(chat, told):
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 patch posted", "bob")
    assert await told.lines() == ["-> alice: #1 progress: patch posted (by bob)"]
    assert await chat.say("!status 1 v2 posted", "bob")
    assert await chat.say("!claim 1", "bob")
    assert await told.lines() == []  # within the minute: held back
    chat.clock.now += 59
    assert await told.lines() == []
    chat.clock.now += 1
    assert await told.lines() == ["-> alice: #1 progress: v2 posted (by bob); #1 claimed (by bob)"]
    assert await told.lines() == []


async def test_owners_watch_their_items_by_default(chat, told):
    assert await chat.say("!claim 1", "alice")
    assert await chat.say("!done 1 merged", "ijc")  # a release manager closes it
    assert await told.lines() == ["-> alice: #1 done (by ijc)"]
    told.chat.dispatcher.config = told.chat.config.model_copy(update={"notify_owners": False})
    chat.clock.now += 60
    assert await chat.say("!reopen 1", "ijc")
    assert await told.lines() == []


async def test_unwatch_silences_an_item_owned_or_watched(chat, told):
    assert await chat.say("!claim 1", "alice")
    assert await chat.say("!unwatch 1", "alice") == "You no longer watch #1."
    assert await chat.say("!status 1 patch posted", "bob")
    assert await told.lines() == []
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 v2", "bob")
    assert await told.lines() == ["-> alice: #1 progress: v2 (by bob)"]


async def test_watch_off_silences_everything_until_on(chat, told):
    assert await chat.say("!watch 1", "alice")
    assert "no changes until !watch on" in await chat.say("!watch off", "alice")
    assert await chat.say("!status 1 patch posted", "bob")
    assert await told.lines() == []
    assert await chat.say("!watch on", "alice")
    assert await chat.say("!status 1 v2", "bob")
    assert await told.lines() == ["-> alice: #1 progress: v2 (by bob)"]


async def test_only_a_logged_in_identity_may_watch(chat, told):
    answer = await chat.say("!watch 1", "alice", authenticated=False)
    assert answer.startswith("Log in to your account to watch items")
    assert await chat.say("!status 1 patch posted", "bob")
    assert await told.lines() == []


async def test_a_refused_change_tells_nobody(chat, told):
    assert await chat.say("!claim 1", "alice")
    assert "Only the owners" in await chat.say("!done 1", "bob")
    assert await told.lines() == []


async def test_kinds_of_change(chat, told):
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!watch 3", "alice")
    for line in ("!claim 1", "!unclaim 1", "!nice 1", "!dup 3 1"):
        assert await chat.say(line, "ijc")
    assert await told.lines() == [
        "-> alice: #1 claimed (by ijc); #1 unclaimed (by ijc); #1 moved to nice to have (by ijc); "
        "#1 given to Jinsong Liu (by ijc); #3 duplicated (by ijc); #3 unclaimed (by ijc)"]


async def test_a_transport_that_cannot_reach_drops_the_notice(chat):
    class Mute(Transport):
        name = "console"

        async def start(self, dispatcher): ...
        async def stop(self): ...
        async def post(self, room, reply): ...

    notifier = Notifier([Mute()], clock=chat.clock)
    assert not await Mute().notify("console:alice", text("x"))
    chat.dispatcher.on_changes = notifier.add
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 x", "bob")
    assert await notifier.flush() == 0
    assert notifier._pending == {}


async def test_one_batch_holds_a_bounded_number_of_lines(chat, told):
    import todobot.bot.notify as notify
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!status 1 first", "bob")
    assert len(await told.lines()) == 1
    for n in range(notify.MAX_LINES + 5):
        assert await chat.say(f"!status 1 step {n}", "bob")
    chat.clock.now += 60
    (line,) = await told.lines()
    assert line.count("#1 progress") == notify.MAX_LINES and line.endswith("; and 5 more")


async def test_watches_survive_in_the_database(chat, told):
    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!watch off", "alice")
    async with chat.repo.session("test", write=False) as s:
        alice = await s.person_of("console:alice")
        assert await s.watched(alice.id) == [1] and await s.watch_is_off(alice.id)


async def test_a_mails_kept_actions_are_told_its_undone_ones_not(chat, told):
    from tests.test_mail_steps import mail_msg

    assert await chat.say("!watch 1", "alice")
    assert await chat.say("!watch 3", "alice")
    assert await chat.say("!claim 1", "bob")
    assert await told.lines() == ["-> alice: #1 claimed (by bob)"]
    chat.clock.now += 60
    d = chat.dispatcher

    async def writes_then_fails(ctx, done):
        await ctx.s.update(await ctx.item(3), progress="half-written")
        raise RuntimeError("boom")

    replies = await d.run_steps(mail_msg("<w1@x>"), [d.command_step("!status 1 v3 posted"),
                                                     writes_then_fails])
    assert [r.outcome for r in replies] == ["changed", "error"]
    assert await told.lines() == ["-> alice: #1 progress: v3 posted (by jan@suse.com)",
                                  "-> bob: #1 progress: v3 posted (by jan@suse.com)"]  # the owner


async def test_a_mail_sender_is_not_told_of_their_own_change(chat):
    """A mail's changes are recorded as "mail:ADDR via <Message-ID>": still the sender's own,
    so an owner who claims and updates by mail is told nothing about it (others are)."""
    from tests.test_mail_steps import mail_msg

    d = chat.dispatcher
    told: list = []
    d.on_changes = told.extend
    assert await chat.say("!watch 1", "alice")
    for n, command in enumerate(["!claim 1", "!status 1 v2 posted"]):
        await d.run_steps(mail_msg(f"<own{n}@x>", authenticated=True), [d.command_step(command)],
                          actor=f"mail:jan@suse.com via <own{n}@x>")
    to = {ident for notice in told for ident in notice.identities}
    assert "mail:jan@suse.com" not in to and "console:alice" in to, told


class Recording(Transport):
    """A transport that keeps what it is asked to notify, and whether it was stopped by then."""
    name = "console"

    def __init__(self, *, hang: bool = False) -> None:
        self.told: list[tuple[str, str, bool]] = []
        self.stopped = False
        self.hang = hang
        self.first = asyncio.Event()

    async def start(self, dispatcher): ...

    async def stop(self):
        self.stopped = True

    async def post(self, room, reply): ...

    async def notify(self, identity, reply):
        self.first.set()
        if self.hang and self.told:
            await asyncio.Event().wait()  # a network that never answers
        self.told.append((identity, reply.plain, self.stopped))
        return True


async def test_a_stop_sends_the_notices_still_held_in_the_window(tmp_path):
    from todobot.bot.app import App
    from todobot.bot.config import parse_config
    from todobot.commands.watch import Notice

    fake = Recording()
    app = App(parse_config({"database": str(tmp_path / "w.sqlite3")}), transports=[fake],
              serve=False)
    await app.initialize()
    await app.start()
    try:
        app.notifier.add([Notice(7, ("console:alice",), "#1 claimed (by bob)")])
        await fake.first.wait()
        app.notifier.add([Notice(7, ("console:alice",), "#1 done (by bob)")])  # in the window
    finally:
        await app.stop()
    assert fake.told == [("console:alice", "#1 claimed (by bob)", False),
                         ("console:alice", "#1 done (by bob)", False)]  # before the transport closed


async def test_a_stop_waits_a_bounded_time_and_counts_what_it_drops(chat, caplog):
    from todobot.commands.watch import Notice

    fake = Recording(hang=True)
    notifier = Notifier([fake], clock=chat.clock)
    notifier.add([Notice(1, ("console:alice",), "a")])
    await notifier.flush()
    notifier.add([Notice(1, ("console:alice",), "b"), Notice(1, ("console:alice",), "c"),
                  Notice(2, ("console:bob",), "d")])
    assert await notifier.drain(timeout=0.05) == 3
    assert "3 change notices not sent" in caplog.text
    assert notifier._pending == {}
