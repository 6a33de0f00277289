"""Plain-language claims: "I can take this one", "I'll take #12", "I'll take #4 and #7", "mine".

One rule for chat and mail. Only a short claim sentence matches, alone or first in its
paragraph with more said after it ("I can take this one. We have a couple of boxes to test
it on."); a sentence that merely contains "take" ("I'll take a look at the logs") does not,
and neither does a claim whose further sentences hold a reservation ("... but not before
May", "... if nobody else wants it", a question), so ordinary conversation never claims
anything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LEAD = r"(?:(?:ok(?:ay)?|sure|yes|yep|yeah|fine|right|alright|np|no problem)[,.!]*\s+)*"
_ADDRESS = r"(?:[\w\[\]\\`^{}|-]{1,32}[:,]\s+)?"  # "todobot: ..." or "George, ..."
_VERB = (r"(?:i\s+can\s+take|i\s*'?\s*ll\s+take|i\s+will\s+take|let\s+me\s+take|i\s+could\s+take"
         r"|i\s+can\s+do|i\s*'?\s*ll\s+do|i\s+will\s+do|i\s*'?\s*ll\s+handle|i\s+can\s+handle"
         r"|i\s+will\s+handle|i\s*'?\s*ll\s+look\s+after|i\s*'?\s*m\s+on|i\s+am\s+on)")
_REF = r"#\d{1,12}"
# "#4", "#4 and #7", "#4, #7 and #9", "#4 & #7": every item named is claimed.
_REFS = rf"{_REF}(?:\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*){_REF}){{0,9}}"
_OBJECT = (rf"(?:(?:this|that|it)(?:\s+one)?|(?:items?\s+)?(?P<ids>{_REFS})"
           r"|(?:item\s+)(?P<id2>\d{1,12}))")
_TAIL = r"(?:\s+(?:please|then|too|as\s+well))?\s*[.!]*\s*(?:[:;]-?[)D]|🙂|👍)?"
_CLAIM = re.compile(
    rf"^{_ADDRESS}{_LEAD}(?:{_VERB}\s+{_OBJECT}|(?P<mine>mine)(?:\s+#(?P<id3>\d{{1,12}}))?){_TAIL}$",
    re.IGNORECASE)
MAX_CLAIM = 120  # the claim sentence
MAX_SAID = 600  # with what follows it in its paragraph
# The claim sentence, then the rest of its paragraph.
_FIRST = re.compile(rf"(.{{1,{MAX_CLAIM}}}?[.!]+(?:\s*(?:[:;]-?[)D]|🙂|👍))?)\s+(\S.*)")
# What makes the words after a claim take it back or make it conditional: then it is talk.
_RESERVATION = re.compile(
    r"\?|\bno\b(?!\s+problem)|\b(?:but|unless|if|not|never|cannot|can't|won't|wouldn't|don't|"
    r"actually|however|except|though|although|maybe|perhaps|kidding|joking|after|once|later|"
    r"else)\b", re.I)


@dataclass(frozen=True)
class ClaimIntent:
    item_id: int | None  # the first item named in the message, else None: "the one we are
    also: tuple[int, ...] = ()  # talking about"; `also`: the other items named

    @property
    def item_ids(self) -> tuple[int, ...]:
        return () if self.item_id is None else (self.item_id, *self.also)


def _sentence(text: str) -> ClaimIntent | None:
    if len(text) > MAX_CLAIM:
        return None
    m = _CLAIM.match(text)
    if not m:
        return None
    if m.group("ids"):
        ids = tuple(dict.fromkeys(int(n) for n in re.findall(r"#(\d+)", m.group("ids"))))
        return ClaimIntent(ids[0], ids[1:])
    raw = m.group("id2") or m.group("id3")
    return ClaimIntent(int(raw) if raw else None)


def claim_intent(text: str) -> ClaimIntent | None:
    text = " ".join(text.split())
    if len(text) > MAX_SAID:
        return None
    if (intent := _sentence(text)) is not None:
        return intent
    m = _FIRST.fullmatch(text)
    if m is None or _RESERVATION.search(m[2]):
        return None
    return _sentence(m[1])
