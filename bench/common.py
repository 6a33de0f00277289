"""Shared pieces of the chat benchmarks: a fast raw IRC client, the bot as a subprocess,
percentiles, RSS and a description of the machine.

Everything talks to 127.0.0.1 only; every process started here is started in its own
process group and stopped through that group, never by name.
"""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from todobot.bot.irc.connection import IrcLine, parse_line  # noqa: E402

HOST = "127.0.0.1"
SEED = REPO / "storage" / "seed" / "xen-4.2.txt"
RELEASE = "4.2"


# -- numbers ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_mb(pid: int) -> float:
    """Resident set size of a live process, from /proc/PID/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def machine() -> str:
    mem_kb = next(int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines()
                  if ln.startswith("MemTotal:"))
    return (f"{platform.machine()}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.0f} GB RAM, "
            f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")


# -- processes -------------------------------------------------------------------------------


class Proc:
    """A child process in its own process group; `stop` signals only that group."""

    def __init__(self, argv: list[str], log: Path, cwd: Path, env: dict[str, str] | None = None):
        self.started = time.perf_counter()
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True,
                                          env={**os.environ, **(env or {})})
        self.log = log

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
            except ProcessLookupError:
                pass

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def todobot_config(path: Path, db: Path, port: int, channels: list[str], nick: str = "todobot",
                   rate: float = 50, burst: int = 20) -> None:
    """A config for `python -m todobot run`: plain TCP to the local server, output throttle and the
    per-person cooldown raised as far as the schema allows."""
    chans = "\n".join(f"      - '{c}'" for c in channels)
    path.write_text(f"""\
database: {db}
default_release: '{RELEASE}'
log_level: WARNING
cooldown: {{burst: 1000, rate: 1000}}
max_adds_per_hour: null
irc:
  - network: bench
    host: {HOST}
    port: {port}
    tls: false
    nick: {nick}
    throttle: {{burst: {burst}, rate: {rate}}}
    channels:
{chans}
""")


def seed_database(db: Path) -> None:
    """The Xen 4.2 list from the repository's seed, imported through the CLI."""
    subprocess.run([sys.executable, "-m", "todobot", "import", str(SEED), "--release", RELEASE,
                    "--db", str(db)], cwd=REPO, check=True, capture_output=True)


def start_todobot(config: Path, workdir: Path) -> Proc:
    """The bot as a subprocess; with $TODOBOT_BENCH_PROFILE set, under cProfile, its event
    loop's profile written to that path when the bot stops (the database thread is not in it)."""
    profile = os.environ.get("TODOBOT_BENCH_PROFILE")
    argv = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile else []),
            "-m", "todobot", "run", "-c", str(config)]
    return Proc(argv, workdir / "todobot.log", REPO)


# -- a raw IRC client ------------------------------------------------------------------------


class Client:
    """A person on IRC as a bare socket: no throttle, every line stamped when it arrives.

    Lines go to a queue of (perf_counter at arrival, parsed line); PINGs are answered."""

    def __init__(self, nick: str) -> None:
        self.nick = nick
        self.inbox: asyncio.Queue[tuple[float, IrcLine]] = asyncio.Queue()
        self.on_line: Callable[[IrcLine], None] | None = None  # called before queueing
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None

    async def connect(self, port: int, timeout: float = 30.0) -> None:
        self._reader, self._writer = await asyncio.open_connection(HOST, port)
        self._task = asyncio.create_task(self._read_loop())
        self.send(f"NICK {self.nick}", f"USER {self.nick[:9].lower()} 0 * :{self.nick}")
        await self.expect(lambda ln: ln.command == "001", timeout)

    async def _read_loop(self) -> None:
        assert self._reader is not None
        while True:
            raw = await self._reader.readline()
            now = time.perf_counter()
            if not raw:
                return
            line = parse_line(raw.decode("utf-8", "replace").rstrip("\r\n"))
            if line is None:
                continue
            if line.command == "PING":
                self.send(f"PONG :{line.param(0)}")
                continue
            if self.on_line is not None:
                self.on_line(line)
            self.inbox.put_nowait((now, line))

    def send(self, *lines: str) -> None:
        assert self._writer is not None
        self._writer.write(b"".join(ln.encode() + b"\r\n" for ln in lines))

    def say(self, target: str, text: str) -> float:
        """Send a PRIVMSG; returns the send time (perf_counter)."""
        t0 = time.perf_counter()
        self.send(f"PRIVMSG {target} :{text}")
        return t0

    async def expect(self, pred: Callable[[IrcLine], bool],
                     timeout: float = 30.0) -> tuple[float, IrcLine]:
        """The next line satisfying `pred` (earlier ones are dropped), with its arrival time."""
        async with asyncio.timeout(timeout):
            while True:
                at, line = await self.inbox.get()
                if pred(line):
                    return at, line

    async def join(self, *channels: str) -> None:
        self.send(*(f"JOIN {c}" for c in channels))
        for c in channels:
            await self.expect(lambda ln, c=c: ln.command == "366" and ln.param(1).lower() == c.lower())

    def drain(self) -> None:
        while not self.inbox.empty():
            self.inbox.get_nowait()

    async def quit(self) -> None:
        if self._writer is None:
            return
        try:
            self.send("QUIT :bench done")
            await asyncio.wait_for(self._writer.drain(), 2)
        except (OSError, asyncio.TimeoutError):
            pass
        if self._task is not None:
            self._task.cancel()
        self._writer.close()


def from_nick(nick: str, command: str = "PRIVMSG") -> Callable[[IrcLine], bool]:
    folded = nick.lower()
    return lambda ln: ln.command == command and (ln.nick or "").lower() == folded


def fmt_ms(value: float) -> str:
    return f"{value:.2f} ms"
