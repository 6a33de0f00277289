"""Reconnect and retry waits: exponential from `first`, never more than `cap`.

Each transport keeps its own numbers (IRC reconnects jittered from 2 s to 300 s so a netsplit's
bots do not return at once; the Matrix sync loop doubles 5 s → 320 s and is predictable).
"""

from __future__ import annotations

import random


class Backoff:
    """`next()` is the wait before the next attempt; `reset()` after a success.

    With `jitter`, each wait is drawn from the upper half of its step (first..cap doubling)."""

    def __init__(self, first: float, cap: float, *, jitter: bool = False) -> None:
        if not 0 < first <= cap:
            raise ValueError("backoff needs 0 < first <= cap")
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self.attempt = 0

    def next(self) -> float:
        step = min(self.cap, self.first * 2 ** min(self.attempt, 64))
        self.attempt += 1
        return step * random.uniform(0.5, 1.0) if self.jitter else step

    def reset(self) -> None:
        self.attempt = 0
