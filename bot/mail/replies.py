"""What a reply on the list means, as a list of actions. Pure: text in, actions out.

Modelled on how people answer the weekly TODO mail (tests/data/mail/ holds real replies), in
whichever layout it was written (storage/layouts/: each layout says how its headings and items
look when quoted, `quoted_heading` / `quoted_item`):

- new `*` or `- ` bullets written under a quoted heading (`> hypervisor, nice to have:`,
  `> == Open ==`, `> === Testing coverage ===`, `> ## Blockers`, an underlined
  `> OPEN ISSUES`) propose items for its area and severity;
- a paragraph that starts with a plain-language claim ("I can take this one", "mine", "I'll
  take #4 and #7"; commands/natural.py, the rule chat uses too) claims the items it names,
  else the item written or quoted just before it: a new bullet, or a quoted item of the
  weekly mail (`> * #10 Bump library SONAMES as necessary.`, or its title without the id);
- a claim with nothing before it, in a top-posted reply (the text first, then
  "-----Original Message-----" or a rule of underscores and "From:"/"Sent:" lines, and the
  original, or "On ..., X wrote:" and the quoted
  original), is about what the original names (`Original`: the items it names by id, and its
  text, whose titles the handler looks up); with no original it is still reported, unresolved;
- a line starting with the command prefix (`!status 8 patch posted`) is a command; an
  indented one is not (a quoted example, an indented paste).

Quoted text, a top-post's original, the "On ..., X wrote:" line and signatures (`-- ` and
below, ` -George`) are never read as items, claims or commands. Everything else is
discussion and means nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from ...commands import claim_intent
from ...storage.layouts import quoted_heading, quoted_item

_NEW_BULLET = re.compile(r"[ ]{0,4}[*-][ \t]+(?P<text>\S.*)")
_ATTRIBUTION_START = re.compile(r"(?:On|Am|Le|El)\s")
_WROTE = re.compile(r".*\b(?:wrote|writes|schrieb|a écrit|escribió)\s*:\s*$", re.I)
# Outlook's separator before the original, unquoted: "-----Original Message-----".
_ORIGINAL_MESSAGE = re.compile(
    r"\s*-{2,}\s*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|Mensaje original)"
    r"\s*-{2,}\s*", re.I)
_RULE = re.compile(r"\s*_{10,}\s*")
# A sign-off on a line of its own: " -George", "-- Jan", "--George Dunlap".
_SIGN_OFF = re.compile(r"\s*--?\s?[A-Z][\w.'-]*(?: [A-Z][\w.'-]*)?\s*")
_QUOTE = re.compile(r"^(?:\s?>)+ ?")
_FOOTER_RULE = 20  # underscores at least: Mailman's footer separator has 47
_UNDERLINE = re.compile(r"\s*(?:={3,}|-{3,})\s*")
_MENTION = re.compile(r"(?<![\w&/])#([0-9]{1,12})\b")
MAX_ORIGINAL = 20_000  # characters of a top-post's original kept for finding titles in it
MAX_NAMED = 50  # item ids of an original kept (more means "which one?" anyway)


@dataclass(frozen=True)
class Propose:
    """A new item: `text` is the bullet as written (joined lines), for the mail format."""

    area: str
    severity: str  # "blocker" | "nice"
    text: str


@dataclass(frozen=True)
class Original:
    """The original a top-posted reply answers: the item ids it names (quoted items, `#N`),
    and its text, for titles."""

    ids: tuple[int, ...]
    text: str


@dataclass(frozen=True)
class Claim:
    """Claim what was just before: a proposal of this mail (`proposal`, its index among the
    actions), a quoted item by id or, without one, by its quoted text, or what the original of
    a top-post names. With none of them the claim names nothing (the sender is asked)."""

    proposal: int | None = None
    item_id: int | None = None
    quoted: str | None = None
    said: str = ""
    original: Original | None = None


@dataclass(frozen=True)
class Command:
    line: str  # as written, prefix included


Action = Propose | Claim | Command


def _unquote(line: str) -> str | None:
    """The quoted content of a `>` line, or None for an unquoted line."""
    m = _QUOTE.match(line)
    return line[m.end():] if m else None


def _lines(body: str) -> list[str]:
    return body.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _signature(lines: list[str]) -> int:
    """Where the sender's own text ends: a `-- ` signature, or a list's footer (a line of
    underscores and below: what Mailman puts above its footer, right after the text)."""
    for i, line in enumerate(lines):
        if line.rstrip() in ("-- ", "--") and line.startswith("--"):
            return i
        if len(line.rstrip()) >= _FOOTER_RULE and not line.rstrip().strip("_"):
            return i
    return len(lines)


def body_lines(body: str) -> list[str]:
    """The reply's lines without the signature (`-- ` and below) or the list's footer."""
    lines = _lines(body)
    return lines[:_signature(lines)]


def _attribution(lines: list[str], i: int) -> int:
    """How many lines the "On ..., X wrote:" at `i` spans (0: none)."""
    if not _ATTRIBUTION_START.match(lines[i].strip()):
        return 0
    if _WROTE.match(lines[i]):
        return 1
    return 2 if i + 1 < len(lines) and _WROTE.match(lines[i + 1]) else 0


def split_original(body: str) -> tuple[list[str], list[str]]:
    """(the sender's own lines, signature cut, the original of a top-post or []). The original
    starts at Outlook's "-----Original Message-----", or at an "On ... wrote:" after which
    everything is quoted; a signature between the two is the sender's."""
    lines = _lines(body)
    # quoted_after[i]: every line from i on is quoted or blank (one pass, not one per line)
    quoted_after = [True] * (len(lines) + 1)
    for i in range(len(lines) - 1, -1, -1):
        quoted_after[i] = quoted_after[i + 1] and (
            not lines[i].strip() or _unquote(lines[i]) is not None)
    for i, line in enumerate(lines):
        if _ORIGINAL_MESSAGE.fullmatch(line) or _outlook_header(lines, i):
            return lines[:min(i, _signature(lines))], lines[i + 1:]
        if (n := _attribution(lines, i)) and quoted_after[i + n]:
            return lines[:min(i, _signature(lines))], lines[i + n:]
    return lines[:_signature(lines)], []


def _outlook_header(lines: list[str], i: int) -> bool:
    """Newer Outlook's separator: a rule of underscores, then "From: ..." and "Sent: ..."."""
    return (bool(_RULE.fullmatch(lines[i])) and i + 2 < len(lines)
            and lines[i + 1].startswith("From: ") and lines[i + 2].startswith(("Sent: ", "Date: ")))


def _original(lines: list[str], layout: str | None) -> Original:
    ids: dict[int, None] = {}
    kept: list[str] = []
    size = 0
    for line in lines:
        while (q := _unquote(line)) is not None:
            line = q
        if size < MAX_ORIGINAL:
            kept.append(line)
            size += len(line) + 1
        if len(ids) < MAX_NAMED:
            if (item := quoted_item(line, prefer=layout)) is not None and item[0] is not None:
                ids.setdefault(item[0])
            for m in _MENTION.finditer(line):
                ids.setdefault(int(m[1]))
    return Original(tuple(ids)[:MAX_NAMED], "\n".join(kept)[:MAX_ORIGINAL].strip("\n"))


def parse_reply(body: str, *, prefix: str = "!", layout: str | None = None) -> list[Action]:
    """The actions a reply's plain-text body asks for, in the order written. `layout`: the
    layout of the mail answered, when known (asked first about quoted headings and items)."""
    actions: list[Action] = []
    # From the quoted headings: area, severity, whether bullets under it are items.
    section: tuple[str, str, bool] | None = None
    # What a claim would take: ("new", index) | ("quoted", id, text) | None.
    context: tuple | None = None
    quoted_item_: list | None = None  # [id, [lines]] of the quoted item being read
    bullet: list[str] | None = None  # the new bullet being read
    para: list[str] = []  # the unquoted prose paragraph being read
    unresolved: list[int] = []  # claims that named nothing: a top-post's original may
    lines, original = split_original(body)

    def end_bullet() -> None:
        nonlocal bullet, context
        if bullet is not None and section is not None:
            actions.append(Propose(section[0], section[1], " ".join(w.strip() for w in bullet)))
            context = ("new", len(actions) - 1)
        bullet = None

    def end_quoted() -> None:
        nonlocal quoted_item_, context
        if quoted_item_ is not None:
            context = ("quoted", quoted_item_[0], " ".join(quoted_item_[1]))
        quoted_item_ = None

    def end_para() -> None:
        nonlocal para, context
        if not para:
            return
        said = " ".join(" ".join(para).split())
        para = []
        intent = claim_intent(said)
        if intent is not None:
            if intent.item_ids:
                actions.extend(Claim(item_id=i, said=said) for i in intent.item_ids)
            elif context is not None and context[0] == "new":
                actions.append(Claim(proposal=context[1], said=said))
            elif context is not None:
                actions.append(Claim(item_id=context[1],
                                     quoted=context[2] if context[1] is None else None, said=said))
            else:
                unresolved.append(len(actions))
                actions.append(Claim(said=said))
        context = None  # a claim, or a remark: either way the item is no longer "just before"

    def heading(head) -> None:
        nonlocal section, context
        end_quoted()
        before = section or ("", "nice", True)
        section = (before[0] if head.area is None else head.area,
                   before[1] if head.severity is None else head.severity,
                   before[2] if head.items is None else head.items)
        context = None

    i = 0
    while i < len(lines):
        line = lines[i]
        quoted = _unquote(line)
        if quoted is not None:
            end_bullet()
            end_para()
            content = quoted.strip()
            following = _unquote(lines[i + 1]) if i + 1 < len(lines) else None
            if (head := quoted_heading(quoted, following or "", prefer=layout)) is not None:
                heading(head)
            elif _UNDERLINE.fullmatch(quoted):
                pass  # a heading's underline
            elif (qi := quoted_item(quoted, prefer=layout)) is not None:
                end_quoted()
                quoted_item_ = [qi[0], [qi[1]]]
            elif not content:
                end_quoted()
            elif quoted_item_ is not None:
                quoted_item_[1].append(content)
            else:
                context = None  # quoted prose: nothing to claim
            i += 1
            continue
        end_quoted()
        stripped = line.strip()
        # "On Mon, Aug 6, 2012 at 9:58 AM, Ian Campbell <...> wrote:" (maybe over two lines)
        if not para and bullet is None and (n := _attribution(lines, i)):
            i += n
            continue
        if not stripped:
            end_bullet()
            end_para()
        elif line.startswith(prefix) and len(stripped) > len(prefix):  # indented: prose
            end_bullet()
            end_para()
            actions.append(Command(stripped))
            context = None
        elif _SIGN_OFF.fullmatch(line) and not para and bullet is None:
            break  # " -George": the rest is signature
        elif (nb := _NEW_BULLET.fullmatch(line)) is not None and section is not None and section[2]:
            end_bullet()
            end_para()
            bullet = [nb["text"]]
        elif bullet is not None:
            bullet.append(stripped)
        else:
            para.append(stripped)
        i += 1
    end_bullet()
    end_para()
    if original and unresolved:
        about = _original(original, layout)
        for n in unresolved:
            actions[n] = replace(actions[n], original=about)
    return actions
