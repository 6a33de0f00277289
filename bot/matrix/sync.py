"""The sync loop: `next_batch` kept in the database (the backlog before the very first sync
skipped), a `limited` timeline completed by paging back with /messages, and the waits: a
failing homeserver retried after 5 s doubling to 320 s, an unreachable one probed with one TCP
connect per PROBE_INTERVAL, a 429 waited out as long as it asks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from urllib.parse import urlsplit

from nio import MessageDirection, RoomMessagesResponse, SyncResponse

from ..backoff import Backoff
from ..logs import log_failure
from .errors import TRANSIENT, MatrixLoginError, ServerError, check_rate_limit

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix

BACKOFF_FIRST = 5.0
BACKOFF_MAX = 320.0
PROBE_INTERVAL = 5.0  # while the homeserver is unreachable: one TCP connect this often
SYNC_TIMEOUT_MS = 30_000
# Most restarts fit in one sync's timeline; longer gaps are paged back (`_fetch_gap`).
SYNC_FILTER = {"room": {"timeline": {"limit": 100}}, "presence": {"not_types": ["*"]}}
GAP_MAX_AGE = 86400.0  # a gap is fetched back at most this far (seconds)
GAP_PAGE = 100  # events per /messages request


def sync_backoff() -> Backoff:
    """The sync loop's waits: 5 s, 10 s, ... 320 s."""
    return Backoff(BACKOFF_FIRST, BACKOFF_MAX)


