"""ISUPPORT tokens, message-tag values and CTCP requests, read as the `irc` package read them
(todobot parsed them with it before: tests/test_import_weight.py says why no longer)."""

from __future__ import annotations

import pytest

from todobot.bot.irc_syntax import Features, ctcp_requests, tag_value


def test_isupport_tokens_become_attributes():
    f = Features()
    for token in ("WHOX", "NICKLEN=30", "CHANTYPES=", "CASEMAPPING=ascii", "MODES=4", "AWAYLEN=\u00b2"):
        f.load(token)
    assert (f.whox, f.nicklen, f.chantypes, f.casemapping, f.modes) == (True, 30, True, "ascii", 4)
    assert f.awaylen == "\u00b2"  # a digit to str.isdigit, not a number: kept as text
    f.load("-NICKLEN")
    f.load("-NOSUCH")
    assert not hasattr(f, "nicklen") and getattr(f, "nicklen", 16) == 16


@pytest.mark.parametrize("raw,value", [
    ("", ""), ("yes", "yes"), (r"red fox\:green eggs", "red fox;green eggs"), (r"a\sb", "a b"),
    (r"a\nb\rc", "a\nb\rc"), (r"a\\nb", r"a\nb"), (r"a\bb", "abb"), ("a:b", "a:b"), ("end\\", "end\\"),
])
def test_tag_values_are_unescaped(raw, value):
    assert tag_value(raw) == value


@pytest.mark.parametrize("body,requests", [
    ("hello", []),
    ("\x01VERSION\x01", [("VERSION", "")]),
    ("\x01PING 123 456\x01", [("PING", "123 456")]),
    ("\x01ACTION waves\x01 text \x01CLIENTINFO\x01", [("ACTION", "waves"), ("CLIENTINFO", "")]),
    ("\x01VERSION", []),  # never closed: text
    ("a\x01PING x\x01b\x01", [("PING", "x")]),
    ("\x01PING \x100\x10n\x10\x10\x10z\x01", [("PING", "\x00\n\x10z")]),  # low-level quoting undone
])
def test_ctcp_requests(body, requests):
    assert ctcp_requests(body) == requests
