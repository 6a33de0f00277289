"""The small grammars inside IRC lines: ISUPPORT tokens, message-tag values, CTCP.

Here rather than from the `irc` package: importing any of its modules runs its __init__,
which imports importlib.metadata (and email, zipfile...) for its version: ~1.4 MB of RSS
for ~30 lines of parsing (bench/memory.py).
"""

from __future__ import annotations

import re

CTCP_DELIMITER = "\x01"
_TAG_ESCAPE = re.compile(r"\\(.)")
_TAG_UNESCAPED = {":": ";", "s": " ", "n": "\n", "r": "\r", "\\": "\\"}
_LOW_QUOTE = re.compile("\x10(.)")
_LOW_UNQUOTED = {"0": "\x00", "n": "\n", "r": "\r", "\x10": "\x10"}


class Features:
    """What the server announced in ISUPPORT (005), as lowercase attributes: `nicklen` 30,
    `chantypes` "#", `whox` True (a bare token, or one with an empty value)."""

    def load(self, token: str) -> None:
        if token.startswith("-"):  # the server withdrew it
            self.__dict__.pop(token[1:].lower(), None)
            return
        name, _, value = token.partition("=")
        setattr(self, name.lower(), True if not value else int(value) if value.isascii() and value.isdigit()
                else value)


def tag_value(raw: str) -> str:
    """A message tag's value with its escapes undone (IRCv3 message-tags): \\: \\s \\\\ \\r \\n,
    any other escaped character as itself."""
    return _TAG_ESCAPE.sub(lambda m: _TAG_UNESCAPED.get(m.group(1), m.group(1)), raw)


def ctcp_requests(body: str) -> list[tuple[str, str]]:
    """(tag, data) of each CTCP request in a message body, after undoing the low-level quoting
    (\\x10 escapes); text outside the \\x01 pairs is not a request."""
    body = _LOW_QUOTE.sub(lambda m: _LOW_UNQUOTED.get(m.group(1), m.group(1)), body)
    chunks = body.split(CTCP_DELIMITER)
    # Odd chunks sit between a pair of delimiters; a last one without its closing delimiter is text.
    return [(tag, data) for chunk in chunks[1:len(chunks) - 1:2]
            for tag, _, data in [chunk.partition(" ")]]
