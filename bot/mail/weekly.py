"""The body of the weekly mail: the one place that decides its layout.

For now the 4.2 writer (the digest's plain-text form, whose list part is the release mail
format itself); when releases carry their own mail layout, this is where it is chosen.
"""

from __future__ import annotations

from ...commands.render_digest import render_text
from ...storage.digest_data import DigestData


def weekly_body(data: DigestData, *, status_url: str | None = None) -> str:
    return render_text(data, status_url=status_url)
