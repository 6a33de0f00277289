"""Items read back with their owners' names: in the stored order, from every reader, for reads
of many owners at once, leaving out an id with no person (a database an older version wrote)."""

from __future__ import annotations

import pytest

from todobot.storage import Database, Repository
from tests.harness import ids


@pytest.fixture
async def session(tmp_path):
    """One session on a fresh database, closed after the test."""
    db = await Database.open(tmp_path / "t.sqlite3")
    try:
        async with Repository(db).session("t") as s:
            yield s
    finally:
        await db.close()


async def test_every_reader_names_the_owners_in_order(session):
    rel = await session.create_release("4.2")
    alice, bob, carol = await ids(session, "Alice", "Bob", "Carol")
    owners = [carol, alice, bob]  # not in the order of their ids
    top = await session.add_item(rel, area="tools", severity="nice", title="top")
    sub = await session.add_item(rel, area="tools", severity="nice", title="sub", owners=owners,
                           parent=top.id)
    await session.execute("UPDATE items SET owners = ? WHERE id = ?",
                    (f"[{owners[0]}, 999, {owners[1]}]", top.id))
    reads = [await session.get(sub.id), (await session.get_many([sub.id]))[sub.id],
             (await session.items(rel))[1], (await session.items(rel, limit=5))[1],
             (await session.children(top.id))[0]]
    for it in reads:
        assert (it.owners, it.owner_ids) == (["Carol", "Alice", "Bob"], owners)
    damaged = await session.get(top.id)
    assert damaged.owners == ["Carol", "Alice"] and damaged.owner_ids == [owners[0], 999, owners[1]]


async def test_a_read_of_more_owners_than_one_query_may_name(session):
    rel = await session.create_release("4.2")
    for n in range(620):  # past SQLite's variable limit of one query's 500 chunk
        await session.add_item(rel, area="tools", severity="nice", title=f"item {n}",
                         owners=await ids(session, f"Dev {n}", "Lead"))
    items = await session.items(rel)
    assert [it.owners for it in items] == [[f"Dev {n}", "Lead"] for n in range(620)]
