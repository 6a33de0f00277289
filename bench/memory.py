"""Memory of an IRC-only bot: what each import costs, and RSS of the running bot.

    python bench/memory.py [--count 50] [--no-limnoria]

Two tables:
- imports: VmRSS of a fresh interpreter after each cumulative step (bare, asyncio and
  sqlite3, the IRC and YAML libraries, todobot's config models, everything an
  IRC-only `todobot run` imports, then the optional clients: matrix-nio, aiohttp, pygal,
  jinja2, aioimaplib, aiosmtplib). The difference between the last two rows is what an
  IRC-only bot saves by importing those only when the config uses them.
- running: an IRC-only todobot through InspIRCd (the `bench/irc_latency.py` run, shortened
  to --count commands of each kind), as shipped and with the optional clients imported
  first (what it was when they were top-level imports), and Limnoria's Todo in the same run.
  RSS is VmRSS after the commands.

todobot runs from compiled bytecode, as an installed copy does (pip compiles it, as it did
Limnoria's): with PYTHONDONTWRITEBYTECODE set, a checkout would compile every module at each
start, which costs ~2 MB of RSS no deployment pays. The bytecode goes to a cache outside the
tree (PYTHONPYCACHEPREFIX, ~/.cache/todobot-bench/pycache), filled before anything is measured.

Prints Markdown; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import irc_latency
from common import REPO, Proc, machine

from tests.servers.ircd import start_inspircd  # noqa: E402

OPTIONAL = ("nio", "aiohttp", "pygal", "jinja2", "aioimaplib", "aiosmtplib")

# Cumulative import steps: (label, statements run after the previous steps).
STEPS = [
    ("bare interpreter", ""),
    ("+ asyncio, sqlite3, aiosqlite", "import asyncio, sqlite3, aiosqlite"),
    ("+ yaml, irc (jaraco: the modules the transport uses)",
     "import yaml, irc.features, irc.message, irc.ctcp"),
    ("+ todobot's config models (bot/config.py, validated by bot/config_schema.py)",
     "import todobot.bot.config"),
    ("+ the rest of an IRC-only `todobot run` (cli, app, irc, scheduler, storage, commands)",
     "import todobot.bot.cli, todobot.bot.irc, todobot.bot.scheduler"),
    ("+ the optional clients (" + ", ".join(OPTIONAL) + ")",
     "import nio, aiohttp, pygal, jinja2, aioimaplib, aiosmtplib"),
]

# Compiled bytecode, in a cache of its own (see the module's docstring).
BYTECODE_ENV = {"PYTHONDONTWRITEBYTECODE": "",
                "PYTHONPYCACHEPREFIX": str(Path.home() / ".cache" / "todobot-bench" / "pycache")}

RSS_PRINT = ("\nfor _l in open('/proc/self/status'):\n"
             "    if _l.startswith('VmRSS:'): print(int(_l.split()[1]))")


def compile_all() -> None:
    """Fill the bytecode cache: every import step, and the whole of the checkout."""
    env = {**os.environ, **BYTECODE_ENV}
    subprocess.run([sys.executable, "-c", "\n".join(stmt for _, stmt in STEPS)], cwd=REPO, env=env,
                   check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "bot", "commands", "storage", "src"],
                   cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)


def import_rss() -> list[tuple[str, float]]:
    out, code = [], ""
    env = {**os.environ, **BYTECODE_ENV}
    for label, stmt in STEPS:
        code += stmt + "\n"
        runs = [int(subprocess.run([sys.executable, "-c", code + RSS_PRINT], cwd=REPO, env=env,
                                   check=True, capture_output=True, text=True).stdout)
                for _ in range(3)]
        out.append((label, sorted(runs)[1] / 1024))  # median of three
    return out


def eager_start(config: Path, workdir: Path) -> Proc:
    """`todobot run` with the optional clients imported before it starts, as when they were
    top-level imports."""
    code = ("import runpy, " + ", ".join(OPTIONAL) + "\n"
            "runpy.run_module('todobot', run_name='__main__', alter_sys=True)")
    argv = [sys.executable, "-c", code, "run", "-c", str(config)]
    return Proc(argv, workdir / "todobot-eager.log", REPO, env=BYTECODE_ENV)


def shipped_start(config: Path, workdir: Path) -> Proc:
    """`todobot run` (common.start_todobot's command) from compiled bytecode."""
    return Proc([sys.executable, "-m", "todobot", "run", "-c", str(config)],
                workdir / "todobot.log", REPO, env=BYTECODE_ENV)


async def running(count: int, with_limnoria: bool) -> dict[str, float]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        server = start_inspircd(work / "inspircd", services=False)
        try:
            for label, start in (("todobot, as shipped", shipped_start),
                                 ("todobot, optional clients imported", eager_start)):
                irc_latency.start_todobot = start
                run_dir = work / label.split(",")[1].strip().replace(" ", "-")
                run_dir.mkdir()
                out[label] = (await irc_latency.todobot(server.port, count, run_dir))["rss"]
            if with_limnoria:
                out["Limnoria (Todo plugin)"] = (
                    await irc_latency.limnoria(server.port, count, work))["rss"]
        finally:
            server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50, help="commands of each kind before RSS")
    ap.add_argument("--no-limnoria", action="store_true")
    args = ap.parse_args()
    compile_all()
    steps = import_rss()
    live = asyncio.run(running(args.count, not args.no_limnoria))
    print(f"Machine: {machine()}\n")
    print("| imports (fresh interpreter, cumulative) | VmRSS | step |")
    print("| --- | --- | --- |")
    prev = None
    for label, mb in steps:
        print(f"| {label} | {mb:.1f} MB | {'' if prev is None else f'+{mb - prev:.1f} MB'} |")
        prev = mb
    print(f"\n| running IRC-only bot, after {args.count} + 20 `!todo` and `!claim` "
          f"(Limnoria: `todo`, `todo add`) | VmRSS |")
    print("| --- | --- |")
    for label, mb in live.items():
        print(f"| {label} | {mb:.1f} MB |")


if __name__ == "__main__":
    main()
