"""Milestone dates as release mails write them: "30 July", "2012-07-30", "Weekly", "Mid/Late April".

`parse_when` reads a date when there is one; `when_problem` says why a `when` is neither a date
nor one of the free-text forms a timeline uses.
"""

from __future__ import annotations

import re
from datetime import date, datetime

_WHEN_FORMATS = ("%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y", "%Y-%m-%d")
_ORDINAL = re.compile(r"(\d)(st|nd|rd|th)\b", re.I)


def parse_when(text: str, near: date, *, not_before: date | None = None) -> date | None:
    """A milestone's `when` as a date, or None ("Weekly", "Expected to last 6-8 weeks").

    A date without a year takes the year that puts it nearest to `near`, or the first one on
    or after `not_before` (the previous milestone) when that is given."""
    t = _ORDINAL.sub(r"\1", " ".join(text.replace(",", " ").split()))
    for fmt in _WHEN_FORMATS:
        try:
            return datetime.strptime(t, fmt).date()
        except ValueError:
            pass
    for fmt in ("%d %B %Y", "%d %b %Y", "%B %d %Y", "%b %d %Y"):
        try:
            base = datetime.strptime(f"{t} 2000", fmt).date()  # 2000: 29 February parses
            break
        except ValueError:
            continue
    else:
        return None
    candidates = []
    for year in (near.year - 1, near.year, near.year + 1, near.year + 2):
        try:
            candidates.append(base.replace(year=year))
        except ValueError:  # 29 February in a common year
            pass
    if not_before is not None:
        later = [d for d in candidates if d >= not_before]
        if later:
            return later[0]
    return min(candidates, key=lambda d: abs((d - near).days)) if candidates else None


_MONTH = (r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
          r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)")
_PART = r"(?:early|mid|late|end|start)(?:[/-](?:early|mid|late|end))?"
_FREE = re.compile(rf"(?:weekly|daily|monthly|tbd|tba|ongoing|soon|{_PART}(?: of)? {_MONTH}(?: [0-9]{{4}})?"
                   rf"|{_MONTH}(?: [0-9]{{4}})?|q[1-4](?: [0-9]{{4}})?)", re.I)


def is_free_form(text: str) -> bool:
    """"Weekly", "Mid/Late April", "Q3 2012": timeline words that are not one day."""
    return _FREE.fullmatch(" ".join(text.split())) is not None


def when_problem(text: str) -> str | None:
    """None when `text` can be a milestone's date, else why not (for the person typing it)."""
    if parse_when(text, date.today()) is not None or is_free_form(text):
        return None
    return (f"{text!r} is not a date: write it like 30 July, 2012-07-30, Weekly or "
            "Mid/Late April")
