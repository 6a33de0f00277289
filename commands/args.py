"""Argument converters: what a command takes, declared once in its `@command(...)`.

    @command("status", ItemArg(), Text("TEXT", max_len=200), help=..., example="!status 12 wip")
    async def status(ctx, item: Item, text: str) -> Reply: ...

The dispatcher converts and checks the arguments before the handler runs, so every command
words its errors the same way ("Usage: !status ID TEXT — 'x' is not an item id") and the usage
line is generated from the declaration. Converters that read the database (an item id) run
inside the command's transaction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..storage.names import clean, release_name_problem
from .errors import UsageError

if TYPE_CHECKING:
    from .context import Context

_ID = re.compile(r"#?([0-9]{1,12})")  # ASCII digits only: "٣" is not 3
SEVERITY_WORDS = {"blocker": "blocker", "blockers": "blocker", "nice": "nice",
                  "nice-to-have": "nice", "nice_to_have": "nice", "nth": "nice"}
_AREA = re.compile(r"[\w.+-]{1,40}")


class Words:
    """The argument text as a stream: single words from the front, or the rest."""

    def __init__(self, text: str) -> None:
        self.rest = text.strip()

    def peek(self) -> str | None:
        return self.rest.split(None, 1)[0] if self.rest else None

    def word(self) -> str | None:
        if not self.rest:
            return None
        parts = self.rest.split(None, 1)
        self.rest = parts[1].strip() if len(parts) > 1 else ""
        return parts[0]

    def all(self) -> str:
        out, self.rest = self.rest, ""
        return out


def parse_id(token: str) -> int:
    """`12` or `#12`; anything else is a usage error."""
    m = _ID.fullmatch(token.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"{token!r} is not an item id (like 12 or #12)")
    return int(m.group(1))


@dataclass(frozen=True)
class Arg:
    label: str
    optional: bool = False

    @property
    def usage(self) -> str:
        return f"[{self.label}]" if self.optional else self.label

    async def take(self, ctx: "Context", words: Words) -> Any:
        """Consume this argument from `words`; None when optional and absent."""
        raise NotImplementedError


@dataclass(frozen=True)
class OneWord(Arg):
    """An argument that is one word: absent is None when optional, else a usage error;
    `convert` checks the word and gives the value."""

    async def take(self, ctx: "Context", words: Words) -> Any:
        token = words.word()
        if token is None:
            if self.optional:
                return None
            raise UsageError()
        return await self.convert(ctx, token)

    async def convert(self, ctx: "Context", token: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class ItemArg(OneWord):
    """An item id, loaded: the handler gets the `Item` ("No item #99: ..." when there is none)."""

    label: str = "ID"

    async def convert(self, ctx: "Context", token: str) -> Any:
        return await ctx.item(parse_id(token))


@dataclass(frozen=True)
class Word(Arg):
    """One word, optionally one of `choices` (matched case-insensitively, given as written)."""

    choices: tuple[str, ...] = ()

    async def take(self, ctx: "Context", words: Words) -> Any:
        token = words.peek()
        if token is None or (self.optional and self.choices and token.casefold() not in self.choices):
            if self.optional:
                return None
            raise UsageError()
        words.word()
        if self.choices and token.casefold() not in self.choices:
            raise UsageError(f"{self.label} is {' or '.join(self.choices)}, not {token!r}")
        return token.casefold() if self.choices else token


@dataclass(frozen=True)
class Area(OneWord):
    label: str = "AREA"

    async def convert(self, ctx: "Context", token: str) -> Any:
        if not _AREA.fullmatch(token):
            raise UsageError("AREA is one word, like hypervisor, tools or docs")
        return token


@dataclass(frozen=True)
class Severity(OneWord):
    label: str = "blocker|nice"

    async def convert(self, ctx: "Context", token: str) -> Any:
        severity = SEVERITY_WORDS.get(token.casefold())
        if severity is None:
            raise UsageError(f"severity is blocker or nice, not {token!r}")
        return severity


@dataclass(frozen=True)
class ReleaseName(OneWord):
    label: str = "RELEASE"

    async def convert(self, ctx: "Context", token: str) -> Any:
        problem = release_name_problem(token)
        if problem:
            raise UsageError(problem)
        return token


@dataclass(frozen=True)
class Count(OneWord):
    low: int = 1
    high: int = 200

    async def convert(self, ctx: "Context", token: str) -> Any:
        if not re.fullmatch(r"[0-9]{1,9}", token) or not self.low <= int(token) <= self.high:
            raise UsageError(f"{self.label} is a number from {self.low} to {self.high}")
        return int(token)


@dataclass(frozen=True)
class Text(Arg):
    """The rest of the line, cleaned of invisible characters; `max_len` is a refusal with
    the length, not a usage error (the syntax was right)."""

    max_len: int | None = None

    async def take(self, ctx: "Context", words: Words) -> Any:
        text = clean(words.all())
        if not text:
            if self.optional:
                return None
            raise UsageError()
        if self.max_len is not None and len(text) > self.max_len:
            from .errors import Refused
            raise Refused(f"That {self.label.lower()} is {len(text)} characters long; the limit "
                          f"is {self.max_len}.")
        return text


@dataclass(frozen=True)
class ForName(Arg):
    """`for NAME`: optional, says whom a claim is for."""

    label: str = "for NAME"

    async def take(self, ctx: "Context", words: Words) -> Any:
        if not words.rest:
            return None
        m = re.fullmatch(r"for\s+(.+)", words.all(), re.IGNORECASE | re.DOTALL)
        if not m:
            raise UsageError()
        return clean(m.group(1))


def usage_of(args: tuple[Arg, ...]) -> str:
    return " ".join(a.usage for a in args)


async def convert(ctx: "Context", args: tuple[Arg, ...], text: str) -> list[Any]:
    words = Words(text)
    values = [await a.take(ctx, words) for a in args]
    if words.rest:
        raise UsageError()
    return values
