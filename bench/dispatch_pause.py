"""What a command costs inside the bot, back to back and after a person's pause.

    python bench/dispatch_pause.py [--runs 200] [--pause 0.1]

The Xen 4.2 seed list (as `irc_latency.py` uses), `!todo` and `!claim ID` (each claim undone
by an untimed `!unclaim ID`) through `Dispatcher.handle` in this process: no transport, no
socket. Each command is timed twice over: sent back to back, and with `--pause` seconds of
idle between commands, as in `irc_latency.py`, where a person pauses between commands. The
difference is what the idle costs the next command (caches and the core's clock going cold),
which a no-bot round trip barely pays and a command does. A third pair of rows times the
hand-off alone (an empty `Database.run`: to the database thread and back, no SQL), the part
a read in the event loop's own thread would save. Prints Markdown; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from common import RELEASE, machine, pct, seed_database

from todobot.bot.config import Config
from todobot.bot.dispatcher import Dispatcher
from todobot.commands.messages import Message, Sender
from todobot.commands.settings import Settings
from todobot.storage import Database, Repository

ROOM = "#dev"
TRANSPORT = "irc:bench"


async def run(path: Path, runs: int, pause: float) -> list[tuple[str, str, float, float]]:
    db = await Database.open(path)
    try:
        dispatcher = Dispatcher(Repository(db), Config(database=str(path), default_release=RELEASE))
        dispatcher.bind_room(TRANSPORT, ROOM, Settings(release=RELEASE, cooldown=False))
        sender = Sender(identity="irc:bench/bench", nick="bench")
        async with Repository(db).session("bench", write=False) as s:
            item = (await s.items(await s.require_release(RELEASE)))[4].id

        async def say(text: str) -> None:
            reply = await dispatcher.handle(Message(TRANSPORT, ROOM, sender, text))
            assert reply is not None and reply.outcome != "error", reply

        # (row name, the timed call, an untimed call that undoes it)
        cases = [
            ("`!todo`", lambda: say("!todo"), None),
            ("`!claim`", lambda: say(f"!claim {item}"), lambda: say(f"!unclaim {item}")),
            ("the hand-off alone (an empty `Database.run`)", lambda: db.run(lambda conn: None), None),
        ]
        rows = []
        for label, wait in (("back to back", 0.0), (f"after {pause * 1000:.0f} ms idle", pause)):
            for name, timed, undo in cases:
                times = []
                for _ in range(runs):
                    if wait:
                        await asyncio.sleep(wait)
                    t0 = time.perf_counter()
                    await timed()
                    times.append((time.perf_counter() - t0) * 1000)
                    if undo:
                        await undo()
                rows.append((name, label, statistics.median(times), pct(times, 0.99)))
        return rows
    finally:
        await db.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--pause", type=float, default=0.1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.sqlite3"
        seed_database(path)
        rows = asyncio.run(run(path, args.runs, args.pause))
    print(f"{machine()}; the Xen 4.2 seed list; {args.runs} commands of each kind per row.\n")
    print("| command (Dispatcher.handle, in process) | sent | p50 | p99 |\n| --- | --- | --- | --- |")
    for name, label, p50, p99 in rows:
        print(f"| {name} | {label} | {p50:.2f} ms | {p99:.2f} ms |")


if __name__ == "__main__":
    main()
