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

    python bench/status_load.py --chat [--clients 100] [--count 100]

Chat under page load: the bot as `todobot run` serves IRC (InspIRCd on 127.0.0.1, flood
limits lifted, the Xen 4.2 seed list) and the status page from one event loop, as deployed.
A person's `!show 1` is timed, send to the reply's first line, `--count` times idle, then
again while `--clients` HTTP clients (a process of their own) each fetch the chart, the release
page and the feed in turn with a cache-busting `?x=N`, N new for every request. Prints both,
their ratio (the goal: under load within 2x idle) and the pages served meanwhile.
Never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
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
from common import (Client, from_nick, machine, pct, seed_database, start_todobot,  # noqa: E402
                    todobot_config)
from scale import build  # noqa: E402

from tests.servers.ircd import start_inspircd  # noqa: E402
from tests.servers.ports import pick_port  # noqa: E402

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
    port = pick_port()
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


# -- chat under page load ------------------------------------------------------------------------

LOAD_PAGES = ("/release/4.2/burndown.svg", "/release/4.2", "/release/4.2/feed.atom")
PAUSE = 0.1  # seconds between a reply and the next command, as between people


async def hammer(base: str, clients: int) -> None:
    """`clients` loops fetching LOAD_PAGES with a new `?x=N` each time, until SIGTERM; then
    prints `requests non-200 seconds` on stdout."""
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    counter = itertools.count()
    done = bad = 0

    async def client(http: aiohttp.ClientSession, k: int) -> None:
        nonlocal done, bad
        while not stop.is_set():
            n = next(counter)
            async with http.get(f"{base}{LOAD_PAGES[(n + k) % len(LOAD_PAGES)]}?x={n}") as resp:
                await resp.read()
                done += 1
                bad += resp.status != 200

    t0 = time.monotonic()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=clients)) as http:
        tasks = [asyncio.create_task(client(http, k)) for k in range(clients)]
        await stop.wait()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    print(done, bad, f"{time.monotonic() - t0:.1f}", flush=True)


async def round_trips(human: Client, chan: str, count: int) -> list[float]:
    """Milliseconds from `!show 1` sent to its first line, `count` times; each reply is
    read to its end (its length learnt once, waiting for silence) before the next."""
    is_reply = from_nick("todobot")
    human.drain()
    human.say(chan, "!show 1")
    await human.expect(is_reply, 60)
    lines = 1
    while True:
        try:
            await human.expect(is_reply, 1.0)
            lines += 1
        except TimeoutError:
            break
    out = []
    for _ in range(count):
        t0 = human.say(chan, "!show 1")
        at, _ = await human.expect(is_reply, 120)
        for _ in range(lines - 1):
            await human.expect(is_reply, 120)
        out.append((at - t0) * 1000)
        await asyncio.sleep(PAUSE)
    return out


async def chat(args) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        ircd = start_inspircd(work / "inspircd", services=False)
        bot = load = None
        human = Client("human")
        try:
            db, conf, chan, web_port = work / "todo.sqlite3", work / "bot.yaml", "#xen-devel", pick_port()
            seed_database(db)
            todobot_config(conf, db, ircd.port, [chan])
            with conf.open("a") as f:
                f.write(f"web:\n  listen: '127.0.0.1:{web_port}'\n")
            await human.connect(ircd.port)
            await human.join(chan)
            bot = start_todobot(conf, work)
            await human.expect(lambda ln: ln.command == "JOIN" and ln.nick == "todobot", 90)
            base = f"http://127.0.0.1:{web_port}"
            note(f"idle: {args.count} x !show 1")
            idle = await round_trips(human, chan, args.count)
            load = subprocess.Popen([sys.executable, __file__, "--hammer", base, str(args.clients)],
                                    start_new_session=True, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, text=True)
            await asyncio.sleep(2)  # every client has a request in flight
            note(f"under {args.clients} clients: {args.count} x !show 1")
            busy = await round_trips(human, chan, args.count)
            os.killpg(load.pid, signal.SIGTERM)  # the group this script created
            served, bad, seconds = load.communicate(timeout=60)[0].split()
            load = None
        finally:
            if load is not None:
                os.killpg(load.pid, signal.SIGTERM)
                load.wait(20)
            await human.quit()
            if bot is not None:
                bot.stop()
            ircd.stop()
    p50 = statistics.median
    print(f"Machine: {machine()}; InspIRCd on 127.0.0.1, flood limits lifted; todobot serving IRC "
          f"and the status page from one event loop; {time.strftime('%Y-%m-%d')}.\n")
    print(f"`!show 1` round trip (send to first reply line), {args.count} times each; the load: "
          f"{args.clients} clients fetching the chart, the release page and the feed of the Xen "
          f"4.2 list with a new `?x=N` each time.\n")
    print("| | p50 ms | p99 ms |\n| --- | ---: | ---: |")
    print(f"| idle | {p50(idle):.1f} | {pct(idle, 0.99):.1f} |")
    print(f"| under {args.clients} parallel page requests | {p50(busy):.1f} | {pct(busy, 0.99):.1f} |")
    print(f"| ratio | {p50(busy) / p50(idle):.2f}x | {pct(busy, 0.99) / pct(idle, 0.99):.2f}x |\n")
    print(f"Pages served during the load: {served} in {seconds} s ({int(served) / float(seconds):.0f}/s), "
          f"{bad} not 200.")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3])))
        return
    if len(sys.argv) == 4 and sys.argv[1] == "--hammer":
        asyncio.run(hammer(sys.argv[2], int(sys.argv[3])))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chat", action="store_true", help="chat latency idle and under page load")
    ap.add_argument("--clients", type=int, default=None, help="50; with --chat 100")
    ap.add_argument("--count", type=int, default=100, help="--chat: timed commands of each phase")
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "todobot-bench-100k.sqlite3"))
    args = ap.parse_args()
    if args.chat:
        args.clients = args.clients or 100
        asyncio.run(chat(args))
    else:
        args.clients = args.clients or 50
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
