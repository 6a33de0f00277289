"""The SQLite connection: WAL, busy_timeout, foreign keys, one writer at a time.

One aiosqlite connection serves the whole process. Every unit of work runs inside
`Database.transaction()`, which holds an asyncio lock (one writer per process) and a
`BEGIN IMMEDIATE` (one writer across processes sharing the file; `busy_timeout` makes the
other process wait instead of failing). A command is one transaction: it commits whole or
not at all.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite

from .migrations import SchemaTooNew, migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# A second process holding the write lock longer than busy_timeout is rare; retry a few times
# rather than show "database is locked" to a user.
LOCKED_RETRIES = 5


class DatabaseProblem(Exception):
    """A database todobot cannot use as it is, worded in one line for the person running it."""


def _problem(path: str, exc: BaseException) -> DatabaseProblem:
    what = str(exc).lower()
    if "not a database" in what or "malformed" in what or "corrupt" in what:
        why = "is damaged or not a todobot database"
    elif "readonly" in what or "read-only" in what or "unable to open" in what:
        why = "cannot be opened for writing (a read-only file or folder?)"
    elif "locked" in what or "busy" in what:
        why = "is locked by another process"
    elif "full" in what:
        why = "cannot grow: the disk is full"
    else:
        why = f"cannot be used ({exc})"
    return DatabaseProblem(f"{path} {why}")


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path, *, full_check: bool = False) -> "Database":
        """Open (creating when new) and bring the schema up to date. The file is checked
        first — `PRAGMA quick_check`, or `integrity_check` with `full_check` — and a file that
        fails is refused with a `DatabaseProblem` before anything is written to it."""
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves.
            conn = await aiosqlite.connect(path, isolation_level=None)
        except sqlite3.Error as exc:
            raise _problem(path, exc) from None
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await cls._check(conn, path, full_check)
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps this crash-safe
            await migrate(conn)
        except sqlite3.Error as exc:
            await conn.close()
            raise _problem(path, exc) from None
        except SchemaTooNew as exc:
            await conn.close()
            raise DatabaseProblem(f"{path}: {exc}") from None
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path)

    @staticmethod
    async def _check(conn: aiosqlite.Connection, path: str, full: bool) -> None:
        async with conn.execute("PRAGMA integrity_check" if full else "PRAGMA quick_check") as cur:
            rows = [r[0] for r in await cur.fetchall()]
        if rows != ["ok"]:
            log.error("database %s failed its check: %s", path, "; ".join(map(str, rows[:10])))
            raise DatabaseProblem(f"{path} is damaged ({rows[0]}); nothing was written. Restore a "
                                  "copy made with `todobot backup`.")

    async def close(self) -> None:
        async with self._lock:
            await self.conn.close()

    @asynccontextmanager
    async def transaction(self, write: bool = True) -> AsyncIterator[aiosqlite.Connection]:
        """One atomic unit of work. Rolled back on any exception, which is re-raised."""
        async with self._lock:
            await self._begin("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield self.conn
            except BaseException:
                await self._rollback()
                raise
            else:
                await self.conn.execute("COMMIT")

    async def _rollback(self) -> None:
        """Roll back; SQLite has already done so itself after some errors (a full disk), and
        that must not hide the error that caused it."""
        try:
            await self.conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "no transaction" not in str(exc):
                raise

    async def _begin(self, stmt: str) -> None:
        for attempt in range(LOCKED_RETRIES):
            try:
                await self.conn.execute(stmt)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                log.warning("database busy (%s), retry %d", exc, attempt + 1)
                await asyncio.sleep(0.05 * (attempt + 1))
        await self.conn.execute(stmt)

    async def backup(self, dest: str | Path) -> None:
        """An online, consistent copy (SQLite's backup API) that readers and writers may
        keep using while it runs."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest} already exists")
        target = await aiosqlite.connect(str(dest))
        try:
            async with self._lock:
                await self.conn.backup(target)
        finally:
            await target.close()
