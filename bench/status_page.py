"""Status page benchmark: how long the pages take over HTTP as a release grows.

    python bench/status_page.py [--items 19,1000,5000] [--runs 20]

For each size, a release of that many items (19: the imported Xen 4.2 list; larger: the Xen
list's shape repeated, a quarter done, every fifth a sub-item, a history row per item) is
served on 127.0.0.1, and each page is fetched `--runs` times: the release table, a filtered
table, an item page, the Atom feed and the burndown, then a revalidation (304). Prints a
Markdown table of the median and p95 in milliseconds. Never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402

from todobot.bot.config import Config  # noqa: E402
from todobot.bot.web import StatusServer  # noqa: E402
from todobot.storage import Database, Repository  # noqa: E402
from todobot.storage.layouts.xen42 import parse_mail  # noqa: E402

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"
AREAS = ["hypervisor", "tools", "docs", "qemu", "xl", "libxl"]


async def fill(repo: Repository, items: int) -> None:
    async with repo.session("bench") as s:
        await s.import_list("4.2", parse_mail(SEED.read_text(encoding="utf-8"), "4.2"))
        rel = await s.require_release("4.2")
        parent = None
        for i in range(max(0, items - 19)):
            it = await s.add_item(rel, area=AREAS[i % len(AREAS)], severity="blocker" if i % 6 == 0 else "nice",
                                  title=f"item {i} with a title of a usual length, see http://example.org/{i}",
                                  owners=[f"Dev {i % 37}"] if i % 3 else [],
                                  progress="patch posted" if i % 2 else "",
                                  state="done" if i % 4 == 0 else "open",
                                  parent=parent if i % 5 == 4 else None)
            parent = it.id


async def timed(http: aiohttp.ClientSession, url: str, runs: int, **headers: str) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        async with http.get(url, headers=headers) as resp:
            await resp.read()
            assert resp.status in (200, 304), (url, resp.status)
        out.append((time.perf_counter() - start) * 1000)
    return out


async def measure(items: int, runs: int) -> list[tuple[str, list[float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        db = await Database.open(Path(tmp) / "bench.sqlite3")
        repo = Repository(db)
        await fill(repo, items)
        server = StatusServer(repo, Config(web={"listen": "127.0.0.1:0"}))
        await server.start()
        base = f"{server.url}/release/4.2"
        rows = []
        try:
            async with aiohttp.ClientSession() as http:
                for label, path in (("release table", ""), ("filtered (blockers, unclaimed)",
                                                             "?severity=blocker&owner=unclaimed"),
                                    ("item page", "/item/1"), ("Atom feed", "/feed.atom"),
                                    ("burndown.svg", "/burndown.svg")):
                    rows.append((label, await timed(http, base + path, runs)))
                async with http.get(base) as resp:
                    etag = resp.headers["ETag"]
                rows.append(("release table, 304", await timed(http, base, runs, **{"If-None-Match": etag})))
        finally:
            await server.stop()
            await db.close()
        return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", default="19,1000,5000", help="comma-separated release sizes")
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    print(f"Machine: {platform.machine()}, Python {platform.python_version()}; {args.runs} runs each\n")
    print("| items | page | p50 ms | p95 ms |\n| ---: | --- | ---: | ---: |")
    for n in (int(x) for x in args.items.split(",")):
        for label, values in asyncio.run(measure(n, args.runs)):
            ordered = sorted(values)
            p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            print(f"| {n} | {label} | {statistics.median(values):.1f} | {p95:.1f} |", flush=True)


if __name__ == "__main__":
    main()
