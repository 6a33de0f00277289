"""From a `Message` to a `Reply`: prefix parsing, natural-language claims, rights, errors.

Every command runs in one repository session (one transaction): it commits whole or rolls
back whole. No exception reaches the chat: expected ones become one-line answers, anything
else is logged with its traceback and answered with "internal error, logged as <ref>".
"""

from __future__ import annotations

import difflib
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..commands import Context, Refused, UsageError, claim_intent, lookup
from ..commands.claims import claim_item
from ..commands.registry import all_commands
from ..storage import NotFound, Repository

from ..commands.settings import Settings
from .config import Config
from ..commands.messages import Message, Reply, item_ref, text
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
        self.prefix = config.prefix
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

    def _flooding(self, msg: Message) -> Reply | None | bool:
        """False when the sender may go on; else the one warning, then None (quiet)."""
        if msg.transport == "console":
            return False
        who = msg.sender.identity
        bucket = self._buckets.get(who)
        if bucket is None:
            if len(self._buckets) > 10_000:  # forget idle senders: a full bucket is the default
                self._buckets = {k: b for k, b in self._buckets.items() if not b.full()}
            bucket = self._buckets[who] = TokenBucket(self.config.cooldown.burst,
                                                      self.config.cooldown.rate, self.clock)
        if bucket.try_take():
            self._warned.discard(who)
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
        if raw.startswith(self.prefix) or claim_intent(raw[:200]) is not None:
            flood = self._flooding(msg)
            if flood is not False:
                return flood  # type: ignore[return-value]
        if raw.startswith(self.prefix):
            body = raw[len(self.prefix):]
            name = _NAME.match(body)
            if not name:
                return None  # "!!!" or "! " is chat, not a command
            if body[name.end():name.end() + 1] not in ("", " ", "\t"):
                return None  # "!foo?bar" — not our syntax; stay out of the way
            if len(raw) > self.config.max_input_chars:
                return text(f"That message is too long ({len(raw)} characters; the limit is "
                            f"{self.config.max_input_chars}).", outcome="refused")
            args = _CONTROL.sub(" ", body[name.end():]).strip()
            reply = await self._command(msg, name.group(0), args)
        else:
            intent = claim_intent(raw) if len(raw) <= 200 else None
            if intent is None:
                return None
            reply = await self._natural_claim(msg, intent.item_id)
        if reply is not None:
            self.remember(msg.transport, msg.room, reply.items)
        return reply

    # -- several actions in one message (mail) ----------------------------------------------
    def command_step(self, line: str) -> Step:
        """`!status 8 patch posted` as a step of `run_steps`, with the same rights and answers
        as in a room."""
        body = line.strip()[len(self.prefix):]
        name = _NAME.match(body)

        async def step(ctx: Context, done: list[Reply]) -> Reply | None:
            if not name or body[name.end():name.end() + 1] not in ("", " ", "\t"):
                return text(f"Not a command: {line.strip()[:80]}", outcome="refused")
            if len(line) > self.config.max_input_chars:
                return text(f"That command is too long ({len(line)} characters; the limit is "
                            f"{self.config.max_input_chars}).", outcome="refused")
            cmd = lookup(name.group(0))
            if cmd is None:
                return await self._command(ctx.message, name.group(0), "")
            if cmd.who == "admin" and not ctx.is_admin:
                why = ("" if ctx.message.sender.authenticated
                       else ", and this message is not authenticated")
                return text(f"Only release managers may use {self.prefix}{cmd.name}{why}.",
                            outcome="refused")
            args = _CONTROL.sub(" ", body[name.end():]).strip()
            try:
                return await cmd.handler(ctx, args)
            except UsageError as exc:
                detail = f" — {exc}" if str(exc) else ""
                raise UsageError(f"Usage: {cmd.usage_line(self.prefix)}{detail}") from None
        return step

    async def run_steps(self, msg: Message, steps: list[Step], *,
                        actor: str | None = None) -> list[Reply] | None:
        """Run the actions of one message in ONE transaction, recorded by its `msg_id`, so a
        replay or a second process never applies any of them twice. Each step runs under a
        savepoint: a refused or failing one is undone alone and answered with the reason.
        `actor` is what history records as the author (default: the sender's identity).
        None when the message was handled before."""
        replies: list[Reply] = []
        sender = msg.sender
        async with self.repo.session(actor or sender.identity) as s:
            if msg.msg_id is not None and not await s.record_event(msg.transport, msg.msg_id):
                log.info("skipping %s message %s: already handled", msg.transport, msg.msg_id)
                return None
            name = await s.display_name(sender.identity)
            release = self.release_for(msg.transport, msg.room)
            if release is None and (latest := await s.latest_release()) is not None:
                release = self._pinned.setdefault((msg.transport, msg.room), latest.name)
            ctx = Context(s=s, message=msg, prefix=self.prefix, release_name=release,
                          is_admin=self.is_admin(msg), has_name=name is not None,
                          me=name or sender.display_name or sender.nick,
                          settings=self.settings_for(msg.transport, msg.room))
            for n, step in enumerate(steps):
                await s.conn.execute(f"SAVEPOINT step{n}")
                try:
                    reply = await step(ctx, replies)
                    if reply is not None and reply.outcome in ("refused", "error"):
                        await s.conn.execute(f"ROLLBACK TO step{n}")
                except UsageError as exc:
                    await s.conn.execute(f"ROLLBACK TO step{n}")
                    reply = text(str(exc) or "Usage error", outcome="refused")
                except (Refused, NotFound) as exc:
                    await s.conn.execute(f"ROLLBACK TO step{n}")
                    reply = text(str(exc), outcome="refused")
                except Exception:
                    await s.conn.execute(f"ROLLBACK TO step{n}")
                    ref = uuid.uuid4().hex[:8]
                    log.exception("internal error %s in step %d of %s %s from %s", ref, n,
                                  msg.transport, msg.msg_id, sender.identity)
                    reply = text(f"internal error, logged as {ref}", outcome="error")
                await s.conn.execute(f"RELEASE step{n}")
                replies.append(reply if reply is not None else Reply())
        return replies

    async def _command(self, msg: Message, name: str, args: str) -> Reply | None:
        cmd = lookup(name)
        if cmd is None:
            names = [c.name for c in all_commands()]
            close = difflib.get_close_matches(name.casefold(), names, n=1)
            hint = f" Did you mean {self.prefix}{close[0]}?" if close else ""
            return text(f"Unknown command {self.prefix}{name}.{hint} Say {self.prefix}help for "
                        "the list.", outcome="refused")
        if cmd.who == "admin" and not self.is_admin(msg):
            # Enforced here, so an admin command never depends on its handler to check.
            why = "" if msg.sender.authenticated else ", and you are not logged in to an account here"
            refusal = text(f"Only release managers may use {self.prefix}{cmd.name}{why}.",
                           outcome="refused")
            return await self._finish(msg, refusal)

        async def run(ctx: Context) -> Reply:
            return await cmd.handler(ctx, args)

        return await self._run(msg, run, write=cmd.writes, usage=cmd.usage_line(self.prefix))

    async def _natural_claim(self, msg: Message, item_id: int | None) -> Reply | None:
        candidates: tuple[int, ...]
        if item_id is not None:
            candidates = (item_id,)
        elif msg.refers_to:
            candidates = msg.refers_to
        else:
            candidates = self.recent_items(msg.transport, msg.room)
        if not candidates:
            return None  # nothing was being discussed: a remark, not a claim
        if len(candidates) > 1:
            if len(candidates) > 5:
                return text(f"Which one? Say {self.prefix}claim ID.", outcome="refused")
            parts: list = ["Which one: "]
            for i, c in enumerate(candidates):
                if i:
                    parts.append(" or " if i == len(candidates) - 1 else ", ")
                parts.append(item_ref(c))
            parts.append(f"? Say {self.prefix}claim ID.")
            return text(*parts, outcome="refused", items=candidates)
        target = candidates[0]

        async def run(ctx: Context) -> Reply:
            return await claim_item(ctx, await ctx.item(target), explicit=False)

        return await self._run(msg, run, write=True, usage=f"{self.prefix}claim ID")

    async def _run(self, msg: Message, run: Callable, *, write: bool, usage: str) -> Reply | None:
        sender = msg.sender
        write = write or msg.msg_id is not None
        try:
            async with self.repo.session(sender.identity, write=write) as s:
                if msg.msg_id is not None and not await s.record_event(msg.transport, msg.msg_id):
                    log.info("skipping %s event %s: already handled", msg.transport, msg.msg_id)
                    return None
                name = await s.display_name(sender.identity)
                release = self.release_for(msg.transport, msg.room)
                if release is None:
                    # No release configured: the newest one when the room first needs one,
                    # pinned, so a release created later (by !defer) does not take the room.
                    latest = await s.latest_release()
                    if latest is not None:
                        release = latest.name
                        self._pinned[(msg.transport, msg.room)] = release
                ctx = Context(s=s, message=msg, prefix=self.prefix, release_name=release,
                              is_admin=self.is_admin(msg), has_name=name is not None,
                              me=name or sender.display_name or sender.nick,
                              settings=self.settings_for(msg.transport, msg.room))
                return await run(ctx)
        except UsageError as exc:
            detail = f" — {exc}" if str(exc) else ""
            reply = text(f"Usage: {usage}{detail}", outcome="refused")
        except (Refused, NotFound) as exc:
            reply = text(str(exc), outcome="refused")
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("internal error %s handling %r from %s in %s/%s", ref, msg.text[:200],
                          sender.identity, msg.transport, msg.room)
            reply = text(f"internal error, logged as {ref}", outcome="error")
        return await self._finish(msg, reply)

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
