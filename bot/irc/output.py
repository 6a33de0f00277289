"""Who gets the next IRC line: one queue per requester, served fairly.

The connection's writer may send one line per token of its bucket. Which line is decided
only when a token is there, from these queues:
- urgent lines (PONG, QUIT, the bot's NickServ login) first, in order;
- then questions a held command waits for (WHOIS), one queue per asker (`ask`): served in
  turn by the same rule as answers, so one asker's many questions (clones sharing a
  user@host) do not delay another's; but never more than ASKS_IN_ROW of them in a row while
  an answer waits, so that questions from many hosts cannot starve every answer;
- then one queue per requester: a person (network and `user@host`, else the folded nick:
  clones under many nicks are one person), a room for unsolicited
  posts (digests), or the connection itself (JOIN, CAP, ...). The next line comes from the
  requester served fewest lines since the writer was last idle; among equals, the one with
  the fewest lines waiting (a one-line answer is not kept behind long listings), then the
  one waiting longest. A newcomer's answer therefore goes out next, however many others
  are queued, and nobody is served twice while another waiting requester has been served
  less.

An answer to a person who already has more than `BACKLOG` lines waiting is not queued but
counted; once their queue has drained, one line says how many were dropped.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

BACKLOG = 8  # lines waiting for one person beyond which further answers to them are dropped
CONNECTION = ""  # the key of the connection's own lines (registration, JOIN, CTCP replies)
MAX_SERVED = 10_000  # served counts kept during one long busy period
ASKS_IN_ROW = 3  # questions sent in a row, at most, while an answer waits


@dataclass(frozen=True)
class Requester:
    """Who an answer is for, and where the "answers dropped" line would go."""

    key: str  # "network/user@host" (or "network/folded nick")
    nick: str  # as shown in that line
    command: str  # PRIVMSG or NOTICE
    target: str  # the channel, or the nick in private


@dataclass
class _Line:
    data: bytes
    secret: bool
    at: float


@dataclass
class _Queue:
    lines: deque[_Line] = field(default_factory=deque)
    dropped: int = 0
    dropped_for: Requester | None = None  # where to say so: the last dropped answer's target


def dropped_text(count: int, nick: str) -> str:
    return (f"{count} more answer{'s' * (count != 1)} for {nick} dropped: "
            "ask again with a narrower query")


class OutputQueues:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._urgent: deque[_Line] = deque()
        self._asks: dict[str, _Queue] = {}
        self._queues: dict[str, _Queue] = {}
        self._served: dict[str, int] = {}  # lines sent per requester since the writer was idle
        self._count = 0
        self._open = 0  # answers begun whose further lines are still to come (`more`)
        self._asks_in_row = 0

    def __len__(self) -> int:
        return self._count

    def waiting(self, key: str) -> int:
        q = self._queues.get(key)
        return len(q.lines) if q else 0

    def put(self, data: bytes, *, key: str = CONNECTION, urgent: bool = False,
            secret: bool = False, ask: bool = False) -> None:
        """`ask`: a question under `key`, sent before every answer (see the module's doc)."""
        line = _Line(data, secret, self.clock())
        if urgent:
            self._urgent.append(line)
        else:
            (self._asks if ask else self._queues).setdefault(key, _Queue()).lines.append(line)
        self._count += 1

    def withdraw(self, key: str, data: bytes) -> bool:
        """Take back a question not sent yet (nobody waits for its answer any more)."""
        q = self._asks.get(key)
        for line in q.lines if q else ():
            if line.data == data:
                q.lines.remove(line)
                if not q.lines:
                    del self._asks[key]
                self._count -= 1
                if self._count == 0 and not self._open:
                    self._served.clear()
                return True
        return False

    def answer(self, who: Requester, lines: list[bytes], *, more_to_come: bool = False) -> bool:
        """Queue a whole answer for `who`, or, when more than BACKLOG lines already wait for
        them, count it as dropped and return False. `more_to_come`: these are its first lines
        and `more` adds the rest; until then the busy period goes on even if nothing waits."""
        q = self._queues.get(who.key)
        if q is not None and len(q.lines) > BACKLOG:
            q.dropped += 1
            q.dropped_for = who
            return False
        for data in lines:
            self.put(data, key=who.key)
        self._open += more_to_come
        return True

    def more(self, who: Requester, lines: list[bytes]) -> None:
        """The rest of an answer begun with `answer(..., more_to_come=True)`."""
        for data in lines:
            self.put(data, key=who.key)
        self._open -= 1

    def pop(self) -> tuple[str, bytes, bool] | None:
        """The next line to write: (requester key, bytes, secret); None when nothing waits."""
        if self._urgent:
            line = self._urgent.popleft()
            key = CONNECTION
        else:
            picked = None
            if self._asks_in_row < ASKS_IN_ROW or not any(q.lines for q in self._queues.values()):
                picked = self._fairest(self._asks)
            self._asks_in_row = self._asks_in_row + 1 if picked is not None else 0
            picked = picked or self._fairest(self._queues)
            if picked is None:
                return None
            key, line = picked
        self._count -= 1
        if self._count == 0 and not self._open:
            self._served.clear()  # idle: the next busy period starts even
        return key, line.data, line.secret

    def _fairest(self, queues: dict[str, _Queue]) -> tuple[str, _Line] | None:
        """The next line of `queues`: from the requester served least since the writer was
        idle, then the one with the fewest lines waiting, then the one waiting longest."""
        ready = [(self._served.get(k, 0), len(q.lines), q.lines[0].at, k)
                 for k, q in queues.items() if q.lines]
        if not ready:
            return None
        key = min(ready)[3]
        q = queues[key]
        line = q.lines.popleft()
        if not q.lines and not q.dropped:
            del queues[key]
        if len(self._served) >= MAX_SERVED and key not in self._served:
            self._served = {k: n for k, n in self._served.items()
                            if k in self._queues or k in self._asks}
        self._served[key] = self._served.get(key, 0) + 1
        return key, line

    def drained(self, key: str) -> tuple[Requester, int] | None:
        """After a pop: when `key`'s queue is empty and answers to it were dropped, who to
        tell and how many (once; the count starts again)."""
        q = self._queues.get(key)
        if q is None or q.lines or not q.dropped or q.dropped_for is None:
            return None
        del self._queues[key]
        return q.dropped_for, q.dropped
