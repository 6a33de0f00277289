"""Day one: a release started in chat (`!release new NAME`), the room that keeps it across a
restart, the project's name instead of anyone else's, milestones as the mail marked them and
an import as the digest's baseline."""

from __future__ import annotations

from pathlib import Path

import pytest

from todobot.bot.mail_import import read_list
from todobot.commands.messages import Sender
from todobot.storage import Database, Repository, layouts
from todobot.storage.digest_data import collect
from todobot.storage.mailfile import read_mail_file
from todobot.storage.timeline import marks, release_timeline
from tests.harness import Chat, ts

ADMIN = "console:ijc"
DATA = Path(__file__).resolve().parent / "data"
SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


@pytest.fixture
async def chat(tmp_path):
    c = await Chat.open(tmp_path / "d.sqlite3", admins=[ADMIN])
    yield c
    await c.close()


async def _history(chat) -> list[tuple]:
    async with chat.repo.session("t", write=False) as s:
        return [tuple(r) for r in await s._all("SELECT * FROM history ORDER BY id")]


async def test_a_release_started_in_chat_is_the_rooms_at_once(chat):
    assert "!release new NAME" in await chat.say("!releases")
    assert "!release new NAME" in await chat.say("!add core blocker boot hangs")
    assert await chat.say("!release new 2.0") == (
        "Started release 2.0; this room's release now: !add, !milestone work on it.")
    assert await chat.say("!add core blocker boot hangs") == "Added #1 (core, blockers): boot hangs"
    assert "* #1 boot hangs" in (await chat.say("!blockers")).splitlines()
    assert await chat.say("!milestone 30 July First release candidate") == \
        "Added: 30 July -- First release candidate"
    assert "30 July         -- First release candidate" in await chat.say("!release")
    assert await chat.say("!releases") == \
        "* 2.0 (this room): 1 open blocker (1 unclaimed), 0 nice to have"


async def test_only_release_managers_start_a_release(chat):
    before = await _history(chat)
    for sender in (Sender("console:mallory", "mallory"),
                   Sender("irc:net/~ijc", "ijc", authenticated=False)):  # the admin's nick only
        reply = await chat.reply("!release new 2.0", sender=sender)
        assert reply.outcome == "refused"
        assert reply.plain.startswith("Only release managers may use !release new"), reply.plain
    assert await _history(chat) == before
    assert (await chat.say("!releases", "mallory")).startswith("No releases yet")
    # Reading stays open to anyone.
    await chat.say("!release new 2.0")
    assert (await chat.say("!release", "mallory")).startswith("Release 2.0")


async def test_a_bad_or_taken_name_gets_one_line(chat):
    await chat.say("!release new 2.0-rc")
    for text, said in (("!release new 2.0/x", "'2.0/x' is not a release name"),
                       ("!release new 2.0.txt", "'2.0.txt' is not a release name"),
                       ("!release new 2.0-RC", "Release 2.0-rc exists already"),
                       ("!release new 2.0-rc", "Release 2.0-rc exists already"),
                       ("!release new", "Usage: !release [NAME] | new NAME")):
        reply = await chat.reply(text)
        assert reply.outcome == "refused", text
        assert reply.plain.startswith(said) and "\n" not in reply.plain, reply.plain
    async with chat.repo.session("t", write=False) as s:
        assert [r.name for r in await s.releases()] == ["2.0-rc"]


async def test_a_restart_keeps_the_rooms_release(tmp_path):
    path = tmp_path / "r.sqlite3"
    for step in range(3):  # three runs of the bot on one database
        chat = await Chat.open(path, admins=[ADMIN])
        try:
            if step == 0:
                await chat.say("!release new 2.0")
                await chat.say("!add core blocker boot hangs")
            elif step == 1:  # newer releases, started elsewhere: the newest is not the room's
                await chat.say("!release new 3.0", room="other")
                assert (await chat.say("!release", room="other")).startswith("Release 3.0")
                assert await chat.say("!release new 3.1") == \
                    "Started release 3.1; this room stays on 2.0."
                async with chat.repo.session("t") as s:
                    await s.create_release("4.0")
            else:
                assert (await chat.say("!release")).startswith("Release 2.0: 1 open blocker")
                assert (await chat.say("!releases")).splitlines()[-1].startswith("* 2.0 (this room)")
                assert (await chat.say("!release", room="other")).startswith("Release 3.0")
        finally:
            await chat.close()


