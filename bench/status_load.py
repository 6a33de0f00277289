"""The status page under load: 50 concurrent clients for 30 s on the 100,000-item database.

    python bench/status_load.py [--clients 50] [--seconds 30] [--db PATH]

The database is `scale.py`'s (100,000 items over 50 releases, the last one 5,000 items; built
once into --db if that file does not exist yet). The status page runs as its own process
(`python bench/status_load.py --serve DB PORT`: a `StatusServer` on 127.0.0.1, as `todobot
run` starts it), so that the clients, aiohttp's in this process, do not share its event loop.
For each page, `--clients` clients each fetch it over and over for `--seconds` (one
keep-alive connection each): the release page of the 5,000-item release and of a 1,938-item
one, an item page, then the same with `If-None-Match` (each client revalidates with the ETag
it got; the answer is 304). Prints a Markdown table: requests, throughput, p50 and p99.
Never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp  # noqa: E402
from common import machine, pct  # noqa: E402
from scale import build  # noqa: E402

from tests.servers.ircd import free_port  # noqa: E402

ITEMS, RELEASES, BIG = 100_000, 50, 5_000


def note(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


async def serve(db_path: str, port: int) -> None:
    from todobot.bot.config import Config
    from todobot.bot.web import StatusServer
    from todobot.storage import Database, Repository

    db = await Database.open(db_path)
    server = StatusServer(Repository(db), Config(web={"listen": f"127.0.0.1:{port}"}))
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop()
    await db.close()


async def load(url: str, clients: int, seconds: float, revalidate: bool) -> tuple[list[float], int, float]:
    """(latencies in ms, non-2xx/304 answers, wall seconds) of `clients` loops for `seconds`."""
    latencies: list[float] = []
    bad = 0

    headers = {}
    if revalidate:  # the ETag every client got with its copy of the page
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            await resp.read()
            headers = {"If-None-Match": resp.headers["ETag"]}
    end = time.monotonic() + seconds

    async def client() -> None:
        nonlocal bad
        conn = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=conn) as http:
            while time.monotonic() < end:
                t0 = time.perf_counter()
                async with http.get(url, headers=headers) as resp:
                    await resp.read()
                    ok = resp.status == (304 if revalidate else 200)
                latencies.append((time.perf_counter() - t0) * 1000)
                bad += not ok

    t0 = time.monotonic()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, bad, time.monotonic() - t0


async def run(args) -> None:
    db = Path(args.db)
    if not db.exists():
        note(f"building {ITEMS:,} items into {db}")
        await build(db, ITEMS, RELEASES, BIG)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(db), str(port)],
                              start_new_session=True, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(base + "/") as resp:
                        await resp.read()
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.1)
            # an item of the big release, with a parent (every fifth item is a sub-item)
            first_big = ITEMS - BIG + 1
        pages = [(f"release page, {BIG:,} items", f"/release/{RELEASES - 1}.0"),
                 (f"release page, {(ITEMS - BIG) // (RELEASES - 1):,} items", "/release/0.0"),
                 ("item page", f"/release/{RELEASES - 1}.0/item/{first_big + 4}")]
        rows = []
        for revalidate in (False, True):
            for label, path in pages:
                note(f"{label}{', 304' if revalidate else ''}: {args.clients} clients, {args.seconds:.0f} s")
                lat, bad, wall = await load(base + path, args.clients, args.seconds, revalidate)
                rows.append((label + (" (If-None-Match: 304)" if revalidate else ""), lat, bad, wall))
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the group this script created
        server.wait(20)
    print(f"Machine: {machine()}; the status page in its own process, aiohttp clients in "
          f"another, 127.0.0.1.\n")
    print(f"{args.clients} concurrent clients, {args.seconds:.0f} s per page, on "
          f"{ITEMS:,} items over {RELEASES} releases.\n")
    print("| page | requests | req/s | p50 ms | p99 ms | errors |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, lat, bad, wall in rows:
        if not lat:
            print(f"| {label} | 0 | 0 | | | {bad} |")
            continue
        print(f"| {label} | {len(lat)} | {len(lat) / wall:.1f} | {statistics.median(lat):.1f} | "
              f"{pct(lat, 0.99):.1f} | {bad} |")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "todobot-bench-100k.sqlite3"))
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
