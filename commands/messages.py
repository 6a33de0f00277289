"""Protocol-neutral chat types: what a transport hands in and what it gets back.

A transport turns wire events into `Message`s and renders `Reply`s. Neither type knows
IRC control codes or HTML: a reply is a list of `Line`s made of `Span`s, and each transport
decides once how bold text, links, mentions, headings and bullets look on its wire.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Sender:
    """Who said something.

    `identity` is stable and namespaced: `console:ijc`, `irc:oftc/ijc` (account) or
    `irc:oftc/ijc` with `authenticated=False` (bare nick), `matrix:@ijc:example.org`.
    Rights that depend on who you are (admin, owner) need `authenticated=True`.
    """

    identity: str
    nick: str
    authenticated: bool = True
    display_name: str | None = None  # a protocol-provided default (e.g. Matrix displayname)
    # Not authenticated because the transport could not find out (IRC services did not
    # answer in time), rather than because the sender is not logged in.
    unconfirmed: bool = False
    # Why an unauthenticated sender is not, in the transport's words (for refusals).
    unverified: str = "you are not logged in to an account here"


@dataclass(frozen=True)
class Message:
    """One chat message, as the dispatcher sees it."""

    transport: str  # "console", "irc:oftc", "matrix"
    room: str  # channel or room id; a stable key for per-room memory
    sender: Sender
    text: str
    # Wire id of a message the protocol may deliver again (a Matrix event id): the dispatcher
    # records it with the command's effect and skips a message it has already handled.
    msg_id: str | None = None
    # What "this one" means, when the transport knows (a Matrix reply or thread): the items
    # the message answered named. None: the room's last named item; (): ask for the id.
    refers_to: tuple[int, ...] | None = None
    # The thread this message is in (Matrix m.thread root): items named there are not
    # remembered as the room's last named ones.
    thread: str | None = None
    # What the transport can do besides answering (Reply.action), e.g. {"leave"}.
    actions: frozenset[str] = frozenset()
    private: bool = False  # a direct/private message rather than a room
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Span:
    """A run of text with at most a little meaning attached.

    Text is kept exactly as typed; escaping happens in the renderer.
    """

    text: str
    bold: bool = False
    link: str | None = None  # target URL; rendered as a link where the protocol has them
    mention: str | None = None  # identity of a person, when known (Matrix pills)
    item: int | None = None  # the item id this span names (anchors, bold ids)

    # A listing builds hundreds of spans: the __init__ dataclass writes for a frozen class
    # sets each field through object.__setattr__, twice as slow as filling __dict__.
    # (tests/test_messages.py checks this stays in step with the fields.)
    def __init__(self, text: str, bold: bool = False, link: str | None = None,
                 mention: str | None = None, item: int | None = None) -> None:
        d = self.__dict__
        d["text"], d["bold"], d["link"], d["mention"], d["item"] = text, bold, link, mention, item


LineKind = Literal["text", "heading", "bullet"]


@dataclass(frozen=True)
class Line:
    spans: tuple[Span, ...]
    kind: LineKind = "text"
    level: int = 0  # nesting depth for bullets (sub-items)

    def __init__(self, spans: tuple[Span, ...], kind: LineKind = "text", level: int = 0) -> None:
        d = self.__dict__  # as Span.__init__: one line per item of a listing
        d["spans"], d["kind"], d["level"] = spans, kind, level

    @property
    def plain(self) -> str:
        return "".join(s.text for s in self.spans)

    @property
    def indented(self) -> str:
        """The line as plain text on its own: indented by level, a bullet as `* ` (the console,
        the Matrix body and `Reply.plain` all write lines this way)."""
        return "  " * self.level + ("* " if self.kind == "bullet" else "") + self.plain


# How a reply went: transports may show it (Matrix adds a reaction on "done"/"claimed").
Outcome = Literal["info", "changed", "refused", "error"]


@dataclass
class Reply:
    """What a command answers. Built with the small helpers below, rendered per protocol."""

    lines: list[Line] = field(default_factory=list)
    outcome: Outcome = "info"
    # The ids of the items this reply names, in order; the dispatcher remembers them per room
    # so that "I can take this one" can find the item, and Matrix stores them per event.
    items: tuple[int, ...] = ()
    # Long listings and help may go privately (IRC NOTICE/query) when the config says so.
    long: bool = False
    # A reaction to put on the user's message, where the protocol has them.
    reaction: str | None = None
    # Something the transport does after sending the reply (one of Message.actions).
    action: str | None = None

    @property
    def plain(self) -> str:
        """The reply as plain text, one line per Line (console rendering, tests, logs)."""
        return "\n".join(ln.indented for ln in self.lines)

    # -- builders -----------------------------------------------------------------------------
    def add(self, *parts: str | Span, kind: LineKind = "text", level: int = 0) -> "Reply":
        spans = tuple([p if isinstance(p, Span) else Span(p) for p in parts if p != ""])
        self.lines.append(Line(spans, kind, level))
        return self

    def heading(self, *parts: str | Span) -> "Reply":
        return self.add(*parts, kind="heading")

    def bullet(self, *parts: str | Span, level: int = 0) -> "Reply":
        return self.add(*parts, kind="bullet", level=level)

    def extend(self, other: "Reply") -> "Reply":
        self.lines.extend(other.lines)
        self.items = tuple(dict.fromkeys(self.items + other.items))
        return self


def text(*parts: str | Span, outcome: Outcome = "info", items: tuple[int, ...] = ()) -> Reply:
    """A one-line reply."""
    return Reply(outcome=outcome, items=items).add(*parts)


def bold(s: str) -> Span:
    return Span(s, bold=True)


def item_ref(item_id: int) -> Span:
    """`#12`, bold, anchored to the item."""
    return Span(f"#{item_id}", bold=True, item=item_id)


def link(url: str, label: str | None = None) -> Span:
    return Span(label or url, link=url)


def person(name: str, identity: str | None = None) -> Span:
    return Span(name, mention=identity)
