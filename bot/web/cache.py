"""What the status page's requests share: the database reads every request makes, rendered
pages, and the thread that renders them.

Every request first reads the release and its newest change, a small read that must still be
current: requests asking the same while a read runs wait for the next read, which starts after
they asked and answers them all; one read runs at a time, since the chat's commands wait for
the database in the same queue (a hundred parallel requests are two reads, not a hundred).

A page is rendered once per (release, stamp, query): the stamp is the release's newest history
row and the day (what the page shows changes with either), the query only what the page reads
from the request (filters, page number, chart size), so a cache-busting `?x=N` is the same
page. Requests for a page being rendered wait for that one rendering. Rendering (templates,
the chart, building a long table's rows) runs in one worker thread, never in the event loop
that the chat transports share; a thread and not several, because rendering is pure Python and
each more thread is one more contender for the interpreter lock against the loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")

PER_RELEASE = 6  # pages of one release kept (its table, a filter or two, the chart, the feed)
ENTRIES = 48  # in all (a 200-row table is ~300 KB)
BUILDS_AT_ONCE = 2  # pages read from the database and rendered at the same time

Stamp = tuple[int, str]  # (newest history id, day): grows, never shrinks
Key = tuple[str, Stamp, Hashable]  # (release, stamp, canonical query)


class SharedReads:
    def __init__(self) -> None:
        self._next: dict[Hashable, asyncio.Future[Any]] = {}  # by question: the read to come
        self._one = asyncio.Semaphore(1)

    async def read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        """`await read()`, begun after this call, shared with the calls for `key` that wait
        for the same read."""
        coming = self._next.get(key)
        if coming is None:
            coming = asyncio.ensure_future(self._read(key, read))
            self._next[key] = coming
            coming.add_done_callback(_retrieved)
        return await asyncio.shield(coming)  # type: ignore[no-any-return]

    async def _read(self, key: Hashable, read: Callable[[], Awaitable[T]]) -> T:
        async with self._one:
            if self._next.get(key) is asyncio.current_task():
                del self._next[key]  # who asks from now on asked after this read began
            return await read()


def _retrieved(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a failure reached its waiters, or nobody waits any more


class RenderCache:
    def __init__(self, per_release: int = PER_RELEASE, entries: int = ENTRIES) -> None:
        self.per_release = per_release
        self.entries = entries
        self._done: OrderedDict[Key, Any] = OrderedDict()
        self._running: dict[Key, asyncio.Future[Any]] = {}
        # Bounds how many pages are built at once: each holds the database for its reads, and
        # a chat command waits behind those in the queue (many distinct filters must not
        # queue a hundred of them).
        self._builds = asyncio.Semaphore(BUILDS_AT_ONCE)
        self._pool: ThreadPoolExecutor | None = None

    async def get(self, release: str, stamp: Stamp, query: Hashable,
                  build: Callable[[], Awaitable[T]]) -> T:
        """The page under this key: kept, being built (then awaited), or built now by `build`."""
        key: Key = (release, stamp, query)
        if key in self._done:
            self._done.move_to_end(key)
            return self._done[key]  # type: ignore[no-any-return]
        running = self._running.get(key)
        if running is None:
            running = asyncio.ensure_future(self._build(key, build))
            self._running[key] = running
            running.add_done_callback(lambda _: self._running.pop(key, None))
            running.add_done_callback(_retrieved)
        # shielded: one waiter going away (a client that hung up) does not cancel the others'
        return await asyncio.shield(running)  # type: ignore[no-any-return]

    async def _build(self, key: Key, build: Callable[[], Awaitable[T]]) -> T:
        async with self._builds:
            value = await build()
        self._keep(key, value)
        return value

    def _keep(self, key: Key, value: Any) -> None:
        release, stamp, _ = key
        mine = [k for k in self._done if k[0] == release]
        if any(k[1] > stamp for k in mine):
            return  # built from an older state than one already kept: never asked for again
        for k in mine:
            if k[1] < stamp:
                del self._done[k]
        self._done[key] = value
        mine = [k for k in self._done if k[0] == release]
        for k in mine[: max(0, len(mine) - self.per_release)]:
            del self._done[k]
        while len(self._done) > self.entries:
            self._done.popitem(last=False)

    async def render(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` in the render thread."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="todobot-render")
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._done.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


__all__ = ["RenderCache", "SharedReads"]
