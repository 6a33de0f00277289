"""The `!more` store both chat transports keep (bot/pending.py)."""

from __future__ import annotations

from todobot.bot.pending import PendingAnswers

from tests.harness import Clock


def test_pages_through_the_rest_and_forgets_it_at_the_end():
    store: PendingAnswers[str] = PendingAnswers(10)
    store.remember(("#c", "ian"), ["a", "b", "c"], meta=("PRIVMSG", "#c"))
    pending = store.get(("#c", "ian"))
    assert pending is not None and pending.parts == ["a", "b", "c"] and pending.meta == ("PRIVMSG", "#c")
    assert store.get(("#c", "jan")) is None and store.get(("#d", "ian")) is None
    assert store.advance(("#c", "ian"), 2) == ["c"]
    assert store.get(("#c", "ian")).parts == ["c"]
    assert store.advance(("#c", "ian"), 2) == []
    assert store.get(("#c", "ian")) is None and len(store) == 0


def test_an_answer_waits_for_the_ttl_and_each_page_restarts_it():
    clock = Clock(0.0)
    store: PendingAnswers[str] = PendingAnswers(10, ttl=100, clock=clock)
    store.remember("k", ["a", "b", "c"])
    clock.now = 90
    assert store.advance("k", 1) == ["b", "c"]
    clock.now = 180  # 90 s after the last page: still there
    assert store.get("k").parts == ["b", "c"]
    clock.now = 281
    assert store.get("k") is None and len(store) == 0


def test_old_answers_are_dropped_when_new_ones_come():
    clock = Clock(0.0)
    store: PendingAnswers[str] = PendingAnswers(10, ttl=100, clock=clock)
    store.remember("old", ["a"])
    clock.now = 150
    store.remember("new", ["b"])
    assert len(store) == 1 and store.get("new") is not None


def test_at_most_limit_answers_the_oldest_go_first():
    store: PendingAnswers[str] = PendingAnswers(2)
    store.remember("a", ["1"])
    store.remember("b", ["2"])
    store.remember("a", ["3"])  # a new answer for "a": now the newest
    store.remember("c", ["4"])
    assert store.get("b") is None
    assert store.get("a").parts == ["3"] and store.get("c").parts == ["4"]
    store.remember("c", ["5"])  # replacing one's answer makes no room at another's cost
    assert store.get("a").parts == ["3"] and store.get("c").parts == ["5"]


def test_the_stored_parts_are_a_copy():
    parts = ["a", "b"]
    store: PendingAnswers[str] = PendingAnswers(2)
    store.remember("k", parts)
    parts.clear()
    assert store.get("k").parts == ["a", "b"]
