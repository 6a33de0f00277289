"""Messages in: a PRIVMSG becomes a `Message` from an identity, in order, to the dispatcher.

Addressed lines (`todobot: blockers`, a bare command in private) become commands, a CTCP
ACTION is the sender speaking, other CTCP is answered (`replies.py`) and goes no further.
Where the server has not told the sender's account (`identity.py`) and the answer depends
on it, the message waits for the WHOIS answer (bounded), and so do that person's later
messages (their order is kept); everyone else's pass meanwhile. A worker task hands the
messages to the dispatcher one at a time and delivers each reply (`replies.py`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime

from irc import ctcp

from ...commands import claim_intent, lookup
from ...commands.messages import Message, text as one_line
from .connection import IrcConnection, IrcLine, userhost_of
from .identity import _WhoisAnswer
from .text import strip_formatting

log = logging.getLogger(__name__)

INBOX_SIZE = 200  # messages waiting for the dispatcher; more are dropped (flood)
WHOIS_WAIT = 5.0  # a command waits this long for the server's WHOIS answer
CHANGED_HANDS = "your nick changed hands while I checked your account: send the command again"
HELD_MAX = 20  # messages of one person held behind their unanswered WHOIS; more are dropped
# Commands that are anyone's but whose answer depends on who you are.
_IDENTITY_COMMANDS = {"whoami", "iam", "claim"}
_ADDRESSED = re.compile(r"^\s*([^\s:,]+)[:,]\s*(.*)$", re.DOTALL)


@dataclass
class _Inbound:
    """A message waiting for the dispatcher; `whois` is set while its sender's account is
    being asked for."""

    msg: Message
    reply_to: str
    whois: asyncio.Future[_WhoisAnswer] | None = None
    deadline: float = 0.0
    more: bool = False  # "!more": the next page of this person's last long answer
    userhost: str = ""  # the user@host the command came from
    stale: bool = False  # the nick quit or changed while its WHOIS was pending


class InboundMixin:
    """Messages in, held behind a pending WHOIS, to the dispatcher (a part of `IrcTransport`)."""

    def _on_privmsg(self, conn: IrcConnection, line: IrcLine) -> None:
        nick = line.nick
        if not nick or len(line.params) < 2:
            return
        if conn.is_me(nick):  # echo-message: our own line, with our real prefix
            if line.source and "@" in line.source:
                conn.source = line.source
            return
        target, body = line.params[0], line.params[1]
        if conn.is_channel(target):
            room = self._fold(target)
            if room not in self._channels:
                return
            reply_to, private = self._channels[room], False
        else:
            room, reply_to, private = nick, nick, True
        if body.startswith(ctcp.DELIMITER):
            action = self._ctcp(conn, nick, body)
            if action is None:
                return
            # "/me will take this one" is the sender saying "I will take this one"; an action
            # is never a command.
            text = "I " + strip_formatting(action).strip()
        else:
            text = self._as_command(conn, strip_formatting(body), private)
        userhost = userhost_of(line.source or "")
        known, account = self._known_account(conn, line, nick)
        # No msg_id: IRC never replays a message, so recording ids for at-most-once handling
        # would only cost a write per command.
        msg = Message(transport=self.name, room=room, sender=self._sender(nick, account),
                      text=text, private=private, at=_server_time(line.tags.get("time")))
        inbound = _Inbound(msg, reply_to, userhost=userhost)
        # "!more" is the transport's own, but it queues like a command: after the answer
        # to this person's previous one, which it continues.
        inbound.more = text.strip().casefold() == f"{self.prefix}more".casefold()
        folded = self._fold(nick)
        held = self._held.get(folded)
        if not known and not inbound.more and self._needs_account(text):
            inbound.whois = self._ask_whois(conn, nick, userhost)
            if inbound.whois is None:
                log.debug("%s: not asking WHOIS %s (%s): too many questions pending",
                          self.name, nick, userhost)
                inbound.msg = dataclasses.replace(
                    msg, sender=self._sender(nick, None, unconfirmed=True))
            else:
                inbound.deadline = time.monotonic() + WHOIS_WAIT
                if held is None:
                    self._hold(folded, inbound)
                    return
        if held is not None:  # behind their own earlier message, never overtaking it
            if len(held) >= HELD_MAX:
                log.warning("%s: too many messages from %s wait for WHOIS; dropping one",
                            self.name, nick)
            else:
                held.append(inbound)
            return
        self._queue(inbound)

    def _queue(self, inbound: _Inbound) -> None:
        try:
            self._inbox.put_nowait(inbound)
        except asyncio.QueueFull:
            log.warning("%s: too many waiting messages; dropping one from %s", self.name,
                        inbound.msg.sender.nick)

    def _hold(self, folded: str, inbound: _Inbound) -> None:
        """Keep this person's messages aside until their WHOIS is answered or its wait runs
        out; the worker meanwhile serves everyone else (a server that never answers WHOIS
        delays only the asker, by WHOIS_WAIT at most)."""
        self._held[folded] = [inbound]
        assert inbound.whois is not None

        async def release(fut: asyncio.Future[_WhoisAnswer], deadline: float) -> None:
            try:
                await asyncio.wait({fut}, timeout=max(0.0, deadline - time.monotonic()))
                if not fut.done():
                    self._give_up_whois(folded, fut)
            finally:
                for waiting in self._held.pop(folded, []):
                    self._queue(waiting)

        task = asyncio.create_task(release(inbound.whois, inbound.deadline),
                                   name=f"{self.name}:whois:{folded}")
        self._holds.add(task)
        task.add_done_callback(self._holds.discard)

    def _as_command(self, conn: IrcConnection, text: str, private: bool) -> str:
        """`todobot: blockers` and `todobot, claim 12` (and, in private, a bare `blockers`)
        as the prefixed command; anything else unchanged."""
        m = _ADDRESSED.match(text)
        if m and conn.is_me(m.group(1)):
            rest = m.group(2).strip()
        elif private:
            rest = text.strip()
        else:
            return text
        if rest.startswith(self.prefix):
            return rest
        word = rest.split(None, 1)[0] if rest else ""
        if word and (lookup(word) is not None or word.casefold() == "more"):
            return self.prefix + rest
        return rest if m and conn.is_me(m.group(1)) else text

    def _needs_account(self, text: str) -> bool:
        """Whether the answer depends on who the sender is: commands that need more than
        anyone may do, the few that show or bind identity, and claims."""
        raw = text.strip()
        if raw.startswith(self.prefix):
            words = raw[len(self.prefix):].split(None, 1)
            cmd = lookup(words[0]) if words else None
            return cmd is not None and (cmd.who != "anyone" or cmd.name in _IDENTITY_COMMANDS
                                        or cmd.admin_only(words[1] if len(words) > 1 else ""))
        return len(raw) <= 200 and claim_intent(raw) is not None

    # -- answering -------------------------------------------------------------------------
    async def _work(self) -> None:
        """Hand messages to the dispatcher one at a time, in arrival order."""
        assert self._dispatcher is not None
        while True:
            inbound = await self._inbox.get()
            if inbound.more:
                conn, msg = self._conn, inbound.msg
                if conn is not None and conn.registered:
                    self._more(conn, msg.room, msg.sender.nick, inbound.reply_to, msg.private,
                               inbound.userhost)
                continue
            msg = await self._identified_message(inbound)
            if msg is None:
                msg = inbound.msg
                self._deliver(msg, inbound.reply_to,
                              one_line(f"{msg.sender.nick}: {CHANGED_HANDS}", outcome="refused"),
                              inbound.userhost)
                continue
            try:
                reply = await self._dispatcher.handle(msg)
            except Exception:  # the dispatcher answers errors itself; a last guard
                log.exception("%s: unhandled error for %r", self.name, msg.text[:200])
                continue
            if reply is not None:
                self._deliver(msg, inbound.reply_to, reply, inbound.userhost)

    async def _identified_message(self, inbound: _Inbound) -> Message | None:
        """The message with its sender's account, once WHOIS answered (bounded wait); None
        when the answer is about another connection than the one the command came from."""
        msg, fut = inbound.msg, inbound.whois
        if fut is None:
            return msg
        nick = msg.sender.nick
        try:
            answer = await asyncio.wait_for(asyncio.shield(fut),
                                             max(0.0, inbound.deadline - time.monotonic()))
        except (asyncio.TimeoutError, asyncio.CancelledError):
            if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                raise
            log.warning("%s: no WHOIS answer for %s within %.0fs; treating as not logged in",
                        self.name, nick, WHOIS_WAIT)
            return dataclasses.replace(msg, sender=self._sender(nick, None, unconfirmed=True))
        if inbound.stale or answer.userhost != inbound.userhost:
            log.info("%s: %s changed hands while its WHOIS was pending (%s, then %s); "
                     "refusing %r", self.name, nick, inbound.userhost, answer.userhost or "gone",
                     msg.text[:50])
            return None
        return dataclasses.replace(msg, sender=self._sender(nick, answer.account))


def _server_time(value: str | None) -> float:
    """The IRCv3 `time` tag as a timestamp; now when absent or malformed."""
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return time.time()
