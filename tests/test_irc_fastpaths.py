"""The shortcuts of the IRC text path give what the long way gives."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from todobot.bot.irc import text as irc_text
from todobot.bot.irc.text import ITEM_SEP, MIN_BUDGET, Piece, _neutral, _neutralised, _pack, _pieces

# Text as replies carry it: mostly plain, with bold toggles, controls, spaces, wide characters.
texts = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(
    [" ", "  ", "\x02", "\x03", "\x034,5", "\t", "\r\n", "é", "·", "\U0001F600", "\ud800", "a" * 40])),
    max_size=20).map("".join)


@settings(deadline=None)
@given(text=texts, budget=st.integers(min_value=MIN_BUDGET, max_value=300))
def test_text_that_fits_is_one_piece_as_the_long_way_finds(text, budget):
    assert irc_text.split_text_with_joins(text, budget) == _pieces(text, budget)


@settings(deadline=None)
@given(text=texts, slack=st.integers(min_value=-3, max_value=3))
def test_text_at_the_edge_of_the_budget_splits_as_the_long_way_splits(text, slack):
    budget = max(MIN_BUDGET, len(text.encode("utf-8", "surrogatepass")) + slack)
    assert irc_text.split_text_with_joins(text, budget) == _pieces(text, budget)


def test_text_that_fits_skips_the_walk_over_its_characters(monkeypatch):
    def walk(text: str, budget: int) -> list[Piece]:
        raise AssertionError("walked")
    monkeypatch.setattr(irc_text, "_pieces", walk)
    text = "\x02#12\x02 é " + "x" * 100
    assert irc_text.split_text_with_joins(text, len(text.encode())) == [Piece(text, text, "")]
    assert irc_text.split_text(text, 200) == [text]


@settings(deadline=None)
@given(text=texts)
def test_neutral_text_is_what_the_full_cleaning_gives(text):
    assert _neutral(text) == _neutralised(text)


def _pack_recounting(head: str, entries: list[str], budget: int) -> list[str]:
    """`_pack` as it was: the line's bytes counted again for every entry."""
    def size(s: str) -> int:
        return len(s.encode("utf-8", "replace"))
    lines: list[str] = []
    current = head
    for entry in entries:
        if not current:
            current = entry
        elif size(current) + len(ITEM_SEP.encode()) + size(entry) <= budget:
            current += (" " if current is head else ITEM_SEP) + entry
        else:
            lines.append(current)
            current = entry
    if current:
        lines.append(current)
    return lines


@settings(deadline=None)
@given(head=texts, entries=st.lists(texts, max_size=30), budget=st.integers(min_value=1, max_value=200))
def test_pack_counts_bytes_as_it_grows_like_counting_again(head, entries, budget):
    assert _pack(head, entries, budget) == _pack_recounting(head, entries, budget)
