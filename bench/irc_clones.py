"""A release manager's answer behind 40 clones on a network shaped like OFTC.

    python bench/irc_clones.py [--runs 5] [--clones 40] [--command whoami|blocker] [--bot-logs DIR]

One InspIRCd + Anope shaped like OFTC (`tests/servers/ircd.py`: NickServ accounts, no SASL
and none of the IRCv3 account capabilities, MONITOR, a TLS listener with a certificate of its
own) at InspIRCd's default flood limits, started once; the accounts todobot and ijc are
registered with NickServ as the integration fixtures do. Every measurement starts a fresh
todobot (subprocess, a fresh copy of the Xen 4.2 seed database, `irc:oftcnet/ijc` its only
release manager, its default throttle: burst 4, then 1 line/s; defaults otherwise): it
connects over TLS verified against the server's certificate, IDENTIFYs to NickServ and joins
one channel, which neither the release manager nor the clones join, so his account can only
come from WHOIS. 8 s after the join (its bucket full again) the release manager ("Ian", user
ian, IDENTIFIED as ijc) sends his command in private: `!whoami`, or with `--command blocker`
`!blocker 11`. Two conditions, alternating: alone, and just after N unidentified clones
(clone0.., one user@host, connected beforehand) each sent `!whoami` in private, their lines
flushed to the server first. Measured: seconds from sending his command to the bot's answer
(a NOTICE), timed once the measuring process has read it; recognised means the answer is the
release manager's (`!whoami` names irc:oftcnet/ijc as release manager; `!blocker 11` moves
#11), not "could not confirm" or "Only release managers". Also: how many clones had an
answer by then. `--bot-logs DIR` keeps each bot's log, at DEBUG (every line it sent and
read, timed), to see what went out ahead of his answer. Prints a Markdown table; never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from common import Proc, machine, pct, seed_database, start_todobot

from tests.integration.irc.conftest import (BOT_PASSWORD_ENV, Human, password_for,  # noqa: E402
                                            register_account)
from tests.servers.ircd import IrcServer, start_inspircd  # noqa: E402

NETWORK = "oftcnet"
CHANNEL = "#xen-devel"
RM_ACCOUNT = "ijc"
# Seconds after the bot's JOIN: its last line of joining (WHO, a token later) and 4 s to
# refill its bucket (4 lines at 1 line/s), with room to spare: he meets a bot that was idle.
SETTLE = 8.0
ANSWER_WAIT = 60.0  # the bot itself gives up on a WHOIS after 5 s; this only bounds a lost run
COMMANDS = {"whoami": "!whoami", "blocker": "!blocker 11"}


def recognised(command: str, answer: str) -> bool:
    if "could not confirm" in answer or "Only release managers" in answer:
        return False
    if command == "whoami":
        return f"irc:{NETWORK}/{RM_ACCOUNT}" in answer and "release manager" in answer
    return "#11" in answer and "blocker" in answer


@dataclass
class Run:
    clones: int  # clones in front (0: alone)
    seconds: float | None  # None: no answer within ANSWER_WAIT
    answer: str
    ok: bool
    clones_answered: int


def write_config(path: Path, db: Path, server: IrcServer, debug: bool) -> None:
    """The bot as a release team on OFTC would run it: TLS, NickServ, default throttle."""
    assert server.tls_port is not None and server.cert is not None
    path.write_text(f"""\
database: {db}
log_level: {'DEBUG' if debug else 'INFO'}
default_release: '4.2'
admins: ['irc:{NETWORK}/{RM_ACCOUNT}']
irc:
  - network: {NETWORK}
    host: {server.host}
    port: {server.tls_port}
    tls: true
    tls_ca: {server.cert}
    nick: todobot
    alternates: [todobot2]
    nickserv_account: todobot
    nickserv_password_env: {BOT_PASSWORD_ENV}
    channels: ['{CHANNEL}']
