"""Links in item text: what counts as one, and which may become a clickable link.

One rule for every renderer (Matrix HTML, the status page, the digest's HTML and Markdown):
only http and https URLs with a host are links; anything else (javascript:, data:, a bare
word) is shown as text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# URLs and <message-id>s as people write them in items and mails.
LINK = re.compile(r"(?:https?|ftp)://[^\s<>\"]+|<[^\s<>@]+@[^\s<>]+>")


def safe_url(url: str) -> str | None:
    """The URL when it is an http(s) link with a host, else None (shown as plain text)."""
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
