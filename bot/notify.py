"""Telling watchers what changed: batched, one message per person per window at most.

The dispatcher hands over the notices of each command that changed something (after its
transaction committed); a person's first notice goes out at once, the ones that follow within
`window` seconds wait and go out together. A notice is delivered through the first of the
person's identities a transport can reach (`Transport.notify`); when none can, it is dropped
and logged — a notice is a courtesy, never a queue that grows without end. On a clean stop
`drain` sends what still waits, window or not, before the transports close, for at most
`DRAIN_SECONDS`; what it could not send by then is counted in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ..commands.messages import Reply, text
from ..commands.watch import Notice
from .transport import Transport

log = logging.getLogger(__name__)

WINDOW = 60.0
# Lines one person's batch keeps: past them it says how many more there were.
MAX_LINES = 20
# How long a stop waits for the last batches: a stuck network must not hold the stop up.
DRAIN_SECONDS = 5.0


@dataclass
class _Batch:
    identities: tuple[str, ...]
    lines: list[str] = field(default_factory=list)
    dropped: int = 0


class Notifier:
    name = "notify"  # the source /metrics names for its queue

    def __init__(self, transports: list[Transport], *, clock: Callable[[], float] = time.time,
                 window: float = WINDOW) -> None:
        self.transports = transports  # the app's list: transports started later are seen too
        self.clock = clock
        self.window = window
        self._pending: dict[int, _Batch] = {}
        self._sent: dict[int, float] = {}  # person id → when their last message went out
        self._wake = asyncio.Event()

    async def queue_lengths(self) -> dict[str, int]:
        """People whose notices wait for their window."""
        return {"batches": len(self._pending)}

    def add(self, notices: Iterable[Notice]) -> None:
        for n in notices:
            batch = self._pending.setdefault(n.person_id, _Batch(n.identities))
            batch.identities = n.identities
            if n.line in batch.lines:
                continue
            if len(batch.lines) < MAX_LINES:
                batch.lines.append(n.line)
            else:
                batch.dropped += 1
        self._wake.set()

    def _due(self, person_id: int, now: float) -> bool:
        last = self._sent.get(person_id)
        return last is None or now - last >= self.window

    async def flush(self) -> int:
        """Send every batch whose person's window has passed; how many were sent."""
        now = self.clock()
        sent = 0
        for person_id in [p for p in self._pending if self._due(p, now)]:
            sent += await self._send(person_id, self._pending.pop(person_id), now)
        # Forget windows long past, so the map holds only people told recently.
        self._sent = {p: at for p, at in self._sent.items() if now - at < self.window}
        return sent

    async def drain(self, timeout: float = DRAIN_SECONDS) -> int:
        """At a stop: send every batch still waiting, window or not, for at most `timeout`
        seconds; how many notices were left unsent (logged)."""
        sending: _Batch | None = None
        try:
            async with asyncio.timeout(timeout):
                while self._pending:
                    person_id = next(iter(self._pending))
                    sending = self._pending.pop(person_id)
                    await self._send(person_id, sending, self.clock())
                    sending = None
        except TimeoutError:
            pass
        left = list(self._pending.values()) + ([sending] if sending else [])
        self._pending.clear()
        dropped = sum(len(b.lines) + b.dropped for b in left)
        if dropped:
            log.warning("stopping: %d change notices not sent within %g s; dropped",
                        dropped, timeout)
        return dropped

    async def _send(self, person_id: int, batch: _Batch, now: float) -> int:
        more = f"; and {batch.dropped} more" if batch.dropped else ""
        self._sent[person_id] = now
        if await self._deliver(batch.identities, text("; ".join(batch.lines) + more)):
            return 1
        log.info("no transport reaches person %d; %d change notices dropped",
                 person_id, len(batch.lines) + batch.dropped)
        return 0

    async def _deliver(self, identities: tuple[str, ...], reply: Reply) -> bool:
        for identity in identities:
            for transport in list(self.transports):
                # "irc:net/account" goes to the transports "irc:net…"; each checks the rest.
                if identity.split(":", 1)[0] != transport.name.split(":", 1)[0]:
                    continue
                try:
                    if await transport.notify(identity, reply):
                        return True
                except Exception:  # one transport's trouble never stops the others
                    log.exception("%s: notifying %s failed", transport.name, identity)
        return False

    async def run(self) -> None:
        """Flush as batches fall due, until cancelled."""
        while True:
            try:
                await self.flush()
            except Exception:
                log.exception("sending change notices failed")
            now = self.clock()
            waits = [self._sent.get(p, now) + self.window - now for p in self._pending]
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(1.0, min(waits)) if waits else None)
            except TimeoutError:
                pass
