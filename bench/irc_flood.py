"""A newcomer's answer while 50 people flood the bot: seconds to `!whoami`'s answer.

    python bench/irc_flood.py [--nicks 50] [--commands 3]

One InspIRCd with its own default flood limits (no services) on 127.0.0.1, todobot as a
subprocess with its default output throttle (burst 4, then 1 line/s) on the Xen 4.2 seed
list. 50 raw clients connect (concurrently: a registration takes about a second at these
limits) and join one channel; each sends 3 `!show N` at once. 3 s later, with the bot's
backlog in place, a new nick sends `!whoami`; measured: the seconds until the bot's answer to
it arrives. Also: lines the bot had sent by then, its "answers dropped" lines, and the time
until its output went quiet. Prints a Markdown table; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

from common import Client, machine, seed_database, start_todobot, todobot_config

from tests.servers.ircd import start_inspircd  # noqa: E402

SETTLE = 3.0  # seconds between the flood and the newcomer's command: the backlog is queued
QUIET = 5.0  # seconds of silence after which the bot's output counts as drained
ITEMS = 19  # the seed list's item numbers run 1..19


async def run(args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "ircd", default_limits=True, services=False)
        bot = None
        observer, newcomer = Client("observer"), Client("newcomer")
        crowd = [Client(f"flood{i:02}") for i in range(args.nicks)]
        try:
            db, conf, chan = work / "todo.sqlite3", work / "bot.yaml", "#xen-devel"
            seed_database(db)
            todobot_config(conf, db, server.port, [chan], rate=1.0, burst=4)  # the defaults
            bot = start_todobot(conf, work)
            await observer.connect(server.port, 60)
            await observer.join(chan)
            await observer.expect(lambda ln: ln.command == "JOIN" and ln.nick == "todobot", 60)
            t0 = time.perf_counter()
            await asyncio.gather(*(c.connect(server.port, 120) for c in [newcomer, *crowd]))
            await asyncio.gather(*(c.join(chan) for c in [newcomer, *crowd]))
            print(f"{len(crowd) + 1} clients connected and joined in "
                  f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
            observer.drain()
            sent: list[tuple[float, str]] = []  # (arrival, text) of every line from the bot

            def bot_line(ln) -> bool:
                if ln.command in ("PRIVMSG", "NOTICE") and ln.nick == "todobot":
                    sent.append((time.perf_counter(), ln.param(1)))
                return False

            observer.on_line = bot_line
            flood_at = time.perf_counter()
            for i, c in enumerate(crowd):
                c.send(*(f"PRIVMSG {chan} :!show {(i * args.commands + k) % ITEMS + 1}"
                         for k in range(args.commands)))
            await asyncio.sleep(SETTLE)
            before = len(sent)
            asked = newcomer.say(chan, "!whoami")
            answered, _ = await newcomer.expect(
                lambda ln: ln.nick == "todobot" and "newcomer" in ln.param(1).lower(), 900)
            while True:
                last = len(sent)
                await asyncio.sleep(QUIET)
                if len(sent) == last:
                    break
        finally:
            for c in [observer, newcomer, *crowd]:
                await c.quit()
            if bot is not None:
                bot.stop()
            server.stop()
    return {"whoami": answered - asked, "before": before, "lines": len(sent),
            "dropped": sum("dropped" in t for _, t in sent),
            "drained": sent[-1][0] - flood_at if sent else 0.0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nicks", type=int, default=50)
    ap.add_argument("--commands", type=int, default=3, help="`!show N` per nick")
    args = ap.parse_args()
    r = asyncio.run(run(args))
    print(f"{args.nicks} nicks x {args.commands} `!show N`, then a new nick's `!whoami`; "
          f"InspIRCd default limits, todobot default throttle; {machine()}; "
          f"{time.strftime('%Y-%m-%d')}\n")
    print("| newcomer's `!whoami` answered after | bot lines before it was asked | "
          "bot lines in all | \"answers dropped\" lines | flood to last line |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {r['whoami']:.2f} s | {r['before']} | {r['lines']} | {r['dropped']} "
          f"| {r['drained']:.0f} s |")


if __name__ == "__main__":
    main()