async def test_the_configs_release_wins(tmp_path):
    chat = await Chat.open(tmp_path / "c.sqlite3", admins=[ADMIN], default_release="9.0")
    try:
        assert "!release new 9.0" in await chat.say("!add core blocker x")
        assert await chat.say("!release new 2.0") == \
            "Started release 2.0; this room stays on 9.0, as the config says."
        assert await chat.say("!release new 9.0") == \
            "Started release 9.0; this room's release, as the config says."
        assert (await chat.say("!add core blocker x")).startswith("Added #1")
        async with chat.repo.session("t", write=False) as s:
            assert await s.room_release("console", "console") is None
    finally:
        await chat.close()


# -- the project's name ---------------------------------------------------------------------------


async def test_the_project_names_the_digest_and_the_weekly_mail(tmp_path):
    chat = await Chat.open(tmp_path / "p.sqlite3", admins=[ADMIN], project="Acme")
    try:
        await chat.say("!release new 2.0")
        assert (await chat.say("!digest")).startswith("Acme 2.0 TODO digest: 0 open blockers")
        async with chat.repo.session("t", write=False) as s:
            rel = await s.require_release("2.0")
            data = await collect(s, rel, since=0, project="Acme")
            assert data.subject() == "Acme 2.0 TODO"
            assert data.subject("{project} {release} plan") == "Acme 2.0 plan"
            bare = await collect(s, rel, since=0)
            assert bare.subject() == "2.0 TODO" and bare.subject("{project} {release}") == "2.0"
    finally:
        await chat.close()


async def test_an_imported_mails_subject_is_the_releases_own(tmp_path):
    lst, _, _ = read_list(str(DATA / "xen-4.3-flowed.eml"), "4.3")  # as `todobot import` reads
    # A subject is one line: the header parser unfolds it, and controls never reach a header.
    assert read_mail_file(b"Subject: 4.4\r\n plan\x07 now\r\nFrom: a@b\r\n\r\nx\n").subject == \
        "4.4 plan now"
    db = await Database.open(tmp_path / "s.sqlite3")
    try:
        async with Repository(db).session("t") as s:
            await s.import_list("4.3", lst)
            rel = await s.require_release("4.3")
            data = await collect(s, rel, since=0, project="Acme")
            assert data.subject() == "Xen 4.3 development update"  # the mail's own words
            assert data.subject("{release} status") == "4.3 status"  # the config's, if it says
    finally:
        await db.close()


# -- milestones as the mail said ------------------------------------------------------------------


