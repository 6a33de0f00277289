"""Plain-language claims: "I can take this one", "I'll take #12", "mine".

Only whole short messages match; a sentence that merely contains "take" ("I'll take a look
at the logs") does not, so ordinary conversation never claims anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LEAD = r"(?:(?:ok(?:ay)?|sure|yes|yep|yeah|fine|right|alright|np|no problem)[,.!]*\s+)*"
_ADDRESS = r"(?:[\w\[\]\\`^{}|-]{1,32}[:,]\s+)?"  # "todobot: ..." or "George, ..."
_VERB = (r"(?:i\s+can\s+take|i\s*'?\s*ll\s+take|i\s+will\s+take|let\s+me\s+take|i\s+could\s+take"
         r"|i\s+can\s+do|i\s*'?\s*ll\s+do|i\s+will\s+do|i\s*'?\s*ll\s+handle|i\s+can\s+handle"
         r"|i\s+will\s+handle|i\s*'?\s*ll\s+look\s+after|i\s*'?\s*m\s+on|i\s+am\s+on)")
_OBJECT = r"(?:(?:this|that|it)(?:\s+one)?|(?:item\s+)?#(?P<id>\d{1,12})|(?:item\s+)(?P<id2>\d{1,12}))"
_TAIL = r"(?:\s+(?:please|then|too|as\s+well))?\s*[.!]*\s*(?:[:;]-?[)D]|🙂|👍)?"
_CLAIM = re.compile(
    rf"^{_ADDRESS}{_LEAD}(?:{_VERB}\s+{_OBJECT}|(?P<mine>mine)(?:\s+#(?P<id3>\d{{1,12}}))?){_TAIL}$",
    re.IGNORECASE)


@dataclass(frozen=True)
class ClaimIntent:
    item_id: int | None  # named in the message, else None: "the one we are talking about"


def claim_intent(text: str) -> ClaimIntent | None:
    text = " ".join(text.split())
    if len(text) > 120:
        return None
    m = _CLAIM.match(text)
    if not m:
        return None
    raw = m.group("id") or m.group("id2") or m.group("id3")
    return ClaimIntent(int(raw) if raw else None)
