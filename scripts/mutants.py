#!/usr/bin/env python3
"""Deliberate bugs, each of which a named test must catch (`make mutants`).

scripts/mutants.toml lists targeted mutations of the rules that keep trust and data safe: a
file (or candidate paths and globs, so an entry survives a module moving into a package), an
exact snippet that must occur exactly once among them, its replacement (the bug) and the
tests to run. Each mutation is applied to a private copy of the checkout (never to the working
tree), its tests run with the checkout's venv, and it is reported KILLED (a test failed) or
SURVIVED (all passed). A snippet that is missing or not unique is an error: the list must
follow the code. Exit status 1 when anything survived or went missing, 0 when all were killed.

A whole-module mutation tool (mutmut, cosmic-ray) would run the suite thousands of times;
these few hand-written mutations run only the tests that guard each rule.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"bot": "bot", "commands": "commands", "storage": "storage"}  # todobot.X -> folder
TIMEOUT = 900  # seconds for one mutation's tests: a hang counts as killed, but is said


@dataclass
class Mutation:
    name: str
    files: list[str]
    find: str
    replace: str
    tests: list[str]
    integration: bool = False
    path: str = ""  # the file the snippet was found in (relative), once located


@dataclass
class Result:
    mutation: Mutation
    status: str  # KILLED, SURVIVED, MISSING, TIMEOUT, SKIPPED
    detail: str = ""
    seconds: float = 0.0
    log: str = field(default="", repr=False)


def load(path: Path) -> list[Mutation]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    out = []
    for entry in data["mutation"]:
        files = entry["file"] if isinstance(entry["file"], list) else [entry["file"]]
        out.append(Mutation(entry["name"], files, entry["find"], entry["replace"],
                            list(entry["tests"]), bool(entry.get("integration", False))))
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        sys.exit(f"{path}: mutation names must be unique")
    return out


def candidates(tree: Path, patterns: list[str]) -> list[Path]:
    found: dict[Path, None] = {}
    for pattern in patterns:
        for p in sorted(glob.glob(str(tree / pattern), recursive=True)):
            if os.path.isfile(p):
                found[Path(p)] = None
    return list(found)


def locate(tree: Path, m: Mutation) -> str | None:
    """Find the one file holding the snippet exactly once; sets m.path. The problem, or None."""
    hits = []
    for p in candidates(tree, m.files):
        n = p.read_text(encoding="utf-8").count(m.find)
        if n:
            hits.append((p, n))
    total = sum(n for _, n in hits)
    if total == 0:
        return f"snippet not found in {', '.join(m.files)}"
    if total > 1:
        where = ", ".join(f"{p.relative_to(tree)} ({n}x)" for p, n in hits)
        return f"snippet occurs {total} times ({where}): make it unique"
    m.path = str(hits[0][0].relative_to(tree))
    return None


def copy_tree(dest: Path) -> None:
    """The checkout as it is now (tracked and untracked, not ignored files), plus a `todobot`
    package of links so that the copy, not the checkout's editable install, is imported."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, files):
        src = ROOT / rel
        if not src.is_file():
            continue  # deleted in the working tree
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / rel)
    pkg = dest / ".mutant-path" / "todobot"
    pkg.mkdir(parents=True)
    for f in (dest / "src").iterdir():
        if f.suffix == ".py":
            (pkg / f.name).symlink_to(f)
    for name, folder in PACKAGES.items():
        (pkg / name).symlink_to(dest / folder)


class Runner:
    def __init__(self, python: str, integration: bool, verbose: bool) -> None:
        self.python, self.integration, self.verbose = python, integration, verbose
        self.procs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()
        self.stopping = False

    def pytest(self, tree: Path, tests: list[str], integration: bool) -> tuple[int | None, str]:
        cmd = [self.python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-rfE",
               "--no-header"]
        env = dict(os.environ, PYTHONPATH=str(tree / ".mutant-path"), PYTHONDONTWRITEBYTECODE="1")
        if integration:
            env["TODOBOT_REQUIRE_SERVERS"] = "1"  # a missing server fails the baseline, not a mutant
        else:
            cmd += ["-m", "not integration"]
        with self.lock:
            if self.stopping:
                return None, "interrupted"
            proc = subprocess.Popen(cmd + tests, cwd=tree, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, start_new_session=True, text=True)
            self.procs.add(proc)
        try:
            out, _ = proc.communicate(timeout=TIMEOUT)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            self.kill(proc)
            out, _ = proc.communicate()
            return None, out
        finally:
            with self.lock:
                self.procs.discard(proc)

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: pytest and what it started
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for proc in self.procs:
                self.kill(proc)


def first_failure(out: str) -> str:
    for line in out.splitlines():
        # -rfE's summary: "FAILED tests/x.py::name[id] - message" (not a captured log line)
        if m := re.match(r"(?:FAILED|ERROR) (tests/\S+?\.py\S*.*?)(?: - .*)?$", line):
            return m[1]
    return ""


def check_import(runner: Runner, tree: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree / ".mutant-path"))
    got = subprocess.run([runner.python, "-c", "import todobot.bot, todobot.commands, todobot.storage;"
                          "print(todobot.bot.__path__[0], todobot.storage.__path__[0])"],
                         cwd=tree, env=env, capture_output=True, text=True)
    paths = got.stdout.split()
    if got.returncode or not paths or not all(p.startswith(str(tree)) for p in paths):
        sys.exit(f"the copy's todobot is not the one imported ({got.stdout.strip()}"
                 f"{got.stderr.strip()}): the results would say nothing")


