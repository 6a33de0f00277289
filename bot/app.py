"""Process wiring and lifecycle: initialize → start → wait → stop, and reload on SIGHUP.

The app owns the database, the dispatcher, the transports and every background task; `stop`
sends the change notices still waiting (bounded in time), stops the transports, then awaits
the tasks, then closes the database, so a graceful stop never loses a command that was already
being handled. `reload` re-reads the config file and applies what can change without dropping
a connection: admins, digest settings, each room's settings, and the rooms themselves (IRC
channels and Matrix rooms added are joined, those removed are left); a transport added or
removed, or its connection settings, wait for a restart.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Coroutine
from typing import Any

from ..storage import Database, Repository

from .config import Config, ConfigError, check_serving, load_config
from .dispatcher import Dispatcher
from .listening import bind, listen_problem
from .notify import Notifier
from .transport import Transport
from .logs import log_failure
from . import systemd

log = logging.getLogger(__name__)

EVENT_MEMORY = 30 * 86400  # seconds an event id is remembered for at-most-once handling


# Keys a reload cannot apply to a running process: they are read once, at start.
RESTART_KEYS = ("database", "log_file", "log_format", "web", "mail", "git")


class App:
    def __init__(self, config: Config, *, database: str | None = None,
                 transports: list[Transport] | None = None, serve: bool = True,
                 config_path: str | None = None, full_check: bool = False,
                 listening: list[socket.socket] | None = None) -> None:
        """`serve=False` runs only the transports given (the console on a bot's config):
        no configured IRC or Matrix connection, no status page. `config_path` is re-read on
        SIGHUP. `full_check` checks the whole database file before use. `listening`: the
        status page's sockets, bound already (`listening.bind`); else `initialize` binds them."""
        self.config = config
        # What restart-only keys were read at start: a reload compares with these, so that
        # reverting such a change leaves nothing pending.
        self.started_config = config
        self.config_path = config_path
        self.serve = serve
        self.database_path = database or config.database
        self.full_check = full_check
        self.transports: list[Transport] = list(transports or [])
        # Bound before the database opens and served by the status page, never bound twice
        # (listening.py); the app's until the status page takes them.
        self.listening: list[socket.socket] = list(listening or [])
        self.db: Database | None = None
        self.repo: Repository | None = None
        self.dispatcher: Dispatcher | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stop = asyncio.Event()
        self._started: list[Transport] = []
        self.scheduler: Any = None  # bot.scheduler.DigestScheduler when a digest is configured
        self.web: Any = None  # bot.web.StatusServer when `web:` is configured
        self.git: Any = None  # bot.git.watcher.GitWatcher when `git:` is configured
        self.notifier: Notifier | None = None  # tells watchers of changes (after initialize)
        self._notifying: asyncio.Task[Any] | None = None  # the notifier's run loop

    # -- lifecycle ------------------------------------------------------------------------------
    async def initialize(self) -> None:
        if self.serve and not self.listening:  # a port in use stops the start before the
            self.listening = bind(self.config)  # database is upgraded (ConfigError, exit 2)
        try:
            self.db = await Database.open(self.database_path, full_check=self.full_check)
        except BaseException:
            self._release_sockets()
            raise
        self.repo = Repository(self.db)
        self.dispatcher = Dispatcher(self.repo, self.config)
        self.notifier = Notifier(self.transports)
        self.dispatcher.on_changes = self.notifier.add
        if self.serve:
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
        if self.notifier is not None:
            self._notifying = self.spawn(self.notifier.run(), "notifier")

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
                log_failure(log, "maintenance failed; trying again tomorrow")

    async def health(self) -> tuple[bool, dict]:
        """`/healthz`: whether the database answers and each transport serves, and why not."""
        database = "ok"
        try:
            if self.db is None or self.repo is None:
                database = "not open"
            elif (changed := self.db.changed()) is not None:
                database = changed
            else:
                async with self.repo.session("healthz", write=False) as s:
                    await s.last_change()
        except Exception as exc:  # whatever it is, the answer is "not healthy, because"
            database = f"error: {exc}"
        transports = {t.name: t.health() or "ok" for t in self.transports}
        ok = database == "ok" and all(v == "ok" for v in transports.values())
        return ok, {"status": "ok" if ok else "failing", "database": database,
                    "transports": transports}

    def queue_sources(self) -> list[Any]:
        """What `/metrics` asks for `queue_lengths()`: every transport and the notifier."""
        return [*self.transports, *([self.notifier] if self.notifier is not None else [])]

    async def start_extras(self) -> None:
        """The digest scheduler, the git watcher and the status page, when configured (after the
        transports, whose rooms the scheduler and the watcher post into)."""
        self._start_scheduler()
        if self.serve and self.config.git and self.git is None:
            from .git.watcher import GitWatcher
            self.git = GitWatcher(self.repo, self.config, self.dispatcher, self.transports)
            self.spawn(self.git.run(), "git-watcher")
        if self.serve and self.config.web is not None and self.web is None:
            from .web import StatusServer
            sockets, self.listening = self.listening, []  # the status page's from here on
            web = StatusServer(self.repo, self.config, health=self.health,
                               metrics=self.dispatcher.metrics if self.dispatcher else None,
                               transports=lambda: self.transports,
                               queues=self.queue_sources,
                               sockets=sockets)
            try:
                await web.start()
            except OSError as exc:  # without sockets bound before: still one line, exit 2
                await web.stop()
                raise ConfigError(listen_problem(self.config, exc)) from None
            self.web = web

    def _start_scheduler(self) -> None:
        from .scheduler import DigestScheduler, wants_digest
        if wants_digest(self.config) and self.scheduler is None:
            self.scheduler = DigestScheduler(self.repo, self.config, self.dispatcher,
                                             self.transports)
            self.spawn(self.scheduler.run(), "digest-scheduler")

    # -- reload (SIGHUP) ------------------------------------------------------------------------
    def reload(self) -> list[str]:
        """Re-read the config file and apply it to the running bot; returns (and logs) what
        changed. A file that no longer validates changes nothing: the running config stays."""
        if self.config_path is None or self.dispatcher is None:
            return []
        try:
            new = load_config(self.config_path)
            check_serving(new)
        except ConfigError as exc:
            log.error("reload: keeping the running configuration: fix %s and reload again: %s",
                      self.config_path, "; ".join(str(exc).splitlines()))
            return []
        old, changes = self.config, []
        added = [a for a in new.admins if a not in old.admins]
        removed = [a for a in old.admins if a not in new.admins]
        if added or removed:
            changes.append("admins: " + ", ".join([f"+{a}" for a in added] + [f"-{a}" for a in removed]))
        for key in ("digest", "default_release", "prefix", "max_input_chars", "cooldown", "log_level"):
            if getattr(old, key) != getattr(new, key):
                changes.append(f"{key}: {_brief(getattr(old, key))} -> {_brief(getattr(new, key))}")
        later = [key for key in RESTART_KEYS
                 if getattr(self.started_config, key) != getattr(new, key)]
        if new.log_level != old.log_level:
            logging.getLogger().setLevel(new.log_level)
        before = self.dispatcher.bindings()
        self.config = new
        self.dispatcher.reconfigure(new)
        notes = self._transports_added(new)
        for transport in self._started:
            done = transport.apply_config(new)
            changes.extend(done.changes)
            notes.extend(done.restart)
        for key, settings in self.dispatcher.bindings().items():
            was = before.get(key)
            if was is not None and was != settings:
                diff = ", ".join(f"{f} {_brief(getattr(was, f))} -> {_brief(getattr(settings, f))}"
                                 for f in settings.__dataclass_fields__
                                 if getattr(was, f) != getattr(settings, f))
                changes.append(f"{key[0]} {key[1]}: {diff}")
        if self.scheduler is not None:
            self.scheduler.reconfigure(new)
        else:
            self._start_scheduler()
        if self.scheduler is not None:  # rooms joined in the background get their digests too
            self.spawn(self._wake_scheduler_when_settled(), "reload-rooms")
        for line in changes:
            log.info("reload: %s", line)
        for line in notes:
            log.warning("reload: %s", line)
        if later:
            log.warning("reload: %s changed; that takes a restart", ", ".join(later))
        if not (changes or notes or later):
            log.info("reload: %s read, nothing changed and nothing waits for a restart",
                     self.config_path)
        return changes + notes + [f"{key}: at restart" for key in later]

    def _transports_added(self, new: Config) -> list[str]:
        """Networks (and Matrix) a reload cannot start: they wait for a restart."""
        if not self.serve:
            return []
        running = {t.name for t in self._started}
        wanted = [f"irc:{n.network}" for n in new.irc] + (["matrix"] if new.matrix else [])
        return [f"{name}: added to the configuration; connecting takes a restart"
                for name in wanted if name not in running]

    async def _wake_scheduler_when_settled(self) -> None:
        for transport in list(self._started):
            await transport.settled()
        if self.scheduler is not None:
            self.scheduler.wake()

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
        if self.git is not None:
            self.git.stop()
        if self.web is not None:
            await self.web.stop()
            self.web = None
        if self._notifying is not None:  # its held batches go out now, while transports are up
            self._notifying.cancel()
            await asyncio.gather(self._notifying, return_exceptions=True)
            self._notifying = None
        if self.notifier is not None:
            await self.notifier.drain()
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
        self._release_sockets()
        if self.db is not None:
            await self.db.close()
            self.db = None

    def _release_sockets(self) -> None:
        """Sockets bound for a status page that never started."""
        for sock in self.listening:
            sock.close()
        self.listening = []

    async def run(self) -> None:
        """initialize, start, serve until SIGINT/SIGTERM or `request_stop`, then stop.
        Under systemd (`Type=notify`): READY=1 once the transports have started (their
        connections go on in the background, since a network can take minutes to answer and
        /healthz says how they are), WATCHDOG=1 from the event loop, STOPPING=1 on the way out."""
        self.handle_signals()
        try:
            await self.initialize()
            await self.start()
            systemd.notify("READY=1")
            self.spawn(systemd.watchdog(), "systemd-watchdog")
            await self.wait()
        finally:
            systemd.notify("STOPPING=1")
            await self.stop()

    def handle_signals(self) -> None:
        """SIGINT and SIGTERM stop the app; SIGHUP reloads its config file (when it has one)."""
        loop = asyncio.get_running_loop()
        handlers = {signal.SIGINT: self.request_stop, signal.SIGTERM: self.request_stop}
        if self.config_path is not None:
            handlers[signal.SIGHUP] = self._reload_safely
        for sig, handler in handlers.items():
            try:
                loop.add_signal_handler(sig, handler)
            except (NotImplementedError, RuntimeError):
                pass

    def _reload_safely(self) -> None:
        try:
            self.reload()
        except Exception:  # a reload must never take the running bot down
            log.exception("reload failed; the running configuration may be partly updated")


def _brief(value: Any) -> str:
    """A config value as one short line for the log."""
    if hasattr(value, "model_dump"):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.model_dump().items()) + "}"
    return "none" if value is None else str(value)