""")


async def one_run(server: IrcServer, seed: Path, work: Path, clones: int, command: str,
                  keep_log: Path | None) -> Run:
    work.mkdir()
    db, conf = work / "todo.sqlite3", work / "bot.yaml"
    shutil.copy(seed, db)
    write_config(conf, db, server, debug=keep_log is not None)
    made: list[Human] = []
    bot: Proc | None = None
    try:
        observer = await Human.connect(server, "observer", user="observer")
        made.append(observer)
        await observer.join(CHANNEL)
        bot = start_todobot(conf, work)
        crowd = list(await asyncio.gather(*(Human.connect(server, f"clone{i}", user="clone")
                                            for i in range(clones))))
        made.extend(crowd)
        rm = await Human.connect(server, "Ian", identify=RM_ACCOUNT, user="ian")
        made.append(rm)
        joined = await observer.expect(lambda ln: ln.command == "JOIN" and ln.param(0).lower()
                                       == CHANNEL and (ln.nick or "").startswith("todobot"), 60)
        nick = joined.nick or "todobot"
        await asyncio.sleep(SETTLE)
        for clone in crowd:
            clone.say(nick, "!whoami")
        await asyncio.gather(*(clone.writer.drain() for clone in crowd))
        asked = time.perf_counter()
        rm.say(nick, COMMANDS[command])
        try:
            answer = await rm.hear(nick, "", ANSWER_WAIT, command="NOTICE")
            seconds: float | None = time.perf_counter() - asked
        except TimeoutError:
            answer, seconds = "", None
        return Run(clones, seconds, answer, seconds is not None and recognised(command, answer),
                   sum(bool(c.heard(nick)) for c in crowd))
    except BaseException:
        if bot is not None:
            print(bot.tail(), file=sys.stderr)
        raise
    finally:
        if bot is not None:
            bot.stop()
            if keep_log is not None:
                shutil.copy(bot.log, keep_log)
        await asyncio.gather(*(h.quit() for h in made))


async def run(args: argparse.Namespace) -> list[Run]:
    os.environ[BOT_PASSWORD_ENV] = password_for("todobot")
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "ircd", network=NETWORK, oftc_like=True, tls=True,
                                default_limits=True)
        try:
            for account in ("todobot", RM_ACCOUNT):
                await register_account(server, account)
            seed = work / "seed.sqlite3"
            seed_database(seed)
            runs: list[Run] = []
            for i in range(args.runs):
                order = (0, args.clones) if i % 2 == 0 else (args.clones, 0)
                for n in order:
                    name = f"run{i + 1}-{n}clones"
                    keep = args.bot_logs / f"{name}.log" if args.bot_logs else None
                    r = await one_run(server, seed, work / name, n, args.command, keep)
                    runs.append(r)
                    took = f"{r.seconds:.3f} s" if r.seconds is not None else "no answer"
                    print(f"run {i + 1}, {n} clones: {took}, recognised {r.ok}, "
                          f"{r.clones_answered} clones answered; {r.answer!r}", file=sys.stderr)
        finally:
            server.stop()
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="measurements of each condition")
    ap.add_argument("--clones", type=int, default=40)
    ap.add_argument("--command", choices=sorted(COMMANDS), default="whoami",
                    help="the release manager's command: !whoami or !blocker 11")
    ap.add_argument("--bot-logs", type=Path, metavar="DIR",
                    help="keep each bot's log (at DEBUG) in DIR")
    args = ap.parse_args()
    if args.bot_logs:
        args.bot_logs.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    runs = asyncio.run(run(args))
    load_after = os.getloadavg()
    said = COMMANDS[args.command]
    print(f"The release manager's `{said}` in private, alone and behind {args.clones} clones' "
          f"`!whoami`; OFTC-like InspIRCd + Anope at default limits, WHOIS identity, todobot "
          f"default throttle; {args.runs} runs each; {machine()}; load average "
          f"{load_before[0]:.2f} before, {load_after[0]:.2f} after; {time.strftime('%Y-%m-%d')}\n")
    print(f"| in front of him | `{said}` answered after, p50 | p99 | slowest | recognised | "
          "clones answered before him (p50) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in (0, args.clones):
        mine = [r for r in runs if r.clones == n]
        times = [r.seconds for r in mine if r.seconds is not None]
        cells = ([f"{pct(times, 0.5):.3f} s", f"{pct(times, 0.99):.3f} s", f"{max(times):.3f} s"]
                 if times else ["no answer"] * 3)
        clones_answered = pct([float(r.clones_answered) for r in mine], 0.5)
        print(f"| {'nobody' if n == 0 else f'{n} clones'} | {' | '.join(cells)} | "
              f"{sum(r.ok for r in mine)}/{len(mine)} | "
              f"{'' if n == 0 else f'{clones_answered:.0f}'} |")


if __name__ == "__main__":
    main()
