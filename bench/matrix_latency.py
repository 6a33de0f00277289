"""Matrix reply latency through a real Synapse: todobot against a client-to-client floor.

    TODOBOT_SYNAPSE_VENV=/path/to/venv python bench/matrix_latency.py [--count 1000]

One Synapse on 127.0.0.1 (tests/servers/synapse.py; rate limits raised), in an unencrypted
room each:
- the floor: person A says something, person B (a matrix-nio client in a long-poll sync)
  answers with a Matrix reply the moment the event reaches it; A times send to arrival;
- todobot (`python -m bot run`, a subprocess, the bot's defaults otherwise): `!todo` and
  `!claim ID` from A (an untimed `!unclaim ID` follows each claim), timed from A's send to
  the bot's reply (the event whose `m.in_reply_to` is A's message) arriving in A's sync.
Both sides pause 100 ms between commands. Prints a Markdown table; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from common import Proc, fmt_ms, machine, pct, rss_mb, seed_database, start_todobot

import yaml
from tests.servers.matrix_people import Person, bot_settings
from tests.servers.synapse import Synapse

PASSWORD = "bench horse battery staple"
PASSWORD_ENV = "TODOBOT_BENCH_MATRIX_PASSWORD"
PAUSE = 0.1


def person(server: Synapse, name: str, store: Path) -> Person:
    """A test-suite person (tests/servers/matrix_people.py) in an unencrypted long-poll sync."""
    return Person(server, name, store, password=PASSWORD, encryption=False, device="bench",
                  sync_timeout_ms=30000, full_state=None)


async def timed(who: Person, room: str, text: str) -> float:
    event_id = await who.say(room, text)
    at, _ = await who.wait(lambda: who.replies.get(event_id), 30.0)
    await asyncio.sleep(PAUSE)
    return (at - who.sent[event_id]) * 1000


async def floor(server: Synapse, work: Path, count: int) -> list[float]:
    a = await person(server, "floora", work / "floora").start()
    b = await person(server, "floorb", work / "floorb").start()
    try:
        room = await a.create_room([b.user_id])
        await b.join(room)
        await a.wait(lambda: b.user_id in a.joined)

        async def answer(room_id: str, event: Any) -> None:
            await b.say(room_id, "pong", reply_to=event.event_id)
        b.on_message = answer
        out = []
        for i in range(count + 20):
            ms = await timed(a, room, f"ping {i}")
            if i >= 20:
                out.append(ms)
        return out
    finally:
        await a.close()
        await b.close()


async def todobot(server: Synapse, work: Path, count: int) -> dict[str, Any]:
    db, cfg = work / "todobot.sqlite3", work / "todobot.yaml"
    seed_database(db)
    with sqlite3.connect(db) as conn:
        item = conn.execute("SELECT id FROM items WHERE owners = '[]' AND state = 'open' "
                            "ORDER BY id LIMIT 1").fetchone()[0]
    bot_id = server.register("todobot", PASSWORD)
    a = await person(server, "human", work / "human").start()
    proc: Proc | None = None
    try:
        room = await a.create_room([bot_id])
        cfg.write_text(yaml.safe_dump(bot_settings(
            server.url, bot_id, database=db, data_dir=work / "todobot-matrix",
            password_env=PASSWORD_ENV, rooms=[room], log_level="WARNING")))
        os.environ[PASSWORD_ENV] = PASSWORD
        proc = start_todobot(cfg, work)
        joined_at = await a.wait(lambda: a.joined.get(bot_id), 90)
        joined = joined_at - proc.started
        # The bot answers only what is said after its first sync: wait for a first answer.
        deadline = time.monotonic() + 60
        while True:
            ev = await a.say(room, "!whoami")
            try:
                await a.wait(lambda: a.replies.get(ev), 2)
                break
            except TimeoutError:
                if time.monotonic() > deadline or proc.popen.poll() is not None:
                    raise SystemExit(f"todobot never answered on Matrix:\n{proc.tail()}")
        lists, writes = [], []
        for i in range(count + 20):
            ms_list = await timed(a, room, "!todo")
            ms_write = await timed(a, room, f"!claim {item}")
            await timed(a, room, f"!unclaim {item}")
            if i >= 20:
                lists.append(ms_list)
                writes.append(ms_write)
        rss = rss_mb(proc.pid)
    finally:
        if proc is not None:
            proc.stop()
        await a.close()
    return {"list": lists, "write": writes, "rss": rss, "joined": joined}


def row(label: str, values: list[float]) -> str:
    return (f"| {label} | {fmt_ms(statistics.median(values))} | {fmt_ms(pct(values, 0.99))} "
            f"| {len(values)} |")


async def main_async(count: int) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-mx-") as tmp:
        work = Path(tmp)
        server = Synapse(work / "synapse", Path(os.environ["TODOBOT_SYNAPSE_VENV"])
                         if os.environ.get("TODOBOT_SYNAPSE_VENV") else None)
        server.start()
        try:
            base = await floor(server, work, count)
            tb = await todobot(server, work, count)
        finally:
            server.stop()
    p50 = statistics.median(base)
    print(f"Machine: {machine()}; Synapse on 127.0.0.1, rate limits raised, unencrypted rooms; "
          f"{count} timed commands of each kind (after 20 warm-up).\n")
    print("| round trip (send to reply arriving) | p50 | p99 | n |")
    print("| --- | --- | --- | --- |")
    print(row("floor: client to client, no bot", base))
    print(row("todobot `!todo`", tb["list"]))
    print(row("todobot `!claim ID`", tb["write"]))
    print()
    print("| todobot over the floor | value |")
    print("| --- | --- |")
    for kind, label in (("list", "`!todo`"), ("write", "`!claim ID`")):
        t = statistics.median(tb[kind])
        print(f"| p50 added, {label} | {t - p50:.2f} ms ({(t / p50 - 1) * 100:+.0f}% over the floor) |")
    print(f"| RSS after the run (VmRSS) | {tb['rss']:.1f} MB |")
    print(f"| start to joined | {tb['joined']:.2f} s |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="timed commands of each kind")
    asyncio.run(main_async(ap.parse_args().count))


if __name__ == "__main__":
    main()
