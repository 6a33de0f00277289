"""Complete answers on IRC at default limits, todobot beside Limnoria: time to the last line.

    python bench/irc_blockers.py [--count 50] [--no-limnoria]

One InspIRCd with its own default flood limits (no services) on 127.0.0.1. In two channels
of it, at the same time:
- todobot (a subprocess) with its default output throttle (burst 4, then 1 line/s) on the
  Xen 4.2 seed list: `!blockers` (six open blockers) and `!todo` (every open item);
- Limnoria with its Todo plugin at its default `throttleTime` (1 s between lines), whose
  client has as many todo entries as the seed has open items, with the same texts: `todo`.
A raw client sends the command and, whenever a page ends with an offer of more (todobot's
`!more`, Limnoria's "(N more messages)"), asks for the next page at once; the time is from
sending the command to the last line of the last page. Before every command the client
waits long enough for the bot's output bucket to refill (6 s), so every run starts alike.
Limnoria's command flood defence stays off (as in `irc_latency.py`): the `more`s of 50
rounds would otherwise get the client ignored; its output throttle is the default.
Prints a Markdown table; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sqlite3
import statistics
import string
import sys
import tempfile
import time
from pathlib import Path

from common import (Client, Proc, from_nick, machine, pct, seed_database, start_todobot,
                    todobot_config)
from irc_latency import LIM_PASSWORD, LIM_USER, LIMNORIA_TEMPLATE, limnoria_venv, wait_joined

from tests.servers.ircd import start_inspircd  # noqa: E402

QUIET = 2.5  # seconds of silence after which a page without an offer is complete
REFILL = 6.0  # seconds before each command: todobot's bucket (4 lines at 1/s) refills
LIM_MORE = re.compile(r"\(\d+ more messages?\)\x02?\s*$")


async def complete(client: Client, bot: str, target: str, command: str, more: str,
                   offers_more) -> tuple[float, int, int, int]:
    """Send `command`, follow every offer of more, return (seconds to the last line, lines,
    bytes, pages)."""
    await asyncio.sleep(REFILL)
    client.drain()
    is_reply = from_nick(bot)
    t0 = client.say(target, command)
    last, lines, size, pages = t0, 0, 0, 1
    first = True
    while True:
        try:
            at, ln = await client.expect(is_reply, 60 if first else QUIET)
        except TimeoutError:
            break
        first = False
        last, lines, size = at, lines + 1, size + len(ln.param(1).encode())
        if offers_more(ln.param(1)):
            pages += 1
            client.say(target, more)
            first = True  # the next page may wait for the throttle
    return last - t0, lines, size, pages


async def run_todobot(port: int, work: Path, count: int) -> dict[str, list]:
    db, conf, chan = work / "todo.sqlite3", work / "bot.yaml", "#xen-devel"
    todobot_config(conf, db, port, [chan], rate=1.0, burst=4)  # the defaults
    client = Client("benchian")
    await client.connect(port)
    await client.join(chan)
    bot = start_todobot(conf, work)
    try:
        await wait_joined(client, "todobot", chan, bot)
        offer = lambda text: "!more" in text  # noqa: E731
        out: dict[str, list] = {"!blockers": [], "!todo": []}
        for i in range(count):
            for cmd in out:
                out[cmd].append(await complete(client, "todobot", chan, cmd, "!more", offer))
            print(f"todobot round {i + 1}/{count}: " + ", ".join(
                f"{c} {r[-1][0]:.2f}s/{r[-1][1]} lines" for c, r in out.items()), file=sys.stderr)
    finally:
        await client.quit()
        bot.stop()
    return out


def open_titles(db: Path) -> list[str]:
    """The texts `!todo` lists: the open items of the seed, in order."""
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute(
            "SELECT title FROM items WHERE state = 'open' ORDER BY id")]


async def run_limnoria(port: int, work: Path, count: int, titles: list[str]) -> dict[str, list]:
    venv, chan, nick = limnoria_venv(), "#limnoria", "limbot"
    lim = work / "limnoria"
    for sub in ("conf", "data/tmp", "data/web", "backup", "logs"):
        (lim / sub).mkdir(parents=True, exist_ok=True)
    for name in ("users", "channels", "networks", "ignores"):
        (lim / "conf" / f"{name}.conf").touch()
    text = string.Template(LIMNORIA_TEMPLATE.read_text()).substitute(
        dir=lim, port=port, nick=nick, channel=chan)
    # Limnoria's own default output throttle (1 s), not the latency benchmark's 0.
    text = re.sub(r"(?m)^supybot\.protocols\.irc\.throttleTime:.*$",
                  "supybot.protocols.irc.throttleTime: 1.0", text)
    conf = lim / "blockers.conf"
    conf.write_text(text)
    client = Client("benchlim")
    await client.connect(port)
    await client.join(chan)
    proc = Proc([str(venv / "bin" / "limnoria"), "--allow-root", str(conf)], lim / "out.log", lim)
    try:
        await wait_joined(client, nick, chan, proc)
        private = from_nick(nick, "NOTICE")
        for cmd in (f"register {LIM_USER} {LIM_PASSWORD}", f"identify {LIM_USER} {LIM_PASSWORD}"):
            client.say(nick, cmd)
            _, ln = await client.expect(private, 30)
            if "succeeded" not in ln.param(1):
                raise SystemExit(f"Limnoria refused {cmd.split()[0]}: {ln.param(1)}")
        for title in titles:
            client.say(chan, f"@todo add {title}")
            _, ln = await client.expect(from_nick(nick), 30)
            if "added" not in ln.param(1):
                raise SystemExit(f"Limnoria refused todo add: {ln.param(1)}")
        offer = lambda text: bool(LIM_MORE.search(text))  # noqa: E731
        out: dict[str, list] = {"todo": []}
        for i in range(count):
            out["todo"].append(await complete(client, nick, chan, "@todo", "@more", offer))
            print(f"limnoria round {i + 1}/{count}: todo {out['todo'][-1][0]:.2f}s/"
                  f"{out['todo'][-1][1]} lines", file=sys.stderr)
    finally:
        await client.quit()
        proc.stop()
    return out


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        seed_database(work / "todo.sqlite3")
        titles = open_titles(work / "todo.sqlite3")
        server = start_inspircd(work / "ircd", default_limits=True, services=False)
        try:
            jobs = [run_todobot(server.port, work, args.count)]
            if not args.no_limnoria:
                jobs.append(run_limnoria(server.port, work, args.count, titles))
            results: dict[str, list] = {}
            for part in await asyncio.gather(*jobs):
                results.update(part)
        finally:
            server.stop()
    print(f"Complete answers on the Xen 4.2 seed list ({len(titles)} open items), "
          f"{args.count} runs each; InspIRCd default flood limits; todobot default throttle, "
          f"Limnoria default throttleTime; {machine()}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print("| bot, command | lines | text bytes | pages | to last line, p50 | p99 | n |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    names = {"!blockers": "todobot `!blockers`", "!todo": "todobot `!todo` (+ `!more`)",
             "todo": "Limnoria `todo` (+ `more`)"}
    for key, rows in results.items():
        secs = [r[0] for r in rows]
        print(f"| {names[key]} | {rows[0][1]} | {rows[0][2]} | {rows[0][3]} | "
              f"{statistics.median(secs):.3f} s | {pct(secs, 0.99):.3f} s | {len(rows)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--no-limnoria", action="store_true", help="todobot only")
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
