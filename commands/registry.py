"""The command registry: decorators that only attach what a command is, never run it.

    @command("status", ItemArg(), Text("TEXT", max_len=200),
             help="set the progress shown in the list", example="!status 12 patch posted")
    async def status(ctx: Context, item: Item, text: str) -> Reply: ...

    @pattern("claim", claim_intent)
    async def casual_claim(ctx: Context, intent: ClaimIntent) -> Reply | None: ...

A command declares its arguments (see `args`), its usage line follows from them, and `who`
says who may run it: "anyone", "owner" (the owners of the item it names, and release
managers) or "admin" (release managers); `admin_verbs` names subcommands of it only release
managers may run. The dispatcher converts the arguments and enforces
`who` before the handler runs. A handler returns a `Reply`; it raises `UsageError` for
arguments that parse but make no sense, `Refused` when it may not go on (the message says
why), `NotFound` for an unknown id or name.

A pattern is plain language: `match(text)` returns something (a match, an intent) or None,
and the handler gets that instead of arguments; it may return None to stay quiet.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from .args import Arg, usage_of
from .errors import Refused, UsageError

if TYPE_CHECKING:
    from .messages import Reply

Who = Literal["anyone", "owner", "admin"]
Handler = Callable[..., Awaitable["Reply | None"]]


@dataclass(frozen=True)
class Command:
    name: str
    args: tuple[Arg, ...]
    help: str
    example: str
    who: Who
    group: str
    handler: Handler
    aliases: tuple[str, ...] = ()
    writes: bool = True  # False for read-only commands: they run in a read transaction
    usage_text: str | None = None  # instead of the usage generated from `args`
    does: str | None = None  # for refusals: "Only the owners ... may <does>" ("mark it done")
    # Subcommands (the first word) only release managers may run, in a command anyone may
    # run otherwise: `!release new NAME`. The dispatcher enforces them as it does `who`; they
    # write, so the rest of such a command may be read-only.
    admin_verbs: tuple[str, ...] = ()

    @property
    def usage(self) -> str:
        return self.usage_text if self.usage_text is not None else usage_of(self.args)

    def admin_only(self, args: str) -> bool:
        """Whether only release managers may run it with these arguments: `who`, or its
        first word one of `admin_verbs`."""
        words = args.split(None, 1)
        return self.who == "admin" or bool(words and words[0].casefold() in self.admin_verbs)

    def writes_with(self, args: str) -> bool:
        """Whether it runs in a write transaction with these arguments."""
        return self.writes or (bool(self.admin_verbs) and self.admin_only(args))

    def usage_line(self, prefix: str) -> str:
        return f"{prefix}{self.name}{' ' + self.usage if self.usage else ''}"


@dataclass(frozen=True)
class Pattern:
    name: str
    match: Callable[[str], Any]
    handler: Handler


COMMANDS: dict[str, Command] = {}
PATTERNS: list[Pattern] = []


def command(name: str, *args: Arg, help: str, example: str = "", who: Who = "anyone",
            aliases: tuple[str, ...] = (), writes: bool = True, usage: str | None = None,
            does: str | None = None, admin_verbs: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        group = fn.__module__.rsplit(".", 1)[-1]
        cmd = Command(name, tuple(args), help, example or f"!{name}", who, group, fn, aliases,
                      writes, usage, does, admin_verbs)
        for key in (name, *aliases):
            if key in COMMANDS:
                raise RuntimeError(f"command {key} registered twice")
            COMMANDS[key] = cmd
        return fn
    return register


def pattern(name: str, match: Callable[[str], Any]) -> Callable[[Handler], Handler]:
    """Plain language anyone may use; what it does is checked by the domain operation it
    calls (a casual claim never joins someone else's item)."""
    def register(fn: Handler) -> Handler:
        PATTERNS.append(Pattern(name, match, fn))
        return fn
    return register


def lookup(name: str) -> Command | None:
    return COMMANDS.get(name.casefold())


def all_commands() -> list[Command]:
    """Each command once, in registration order."""
    return list(dict.fromkeys(COMMANDS.values()))


__all__ = ["COMMANDS", "PATTERNS", "Command", "Pattern", "Refused", "UsageError", "Who",
           "all_commands", "command", "lookup", "pattern"]
