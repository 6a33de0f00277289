"""IRC reply latency through a real InspIRCd, todobot side by side with Limnoria.

    python bench/irc_latency.py [--count 1000]

One InspIRCd (flood limits lifted, no services) on 127.0.0.1. Three measurements, in turn:
- the floor: client A says a line in a channel, client B answers it the moment it arrives;
  A times the round trip (no bot at all);
- todobot (`python -m bot run`, a subprocess, throttle raised): `!todo` and `!claim ID`
  from a raw client, timed from sending to the first line of the reply (an untimed
  `!unclaim ID` follows each claim so every claim is a real write);
- Limnoria with its Todo plugin (`todo`, `todo add`; an untimed `todo remove` follows each
  add), after registering and identifying the client in private.
Plus RSS (VmRSS after the run) and start-to-joined time of both bots. After each reply the
client pauses as a person would (100 ms, or longer until the bot's output bucket has refilled
at 50 lines/s), the same for both bots, so the numbers are reply latency and not throttle
delay. (A next command sent within ~40 ms of the last reply line costs both bots ~23 ms more
on loopback: TCP delayed ACKs meeting Nagle's algorithm somewhere on the path.)

Limnoria runs from $LIMNORIA_VENV (default: a venv made on first use in
~/.cache/todobot-bench/limnoria-venv). Prints a Markdown table; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import (Client, Proc, fmt_ms, from_nick, machine, pct, rss_mb, seed_database,
                    start_todobot, todobot_config)

from tests.servers.ircd import start_inspircd  # noqa: E402

PACE_RATE = 50.0  # lines per second the bots may send: the same pace for both
PAUSE = 0.1  # seconds at least between a reply and the next command, as between people
LIMNORIA_TEMPLATE = Path(__file__).resolve().parent / "limnoria" / "limnoria.conf.template"
LIM_USER, LIM_PASSWORD = "benchuser", "bench-pw-4821"


def limnoria_venv() -> Path:
    """$LIMNORIA_VENV, or a venv of our own with Limnoria from PyPI (made once)."""
    given = os.environ.get("LIMNORIA_VENV")
    venv = Path(given) if given else Path.home() / ".cache" / "todobot-bench" / "limnoria-venv"
    if not (venv / "bin" / "limnoria").exists():
        if given:
            sys.exit(f"LIMNORIA_VENV={given} has no bin/limnoria")
        print(f"creating {venv} with Limnoria from PyPI", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "limnoria"], check=True)
    return venv


class Timer:
    """Times commands from one raw client to one bot in one channel.

    A reply's length (lines) is learnt once per command text by waiting for silence; after
    that each command waits for exactly that many lines, timing the first."""

    def __init__(self, client: Client, bot: str, channel: str) -> None:
        self.client, self.bot, self.channel = client, bot, channel
        self.lengths: dict[str, int] = {}
        self.is_reply = from_nick(bot)

    async def learn(self, text: str, quiet: float = 0.7) -> list[str]:
        self.client.drain()
        self.client.say(self.channel, text)
        lines = [(await self.client.expect(self.is_reply, 30))[1].param(1)]
        while True:
            try:
                lines.append((await self.client.expect(self.is_reply, quiet))[1].param(1))
            except TimeoutError:
                break
        self.lengths[text] = len(lines)
        return lines

    async def run(self, text: str) -> tuple[float, list[str]]:
        """(milliseconds to the first line, the reply's lines)."""
        if text not in self.lengths:
            await self.learn(text)
        t0 = self.client.say(self.channel, text)
        at, first = await self.client.expect(self.is_reply, 30)
        lines = [first.param(1)]
        for _ in range(self.lengths[text] - 1):
            lines.append((await self.client.expect(self.is_reply, 30))[1].param(1))
        await asyncio.sleep(max(PAUSE, len(lines) / PACE_RATE))
        return (at - t0) * 1000, lines


async def wait_joined(observer: Client, nick: str, channel: str, proc: Proc,
                      timeout: float = 90) -> float:
    """Seconds from the bot's exec to its JOIN as the observer in `channel` sees it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.popen.poll() is None:
        try:
            at, _ = await observer.expect(lambda ln: ln.command == "JOIN" and (
                ln.nick or "").lower() == nick.lower(), 1.0)
            return at - proc.started
        except TimeoutError:
            continue
    raise SystemExit(f"{nick} did not join {channel}:\n{proc.tail()}")


# -- the three measurements ---------------------------------------------------------------


async def floor(port: int, count: int) -> list[float]:
    a, b = Client("floorA"), Client("floorB")
    await a.connect(port)
    await b.connect(port)
    await a.join("#floor")
    await b.join("#floor")
    # B answers from its read loop the moment a line from A arrives.
    b.on_line = lambda ln: b.send("PRIVMSG #floor :pong") if (
        ln.command == "PRIVMSG" and ln.nick == "floorA") else None
    out = []
    for i in range(count + 20):
        t0 = a.say("#floor", f"ping {i}")
        at, _ = await a.expect(from_nick("floorB"))
        if i >= 20:  # warm-up
            out.append((at - t0) * 1000)
    await a.quit()
    await b.quit()
    return out


def unclaimed_item(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT id FROM items WHERE owners = '[]' AND state = 'open' "
                           "ORDER BY id LIMIT 1").fetchone()
    return row[0]


async def todobot(port: int, count: int, work: Path) -> dict[str, float | list[float]]:
    db, cfg, chan = work / "todobot.sqlite3", work / "todobot.yaml", "#todobot"
    seed_database(db)
    item = unclaimed_item(db)
    todobot_config(cfg, db, port, [chan], rate=PACE_RATE)
    human = Client("human")
    await human.connect(port)
    await human.join(chan)
    proc = start_todobot(cfg, work)
    try:
        joined = await wait_joined(human, "todobot", chan, proc)
        timer = Timer(human, "todobot", chan)
        print(f"todobot !todo: {len(await timer.learn('!todo'))} lines", file=sys.stderr)
        lists, writes = await measure(timer, count, "!todo", f"!claim {item}",
                                      lambda _: f"!unclaim {item}")
        rss = rss_mb(proc.pid)
    finally:
        proc.stop()
        await human.quit()
    return {"list": lists, "write": writes, "rss": rss, "joined": joined}


async def limnoria(port: int, count: int, work: Path) -> dict[str, float | list[float]]:
    venv, chan, nick = limnoria_venv(), "#limnoria", "limbot"
    lim = work / "limnoria"
    for sub in ("conf", "data/tmp", "data/web", "backup", "logs"):
        (lim / sub).mkdir(parents=True, exist_ok=True)
    for db in ("users", "channels", "networks", "ignores"):  # empty, not missing: no warnings
        (lim / "conf" / f"{db}.conf").touch()
    conf = lim / "bench.conf"
    conf.write_text(string.Template(LIMNORIA_TEMPLATE.read_text()).substitute(
        dir=lim, port=port, nick=nick, channel=chan))
    human = Client("human2")
    await human.connect(port)
    await human.join(chan)
    proc = Proc([str(venv / "bin" / "limnoria"), "--allow-root", str(conf)], lim / "out.log", lim)
    try:
        joined = await wait_joined(human, nick, chan, proc)
        # Limnoria answers private messages with NOTICEs.
        private = from_nick(nick, "NOTICE")
        for text in (f"register {LIM_USER} {LIM_PASSWORD}", f"identify {LIM_USER} {LIM_PASSWORD}"):
            human.say(nick, text)
            _, ln = await human.expect(private)
            if "succeeded" not in ln.param(1):
                raise SystemExit(f"Limnoria refused {text.split()[0]}: {ln.param(1)}")
        timer = Timer(human, nick, chan)
        for i in range(5):  # a short list for `todo` to show, like todobot's first lines
            await timer.learn(f"@todo add bench task {i}")
        print(f"limnoria @todo: {await timer.learn('@todo')}", file=sys.stderr)
        lists, writes = await measure(timer, count, "@todo", "@todo add a bench task",
                                      lambda reply: "@todo remove " + re.search(r"#(\d+)", reply[0]).group(1))
        rss = rss_mb(proc.pid)
    finally:
        proc.stop()
        await human.quit()
    return {"list": lists, "write": writes, "rss": rss, "joined": joined}


async def measure(timer: Timer, count: int, listing: str, write: str,
                  undo: Callable[[list[str]], str]) -> tuple[list[float], list[float]]:
    """`count` timed listings and `count` timed writes, interleaved, after a warm-up."""
    lists, writes = [], []
    for i in range(count + 20):
        ms_list, _ = await timer.run(listing)
        ms_write, reply = await timer.run(write)
        await timer.run(undo(reply))
        if i >= 20:
            lists.append(ms_list)
            writes.append(ms_write)
    return lists, writes


# -- report -------------------------------------------------------------------------------


def row(label: str, values: list[float]) -> str:
    return (f"| {label} | {fmt_ms(statistics.median(values))} | {fmt_ms(pct(values, 0.99))} "
            f"| {len(values)} |")


async def main_async(count: int, with_limnoria: bool = True) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "inspircd", services=False)
        try:
            base = await floor(server.port, count)
            tb = await todobot(server.port, count, work)
            lm = await limnoria(server.port, count, work) if with_limnoria else None
        finally:
            server.stop()
    p50 = statistics.median
    print(f"Machine: {machine()}; InspIRCd on 127.0.0.1, flood limits lifted; {count} timed "
          f"commands of each kind (after 20 warm-up).\n")
    print("| round trip (send to first reply line) | p50 | p99 | n |")
    print("| --- | --- | --- | --- |")
    print(row("floor: client to client, no bot", base))
    print(row("todobot `!todo`", tb["list"]))
    print(row("todobot `!claim ID`", tb["write"]))
    if lm is None:
        print()
        print(f"| todobot p50 latency added over the floor | listing {p50(tb['list']) - p50(base):.2f} ms "
              f"| write {p50(tb['write']) - p50(base):.2f} ms |")
        print(f"| todobot RSS after the run, start to joined | {tb['rss']:.1f} MB | {tb['joined']:.2f} s |")
        return
    print(row("Limnoria `todo`", lm["list"]))
    print(row("Limnoria `todo add`", lm["write"]))
    print()
    print("| todobot vs floor and Limnoria | todobot | Limnoria | todobot / Limnoria |")
    print("| --- | --- | --- | --- |")
    for kind, label in (("list", "listing"), ("write", "write")):
        t, m = p50(tb[kind]), p50(lm[kind])
        print(f"| p50 latency added over the floor, {label} | {t - p50(base):.2f} ms "
              f"| {m - p50(base):.2f} ms | |")
        print(f"| p50 reply latency, {label} | {fmt_ms(t)} | {fmt_ms(m)} | {t / m:.2f}x |")
    print(f"| RSS after the run (VmRSS) | {tb['rss']:.1f} MB | {lm['rss']:.1f} MB "
          f"| {tb['rss'] / lm['rss']:.2f}x |")
    print(f"| start to joined | {tb['joined']:.2f} s | {lm['joined']:.2f} s "
          f"| {tb['joined'] / lm['joined']:.2f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=1000, help="timed commands of each kind")
    ap.add_argument("--no-limnoria", action="store_true", help="measure todobot and the floor only")
    args = ap.parse_args()
    asyncio.run(main_async(args.count, with_limnoria=not args.no_limnoria))


if __name__ == "__main__":
    main()
