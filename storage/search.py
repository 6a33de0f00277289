"""Full-text search over items (the repository's `Session` includes this).

The index (`items_fts`, schema step 9) holds each item's tags and title, details, notes and
links, kept current by triggers. What a person types never reaches FTS5 as query syntax: it is
cleaned as names are (`names.clean`), split into words, and each word becomes one quoted
phrase of its tokens, all of them required — so `"`, `*`, `-`, `NEAR(` and unbalanced quotes
are text, never operators, and can neither fail the query nor widen it.
"""

from __future__ import annotations

import re
from typing import Any

from .models import Item, Release
from .names import clean

# What FTS5's unicode61 tokenizer keeps in a token: letters and digits (not `_`, which it
# splits on as it does on all punctuation).
_TOKEN = re.compile(r"[^\W_]+")
# FTS5's operators, written alone as a word: dropped, since every word is required anyway.
_OPERATORS = frozenset({"AND", "OR", "NOT", "NEAR"})
# Each word is a phrase to look up: a bound on them bounds the work one question costs.
MAX_WORDS = 12
# Matches ranked by bm25 at most (see `SearchSession.search`).
RANK_ALL = 500
# Matches counted at most: past it a search says "more than COUNT_MAX". Counting every one of
# 100,000 matches of a common word costs milliseconds and tells nobody anything.
COUNT_MAX = 1000
# bm25 weights of (title, details, notes, links, rel): a word in the title says most; the
# release token is a filter, not a match.
_WEIGHTS = "10.0, 4.0, 2.0, 1.0, 0.0"
# What a person searches: never `rel`, whose tokens (`r12`) are not text anyone wrote.
_TEXT_COLUMNS = "{title details notes links}"


class BadQuery(ValueError):
    """Nothing searchable in the text, or too much of it; the message says what to do."""


def fts_query(text: str) -> str:
    """`text` as an FTS5 query: each word a quoted phrase of its tokens, all required."""
    phrases = []
    for word in clean(text).split():
        if word in _OPERATORS:
            continue
        tokens = _TOKEN.findall(word)
        if tokens:
            # Tokens hold no `"`; doubling it anyway keeps the quoting right if that changes.
            phrases.append('"' + " ".join(tokens).replace('"', '""') + '"')
    if not phrases:
        raise BadQuery("nothing to search for: give a word or two of the title, a note or a link")
    if len(phrases) > MAX_WORDS:
        raise BadQuery(f"that is {len(phrases)} words; search for at most {MAX_WORDS}")
    return " ".join(dict.fromkeys(phrases))


class SearchSession:
    """Mixed into `repository.Session`, whose helpers it uses."""

    _one: Any
    _all: Any
    _named: Any

    async def search(self, text: str, release: Release | None, *, limit: int
                     ) -> tuple[list[Item], int]:
        """The best `limit` items matching `text`, in `release` or in all releases, and how
        many match in all, counted up to COUNT_MAX + 1 (which means "more than COUNT_MAX").
        Raises BadQuery for text with nothing to search for.

        Up to RANK_ALL matches are ranked by bm25. Past that the words are common ones, whose
        bm25 says little beyond where they stand, and it costs a few µs a match: title matches
        come first, then the rest, each in id order, read only as far as the page."""
        words = fts_query(text)
        scope = f' AND rel : "r{int(release.id)}"' if release is not None else ""
        match = f"{_TEXT_COLUMNS} : ({words}){scope}"
        row = await self._one("SELECT COUNT(*) FROM (SELECT 1 FROM items_fts WHERE items_fts"
                              f" MATCH ? LIMIT {int(COUNT_MAX) + 1})", match)
        total = int(row[0])
        if total <= RANK_ALL:
            rows = await self._matching(match, f"bm25(items_fts, {_WEIGHTS}), items.id", limit)
        else:
            in_title = f"{{title}} : ({words}){scope}"
            rows = await self._matching(in_title, "items_fts.rowid", limit)
            if len(rows) < limit:
                rows += await self._matching(f"({match}) NOT ({in_title})", "items_fts.rowid",
                                             limit - len(rows))
        return await self._named(rows), total

    async def _matching(self, match: str, order: str, limit: int) -> list[Item]:
        from .repository import ITEM_COLUMNS, _item

        rows = await self._all(
            f"SELECT {ITEM_COLUMNS}, releases.name AS release_name FROM items_fts"
            " JOIN items ON items.id = items_fts.rowid JOIN releases ON releases.id = items.release_id"
            f" WHERE items_fts MATCH ? ORDER BY {order} LIMIT {int(limit)}", match)
        return [_item(r, r["release_name"]) for r in rows]
