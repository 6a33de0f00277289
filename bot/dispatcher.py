"""From a `Message` to a `Reply`: prefix parsing, plain-language patterns, rights, errors.

The dispatcher knows no command: it finds the registered command (or pattern), converts its
declared arguments, enforces its `who` and runs it. Every command runs in one repository
session (one transaction): it commits whole or rolls back whole, so a refusal changes
nothing. No exception reaches the chat: expected ones become one-line answers, anything else
is logged with its traceback and answered with "internal error, logged as <ref>".
"""

from __future__ import annotations

import difflib
import logging
import re
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from ..commands import Context, Refused, UsageError, lookup
from ..commands.args import convert
from ..commands.registry import PATTERNS, Command, Pattern, all_commands
from ..storage import Item, NameTaken, NotFound, Repository

from ..commands.settings import Settings
from .config import Config
from ..commands.messages import Message, Reply, text
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)

# "This one" means the item the bot named last in the room, if it did so recently.
RECENT_SECONDS = 600
_NAME = re.compile(r"[A-Za-z][\w-]{0,31}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


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

    # -- rooms ------------------------------------------------------------------------------
    def bind_room(self, transport: str, room: str, settings: Settings) -> None:
        """A room's settings, resolved by its transport (see `todobot.bot.rooms`)."""
        self._rooms[(transport, room)] = settings

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
        if msg.transport == "console":
            return False
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
        return text(f"{msg.sender.nick}: too many commands at once; I will ignore yours for "
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
            reply = await self._command(msg, prefix, name.group(0), args)
        else:
            found = self._pattern(raw)
            if found is None:
                return None
            flood = self._flooding(msg)
            if flood is not False:
                return flood  # type: ignore[return-value]
            pat, match = found
            reply = await self._run(msg, pat.handler, (match,), write=True, usage="", who=pat.who)
        if reply is not None and msg.thread is None:  # a thread's items stay in the thread
            self.remember(msg.transport, msg.room, reply.items)
        return reply

    @staticmethod
    def _pattern(raw: str) -> tuple[Pattern, object] | None:
        if len(raw) > 200:  # plain language is short; a paragraph is conversation
            return None
        for pat in PATTERNS:
            match = pat.match(raw)
            if match is not None:
                return pat, match
        return None

    async def _command(self, msg: Message, prefix: str, name: str, args: str) -> Reply | None:
        cmd = lookup(name)
        if cmd is None:
            names = [c.name for c in all_commands()]
            close = difflib.get_close_matches(name.casefold(), names, n=1)
            hint = f" Did you mean {prefix}{close[0]}?" if close else ""
            return await self._finish(msg, text(
                f"Unknown command {prefix}{name}.{hint} Say {prefix}help for the list.",
                outcome="refused"))
        return await self._run(msg, cmd.handler, args, write=cmd.writes,
                               usage=cmd.usage_line(prefix), who=cmd.who, cmd=cmd)

    def _refusal(self, msg: Message, cmd: Command | None, prefix: str) -> Reply | None:
        """Release-manager commands are refused before anything else is looked at."""
        if cmd is None or cmd.who != "admin" or self.is_admin(msg):
            return None
        why = ("" if msg.sender.authenticated else
               ", and I could not confirm your account (services did not answer); try again"
               if msg.sender.unconfirmed else ", and you are not logged in to an account here")
        return text(f"Only release managers may use {prefix}{cmd.name}{why}.", outcome="refused")

    async def _run(self, msg: Message, handler: Callable, args: object, *, write: bool,
                   usage: str, who: str, cmd: Command | None = None) -> Reply | None:
        sender = msg.sender
        settings = self.settings_for(msg.transport, msg.room)
        refusal = self._refusal(msg, cmd, settings.prefix)
        if refusal is not None:
            return await self._finish(msg, refusal)
        write = write or msg.msg_id is not None
        try:
            async with self.repo.session(sender.identity, write=write) as s:
                if msg.msg_id is not None and not await s.record_event(msg.transport, msg.msg_id):
                    log.info("skipping %s event %s: already handled", msg.transport, msg.msg_id)
                    return None
                release = self.release_for(msg.transport, msg.room)
                if release is None:
                    # No release configured: the newest one when the room first needs one,
                    # pinned, so a release created later (by !defer) does not take the room.
                    latest = await s.latest_release()
                    if latest is not None:
                        release = latest.name
                        self._pinned[(msg.transport, msg.room)] = release
                ctx = Context(s=s, message=msg, settings=settings, release_name=release,
                              is_admin=self.is_admin(msg), person=await s.person_of(sender.identity),
                              recent=self.recent_items(msg.transport, msg.room),
                              refers_to=msg.refers_to)
                if cmd is None:
                    return await handler(ctx, *args)  # type: ignore[misc]
                values = await convert(ctx, cmd.args, args)  # type: ignore[arg-type]
                if who == "owner":
                    item = next((v for v in values if isinstance(v, Item)), None)
                    if item is not None:
                        ctx.require_owner(item, cmd.does or f"use {settings.prefix}{cmd.name} on it")
                return await handler(ctx, *values)
        except UsageError as exc:
            detail = f" — {exc}" if str(exc) else ""
            reply = text(f"Usage: {usage}{detail}", outcome="refused")
        except (Refused, NotFound) as exc:
            reply = text(str(exc), outcome="refused")
        except NameTaken as exc:
            reply = text(f"{exc.holder.name} is a name someone else has.", outcome="refused")
        except sqlite3.Error as exc:
            reply = self._database_trouble(exc, msg)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("internal error %s handling %r from %s in %s/%s", ref, msg.text[:200],
                          sender.identity, msg.transport, msg.room)
            reply = text(f"internal error, logged as {ref}", outcome="error")
        return await self._finish(msg, reply)

    @staticmethod
    def _database_trouble(exc: sqlite3.Error, msg: Message) -> Reply:
        """Database errors a person can meet, in one line; the transaction rolled back."""
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
        except Exception:
            log.exception("could not record event %s", msg.msg_id)
        return reply
