"""The rooms the bot is in: the configured ones (aliases resolved, each bound to its settings,
followed to the room that replaced it) joined at start, invites accepted only for those or
from `allowed_inviters`, and a reload (`apply_config`) that re-binds settings, joins rooms
added and leaves rooms removed, in the background while the sync goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from nio import InviteMemberEvent, JoinResponse, RoomLeaveResponse, RoomResolveAliasResponse, SyncResponse

from ...commands.settings import Settings
from ..config import Config
from ..rooms import room_entry, room_settings
from ..transport import Reconfigured
from .errors import TRANSIENT, ServerError, check_rate_limit
from .sync import BACKOFF_FIRST

log = logging.getLogger(__package__)  # one logger for the whole transport: todobot.bot.matrix

# Matrix settings read at each use, so a reload applies them without logging in again.
LIVE_MATRIX_KEYS = ("allowed_inviters", "max_events", "gap_fetch_max", "reply_claim_max_age")


class Rooms:
    """The rooms of MatrixTransport (transport.py holds the state)."""

    async def _join_configured(self) -> None:
        for room, settings in self.configured.items():
            await self._join_room(room, settings)
        self._rooms_joined = True
        self._rooms_ready.set()

    async def _join_room(self, room: str, settings: Settings) -> str | None:
        """Resolve a configured room (id or alias), bind it and any room that replaced it, and
        join the newest one; returns that room id, or None when it cannot be joined now."""
        assert self.client is not None and self.dispatcher is not None
        room_id = room
        if room.startswith("#"):
            found = await self.client.room_resolve_alias(room)
            if not isinstance(found, RoomResolveAliasResponse):
                check_rate_limit(found)
                log.error("matrix: cannot resolve %s: %s %s", room, found.status_code,
                          found.message)
                return None
            room_id = found.room_id
        self._room_ids[room] = room_id
        self.room_release[room_id] = settings
        self.dispatcher.bind_room(self.name, room_id, settings)
        # A room upgraded while we served it: its successor, with the same settings.
        chain = [room_id]
        for _ in range(20):
            newer = await self._kv_get(f"upgraded:{room_id}")
            if not newer:
                break
            self._successor[room_id] = newer
            room_id = newer
            chain.append(room_id)
            self.room_release[room_id] = settings
            self.dispatcher.bind_room(self.name, room_id, settings)
        while True:
            resp = await self.client.join(room_id)
            if not isinstance(resp, JoinResponse):
                check_rate_limit(resp)
                log.error("matrix: cannot join %s (%s): %s %s; waiting for an invite", room,
                          room_id, resp.status_code, resp.message)
                return None
            # (A successor remembered by an older version, which did not check it.)
            if len(chain) == 1 or await self._replaces(room_id, chain[-2]) is not False:
                break
            old = chain[-2]
            log.warning("matrix: %s, remembered as the upgrade of %s, does not say it replaces "
                        "it; leaving it and going back to %s", room_id, old, old)
            await self.client.room_leave(room_id)
            await self._kv_set(f"upgraded:{old}", "")
            self._successor.pop(old, None)
            self.room_release.pop(room_id, None)
            self.dispatcher.unbind_room(self.name, room_id)
            chain.pop()
            room_id = old
        self._present.add(room_id)
        return room_id

    def _ids_of(self, room: str) -> list[str]:
        """The room ids a configured room stands for: its own, then each replacement's."""
        room_id = self._room_ids.get(room, room if room.startswith("!") else None)
        out: list[str] = []
        while room_id is not None and room_id not in out:
            out.append(room_id)
            room_id = self._successor.get(room_id)
        return out

    def apply_config(self, config: Config) -> Reconfigured:
        """Re-bind the configured rooms' settings, join rooms added to `rooms:` and leave rooms
        removed from it (in the background: the sync goes on). Rooms the bot joined on an
        invite from `allowed_inviters` were never in `rooms:` and are not left."""
        out = Reconfigured()
        if config.matrix is None:
            out.restart.append("matrix: removed from the configuration; still syncing until a "
                               "restart")
            return out
        self.config, new = config, config.matrix
        wanted = {room: room_settings(config, release=rel, digest=dig)
                  for room, rel, dig in (room_entry(r, "room") for r in new.rooms)}
        added = [room for room in wanted if room not in self.configured]
        removed = [room for room in self.configured if room not in wanted]
        gone = {room_id: room for room in removed for room_id in self._ids_of(room)}
        for room in removed:
            self._room_ids.pop(room, None)
        self.configured = wanted
        served: set[str] = set()
        for room, settings in wanted.items():
            for room_id in self._ids_of(room):
                served.add(room_id)
                self.room_release[room_id] = settings
                if self.dispatcher is not None:
                    self.dispatcher.bind_room(self.name, room_id, settings)
        leave = [room_id for room_id in gone if room_id not in served]
        for room_id in leave:
            self.room_release.pop(room_id, None)
            if self.dispatcher is not None:
                self.dispatcher.unbind_room(self.name, room_id)
        out.changes += [f"matrix: joining {room}" for room in added]
        out.changes += [f"matrix: leaving {gone[room_id]}"
                        + (f" ({room_id})" if room_id != gone[room_id] else "") for room_id in leave]
        if (added or leave) and self.client is not None:
            # Before the first join of the configured rooms, that join takes the added ones.
            join = added if self._rooms_joined else []
            task = asyncio.create_task(self._change_rooms(join, leave), name="matrix:rooms")
            self._room_tasks.add(task)
            task.add_done_callback(self._room_tasks.discard)
        for key in LIVE_MATRIX_KEYS:
            if getattr(new, key) != getattr(self.mcfg, key):
                out.changes.append(f"matrix: {key} {getattr(self.mcfg, key)} -> {getattr(new, key)}")
        held = sorted(k for k, v in new.model_dump(exclude={"rooms", *LIVE_MATRIX_KEYS}).items()
                      if getattr(self.mcfg, k) != v)
        self.mcfg = self.mcfg.model_copy(update={"rooms": new.rooms,
                                                 **{k: getattr(new, k) for k in LIVE_MATRIX_KEYS}})
        if held:
            out.restart.append(f"matrix: {', '.join(held)} changed; that takes a restart")
        return out

    async def settled(self) -> None:
        while self._room_tasks:
            await asyncio.gather(*self._room_tasks, return_exceptions=True)

    async def _change_rooms(self, join: list[str], leave: list[str]) -> None:
        """After a reload: join the rooms added, leave the rooms removed, one request at a
        time (a reload right after another waits for this one), each logged."""
        async with self._room_lock:
            await self._rooms_ready.wait()
            for room in join:
                settings = self.configured.get(room)
                if settings is None:
                    continue  # removed again by a later reload
                room_id = await self._retrying(f"join {room}",
                                               lambda: self._join_room(room, settings))
                if room_id is not None:
                    log.info("matrix: joined %s%s", room, f" ({room_id})" if room_id != room else "")
            for room_id in leave:
                if room_id in self.room_release:
                    continue  # configured again by a later reload
                if room_id not in self._present:
                    log.info("matrix: not in %s; nothing to leave", room_id)
                    continue
                await self._retrying(f"leave {room_id}", lambda: self._leave(room_id))

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """Run one join or leave; a rate limit or an outage is waited out a few times."""
        for tries in range(5):
            try:
                return await attempt()
            except (ServerError, *TRANSIENT) as exc:
                delay = getattr(exc, "retry_after", None) or BACKOFF_FIRST * 2 ** tries
                log.warning("matrix: cannot %s now (%s); trying again in %.0f s", what,
                            exc or type(exc).__name__, delay)
                await asyncio.sleep(delay)
        log.error("matrix: gave up trying to %s; a restart tries again", what)
        return None

    async def _leave(self, room_id: str) -> None:
        """Leave a room that was removed from the configuration."""
        assert self.client is not None
        resp = await self.client.room_leave(room_id)
        if isinstance(resp, RoomLeaveResponse):
            self._present.discard(room_id)
            log.info("matrix: left %s (no longer in the configuration)", room_id)
            return
        check_rate_limit(resp)
        log.error("matrix: cannot leave %s: %s %s", room_id, resp.status_code, resp.message)

    async def _handle_invites(self, resp: SyncResponse) -> None:
        client = self.client
        assert client is not None
        for room_id, info in resp.rooms.invite.items():
            inviter = next((ev.sender for ev in info.invite_state
                            if isinstance(ev, InviteMemberEvent) and ev.state_key == client.user_id
                            and ev.membership == "invite"), None)
            wanted = (room_id in self.room_release or room_id in self._upgrades
                      or inviter in self.mcfg.allowed_inviters)
            if wanted:
                log.info("matrix: joining %s (invited by %s)", room_id, inviter)
                joined = await client.join(room_id)
                if not isinstance(joined, JoinResponse):
                    check_rate_limit(joined)
                    log.error("matrix: cannot join %s: %s %s", room_id, joined.status_code,
                              joined.message)
                elif room_id in self._upgrades:
                    old, by = self._upgrades[room_id]
                    await self._adopt_successor(old, room_id, by)
            else:
                log.info("matrix: declining the invite to %s from %s", room_id, inviter)
                await client.room_leave(room_id)
