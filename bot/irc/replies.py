"""What the bot says on IRC: answers, `!more` pages, posts to channels, CTCP answers.

A reply is rendered to wire lines packed and split to the line budget (`text.py`) and queued
in the asker's own output queue (`output.py`: served fairly, a bounded backlog per person,
clones under many nicks one asker), by NOTICE when the command came in private. Change
notices (`!watch`) go by NOTICE to the nick logged in as the watcher's account. Long answers
stop after `max_lines` lines; the rest waits per channel and nick for `<prefix>more`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator

from irc import ctcp

from ...commands.messages import Message, Reply
from .connection import IrcConnection
from .output import Requester
from .text import budget_for, render_lines, wire_lines

log = logging.getLogger(__name__)

MAX_PENDING = 200  # answers kept for "!more" (bot/pending.py)
CTCP_ANSWERED = ("ACTION", "CLIENTINFO", "PING", "VERSION")


def _version() -> str:
    from ... import __version__
    return __version__


class RepliesMixin:
    """Delivering replies, `!more`, posts and CTCP answers (a part of `IrcTransport`)."""

    async def post(self, room: str, reply: Reply) -> None:
        if not self.ready.is_set():
            try:
                await asyncio.wait_for(self.ready.wait(), 60)
            except asyncio.TimeoutError:
                log.warning("%s: not connected; dropping a post to %s", self.name, room)
                return
        conn = self._conn
        if conn is None:
            return
        target = self._channels.get(self._fold(room), room)
        # Under the room's own key: a digest takes its turn with the answers, never dropped.
        conn.send_lines(self._wire(conn, "PRIVMSG", target, reply), key=f"post:{self._fold(room)}")

    async def notify(self, identity: str, reply: Reply) -> bool:
        """A NOTICE to the nick known now to be logged in as the identity's account; a nick
        without an account (`~nick`) is nobody to tell: whoever holds it next is not them."""
        account = identity.removeprefix(f"{self.name}/")
        conn = self._conn
        if (account == identity or not account or account.startswith("~")
                or conn is None or not conn.registered):
            return False
        nick = self._nick_of_account(account)
        if nick is None:
            return False
        # In the person's own queue, like an answer: fair, bounded, throttled.
        return conn.answer(self._requester(nick, "NOTICE", nick),
                           self._wire(conn, "NOTICE", nick, reply))

    # -- CTCP --------------------------------------------------------------------------------
    def _ctcp(self, conn: IrcConnection, nick: str, body: str) -> str | None:
        """Answer VERSION, PING and CLIENTINFO (by NOTICE, rate limited); return the text of
        an ACTION; ignore every other request."""
        for part in ctcp.dequote(body):
            if not isinstance(part, tuple):
                continue
            tag, data = part[0].upper(), (part[1] if len(part) > 1 else "")
            if tag == "ACTION":
                return data
            answer = {"VERSION": f"todobot {_version()}",
                      "PING": data,
                      "CLIENTINFO": " ".join(CTCP_ANSWERED)}.get(tag)
            if answer is None or not self._ctcp_bucket.try_take():
                continue
            reply = f"{ctcp.DELIMITER}{tag} {answer}".rstrip() + ctcp.DELIMITER
            try:
                conn.send("NOTICE", nick, reply)
            except ValueError:
                pass  # a nick that cannot be a target
        return None

    # -- answers -------------------------------------------------------------------------------
    def _deliver(self, msg: Message, reply_to: str, reply: Reply, userhost: str = "") -> None:
        conn = self._conn
        if conn is None or not conn.registered:
            log.warning("%s: disconnected; reply to %s lost", self.name, msg.sender.nick)
            return
        nick = msg.sender.nick
        # In private, a NOTICE: the convention for bots, never answered by an auto-reply.
        command, target = ("NOTICE" if msg.private else "PRIVMSG"), reply_to
        if reply.long and not msg.private and self.net.long_replies != "channel":
            command = "NOTICE" if self.net.long_replies == "notice" else "PRIVMSG"
            target = nick
        wire = self._wire_lines(conn, command, target, reply)
        # The first line is queued (and, when the writer is idle, written) before the rest
        # are rendered: a listing's first line does not wait for its last.
        lines = list(itertools.islice(wire, 1))
        who = self._requester(nick, command, target, userhost)
        if not conn.answer(who, lines, more_to_come=True):
            log.info("%s: answer to %s dropped: too many lines already wait for them",
                     self.name, nick)
            return
        more: list[bytes] = []
        try:
            lines += wire
            limit = self.net.max_lines  # at least 1: the first line is on the first page
            rest = lines[limit:]
            more = lines[1:limit] + (self._offer(conn, command, target, len(rest)) if rest else [])
        finally:
            conn.answer_more(who, more)
        if rest:
            self._pending.remember((msg.room, self._fold(nick)), rest, (command, target))

    def _requester(self, nick: str, command: str, target: str, userhost: str = "") -> Requester:
        """Whose turn an answer takes: the asker's user@host when known, so clones under
        many nicks are one requester (one turn, one backlog), not forty."""
        return Requester(f"{self.net.network}/{userhost or self._fold(nick)}", nick, command,
                         target)

    @classmethod
    def _wire(cls, conn: IrcConnection, command: str, target: str, reply: Reply) -> list[bytes]:
        """The reply as wire lines: listings packed to the line budget, then split to it."""
        return list(cls._wire_lines(conn, command, target, reply))

    @staticmethod
    def _wire_lines(conn: IrcConnection, command: str, target: str, reply: Reply) -> Iterator[bytes]:
        source = conn.wire_source()
        budget = budget_for(command, target, source)
        for text in render_lines(reply, budget):
            yield from wire_lines(command, target, text, source)

    def _offer(self, conn: IrcConnection, command: str, target: str, left: int) -> list[bytes]:
        text = (f"({left} more line{'s' * (left != 1)}: say \x02{self.prefix}more\x02)")
        return wire_lines(command, target, text, conn.wire_source())

    def _more(self, conn: IrcConnection, room: str, nick: str, reply_to: str,
              private: bool = False, userhost: str = "") -> None:
        key = (room, self._fold(nick))
        pending = self._pending.get(key)
        if pending is None:
            command = "NOTICE" if private else "PRIVMSG"
            conn.answer(self._requester(nick, command, reply_to, userhost),
                        wire_lines(command, reply_to, f"{nick}: there is nothing more to show.",
                                   conn.wire_source()))
            return
        limit = self.net.max_lines
        command, target = pending.meta
        lines, rest = pending.parts[:limit], pending.parts[limit:]
        if rest:
            lines = lines + self._offer(conn, command, target, len(rest))
        # A page dropped (their backlog is full) stays pending for the next "more".
        if conn.answer(self._requester(nick, command, target, userhost), lines):
            self._pending.advance(key, limit)
