"""Process wiring and lifecycle: initialize → start → wait → stop.

The app owns the database, the dispatcher, the transports and every background task; `stop`
stops the transports, then awaits the tasks, then closes the database, so a graceful stop
never loses a command that was already being handled.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Coroutine
from typing import Any

from ..storage import Database, Repository

from .config import Config
from .dispatcher import Dispatcher
from .transport import Transport

log = logging.getLogger(__name__)

EVENT_MEMORY = 30 * 86400  # seconds an event id is remembered for at-most-once handling


class App:
    def __init__(self, config: Config, *, database: str | None = None,
                 transports: list[Transport] | None = None) -> None:
        self.config = config
        self.database_path = database or config.database
        self.transports: list[Transport] = list(transports or [])
        self.db: Database | None = None
        self.repo: Repository | None = None
        self.dispatcher: Dispatcher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._started: list[Transport] = []
        self.scheduler: Any = None  # bot.scheduler.DigestScheduler when a digest is configured
        self.web: Any = None  # bot.web.StatusServer when `web:` is configured

    # -- lifecycle ------------------------------------------------------------------------------
    async def initialize(self) -> None:
        self.db = await Database.open(self.database_path)
        self.repo = Repository(self.db)
        self.dispatcher = Dispatcher(self.repo, self.config)
        self.transports.extend(self._configured_transports())

    def _configured_transports(self) -> list[Transport]:
        out: list[Transport] = []
        if self.config.irc:
            from .irc import IrcTransport  # imported only when configured
            out.extend(IrcTransport(net, self.config) for net in self.config.irc)
        if self.config.matrix is not None:
            from .matrix import MatrixTransport
            out.append(MatrixTransport(self.config.matrix, self.config, self.repo))
        if self.config.mail:
            from .mail import MailTransport
            out.extend(MailTransport(entry, self.config) for entry in self.config.mail)
        return out

    async def start(self) -> None:
        assert self.dispatcher is not None, "initialize() first"
        for transport in self.transports:
            await transport.start(self.dispatcher)
            self._started.append(transport)
            log.info("transport %s started", transport.name)
        await self.start_extras()
        self.spawn(self._maintain(), "maintenance")

    async def _maintain(self) -> None:
        """Daily: forget handled event ids no protocol will deliver again. Never right at
        start: after a long outage the transports must sync past old events first."""
        while True:
            await asyncio.sleep(86400)
            try:
                assert self.repo is not None
                async with self.repo.session("todobot:maintenance") as s:
                    pruned = await s.prune_events(older_than=s.now - EVENT_MEMORY)
                if pruned:
                    log.info("forgot %d handled event ids older than 30 days", pruned)
            except Exception:
                log.exception("maintenance failed; trying again tomorrow")

    async def start_extras(self) -> None:
        """The digest scheduler and the status page, when configured (after the transports,
        whose rooms the scheduler posts into)."""
        from .scheduler import DigestScheduler, wants_digest
        if wants_digest(self.config) and self.scheduler is None:
            self.scheduler = DigestScheduler(self.repo, self.config, self.dispatcher,
                                             self.transports)
            self.spawn(self.scheduler.run(), "digest-scheduler")
        if self.config.web is not None and self.web is None:
            from .web import StatusServer
            self.web = StatusServer(self.repo, self.config)
            await self.web.start()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """A background task the app keeps and awaits on stop."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.web is not None:
            await self.web.stop()
            self.web = None
        for transport in reversed(self._started):
            try:
                await transport.stop()
            except Exception:
                log.exception("stopping transport %s failed", transport.name)
        self._started.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def run(self) -> None:
        """initialize, start, serve until SIGINT/SIGTERM or `request_stop`, then stop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            await self.initialize()
            await self.start()
            await self.wait()
        finally:
            await self.stop()
