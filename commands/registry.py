"""The command registry: a decorator that records usage, help and who may run a command.

    @command("claim", usage="ID [for NAME]", help="claim an item", example="!claim 12")
    async def claim(ctx: Context, args: str) -> Reply: ...

A handler gets the context and the raw argument text, and returns a `Reply`. It raises
`UsageError` for malformed arguments (the dispatcher answers with the usage line),
`Refused` when the sender may not do it (the message says why), and `NotFound` for an
unknown id or name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from .messages import Reply

    from .context import Context

Who = Literal["anyone", "owner", "admin"]
Handler = Callable[["Context", str], Awaitable["Reply"]]


class UsageError(Exception):
    """Malformed arguments; an optional detail says what was wrong."""


class Refused(Exception):
    """The command was understood but is not allowed or not possible; the text says why."""


@dataclass(frozen=True)
class Command:
    name: str
    usage: str
    help: str
    example: str
    who: Who
    group: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    writes: bool = True  # False for read-only commands: they run in a read transaction

    def usage_line(self, prefix: str) -> str:
        return f"{prefix}{self.name}{' ' + self.usage if self.usage else ''}"


COMMANDS: dict[str, Command] = {}


def command(name: str, *, usage: str = "", help: str, example: str = "", who: Who = "anyone",
            aliases: tuple[str, ...] = (), writes: bool = True) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        group = fn.__module__.rsplit(".", 1)[-1]
        cmd = Command(name, usage, help, example or f"!{name}", who, group, fn, aliases, writes)
        for key in (name, *aliases):
            if key in COMMANDS:
                raise RuntimeError(f"command {key} registered twice")
            COMMANDS[key] = cmd
        return fn
    return register


def lookup(name: str) -> Command | None:
    return COMMANDS.get(name.casefold())


def all_commands() -> list[Command]:
    """Each command once, in registration order."""
    return list(dict.fromkeys(COMMANDS.values()))
