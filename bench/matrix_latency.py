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

from nio import AsyncClient, AsyncClientConfig, Event, LoginResponse, RoomCreateResponse  # noqa: E402
from tests.servers.synapse import Synapse  # noqa: E402

PASSWORD = "bench horse battery staple"
PASSWORD_ENV = "TODOBOT_BENCH_MATRIX_PASSWORD"
PAUSE = 0.1


class Person:
    """A matrix-nio client in a long-poll sync loop; every event stamped on arrival.

    `replies` maps an event id to (arrival time, sender) of the first reply to it."""

    def __init__(self, server: Synapse, name: str, store: Path) -> None:
        self.user_id = server.register(name, PASSWORD)
        store.mkdir(parents=True, exist_ok=True)
        self.client = AsyncClient(server.url, self.user_id, store_path=str(store),
                                  config=AsyncClientConfig(store_sync_tokens=False,
                                                           encryption_enabled=False))
        self.replies: dict[str, tuple[float, str]] = {}
        self.joined: dict[str, float] = {}  # user id -> when their join arrived
        self.arrived = asyncio.Event()
        self.on_message: Any = None  # async callback(room_id, event) for the echo person
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> "Person":
        resp = await self.client.login(PASSWORD, device_name="bench")
        assert isinstance(resp, LoginResponse), resp
        self.client.add_event_callback(self._on_event, Event)
        self._task = asyncio.create_task(self.client.sync_forever(timeout=30000))
        return self

    async def _on_event(self, room: Any, event: Any) -> None:
        now = time.perf_counter()
        source = event.source
        if source.get("type") == "m.room.member" and source.get("content", {}).get(
                "membership") == "join":
            self.joined.setdefault(source.get("state_key"), now)
        rel = (source.get("content", {}).get("m.relates_to") or {}).get("m.in_reply_to") or {}
        if rel.get("event_id"):
            self.replies.setdefault(rel["event_id"], (now, event.sender))
        if self.on_message is not None and source.get("type") == "m.room.message" \
                and event.sender != self.user_id:
            await self.on_message(room.room_id, event)
        self.arrived.set()

    async def say(self, room_id: str, text: str, reply_to: str | None = None) -> tuple[float, str]:
        content: dict[str, Any] = {"msgtype": "m.text", "body": text}
        if reply_to:
            content["m.relates_to"] = {"m.in_reply_to": {"event_id": reply_to}}
        t0 = time.perf_counter()
        resp = await self.client.room_send(room_id, "m.room.message", content)
        return t0, resp.event_id

    async def wait(self, cond, timeout: float = 30.0) -> Any:
        """Until `cond()` is true; arrival times are stamped in the callback, so polling
        (for invites, which come without an event callback) costs no precision."""
        async with asyncio.timeout(timeout):
            while not (value := cond()):
                self.arrived.clear()
                try:
                    await asyncio.wait_for(self.arrived.wait(), 0.05)
                except TimeoutError:
                    pass
        return value

    async def room_with(self, *invite: str) -> str:
        resp = await self.client.room_create(invite=list(invite))
        assert isinstance(resp, RoomCreateResponse), resp
        await self.wait(lambda: resp.room_id in self.client.rooms)
        return resp.room_id

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        await self.client.close()


async def timed(person: Person, room: str, text: str) -> float:
    t0, event_id = await person.say(room, text)
    at, _ = await person.wait(lambda: person.replies.get(event_id))
    await asyncio.sleep(PAUSE)
    return (at - t0) * 1000


async def floor(server: Synapse, work: Path, count: int) -> list[float]:
    a = await Person(server, "floora", work / "floora").start()
    b = await Person(server, "floorb", work / "floorb").start()
    try:
        room = await a.room_with(b.user_id)
        await b.wait(lambda: room in b.client.invited_rooms)
        await b.client.join(room)
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
    a = await Person(server, "human", work / "human").start()
    proc: Proc | None = None
    try:
        room = await a.room_with(bot_id)
        cfg.write_text(f"""\
database: {db}
default_release: '4.2'
log_level: WARNING
cooldown: {{burst: 1000, rate: 1000}}
max_adds_per_hour: null
matrix:
  homeserver: {server.url}
  user_id: '{bot_id}'
  password_env: {PASSWORD_ENV}
  data_dir: {work / 'todobot-matrix'}
  rooms: ['{room}']
""")
        os.environ[PASSWORD_ENV] = PASSWORD
        proc = start_todobot(cfg, work)
        joined_at = await a.wait(lambda: a.joined.get(bot_id), 90)
        joined = joined_at - proc.started
        # The bot answers only what is said after its first sync: wait for a first answer.
        deadline = time.monotonic() + 60
        while True:
            _, ev = await a.say(room, "!whoami")
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
