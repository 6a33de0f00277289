"""The one rule for what becomes a clickable link, shared by every HTML renderer (the status
page, the Matrix renderer, the HTML and Markdown digests).

Only http(s) URLs with a host and no whitespace or control characters are links; anything
else (`javascript:`, `data:`, a bare word) is shown as text. A mail message-id (`<id@host>`)
becomes a link only through a configured archive URL such as
`https://lore.kernel.org/r/{msgid}`.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlsplit

# URLs and <message-id>s as people write them in items and mails (what !link accepts).
LINK = re.compile(r"(?:https?|ftp)://[^\s<>\"]+|<[^\s<>@]+@[^\s<>]+>")
URL_IN_TEXT = re.compile(r"https?://[^\s<>\"]+")
MESSAGE_ID = re.compile(r"<([^\s<>@]+@[^\s<>]+)>")
_LINKABLE = re.compile(f"{URL_IN_TEXT.pattern}|{MESSAGE_ID.pattern}")
_TRAILING = ".,;:!?')"  # punctuation after a URL in prose belongs to the prose


def safe_url(url: str | None) -> str | None:
    """The URL when it is an http(s) link with a host, else None (shown as plain text)."""
    if not url:
        return None
    url = url.strip()
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


def message_id_url(link: str, archive_url: str | None) -> str | None:
    """`<20120730.1234@host>` → the archive's page for it, when an archive is configured."""
    m = MESSAGE_ID.fullmatch(link.strip())
    if m is None or not archive_url:
        return None
    return safe_url(archive_url.replace("{msgid}", quote(m.group(1), safe="@!$&'()*+,;=:~._-")))


def segments(text: str, archive_url: str | None = None) -> list[tuple[str, str | None]]:
    """Prose split into (text, url) pieces: url is set for the pieces that are safe links (and
    for message-ids, with an archive URL). Renderers escape every piece themselves."""
    out: list[tuple[str, str | None]] = []
    pos = 0
    pattern = _LINKABLE if archive_url else URL_IN_TEXT
    for m in pattern.finditer(text):
        piece = m.group(0)
        if piece.startswith("<"):
            target = message_id_url(piece, archive_url)
        else:
            piece = piece.rstrip(_TRAILING)
            target = safe_url(piece)
        if target is None:
            continue
        if m.start() > pos:
            out.append((text[pos:m.start()], None))
        out.append((piece, target))
        pos = m.start() + len(piece)
    if pos < len(text):
        out.append((text[pos:], None))
    return out


__all__ = ["LINK", "MESSAGE_ID", "URL_IN_TEXT", "message_id_url", "safe_url", "segments"]
