"""A command's database work is one hand-off to the database thread, not one per statement.

Every hand-off (aiosqlite's `Connection._execute`: a queue put, a thread wake, a wake of the
event loop back) costs more than the SQLite work of a chat command; these tests count them,
so a per-statement await reintroduced on a command's path fails here.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from todobot.storage import Database, Repository
from todobot.storage.db import in_worker


class Hops:
    """Counts every call into aiosqlite's worker thread made through a database's connection."""

    def __init__(self, db: Database) -> None:
        self.count = 0
        real = db.conn._execute

        async def counted(fn, *args, **kwargs):
            self.count += 1
            return await real(fn, *args, **kwargs)

        db.conn._execute = counted  # type: ignore[method-assign]

    def take(self) -> int:
        n, self.count = self.count, 0
        return n


async def hops_of(chat, text: str, nick: str = "ijc") -> tuple[int, str | None]:
    hops = Hops(chat.db)
    reply = await chat.say(text, nick)
    return hops.take(), reply


@pytest.mark.parametrize("command", ["!show 1", "!todo", "!blockers", "!todo mine", "!release"])
async def test_a_reading_command_is_one_hand_off(chat, command):
    n, reply = await hops_of(chat, command)
    assert reply and "internal error" not in reply
    assert n == 1, f"{command} took {n} hand-offs to the database thread"


async def test_a_claim_is_one_hand_off_and_writes(chat):
    n, reply = await hops_of(chat, "!claim 1", "ken")
    assert reply.startswith("#1 claimed by ken (was unclaimed)")
    assert n == 1
    assert (await chat.item(1)).owners == ["ken"]
    assert [c.field for c in await chat.history(1)][-1] == "owners"


async def test_a_refused_command_rolls_back_in_its_one_hand_off(chat):
    # ken has no person yet: `!claim` for someone else creates ken's, then is refused.
    n, reply = await hops_of(chat, "!claim 1 for Someone Else", "ken")
    assert "Only release managers" in reply
    assert n == 1
    async with chat.repo.session("test", write=False) as s:
        assert await s.person_of("console:ken") is None
        assert await s.person_named("Someone Else") is None


async def test_work_that_waits_on_anything_else_is_refused_and_rolled_back(chat):
    async def work(s):
        await s.update(await s.get(1), progress="half done")
        await asyncio.sleep(0)  # suspends: it cannot run inside the database thread
        return "unreachable"

    with pytest.raises(RuntimeError, match="only the session may be awaited"):
        await chat.repo.run("test", work)
    assert (await chat.item(1)).progress == ""


async def test_run_works_in_the_worker_thread_on_its_connection(tmp_path):
    """What `in_worker` relies on in aiosqlite: if a new aiosqlite renames or changes
    `Connection._execute` or `Connection._conn`, this fails before anything else does."""
    db = await Database.open(tmp_path / "t.sqlite3")
    try:
        where = await db.run(lambda c: (threading.get_ident(), c))
        assert where[0] == db.conn._thread.ident != threading.get_ident()
        assert isinstance(where[1], sqlite3.Connection) and where[1] is db.conn._conn
        assert await in_worker(db.conn, lambda c: c.execute("SELECT 41 + 1").fetchone()[0]) == 42
        hops = Hops(db)
        await db.run(lambda c: [c.execute("SELECT 1").fetchone() for _ in range(10)])
        assert hops.take() == 1
    finally:
        await db.close()


async def test_page_is_what_items_and_counts_give(chat):
    async with chat.repo.session("test") as s:
        rel = await s.require_release("4.2")
        for n in range(7):
            await s.add_item(rel, area="docs" if n % 2 else "tools", severity="nice" if n % 3 else "blocker",
                             title=f"extra {n}", owners=[] if n % 4 else [1], state="done" if n == 5 else "open")
        cases = [dict(), dict(states=None), dict(severity="blocker"), dict(area="DOCS"),
                 dict(owner=1), dict(unclaimed=True), dict(area="nowhere")]
        for filters in cases:
            for limit in (1, 3, 50):
                items, total, unclaimed = await s.page(rel, limit=limit, **filters)
                assert [i.id for i in items] == [i.id for i in await s.items(rel, limit=limit, **filters)]
                assert total == await s.count_items(rel, **filters)
                assert unclaimed == await s.count_items(rel, **{**filters, "unclaimed": True})


async def test_import_is_one_hand_off(tmp_path, monkeypatch):
    from todobot.bot.mail_import import import_list
    from todobot.storage.models import ListItem, ReleaseList

    path = tmp_path / "i.sqlite3"
    lst = ReleaseList("9.9", [], [ListItem(area="tools", severity="blocker", title=f"t{i}",
                                           owners=["Ann", "Bob"], notes=["n"]) for i in range(20)])
    calls: list[int] = []
    real_open = Database.open

    async def open_counted(p, **kw):
        db = await real_open(p, **kw)
        calls.append(0)
        hops = Hops(db)
        real_close = db.close

        async def close():
            calls[-1] = hops.take()
            await real_close()
        db.close = close  # type: ignore[method-assign]
        return db

    monkeypatch.setattr(Database, "open", open_counted)
    result = await import_list(str(path), lst, "9.9")
    monkeypatch.undo()
    assert result.stats["added"] == 20
    assert calls == [1]
    db = await Database.open(path)
    try:
        async with Repository(db).session("t", write=False) as s:
            assert len(await s.items(await s.require_release("9.9"))) == 20
    finally:
        await db.close()


async def test_a_task_cancelled_while_its_begin_runs_leaves_no_transaction_open(tmp_path):
    """BEGIN runs in the worker thread even when the task awaiting it is cancelled; the
    transaction must be rolled back, not left open on the one shared connection."""
    db = await Database.open(tmp_path / "c.sqlite3")
    repo = Repository(db)

    async def work():
        async with repo.session("t") as s:
            await s.release("4.2")

    try:
        task = asyncio.create_task(work())
        await asyncio.sleep(0)  # the task now awaits its BEGIN, queued for the worker thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await db.run(lambda c: c.in_transaction) is False
        async with repo.session("t") as s:  # and the next session starts as usual
            await s.create_release("4.2")
    finally:
        await db.close()
