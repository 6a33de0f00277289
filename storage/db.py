"""The SQLite connection: WAL, busy_timeout, foreign keys, one writer at a time.

One aiosqlite connection serves the whole process. Every unit of work runs inside
`Database.transaction()` (statement by statement) or `Database.run_transaction()` (all of it
in one hand-off to aiosqlite's worker thread), which hold an asyncio lock (one writer per process) and a
`BEGIN IMMEDIATE` (one writer across processes sharing the file; `busy_timeout` makes the
other process wait instead of failing). A command is one transaction: it commits whole or
not at all. A write transaction first checks (one `os.stat`) that the file at the path is still
the one opened and was not truncated; once it is not, the process writes no more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import TypeVar

import aiosqlite

from . import backups, migrations
from .migrations import SchemaTooNew, migrate

log = logging.getLogger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
# A second process holding the write lock longer than busy_timeout is rare; retry a few times
# rather than show "database is locked" to a user.
LOCKED_RETRIES = 5


class DatabaseProblem(Exception):
    """A database todobot cannot use as it is, worded in one line for the person running it."""


class DatabaseChanged(sqlite3.DatabaseError):
    """The database file was replaced, removed or truncated under the running process: its
    writes would land in a file nobody reads, or in a hole. A `sqlite3.Error`, so everything
    that answers database trouble in one line answers this too."""


# SQLite's file header: a database file shorter than this was truncated (WAL mode writes the
# first page at open, so even a new database is longer).
HEADER_BYTES = 100


def _problem(path: str, exc: BaseException) -> DatabaseProblem:
    what = str(exc).lower()
    if "not a database" in what or "malformed" in what or "corrupt" in what:
        why = "is damaged or not a todobot database"
    elif ("readonly" in what or "read-only" in what or "unable to open" in what
          or "permission" in what):
        why = "cannot be opened for writing (a read-only file or folder?)"
    elif "locked" in what or "busy" in what:
        why = "is locked by another process"
    elif "full" in what:
        why = "cannot grow: the disk is full"
    else:
        why = f"cannot be used ({exc})"
    return DatabaseProblem(f"{path} {why}")


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: str, lock_fd: int | None = None,
                 file_id: tuple[int, int] | None = None) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()
        self._closed = False
        self._lock_fd = lock_fd  # the shared flock `todobot restore` waits for (storage/backups.py)
        self._file_id = file_id  # (st_dev, st_ino) of the file opened; None for :memory:
        self._changed: str | None = None  # why writes stopped, once the file changed under us

    @classmethod
    async def open(cls, path: str | Path, *, full_check: bool = False) -> "Database":
        """Open (creating when new) and bring the schema up to date. The file is checked
        first — `PRAGMA quick_check`, or `integrity_check` with `full_check` — and a file that
        fails is refused with a `DatabaseProblem` before anything is written to it."""
        path = str(path)
        lock_fd = None
        if path != ":memory:":
            # A missing directory is a mistake in the path, not something to create silently.
            if not Path(path).parent.is_dir():
                raise FileNotFoundError(f"{Path(path).parent}: no such directory (for the database {path})")
            try:
                lock_fd = backups.hold_shared(path)
            except OSError as exc:
                raise _problem(path, exc) from None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = await aiosqlite.connect(path, isolation_level=None)
        except BaseException as exc:
            if lock_fd is not None:
                os.close(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise _problem(path, exc) from None
            raise
        try:
            st = os.stat(path) if path != ":memory:" else None
            file_id = (st.st_dev, st.st_ino) if st is not None else None
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await cls._check(conn, path, full_check)
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps this crash-safe
            current, latest = await migrations.version(conn), len(migrations.STEPS)
            if path != ":memory:" and 0 < current < latest:
                saved = f"{path}.pre-v{latest}.bak"
                await _backup(conn, Path(saved))
                log.warning("database schema v%d is older than this todobot's v%d: saved a copy "
                            "at %s before upgrading (restore it to roll back)", current, latest, saved)
            await migrate(conn)
        except BaseException as exc:
            await conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise _problem(path, exc) from None
            if isinstance(exc, SchemaTooNew):
                raise DatabaseProblem(f"{path}: {exc}") from None
            raise
        return cls(conn, path, lock_fd, file_id)

    @staticmethod
    async def _check(conn: aiosqlite.Connection, path: str, full: bool) -> None:
        async with conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check") as cur:
            rows = [r[0] for r in await cur.fetchall()]
        if rows != ["ok"]:
            log.error("database %s failed its check: %s", path, "; ".join(map(str, rows[:10])))
            raise DatabaseProblem(f"{path} is damaged ({rows[0]}); nothing was written. Restore a "
                                  "copy made with `todobot backup`.")

    def changed(self) -> str | None:
        """Why this process must stop writing, when the file at `path` is no longer the one it
        opened (replaced, removed) or was truncated; None while all is well. One `os.stat`,
        cheap enough for every write transaction; the first time it finds a change it logs one
        ERROR line and remembers it."""
        if self._changed is not None or self._file_id is None:
            return self._changed
        try:
            st = os.stat(self.path)
        except OSError:
            what = "removed"
        else:
            if (st.st_dev, st.st_ino) != self._file_id:
                what = "replaced"
            elif st.st_size < HEADER_BYTES:
                what = "truncated"
            else:
                return None
        self._changed = (f"database file {self.path} was {what} while open: stopping writes; "
                         "restore it from a backup and restart")
        log.error("%s", self._changed)
        return self._changed

    def _check_writable(self) -> None:
        if (why := self.changed()) is not None:
            raise DatabaseChanged(why)

    async def close(self) -> None:
        """Fold the write-ahead log into the file (a clean stop leaves one file to copy), then
        close."""
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            # A changed file is said once (even with no write since) and gets no checkpoint:
            # into a truncated file it fails with a second, misleading "malformed" line.
            if self.changed() is None:
                try:
                    await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                except sqlite3.Error as exc:
                    log.warning("checkpoint at close failed: %s", exc)
            await self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` on the plain sqlite3 connection, in aiosqlite's worker thread:
        ONE hand-off to that thread and back, however many statements `work` runs. Every
        statement through aiosqlite's own API is such a hand-off (a queue put, a thread wake,
        a wake of the event loop); a command grouped into one `run` pays it once."""
        return await in_worker(self.conn, work)

    async def run_transaction(self, work: Callable[[sqlite3.Connection], T], *,
                              write: bool = True) -> T:
        """`work(connection)` as one transaction — BEGIN, the work, COMMIT (ROLLBACK on any
        exception, which is re-raised) — in one hand-off, under the same lock as
        `transaction()`."""
        async with self._lock:
            if write:
                self._check_writable()
            return await self.run(partial(_transact, work, "BEGIN IMMEDIATE" if write else "BEGIN"))

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic unit of work. Rolled back on any exception, which is re-raised."""
        async with self._lock:
            if write:
                self._check_writable()
            try:
                # Inside the try: a task cancelled while BEGIN runs in the worker thread must
                # still roll it back, or the transaction stays open on the shared connection.
                await self.run(partial(_begin, stmt="BEGIN IMMEDIATE" if write else "BEGIN"))
                yield self.conn
            except BaseException:
                await self.run(_rollback)
                raise
            else:
                await self.run(_commit)

    async def backup(self, dest: str | Path) -> int:
        """An online, consistent copy (SQLite's backup API) that readers and writers may
        keep using while it runs; checked, then renamed over `dest`. Returns its size."""
        backups.refuse_own_dest(self.path, dest)
        async with self._lock:
            return await _backup(self.conn, Path(dest))


def in_worker(conn: aiosqlite.Connection, work: Callable[[sqlite3.Connection], T]) -> Awaitable[T]:
    """The one use of aiosqlite internals: it has no public way to run a function in its
    worker thread, but every call it makes goes through `Connection._execute(fn, *args)`,
    which queues `fn` for that thread and awaits its result, and `Connection._conn` is the
    sqlite3 connection the thread owns. tests/test_hops.py fails if either changes."""
    return conn._execute(lambda: work(conn._conn))


# -- run in the worker thread (see `Database.run`) ----------------------------------------------

def _begin(conn: sqlite3.Connection, stmt: str) -> None:
    """BEGIN, retried when another process holds the write lock longer than busy_timeout.
    The sleep blocks only the database thread, which this connection's work waits for anyway."""
    for attempt in range(LOCKED_RETRIES):
        try:
            conn.execute(stmt)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            log.warning("database busy (%s), retry %d", exc, attempt + 1)
            time.sleep(0.05 * (attempt + 1))
    conn.execute(stmt)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back; SQLite has already done so itself after some errors (a full disk), and
    that must not hide the error that caused it."""
    try:
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "no transaction" not in str(exc):
            raise


def _commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def _transact(work: Callable[[sqlite3.Connection], T], stmt: str, conn: sqlite3.Connection) -> T:
    _begin(conn, stmt)
    try:
        result = work(conn)
    except BaseException:
        _rollback(conn)
        raise
    _commit(conn)
    return result


async def _backup(conn: aiosqlite.Connection, dest: Path) -> int:
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        target = await aiosqlite.connect(str(tmp))
        try:
            await conn.backup(target)
            await target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            await target.close()
        await asyncio.to_thread(backups.check, tmp, dest)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest.stat().st_size
