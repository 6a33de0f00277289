"""The sync loop's small parts, without a server: backoff steps and reply fallbacks."""

from __future__ import annotations

from todobot.bot.matrix.sync import sync_backoff
from todobot.bot.matrix.render import strip_reply_fallback


def test_backoff_doubles_from_5_to_320_and_resets():
    b = sync_backoff()
    assert [b.next() for _ in range(9)] == [5, 10, 20, 40, 80, 160, 320, 320, 320]
    b.reset()
    assert b.next() == 5


def test_reply_fallback_is_stripped():
    body = "> <@todobot:example.org> Added #12 (tools, blockers): x\n> second line\n\nI can take this one"
    assert strip_reply_fallback(body) == "I can take this one"
    assert strip_reply_fallback("no quote here") == "no quote here"
    assert strip_reply_fallback("> only a quote") == "> only a quote"
