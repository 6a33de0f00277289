"""Scale benchmark: 100,000 items over 50 releases, commands timed through the dispatcher.

    python bench/scale.py [--items 100000] [--releases 50] [--runs 200] [--db PATH]

The list is a month old and about 2% of it changed this week (what a digest reports).
Measures each command's own processing (dispatcher.handle: parsing, the SQLite transaction,
building the reply; no transport), a digest of a 5,000-item release, process startup to
ready, and peak RSS. Prints a Markdown table. Never run as a test: the numbers depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from todobot.bot.config import Config  # noqa: E402
from todobot.bot.dispatcher import Dispatcher  # noqa: E402
from todobot.commands.settings import Settings  # noqa: E402
from todobot.commands.messages import Message, Sender  # noqa: E402
from todobot.storage import Database, Repository  # noqa: E402

AREAS = ["hypervisor", "tools", "docs", "qemu", "xl", "libxl", "arm", "x86"]


async def build(path: Path, items: int, releases: int, big_release: int) -> None:
    """Fill a database fast (bulk SQL, history rows included), with one release of
    `big_release` items for the digest measurement."""
    db = await Database.open(path)
    now = time.time()
    then = now - 30 * 86400  # the list was built a month ago; this week saw a few changes
    per = (items - big_release) // (releases - 1)
    async with db.transaction() as conn:
        next_id = 1
        for r in range(releases):
            count = big_release if r == releases - 1 else per
            cur = await conn.execute("INSERT INTO releases (name, created_by, created_at) VALUES (?, 'bench', ?)",
                                     (f"{r}.0", now + r))
            rid = cur.lastrowid
            rows, hist = [], []
            for i in range(count):
                parent = next_id - 1 if i % 5 == 4 else None  # every fifth is a sub-item
                owners = json.dumps([f"Dev {i % 37}"]) if i % 3 else "[]"
                state = "done" if i % 4 == 0 else "open"
                rows.append((next_id, rid, AREAS[i % len(AREAS)], "blocker" if i % 6 == 0 else "nice",
                             '["BUG"]' if i % 7 == 0 else "[]", f"item {next_id} of release {r} with a title",
                             owners, "patch posted" if i % 2 else "", state, parent, "bench", then, "bench", then))
                hist.append((then, "bench", rid, next_id, "created", None, f"item {next_id}"))
                if i % 50 == 1:  # 2% changed this week: claimed, progress, closed
                    hist.append((now - 86400, "bench", rid, next_id, "owners", "[]", owners))
                    hist.append((now - 86400, "bench", rid, next_id, "progress", "", "patch posted"))
                if i % 100 == 4:
                    hist.append((now - 3600, "bench", rid, next_id, "state", "open", "done"))
                next_id += 1
            await conn.executemany(
                "INSERT INTO items (id, release_id, area, severity, tags, title, owners, progress, state,"
                " parent_id, created_by, created_at, updated_by, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            await conn.executemany(
                "INSERT INTO notes (item_id, author, at, text) VALUES (?, 'bench', ?, ?)",
                [(row[0], then, "a regression seen in osstest" if row[0] % 50 == 3 else "looked at it")
                 for row in rows if row[0] % 10 == 3])
            await conn.executemany(
                "INSERT INTO history (at, actor, release_id, item_id, field, before, after)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)", hist)
    await db.close()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def measure(path: Path, runs: int, releases: int) -> list[tuple[str, float, float, int]]:
    db = await Database.open(path)
    release = f"{releases // 2}.0"
    dispatcher = Dispatcher(Repository(db), Config(database=str(path), default_release=release))
    sender = Sender(identity="console:bench", nick="bench")
    async with Repository(db).session("bench", write=False) as s:
        some_id = (await s.items(await s.require_release(release)))[10].id

    async def timed(text: str, room_release: str = release) -> tuple[list[float], int]:
        dispatcher.bind_room("console", room_release, Settings(release=room_release, cooldown=False))
        out, lines = [], 0
        for _ in range(runs):
            t0 = time.perf_counter()
            reply = await dispatcher.handle(Message("console", room_release, sender, text))
            out.append((time.perf_counter() - t0) * 1000)
            lines = len(reply.lines) if reply else 0
        return out, lines

    rows = []
    for label, text in (("!blockers", "!blockers"), ("!todo", "!todo"), ("!show ID", f"!show {some_id}"),
                        ("!todo mine", "!todo mine"), ("!release", "!release")):
        times, lines = await timed(text)
        rows.append((label, statistics.median(times), pct(times, 0.99), lines))
    # One item by a word of its title; a word in 2% of the items (notes, below); a word every
    # title holds, so the whole index is ranked and only the release's items kept.
    for label, text in (("!find WORD (1 hit)", f"!find {some_id}"),
                        ("!find WORD (2% of items, their notes)", "!find regression"),
                        ("!find WORD (every item)", "!find title"),
                        ("!find --all WORD (2% of items)", "!find --all regression"),
                        ("!find --all WORD (every item)", "!find --all title")):
        times, lines = await timed(text)
        rows.append((label, statistics.median(times), pct(times, 0.99), lines))
    times, lines = await timed("!digest", f"{releases - 1}.0")
    rows.append(("!digest (5,000 items)", statistics.median(times), pct(times, 0.99), lines))
    await db.close()
    return rows


def startup(path: Path) -> float:
    """Wall time of a fresh process from exec to a dispatcher ready on the big database."""
    code = ("import asyncio,time;t=time.perf_counter();"
            "from todobot.bot.config import Config;from todobot.bot.dispatcher import Dispatcher;"
            "from todobot.storage import Database, Repository;import todobot.commands\n"
            "async def m():\n db=await Database.open(%r);Dispatcher(Repository(db),Config());await db.close()\n"
            "asyncio.run(m())") % str(path)
    best = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parent.parent)
        best.append(time.perf_counter() - t0)
    return statistics.median(best)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--releases", type=int, default=50)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--db", type=Path)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    path = args.db or Path(tmp.name) / "scale.sqlite3"
    if not path.exists():
        t0 = time.perf_counter()
        asyncio.run(build(path, args.items, args.releases, 5000))
        print(f"built {args.items} items in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = asyncio.run(measure(path, args.runs, args.releases))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start_s = startup(path)
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"SQLite {__import__('sqlite3').sqlite_version}; {args.items:,} items over {args.releases} releases; "
          f"{args.runs} runs per command.\n")
    print("| measurement | p50 | p99 | reply lines |")
    print("| --- | --- | --- | --- |")
    for label, p50, p99, lines in rows:
        print(f"| {label} | {p50:.2f} ms | {p99:.2f} ms | {lines} |")
    print(f"| startup to ready (fresh process) | {start_s * 1000:.0f} ms | | |")
    print(f"| peak RSS of the measuring process | {rss_mb:.0f} MB | | |")


if __name__ == "__main__":
    main()
