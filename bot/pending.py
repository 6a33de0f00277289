"""The rest of long answers, kept for `!more`: one per (room, person), forgotten after a while,
and at most `limit` of them (the oldest go first). Each transport keeps its own parts: wire
lines on IRC, Reply parts on Matrix."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

TTL = 1800.0  # seconds a rest waits for "!more"

T = TypeVar("T")


@dataclass
class Pending(Generic[T]):
    parts: list[T]
    meta: Any  # what the transport needs besides the parts (IRC: the command and target)
    at: float


class PendingAnswers(Generic[T]):
    def __init__(self, limit: int, *, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.ttl, self.clock = limit, ttl, clock
        self._by_key: dict[Hashable, Pending[T]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def remember(self, key: Hashable, parts: list[T], meta: Any = None) -> None:
        """Keep `parts` for the next `!more` of `key`, in place of what it had."""
        now = self.clock()
        for k in [k for k, p in self._by_key.items() if now - p.at > self.ttl]:
            del self._by_key[k]
        self._by_key.pop(key, None)  # a new answer is the newest
        while len(self._by_key) >= self.limit:
            del self._by_key[next(iter(self._by_key))]
        self._by_key[key] = Pending(list(parts), meta, now)

    def get(self, key: Hashable) -> Pending[T] | None:
        """What waits for `key`; None when nothing does or it is too old (then forgotten)."""
        pending = self._by_key.get(key)
        if pending is not None and self.clock() - pending.at > self.ttl:
            del self._by_key[key]
            return None
        return pending

    def advance(self, key: Hashable, count: int) -> list[T]:
        """`count` parts were shown: the parts left (the time starts again), or [] when the
        answer is done and forgotten."""
        pending = self._by_key.get(key)
        if pending is None:
            return []
        rest = pending.parts[count:]
        if rest:
            pending.parts, pending.at = rest, self.clock()
        else:
            del self._by_key[key]
        return rest