async def test_milestones_are_done_only_where_the_mail_says(tmp_path):
    """A development update whose dates have all passed, without a single mark: nothing is
    DONE and nothing is WE ARE HERE, whatever today is."""
    text = (DATA / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    unmarked = text.replace("<== WE ARE HERE", "")
    db = await Database.open(tmp_path / "m.sqlite3")
    try:
        async with Repository(db, clock=lambda: ts(2026, 12, 1)).session("t") as s:
            await s.import_list("4.3", layouts.parse(unmarked, "4.3"))
            await s.import_list("4.2", layouts.parse(SEED.read_text(encoding="utf-8"), "4.2"))
            plain = await release_timeline(s, await s.require_release("4.3"))
            assert [m.name for m in plain][:2] == ["Feature freeze", "Code freezing point"]
            assert all(marks(m) == [] for m in plain), [marks(m) for m in plain]
            # The 4.2 mail's own marks stay as it wrote them: one DONE, then WE ARE HERE; the
            # freeze whose date passed is not DONE because the mail did not say so.
            seed = await release_timeline(s, await s.require_release("4.2"))
            assert [marks(m) for m in seed] == [[], [], ["DONE"], ["WE ARE HERE"]]
    finally:
        await db.close()


async def test_a_release_manager_marks_a_milestone_done(chat):
    await chat.say("!release new 2.0")
    await chat.say("!milestone 2012-01-02 Freeze")
    await chat.say("!milestone 2012-02-02 RC1")
    assert "<<" not in await chat.say("!release")  # dates long past mark nothing
    await chat.say("!milestone done Freeze")
    await chat.say("!milestone here RC1")
    lines = (await chat.say("!release")).splitlines()
    assert lines[1].endswith("<< DONE") and lines[2].endswith("<< WE ARE HERE")


# -- an import is a baseline ----------------------------------------------------------------------


async def test_the_first_digest_after_an_import_lists_changes_since_the_import(tmp_path):
    db = await Database.open(tmp_path / "b.sqlite3")
    now = [ts(2012, 8, 1, 9)]
    repo = Repository(db, clock=lambda: now[0])
    try:
        async with repo.session("cli:import") as s:
            await s.import_list("4.2", layouts.parse(SEED.read_text(encoding="utf-8"), "4.2"))
        since = ts(2012, 7, 25)  # a week before: the import is inside the digest's window
        async with repo.session("t", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=since)
            assert not data.changes, data.changes  # 19 imported items are not 19 new ones
            assert len(data.items) == 14  # what the digest lists as open instead
        now[0] = ts(2012, 8, 2, 9)
        async with repo.session("console:ijc") as s:
            rel = await s.require_release("4.2")
            added = await s.add_item(rel, area="tools", severity="blocker", title="after")
            await s.update(await s.get(1), progress="patch posted")
        async with repo.session("t", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=since)
            assert [it.id for it in data.changes.new] == [added.id]
            assert [(it.id, after) for it, _, after in data.changes.progress] == [(1, "patch posted")]
    finally:
        await db.close()


async def test_the_status_page_and_feed_carry_the_project(tmp_path):
    from todobot.bot.config import Config
    from todobot.bot.web import StatusServer
    from tests.test_web import get

    db = await Database.open(tmp_path / "w.sqlite3")
    repo = Repository(db)
    async with repo.session("t") as s:
        await s.create_release("2.0")
    pages = {}
    try:
        for project in ("Acme", None):
            server = StatusServer(repo, Config(project=project, web={"listen": "127.0.0.1:0"}))
            await server.start()
            try:
                pages[project] = [(await get(server.url + path))[2]
                                  for path in ("/", "/release/2.0", "/release/2.0/feed.atom")]
            finally:
                await server.stop()
    finally:
        await db.close()
    index, release, feed = pages["Acme"]
    assert "<title>Acme releases</title>" in index and "<h1>Acme releases</h1>" in index
    assert "<title>Acme 2.0 TODO</title>" in release
    assert "<title>Acme 2.0 TODO: changes</title>" in feed
    index, release, feed = pages[None]
    assert "<h1>todobot releases</h1>" in index and "<title>2.0 TODO</title>" in release
    assert "<title>2.0 TODO: changes</title>" in feed


def test_irc_looks_up_the_account_for_release_new():
    """Without account-tag, IRC asks services who a sender is only when the answer depends on
    it: `!release new` does, `!release` does not."""
    from todobot.bot.irc import IrcTransport

    irc = IrcTransport.__new__(IrcTransport)
    irc.prefix = "!"
    assert irc._needs_account("!release new 2.0") and irc._needs_account("!release NEW 2.0")
    assert not irc._needs_account("!release") and not irc._needs_account("!release 2.0")


def test_the_project_is_one_line_of_visible_text():
    from todobot.bot.config import ConfigError, parse_config

    assert parse_config({"project": "Acme Linux"}).project == "Acme Linux"
    for bad in ("Acme\nBcc: all@example.org", "\u200b", "Acme\u202e"):
        with pytest.raises(ConfigError, match="project is one line of visible text"):
            parse_config({"project": bad})


async def test_release_reads_and_release_new_takes_the_write_lock(chat):
    """`!release` stays a read; `!release new` takes the writer's lock (BEGIN IMMEDIATE) from
    the start, so it never has to upgrade a read under another process's write."""
    kinds = []
    run = chat.repo.run

    async def spy(actor, work, *, write=True):
        kinds.append(write)
        return await run(actor, work, write=write)
    chat.repo.run = spy
    await chat.say("!release new 2.0")
    await chat.say("!release")
    await chat.say("!release NEW 2.1")
    assert kinds == [True, False, True]
