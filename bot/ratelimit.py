"""Token buckets: `burst` events at once, then `rate` per second, refilled continuously."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, burst: float, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self) -> float:
        """Seconds until a token is available (0 when one is); consumes nothing."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def full(self) -> bool:
        """True when the bucket is back at its burst: it then holds no memory worth keeping."""
        self._refill()
        return self.tokens >= self.burst

    def take(self) -> bool:
        """Consume a token if one is available."""
        if self.delay() > 0:
            return False
        self.tokens -= 1
        return True
