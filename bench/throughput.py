"""IRC throughput: 20 channels, 200 commands/s offered for 60 s; nothing lost, backlog drains.

    python bench/throughput.py [--seconds 60] [--rate 200] [--channels 20]
                               [--throttle-rate 1000] [--drain-timeout 120]

One InspIRCd (flood limits lifted, no services) on 127.0.0.1, todobot as a subprocess in
all channels, and one raw client per channel offering its share of `--rate` on a fixed
schedule: `!show ID` and `!status ID MARKER` alternately, on an item of its own. Every reply
is attributed (a `!show` by its heading line, a `!status` by its unique marker), so the
table says how many commands were answered, how many were lost, and how long the backlog
took to drain after the offering stopped.

`--throttle-rate` is the bot's output rate in lines/s (`throttle.rate` in its config; a
rate this high is for servers that exempt the bot from flood limits). Prints a Markdown
table.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from common import (Client, Proc, fmt_ms, machine, pct, rss_mb, seed_database, start_todobot,
                    todobot_config)

from tests.servers.ircd import start_inspircd  # noqa: E402

BOT = "todobot"
SHOW = re.compile(r"^\x02#\d+\x02 .*\(4\.2, [^)]*\)$")  # the heading line of `!show`
STATUS = re.compile(r"^\x02#\d+\x02 progress: (tp-\d+-\d+) \(was")

class Offerer:
    """One channel's client: sends on schedule, attributes every reply."""

    def __init__(self, index: int, channel: str, item: int) -> None:
        self.index, self.channel, self.item = index, channel, item
        self.client = Client(f"tp{index}")
        self.sent_show = 0
        self.show_replies = 0
        self.status_sent: dict[str, float] = {}  # marker -> send time
        self.status_latency: dict[str, float] = {}
        self.last_reply = 0.0
        self.client.on_line = self._on_line

    def _on_line(self, line) -> None:
        if line.command != "PRIVMSG" or (line.nick or "").lower() != BOT:
            return
        now = time.perf_counter()
        text = line.param(1)
        if SHOW.match(text):
            self.show_replies += 1
            self.last_reply = now
        elif m := STATUS.match(text):
            marker = m.group(1)
            if marker in self.status_sent:
                self.status_latency[marker] = (now - self.status_sent[marker]) * 1000
            self.last_reply = now

    def send(self, k: int) -> None:
        if k % 2:
            marker = f"tp-{self.index}-{k}"
            self.status_sent[marker] = self.client.say(self.channel, f"!status {self.item} {marker}")
        else:
            self.sent_show += 1
            self.client.say(self.channel, f"!show {self.item}")

    @property
    def answered(self) -> int:
        return self.show_replies + len(self.status_latency)

    @property
    def offered(self) -> int:
        return self.sent_show + len(self.status_sent)


async def offer(offerers: list[Offerer], rate: float, seconds: float) -> float:
    """Send `rate` commands/s in total, round-robin over the channels, on a fixed clock
    (late sends catch up rather than slowing the schedule). Returns the stop time."""
    total = int(rate * seconds)
    start = time.perf_counter()
    for n in range(total):
        due = start + n / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        offerers[n % len(offerers)].send(n // len(offerers))
    return time.perf_counter()


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-tp-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "inspircd", services=False)
        proc: Proc | None = None
        offerers: list[Offerer] = []
        try:
            db, cfg = work / "todobot.sqlite3", work / "todobot.yaml"
            seed_database(db)
            with sqlite3.connect(db) as conn:
                items = [r[0] for r in conn.execute(
                    "SELECT id FROM items WHERE state = 'open' AND parent_id IS NULL ORDER BY id")]
            channels = [f"#tp{i}" for i in range(args.channels)]
            offerers = [Offerer(i, c, items[i % len(items)]) for i, c in enumerate(channels)]
            for o in offerers:
                await o.client.connect(server.port)
                await o.client.join(o.channel)
            todobot_config(cfg, db, server.port, channels, rate=args.throttle_rate, burst=20)
            proc = start_todobot(cfg, work)
            for o in offerers:
                await o.client.expect(lambda ln: ln.command == "JOIN" and ln.nick == BOT, 90)
            await asyncio.sleep(1)
            cpu0 = cpu_seconds(proc.pid)
            t_start = time.perf_counter()
            t_stop = await offer(offerers, args.rate, args.seconds)
            deadline = time.perf_counter() + args.drain_timeout
            while (sum(o.answered for o in offerers) < sum(o.offered for o in offerers)
                   and time.perf_counter() < deadline and proc.popen.poll() is None):
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)  # stragglers and anything unexpected
            cpu = cpu_seconds(proc.pid) - cpu0
            rss = rss_mb(proc.pid)
        finally:
            for o in offerers:
                await o.client.quit()
            if proc is not None:
                proc.stop()
            server.stop()
    report(args, offerers, t_start, t_stop, cpu, rss)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks (100 Hz)


def report(args, offerers: list[Offerer], t_start: float, t_stop: float, cpu: float,
           rss: float) -> None:
    offered = sum(o.offered for o in offerers)
    answered = sum(o.answered for o in offerers)
    last = max(o.last_reply for o in offerers)
    lat = [v for o in offerers for v in o.status_latency.values()]
    drained = answered >= offered
    throttle = f"{args.throttle_rate:g} lines/s"
    print(f"Machine: {machine()}; InspIRCd on 127.0.0.1, flood limits lifted; todobot throttle "
          f"{throttle}, burst 20.\n")
    print("| measurement | value |")
    print("| --- | --- |")
    print(f"| channels, offered rate, duration | {args.channels}, {args.rate:g} commands/s, "
          f"{args.seconds:g} s (`!show`/`!status` alternately) |")
    print(f"| commands offered (achieved rate) | {offered} ({offered / (t_stop - t_start):.0f}/s) |")
    print(f"| commands answered | {answered} |")
    if drained:
        print("| commands lost | 0 |")
    else:  # the bot may still hold them in its queues: unanswered, not proven lost
        print(f"| commands not answered {args.drain_timeout:g} s after the offering stopped "
              f"| {offered - answered} |")
    print(f"| backlog drain: last reply after the offering stopped | "
          f"{max(0.0, last - t_stop):.2f} s{'' if drained else ' (not drained)'} |")
    print(f"| answer rate over the whole run | {answered / max(last - t_start, 1e-9):.0f} commands/s |")
    if lat:
        print(f"| `!status` reply latency p50 / p99 | {fmt_ms(statistics.median(lat))} / "
              f"{fmt_ms(pct(lat, 0.99))} |")
    print(f"| bot CPU time during the run | {cpu:.1f} s |")
    print(f"| bot RSS after the run | {rss:.1f} MB |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=float, default=200, help="commands/s offered in total")
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--throttle-rate", type=float, default=1000, help="bot output lines/s")
    ap.add_argument("--drain-timeout", type=float, default=120)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
