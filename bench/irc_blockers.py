"""`!blockers` on IRC at default flood limits: how many lines, how long until the last one.

    python bench/irc_blockers.py [--count 10]

One InspIRCd with its own default flood limits (no services) on 127.0.0.1, todobot as a
subprocess with its default output throttle (burst 4, then 1 line/s) on the Xen 4.2 seed
list (six open blockers). A raw client says `!blockers`, then waits for the throttle's
bucket to refill (6 s) before the next. For each: wire lines, bytes, whether `!more` was
offered, and the time from sending to the last line. Prints a Markdown table; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import (Client, from_nick, machine, seed_database, start_todobot,
                    todobot_config)

from tests.servers.ircd import start_inspircd  # noqa: E402

QUIET = 2.0  # seconds of silence after which a reply is complete (above the throttle's 1 s)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "ircd", default_limits=True, services=False)
        bot = None
        client = Client("benchian")
        try:
            db, conf, chan = work / "todo.sqlite3", work / "bot.yaml", "#xen-devel"
            seed_database(db)
            todobot_config(conf, db, server.port, [chan], rate=1.0, burst=4)  # the defaults
            bot = start_todobot(conf, work)
            await client.connect(server.port)
            await client.join(chan)
            await client.expect(lambda ln: ln.command == "JOIN" and ln.nick == "todobot", 60)
            is_reply = from_nick("todobot")
            rows = []
            for _ in range(args.count):
                await asyncio.sleep(6.0)  # the bucket refills: every run starts alike
                client.drain()
                t0 = client.say(chan, "!blockers")
                lines: list[tuple[float, str]] = []
                while True:
                    try:
                        at, ln = await client.expect(is_reply, QUIET if lines else 30)
                    except TimeoutError:
                        break
                    lines.append((at, ln.param(1)))
                text = [t for _, t in lines]
                rows.append((len(lines), sum(len(t.encode()) for t in text),
                             any("!more" in t for t in text), lines[-1][0] - t0))
        finally:
            await client.quit()
            if bot is not None:
                bot.stop()
            server.stop()
    secs = [r[3] for r in rows]
    print(f"`!blockers` on the Xen 4.2 seed list, {args.count} runs, InspIRCd default limits, "
          f"todobot default throttle; {machine()}; {time.strftime('%Y-%m-%d')}\n")
    print("| lines | text bytes | !more offered | to last line, median | max |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| {rows[0][0]} | {rows[0][1]} | {'yes' if any(r[2] for r in rows) else 'no'} | "
          f"{statistics.median(secs):.3f} s | {max(secs):.3f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=10)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
