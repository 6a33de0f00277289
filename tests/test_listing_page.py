"""A listing's page on a large list: what the SQL plan does and that the page is what the
whole list would show."""

from __future__ import annotations

import sqlite3
import time

import pytest

from todobot.storage import Database
from todobot.storage.repository import Session, _drive


@pytest.fixture
def listdb(tmp_path):
    """A migrated file with two releases of 120 mixed items each (the page is 50): blockers
    scattered among nice ones, some done, some owned by one or two people (in either order),
    one owned by a person id that does not exist."""
    import asyncio
    path = tmp_path / "list.sqlite3"

    async def make() -> None:
        db = await Database.open(path)
        await db.close()
    asyncio.run(make())
    conn = sqlite3.connect(path, isolation_level=None)
    conn.row_factory = sqlite3.Row
    s = Session("test", time.time(), raw=conn)
    conn.execute("BEGIN")
    ann, bea = (_drive(s.owner_named(n)).id for n in ("Ann", "Bea"))
    for name in ("1.0", "2.0"):
        rel = _drive(s.create_release(name))
        for i in range(120):
            owners = [[], [ann], [bea, ann], [ann, bea]][i % 4]
            item = _drive(s.add_item(rel, area=("tools", "docs", "xl")[i % 3],
                                     severity="blocker" if i % 7 == 3 else "nice",
                                     title=f"{name} item {i}", owners=owners,
                                     state="done" if i % 5 == 0 else "open"))
            if i == 11:
                conn.execute("UPDATE items SET owners = ? WHERE id = ?", (f"[{bea}, 999]", item.id))
    conn.execute("COMMIT")
    yield conn, s
    conn.close()


def _plans(conn: sqlite3.Connection, work) -> list[tuple[str, str]]:
    """(statement, its query plan) for every statement `work()` runs on `conn`."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        work()
    finally:
        conn.set_trace_callback(None)
    return [(sql, " / ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql)))
            for sql in seen if sql.lstrip().upper().startswith("SELECT")]


@pytest.mark.parametrize("filters", [{}, {"severity": "blocker"}])
def test_a_full_page_is_read_from_the_index_without_sorting_the_release(listdb, filters):
    conn, s = listdb
    rel = _drive(s.require_release("2.0"))
    plans = _plans(conn, lambda: _drive(s.page(rel, limit=10, **filters)))
    page = next(p for sql, p in plans if "FROM items" in sql and "LIMIT" in sql)
    count = next(p for sql, p in plans if "COUNT(*)" in sql)
    assert "items_listing" in page and "TEMP B-TREE" not in page, page
    assert "COVERING INDEX items_listing" in count, count


@pytest.mark.parametrize("filters", [{}, {"severity": "blocker"}, {"area": "DOCS"}, {"states": None},
                                     {"unclaimed": True}, {"owner": 2}])
@pytest.mark.parametrize("limit", [5, 50, 500])
def test_the_page_is_the_head_of_the_whole_list_blockers_first(listdb, filters, limit):
    conn, s = listdb
    rel = _drive(s.require_release("2.0"))
    everything = _drive(s.items(rel, **filters))
    expected = sorted(everything, key=lambda it: (it.severity != "blocker", it.id))
    items, total, unclaimed = _drive(s.page(rel, limit=limit, **filters))
    assert items == expected[:limit]  # owners' names and ids included, item by item
    assert (total, unclaimed) == (len(expected), sum(not it.owner_ids for it in expected))
    assert _drive(s.page(rel, limit=limit, count_unclaimed=False, **filters)) == (
        expected[:limit], len(expected), None)


def test_owners_names_keep_their_order_and_skip_unknown_ids(listdb):
    conn, s = listdb
    rel = _drive(s.require_release("1.0"))
    items, _, _ = _drive(s.page(rel, limit=120, states=None))
    by_title = {it.title: it for it in items}
    assert by_title["1.0 item 2"].owners == ["Bea", "Ann"]
    assert by_title["1.0 item 3"].owners == ["Ann", "Bea"]
    assert by_title["1.0 item 11"].owners == ["Bea"]
    assert by_title["1.0 item 11"].owner_ids[1] == 999
    assert by_title["1.0 item 11"] == _drive(s.get(by_title["1.0 item 11"].id))
