"""Token buckets: `burst` events at once, then `rate` per second, refilled continuously.

One class serves the IRC output throttle (per connection) and the per-person command
cooldown (per sender).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, burst: float = 4, rate: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if burst < 1 or rate <= 0:
            raise ValueError("burst must be >= 1 and rate > 0")
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self.tokens = float(burst)
        self._last = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now

    def delay(self) -> float:
        """Seconds until a token is available; 0 when one is. Consumes nothing."""
        self._refill()
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        """Consume one token (taking one that is not there leaves the bucket in debt)."""
        self._refill()
        self.tokens -= 1

    def try_take(self) -> bool:
        """Consume a token if one is available."""
        if self.delay() > 0:
            return False
        self.tokens -= 1
        return True

    def full(self) -> bool:
        """Back at its burst: such a bucket holds no memory worth keeping."""
        self._refill()
        return self.tokens >= self.burst

    async def acquire(self) -> None:
        """Wait, without blocking the event loop, until a token is available; then take it."""
        while (wait := self.delay()) > 0:
            await asyncio.sleep(wait)
        self.take()
