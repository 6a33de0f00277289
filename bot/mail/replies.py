"""What a reply on the list means, as a list of actions. Pure: text in, actions out.

Modelled on how people answer the weekly TODO mail (tests/data/mail/ holds real replies):

- new `*` or `- ` bullets written under a quoted section heading (`> hypervisor, nice to
  have:`) propose items for that area and severity;
- a short paragraph that is a plain-language claim ("I can take this one", "mine") claims
  the item written or quoted just before it: a new bullet, or a quoted item of the weekly
  mail (`> * #10 Bump library SONAMES as necessary.`, or its title without the id);
- a line starting with the command prefix (`!status 8 patch posted`) is a command; an
  indented one is not (a quoted example, an indented paste).

Quoted text, the "On ..., X wrote:" line and signatures (`-- ` and below, ` -George`) are
never read as items or commands. Everything else is discussion and means nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...commands import claim_intent

# "hypervisor, nice to have:" / "tools, blockers:" — the mail format's section headings.
_HEADING = re.compile(r"(?P<area>[\w.+-]{1,40}), (?P<sev>blockers?|nice to have):\s*", re.I)
_NEW_BULLET = re.compile(r"[ ]{0,4}[*-][ \t]+(?P<text>\S.*)")
_QUOTED_BULLET = re.compile(r"\s*\*\s+(?:#(?P<id>\d{1,12})\s+)?(?P<text>\S.*)")
_ATTRIBUTION_START = re.compile(r"(?:On|Am|Le|El)\s")
_WROTE = re.compile(r".*\b(?:wrote|writes|schrieb|a écrit|escribió)\s*:\s*$", re.I)
# A sign-off on a line of its own: " -George", "-- Jan", "--George Dunlap".
_SIGN_OFF = re.compile(r"\s*--?\s?[A-Z][\w.'-]*(?: [A-Z][\w.'-]*)?\s*")
_QUOTE = re.compile(r"^(?:\s?>)+ ?")
_FOOTER_RULE = 20  # underscores at least: Mailman's footer separator has 47


@dataclass(frozen=True)
class Propose:
    """A new item: `text` is the bullet as written (joined lines), for the mail format."""

    area: str
    severity: str  # "blocker" | "nice"
    text: str


@dataclass(frozen=True)
class Claim:
    """Claim what was just before: a proposal of this mail (`proposal`, its index among the
    actions), or a quoted item by id or, without one, by its quoted text."""

    proposal: int | None = None
    item_id: int | None = None
    quoted: str | None = None
    said: str = ""


@dataclass(frozen=True)
class Command:
    line: str  # as written, prefix included


Action = Propose | Claim | Command


def _unquote(line: str) -> str | None:
    """The quoted content of a `>` line, or None for an unquoted line."""
    m = _QUOTE.match(line)
    return line[m.end():] if m else None


def body_lines(body: str) -> list[str]:
    """The reply's lines without the signature (`-- ` and below) or the list's footer (a line
    of underscores and below: what Mailman puts above its footer, right after the text)."""
    lines = body.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if line.rstrip() in ("-- ", "--") and line.startswith("--"):
            return lines[:i]
        if len(line.rstrip()) >= _FOOTER_RULE and not line.rstrip().strip("_"):
            return lines[:i]
    return lines


def parse_reply(body: str, *, prefix: str = "!") -> list[Action]:
    """The actions a reply's plain-text body asks for, in the order written."""
    actions: list[Action] = []
    section: tuple[str, str] | None = None  # from the last quoted heading
    # What a claim would take: ("new", index) | ("quoted", id, text) | None.
    context: tuple | None = None
    quoted_item: list | None = None  # [id, [lines]] of the quoted bullet being read
    bullet: list[str] | None = None  # the new bullet being read
    para: list[str] = []  # the unquoted prose paragraph being read
    lines = body_lines(body)

    def end_bullet() -> None:
        nonlocal bullet, context
        if bullet is not None and section is not None:
            actions.append(Propose(section[0], section[1], " ".join(w.strip() for w in bullet)))
            context = ("new", len(actions) - 1)
        bullet = None

    def end_quoted() -> None:
        nonlocal quoted_item, context
        if quoted_item is not None:
            context = ("quoted", quoted_item[0], " ".join(quoted_item[1]))
        quoted_item = None

    def end_para() -> None:
        nonlocal para, context
        if not para:
            return
        said = " ".join(" ".join(para).split())
        para = []
        intent = claim_intent(said)
        if intent is not None:
            if intent.item_id is not None:
                actions.append(Claim(item_id=intent.item_id, said=said))
            elif context is not None and context[0] == "new":
                actions.append(Claim(proposal=context[1], said=said))
            elif context is not None:
                actions.append(Claim(item_id=context[1],
                                     quoted=context[2] if context[1] is None else None, said=said))
        context = None  # a claim, or a remark: either way the item is no longer "just before"

    i = 0
    while i < len(lines):
        line = lines[i]
        quoted = _unquote(line)
        if quoted is not None:
            end_bullet()
            end_para()
            content = quoted.strip()
            if (head := _HEADING.fullmatch(content)) is not None:
                end_quoted()
                sev = "blocker" if head["sev"].lower().startswith("blocker") else "nice"
                section = (head["area"].lower(), sev)
                context = None
            elif (qb := _QUOTED_BULLET.fullmatch(quoted)) is not None:
                end_quoted()
                quoted_item = [int(qb["id"]) if qb["id"] else None, [qb["text"].strip()]]
            elif not content:
                end_quoted()
            elif quoted_item is not None:
                quoted_item[1].append(content)
            else:
                context = None  # quoted prose: nothing to claim
            i += 1
            continue
        end_quoted()
        stripped = line.strip()
        # "On Mon, Aug 6, 2012 at 9:58 AM, Ian Campbell <...> wrote:" (maybe over two lines)
        if not para and bullet is None and _ATTRIBUTION_START.match(stripped):
            if _WROTE.match(line):
                i += 1
                continue
            if i + 1 < len(lines) and _WROTE.match(lines[i + 1]):
                i += 2
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
        elif (nb := _NEW_BULLET.fullmatch(line)) is not None and section is not None:
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
    return actions
