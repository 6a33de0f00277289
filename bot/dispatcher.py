"""From a `Message` to a `Reply`: prefix parsing, plain-language patterns, rights, errors.

The dispatcher knows no command: it finds the registered command (or pattern), converts its
declared arguments, enforces its `who` and runs it. Every command runs in one repository
session (one transaction): it commits whole or rolls back whole, so a refusal changes
nothing. No exception reaches the chat: expected ones become one-line answers, anything else
is logged with its traceback and answered with "internal error, logged as <ref>".
"""

from __future__ import annotations

import logging
import re
import sqlite3
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from ..commands import Context, Refused, UsageError, lookup
from ..commands.args import convert
from ..commands.registry import PATTERNS, Command, Pattern, all_commands
from ..commands.watch import Notice, notices
from ..storage.names import clean
from ..storage import DatabaseChanged, Item, NameTaken, NotFound, Repository, Session

from ..commands.settings import Settings
from .config import Config
from .metrics import Metrics
from ..commands.messages import Message, Reply, text
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)

# "This one" means the item the bot named last in the room, if it did so recently.
RECENT_SECONDS = 600
_NAME = re.compile(r"[A-Za-z][\w-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


# One action of a message that carries several (a mail): gets the context and the replies
# of the steps before it; returns its own reply (None: nothing to say).
Step = Callable[[Context, list[Reply]], Awaitable[Reply | None]]


@dataclass
class _Recent:
    items: tuple[int, ...]
    at: float


class Dispatcher:
    def __init__(self, repo: Repository, config: Config,
                 clock: Callable[[], float] = time.time) -> None:
        self.repo = repo
        self.config = config
        self.prefix = config.prefix  # the default; each room's settings carry its own
        self.clock = clock
        self._rooms: dict[tuple[str, str], Settings] = {}
        self._defaults: dict[str, Settings] = {}
        self._pinned: dict[tuple[str, str], str] = {}
        self._recent: dict[tuple[str, str], _Recent] = {}
        self._buckets: dict[str, TokenBucket] = {}
        self._warned: set[str] = set()
        # Called with the watch notices of each command that changed something, once its
        # transaction committed (the app's notifier); None: nobody is told.
        self.on_changes: Callable[[list[Notice]], None] | None = None
        self.metrics = Metrics()  # what /metrics reports

    # -- rooms ------------------------------------------------------------------------------
    def bind_room(self, transport: str, room: str, settings: Settings) -> None:
        """A room's settings, resolved by its transport (see `todobot.bot.rooms`)."""
        self._rooms[(transport, room)] = settings

    def unbind_room(self, transport: str, room: str) -> None:
        """A room no longer served (removed from the config): its own settings are dropped."""
        self._rooms.pop((transport, room), None)

    def bindings(self) -> dict[tuple[str, str], Settings]:
        """(transport, room) -> settings bound now (a copy)."""
        return dict(self._rooms)

    def reconfigure(self, config: Config) -> None:
        """A reloaded config: admins, prefix and cooldown from now on (rooms re-bind apart)."""
        self.config = config
        self.prefix = config.prefix
        self._buckets.clear()
        self._defaults.clear()  # transports bind theirs again; the rest derive from `config`

    def bind_default(self, transport: str, settings: Settings) -> None:
        """Settings for this transport's rooms that were not bound (private messages)."""
        self._defaults[transport] = settings

    def settings_for(self, transport: str, room: str) -> Settings:
        found = self._rooms.get((transport, room)) or self._defaults.get(transport)
        if found is None:
            from .rooms import room_settings
            found = self._defaults[transport] = room_settings(self.config)
        return found

    def release_for(self, transport: str, room: str) -> str | None:
        return self.settings_for(transport, room).release or self._pinned.get((transport, room))

    def remember(self, transport: str, room: str, items: tuple[int, ...]) -> None:
        if items:
            self._recent[(transport, room)] = _Recent(items, self.clock())

    def recent_items(self, transport: str, room: str) -> tuple[int, ...]:
        rec = self._recent.get((transport, room))
        if rec is None or self.clock() - rec.at > RECENT_SECONDS:
            return ()
        return rec.items

    def is_admin(self, msg: Message) -> bool:
        return msg.sender.authenticated and msg.sender.identity in self.config.admins

    def throttle(self, msg: Message) -> Reply | None | bool:
        """The cooldown, for every command (refused ones too, and those a transport answers
        itself): False when the sender may go on; else the one warning, then None (quiet)."""
        return self._flooding(msg)

    def _flooding(self, msg: Message) -> Reply | None | bool:
        if not self.settings_for(msg.transport, msg.room).cooldown:
            return False  # the operator's own terminal
        who = msg.sender.identity
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget idle senders: a full bucket is the default
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full()}
            bucket = self._buckets[who] = TokenBucket(self.config.cooldown.burst,
                                                      self.config.cooldown.rate, self.clock)
        if who in self._warned and bucket.full():
            self._warned.discard(who)  # quiet long enough to refill: a new flood warns again
        if bucket.try_take():
            return False
        if who in self._warned:
            return None
        self._warned.add(who)
        wait = max(1, round(bucket.delay()))
        # The nick is the sender's own text (a Matrix display name, a mail name): shown only
        # through the one cleaning rule, so it cannot reorder or hide the warning around it.
        return text(f"{clean(msg.sender.nick)}: too many commands at once; I will ignore yours for "
                    f"{wait} s.", outcome="refused")

    # -- the entry point --------------------------------------------------------------------
    async def handle(self, msg: Message) -> Reply | None:
        """Answer one message; None when the bot should stay quiet."""
        raw = msg.text.strip()
        prefix = self.settings_for(msg.transport, msg.room).prefix
        if raw.startswith(prefix):
            body = raw[len(prefix):]
            name = _NAME.match(body)
            if not name:
                return None  # "!!!" or "! " is chat, not a command
            if body[name.end():name.end() + 1] not in ("", " ", "\t"):
                return None  # "!foo?bar" — not our syntax; stay out of the way
            flood = self._flooding(msg)
            if flood is not False:
                return flood  # type: ignore[return-value]
            if len(raw) > self.config.max_input_chars:
                return text(f"That message is too long ({len(raw)} characters; the limit is "
                            f"{self.config.max_input_chars}).", outcome="refused")
            args = _CONTROL.sub(" ", body[name.end():]).strip()
            began = time.perf_counter()
            reply = await self._command(msg, prefix, name.group(0), args)
            cmd = lookup(name.group(0))  # a label per registered command, not per typo
            self._count(cmd.name if cmd is not None else "unknown", reply, began)
        else:
            found = self._pattern(raw)
            if found is None:
                return None
            flood = self._flooding(msg)
            if flood is not False:
                return flood  # type: ignore[return-value]
            pat, match = found
            began = time.perf_counter()
            reply = await self._run(msg, pat.handler, (match,), write=True, usage="")
            self._count("plain", reply, began)
        if reply is not None and msg.thread is None:  # a thread's items stay in the thread
            self.remember(msg.transport, msg.room, reply.items)
        return reply

    def _count(self, name: str, reply: Reply | None, began: float) -> None:
        self.metrics.command(name, reply.outcome if reply is not None else "quiet",
                             time.perf_counter() - began)

    @staticmethod
    def _pattern(raw: str) -> tuple[Pattern, object] | None:
        if len(raw) > 200:  # plain language is short; a paragraph is conversation
            return None
        for pat in PATTERNS:
            match = pat.match(raw)
            if match is not None:
                return pat, match
        return None

    def _unknown(self, prefix: str, name: str) -> Reply:
        import difflib  # only for a mistyped name: not loaded by a bot that never sees one

        names = [c.name for c in all_commands()]
        close = difflib.get_close_matches(name.casefold(), names, n=1)
        hint = f" Did you mean {prefix}{close[0]}?" if close else ""
        return text(f"Unknown command {prefix}{name}.{hint} Say {prefix}help for the list.",
                    outcome="refused")

    async def _command(self, msg: Message, prefix: str, name: str, args: str) -> Reply | None:
        cmd = lookup(name)
        if cmd is None:
            return await self._finish(msg, self._unknown(prefix, name))
        refusal = self._refusal(msg, cmd, prefix, args)
        if refusal is not None:  # before any transaction: a stranger costs nothing
            return await self._finish(msg, refusal)

        async def run(ctx: Context) -> Reply | None:
            return await self._invoke(ctx, cmd, args)

        # The usage line only for a usage error: built from the arguments, it is not free.
        return await self._run(msg, run, write=cmd.writes_with(args),
                               usage=partial(cmd.usage_line, prefix))

    def _refusal(self, msg: Message, cmd: Command, prefix: str, args: str) -> Reply | None:
        """Release-manager commands, and release-manager subcommands of the others (`!release
        new`), are refused before anything else is looked at."""
        if not cmd.admin_only(args) or self.is_admin(msg):
            return None
        name = cmd.name if cmd.who == "admin" else f"{cmd.name} {args.split()[0].casefold()}"
        sender = msg.sender
        why = ("" if sender.authenticated else
               ", and I could not confirm your account (services did not answer); try again"
               if sender.unconfirmed else f", and {sender.unverified}")
        return text(f"Only release managers may use {prefix}{name}{why}.", outcome="refused")

    async def _invoke(self, ctx: Context, cmd: Command, args: str) -> Reply | None:
        """Run one command in an open context: its rights, its declared arguments, then the
        handler. The one place a command runs, from a room and from a mail alike."""
        refusal = self._refusal(ctx.message, cmd, ctx.prefix, args)
        if refusal is not None:
            raise Refused(refusal.plain)
        values = await convert(ctx, cmd.args, args)
        if cmd.who == "owner":
            item = next((v for v in values if isinstance(v, Item)), None)
            if item is not None:
                ctx.require_owner(item, cmd.does or f"use {ctx.prefix}{cmd.name} on it")
        return await cmd.handler(ctx, *values)

    async def resolve_release(self, s: Session, transport: str, room: str) -> str | None:
        """The room's release: the config's; else the one the room chose with `!release new`
        (kept in the database, so a restart keeps it; read each time, as any process may
        choose it); else the newest when the room first needs one, pinned, so a release
        created later (by !defer) does not take the room."""
        release = self.settings_for(transport, room).release
        if release is None:
            chosen = await s.room_release(transport, room)
            if chosen is not None:
                release = self._pinned[(transport, room)] = chosen.name
        if release is None:
            release = self._pinned.get((transport, room))
        if release is None:
            latest = await s.latest_release()
            if latest is not None:
                release = self._pinned.setdefault((transport, room), latest.name)
        return release

    async def _context(self, s: Session, msg: Message) -> Context:
        release = await self.resolve_release(s, msg.transport, msg.room)
        return Context(s=s, message=msg, settings=self.settings_for(msg.transport, msg.room),
                       release_name=release, is_admin=self.is_admin(msg),
                       person=await s.person_of(msg.sender.identity),
                       recent=self.recent_items(msg.transport, msg.room), refers_to=msg.refers_to)

    async def _run(self, msg: Message, handler: Callable, args: tuple = (), *, write: bool,
                   usage: str | Callable[[], str], who: str = "anyone") -> Reply | None:
        """`handler(ctx, *args)` in one transaction, recorded with the message's wire id;
        every exception becomes a one-line answer."""
        write = write or msg.msg_id is not None
        told: list[Notice] = []

        async def work(s: Session) -> Reply | None:
            if msg.msg_id is not None and not await s.record_event(msg.transport, msg.msg_id):
                log.info("skipping %s event %s: already handled", msg.transport, msg.msg_id)
                return None
            ctx = await self._context(s, msg)
            if not write or self.on_changes is None:
                return await handler(ctx, *args)
            mark = await s.history_mark()
            reply = await handler(ctx, *args)
            told.extend(await notices(s, await s.history_after(mark),
                                      owners=self.config.notify_owners))
            return reply
        try:
            # The whole command in one hand-off to the database thread (commands await only
            # the session): the per-statement hand-off was most of a command's cost.
            reply = await self.repo.run(msg.sender.identity, work, write=write)
            if told and self.on_changes is not None:
                self.on_changes(told)
            return reply
        except Exception as exc:  # noqa: BLE001 — each kind gets its own one-line answer
            reply = self._answer_for(exc, msg, usage)
        return await self._finish(msg, reply)

    def _answer_for(self, exc: Exception, msg: Message, usage: str | Callable[[], str]) -> Reply:
        if isinstance(exc, UsageError):
            usage = usage if isinstance(usage, str) else usage()
            detail = f" — {exc}" if str(exc) else ""
            return text(f"Usage: {usage}{detail}", outcome="refused")
        if isinstance(exc, (Refused, NotFound)):
            return text(str(exc), outcome="refused")
        if isinstance(exc, NameTaken):
            return text(f"{exc.holder.name} is a name someone else has.", outcome="refused")
        if isinstance(exc, sqlite3.Error):
            return self._database_trouble(exc, msg)
        ref = os.urandom(4).hex()  # not uuid: that module costs ~0.3 MB of RSS
        log.error("internal error %s handling %r from %s in %s/%s", ref, msg.text[:200],
                  msg.sender.identity, msg.transport, msg.room, exc_info=exc)
        return text(f"internal error, logged as {ref}", outcome="error")

    # -- several actions in one message (mail) ----------------------------------------------
    def command_step(self, line: str) -> Step:
        """`!status 8 patch posted` as a step of `run_steps`, with the same rights, arguments
        and answers as in a room."""
        prefix = self.prefix
        body = line.strip()[len(prefix):]
        name = _NAME.match(body)

        async def step(ctx: Context, done: list[Reply]) -> Reply | None:
            if not name or body[name.end():name.end() + 1] not in ("", " ", "\t"):
                return text(f"Not a command: {line.strip()[:80]}", outcome="refused")
            if len(line) > self.config.max_input_chars:
                return text(f"That command is too long ({len(line)} characters; the limit is "
                            f"{self.config.max_input_chars}).", outcome="refused")
            cmd = lookup(name.group(0))
            if cmd is None:
                return self._unknown(ctx.prefix, name.group(0))
            args = _CONTROL.sub(" ", body[name.end():]).strip()
            try:
                return await self._invoke(ctx, cmd, args)
            except UsageError as exc:
                return self._answer_for(exc, ctx.message, cmd.usage_line(ctx.prefix))
        return step

    async def run_steps(self, msg: Message, steps: list[Step], *,
                        actor: str | None = None) -> list[Reply] | None:
        """Run the actions of one message in ONE transaction, recorded by its `msg_id`, so a
        replay or a second process never applies any of them twice. Each step runs under a
        savepoint: a refused or failing one is undone alone and answered with the reason.
        `actor` is what history records as the author (default: the sender's identity).
        None when the message was handled before."""
        replies: list[Reply] = []
        told: list[Notice] = []
        async with self.repo.session(actor or msg.sender.identity) as s:
            if msg.msg_id is not None and not await s.record_event(msg.transport, msg.msg_id):
                log.info("skipping %s message %s: already handled", msg.transport, msg.msg_id)
                return None
            mark = await s.history_mark() if self.on_changes is not None else 0
            ctx = await self._context(s, msg)
            for n, step in enumerate(steps):
                await s.execute(f"SAVEPOINT step{n}")
                try:
                    reply = await step(ctx, replies)
                    if reply is not None and reply.outcome in ("refused", "error"):
                        await s.execute(f"ROLLBACK TO step{n}")
                except Exception as exc:  # noqa: BLE001
                    await s.execute(f"ROLLBACK TO step{n}")
                    reply = self._answer_for(exc, msg, "")
                if reply is not None and reply.outcome in ("refused", "error"):
                    # What the step wrote is gone, the sender's person too if it made one.
                    ctx.person = await s.person_of(msg.sender.identity)
                await s.execute(f"RELEASE step{n}")
                replies.append(reply if reply is not None else Reply())
            if self.on_changes is not None:  # what the steps kept (undone ones left no rows)
                told = await notices(s, await s.history_after(mark),
                                     owners=self.config.notify_owners)
        if told and self.on_changes is not None:
            self.on_changes(told)
        return replies

    @staticmethod
    def _database_trouble(exc: sqlite3.Error, msg: Message) -> Reply:
        """Database errors a person can meet, in one line; the transaction rolled back."""
        if isinstance(exc, DatabaseChanged):  # logged once, where it was found
            return text("The database file changed underneath the bot: nothing was changed; "
                        "a release manager must restart it.", outcome="error")
        what = str(exc).lower()
        log.error("database error handling %r from %s: %s", msg.text[:200], msg.sender.identity, exc)
        if "full" in what:
            line = "The database is full: nothing was changed."
        elif "locked" in what or "busy" in what:
            line = "The database is busy: nothing was changed; try again in a moment."
        elif "readonly" in what or "read-only" in what:
            line = "The database is read-only here: nothing was changed."
        else:
            line = ("The database is damaged: nothing was changed; a release manager should "
                    "restore a backup.")
        return text(line, outcome="error")

    async def _finish(self, msg: Message, reply: Reply) -> Reply | None:
        """A command that failed still consumed its event: record it in its own transaction
        so a replay does not answer twice."""
        if msg.msg_id is None:
            return reply
        try:
            async with self.repo.session(msg.sender.identity) as s:
                if not await s.record_event(msg.transport, msg.msg_id):
                    return None
        except DatabaseChanged:
            pass  # nothing is written any more; the reply says so
        except Exception:
            log.exception("could not record event %s", msg.msg_id)
        return reply