def baseline(runner: Runner, tree: Path, mutations: list[Mutation]) -> None:
    """The named tests must pass unmutated, or a failure under a mutation says nothing."""
    for integration in (False, True):
        group = [m for m in mutations if m.integration == integration
                 and (runner.integration or not integration)]
        tests = list(dict.fromkeys(t for m in group for t in m.tests))
        if not tests:
            continue
        start = time.monotonic()
        rc, out = runner.pytest(tree, tests, integration)
        if rc != 0:
            print(out[-5000:], file=sys.stderr)
            raise SystemExit(f"the named tests fail without any mutation ({first_failure(out)}): "
                             "fix them first")
        print(f"baseline  {len(tests)} test files pass unmutated ({time.monotonic() - start:.0f} s)",
              flush=True)


def run_one(runner: Runner, tree: Path, m: Mutation) -> Result:
    if m.integration and not runner.integration:
        return Result(m, "SKIPPED", "integration (--integration runs it)")
    target = tree / m.path
    original = target.read_text(encoding="utf-8")
    target.write_text(original.replace(m.find, m.replace), encoding="utf-8")
    start = time.monotonic()
    try:
        rc, out = runner.pytest(tree, m.tests, m.integration)
    finally:
        target.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - start
    if rc is None:
        return Result(m, "TIMEOUT" if not runner.stopping else "INTERRUPTED",
                      f"no result in {TIMEOUT} s", seconds, out)
    if rc == 0:
        summary = out.strip().splitlines()[-1] if out.strip() else ""
        why = "all passed" if " passed" in summary else f"nothing passed ({summary})"
        return Result(m, "SURVIVED", why, seconds, out)
    if rc == 5:
        return Result(m, "SURVIVED", "no test ran (ids or markers wrong?)", seconds, out)
    return Result(m, "KILLED", first_failure(out) or f"pytest exit {rc}", seconds, out)


def table(results: list[Result]) -> str:
    rows = ["| mutation | file | result | caught by | time |", "|---|---|---|---|---|"]
    for r in results:
        rows.append(f"| {r.mutation.name} | {r.mutation.path or r.mutation.files[0]} | {r.status} "
                    f"| {r.detail.replace('|', '/')} | {r.seconds:.0f} s |")
    return "\n".join(rows)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-j", "--jobs", type=int, default=1, help="mutations at once (default 1)")
    ap.add_argument("--list", default=str(ROOT / "scripts" / "mutants.toml"))
    ap.add_argument("--integration", action="store_true", help="also run integration entries")
    ap.add_argument("-k", dest="only", default="", help="only mutations whose name contains this")
    ap.add_argument("--markdown", action="store_true", help="print the result table as Markdown")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the first run of the named tests without any mutation")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the output of survivors")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # a cancelled job cleans up as Ctrl-C does
    python = str(ROOT / ".venv" / "bin" / "python")
    mutations = [m for m in load(Path(args.list)) if args.only in m.name]
    runner = Runner(python, args.integration, args.verbose)
    jobs = max(1, min(args.jobs, len(mutations)))
    trees = [Path(tempfile.mkdtemp(prefix="todobot-mutant-")) for _ in range(jobs)]
    results: dict[str, Result] = {}
    try:
        for t in trees:
            copy_tree(t)
        check_import(runner, trees[0])
        todo = []
        if not args.no_baseline:
            baseline(runner, trees[0], mutations)
        for m in mutations:
            if (problem := locate(trees[0], m)) is not None:
                results[m.name] = Result(m, "MISSING", problem)
                print(f"MISSING   {m.name}: {problem}", flush=True)
            else:
                todo.append(m)
        free = list(trees)
        free_lock = threading.Lock()

        def work(m: Mutation) -> Result:
            with free_lock:
                tree = free.pop()
            try:
                return run_one(runner, tree, m)
            finally:
                with free_lock:
                    free.append(tree)

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            futures = {pool.submit(work, m): m for m in todo}
            try:
                for fut in concurrent.futures.as_completed(futures):
                    r = fut.result()
                    results[r.mutation.name] = r
                    print(f"{r.status:9} {r.mutation.name} ({r.mutation.path}, {r.seconds:.0f} s)"
                          f"{': ' + r.detail if r.detail else ''}", flush=True)
                    if r.status == "SURVIVED" and args.verbose:
                        print(r.log[-3000:], flush=True)
            except KeyboardInterrupt:
                runner.stop()
                for f in futures:
                    f.cancel()
                raise
    except KeyboardInterrupt:
        print("interrupted; the working tree was never touched", file=sys.stderr)
        return 130
    finally:
        for t in trees:
            shutil.rmtree(t, ignore_errors=True)
    ordered = [results[m.name] for m in mutations if m.name in results]
    counts = {s: sum(r.status == s for r in ordered) for s in
              ("KILLED", "SURVIVED", "MISSING", "TIMEOUT", "SKIPPED")}
    if args.markdown:
        print(table(ordered))
    print(", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n), flush=True)
    return 1 if counts["SURVIVED"] or counts["MISSING"] else 0


if __name__ == "__main__":
    sys.exit(main())