class Syncing:
    """The sync loop of MatrixTransport (transport.py holds the state)."""

    async def _run(self) -> None:
        backoff = sync_backoff()
        while not self._stopping.is_set():
            try:
                if not self._logged_in:
                    await self._login()
                if not self._rooms_joined:
                    await self._join_configured()
                await self._sync_once()
                backoff.reset()
                self._recovering = False
            except asyncio.CancelledError:
                raise
            except MatrixLoginError as exc:
                log.critical("%s The Matrix transport has stopped.", exc)
                return
            except ServerError as exc:
                self._recovering = True
                delay = exc.retry_after if exc.retry_after is not None else backoff.next()
                log.warning("matrix: %s; retrying in %.1f s", exc, delay)
                await self._pause(delay, probe=False)
            except TRANSIENT as exc:
                self._recovering = True
                delay = backoff.next()
                log.warning("matrix: homeserver unreachable (%s); retrying within %.0f s",
                            exc or type(exc).__name__, delay)
                if self.client is not None:
                    await self.client.close()  # drop pooled connections to the old server
                await self._pause(delay, probe=True)
            except Exception:
                delay = backoff.next()
                log_failure(log, "matrix: sync failed; retrying in %.0f s", delay)
                await self._pause(delay, probe=False)

    async def _pause(self, delay: float, *, probe: bool) -> None:
        """Wait `delay` seconds, or less when `probe` and the homeserver accepts connections."""
        end = time.monotonic() + delay
        while not self._stopping.is_set():
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                await asyncio.wait_for(self._stopping.wait(), min(left, PROBE_INTERVAL))
                return
            except asyncio.TimeoutError:
                pass
            if probe and time.monotonic() < end and await self._reachable():
                return

    async def _reachable(self) -> bool:
        url = urlsplit(self.mcfg.homeserver)
        port = url.port or (443 if url.scheme == "https" else 80)
        self.probes += 1
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(url.hostname, port), 3)
        except (OSError, asyncio.TimeoutError):
            return False
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
        return True

    async def _sync_once(self) -> None:
        client = self.client
        assert client is not None
        if self.e2ee:
            await self._crypto_housekeeping()
        first_ever = self._next_batch is None
        since = self._next_batch
        full = not self._synced_once  # a fresh process needs the rooms' state (encryption!)
        # After a failure, a sync that returns at once shows we are back (and catches up).
        quick = full or self._recovering
        resp = await client.sync(timeout=0 if quick else SYNC_TIMEOUT_MS, since=self._next_batch,
                                 full_state=full, sync_filter=SYNC_FILTER)
        if not isinstance(resp, SyncResponse):
            if resp.status_code in ("M_UNKNOWN_TOKEN", "M_MISSING_TOKEN"):
                raise MatrixLoginError(
                    f"matrix: the homeserver no longer accepts the access token of "
                    f"{self.mcfg.user_id} ({resp.status_code}: {resp.message}); it was revoked "
                    f"or logged out. Delete {self._credentials_file} to log in again.")
            if resp.status_code == "M_LIMIT_EXCEEDED":
                raise ServerError("sync rate-limited", (resp.retry_after_ms or 1000) / 1000)
            raise ServerError(f"sync failed: {resp.status_code} {resp.message}")
        await self._handle_invites(resp)
        if not self._synced_once:  # the stored token says we were in these rooms already
            self._known_rooms |= set(resp.rooms.join)
        if first_ever:
            log.info("matrix: first sync; skipping the backlog")
        else:
            self._handling = True
            try:
                for room_id, info in resp.rooms.join.items():
                    log.debug("matrix: sync: %d events in %s%s", len(info.timeline.events),
                              room_id, " (limited)" if info.timeline.limited else "")
                    events = list(info.timeline.events)
                    if (info.timeline.limited and info.timeline.prev_batch and since
                            and room_id in self._known_rooms):
                        events = await self._fetch_gap(room_id, info.timeline.prev_batch,
                                                       since) + events
                    await self._handle_timeline(room_id, events)
            finally:
                self._handling = False
        self._known_rooms = (self._known_rooms | set(resp.rooms.join)) - set(resp.rooms.leave)
        self._present = (self._present | set(resp.rooms.join)) - set(resp.rooms.leave)
        if self._stopping.is_set():
            return  # the batch may be half done: keep the old token, replays are deduplicated
        self._synced_once = True
        self._next_batch = resp.next_batch
        if self.repo is not None:
            async with self.repo.session("matrix") as s:
                await s.kv_set(self._kv("next_batch"), resp.next_batch)
        self.synced.set()
        # Change notices waiting for an invitee to join: after the token is kept, so that a
        # failure here never replays the sync.
        if self._held:
            await self._send_held()

    async def _fetch_gap(self, room_id: str, prev_batch: str, since: str) -> list[Any]:
        """The events a `limited` sync left out, oldest first: paged back with /messages from
        the timeline's start to the token of our previous sync, at most `gap_fetch_max` of
        them and none older than GAP_MAX_AGE. What lies beyond is logged, not handled."""
        client = self.client
        assert client is not None
        most = self.mcfg.gap_fetch_max
        oldest = time.time() - GAP_MAX_AGE
        got: list[Any] = []
        token, beyond = prev_batch, ""
        while True:
            if len(got) >= most:
                beyond = f"the limit of {most} events"
                break
            resp = await client.room_messages(room_id, start=token, end=since,
                                              direction=MessageDirection.back,
                                              limit=min(GAP_PAGE, most - len(got)))
            if not isinstance(resp, RoomMessagesResponse):
                check_rate_limit(resp)
                beyond = f"an error ({resp.status_code} {resp.message})"
                break
            for ev in resp.chunk:  # newest first
                if getattr(ev, "server_timestamp", 0) / 1000 < oldest:
                    beyond = f"{GAP_MAX_AGE / 3600:.0f} h back"
                    break
                got.append(ev)
            if beyond or not resp.chunk or not resp.end or resp.end == token:
                break
            token = resp.end
        self.gap_fetched += len(got)
        log.info("matrix: gap in %s: fetched %d missed event%s", room_id, len(got),
                 "s" * (len(got) != 1))
        if beyond:
            log.warning("matrix: gap in %s: stopped at %s; anything said earlier in the gap is "
                        "not handled", room_id, beyond)
        got.reverse()
        return got

