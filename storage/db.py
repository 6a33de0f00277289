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

from .migrations import migrate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
# A second process holding the write lock longer than busy_timeout is rare; retry a few times
# rather than show "database is locked" to a user.
LOCKED_RETRIES = 5


class Database:
    def __init__(self, conn: aiosqlite.Connection, path: str) -> None:
        self.conn = conn
        self.path = path
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> "Database":
        path = str(path)
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: we issue BEGIN/COMMIT ourselves.
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await conn.execute("PRAGMA journal_mode = WAL")
            await conn.execute("PRAGMA foreign_keys = ON")
            await conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps this crash-safe
            await migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path)

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
                await self.conn.execute("ROLLBACK")
                raise
            else:
                await self.conn.execute("COMMIT")

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
