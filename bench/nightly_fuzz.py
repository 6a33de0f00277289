"""The nightly property run of the mail code, one property at a time, with a progress log.

Runs each property below in its own pytest process with `HYPOTHESIS_PROFILE=nightly`
(100,000 examples), one after the other, and appends to `--log` every `--every` examples
(and at the end) how many examples the property has run so far, so that a run stopped by a
deadline still says how far it got. Prints a Markdown table (property, examples, seconds,
examples/s per wall and per CPU second, outcome) on stdout. Meant to run under `nice -n 19`.
`--max-seconds` stops each property after that long: a sample of its rate, not a nightly run.

    nice -n 19 python bench/nightly_fuzz.py --log /tmp/nightly-fuzz.log
    nice -n 19 python bench/nightly_fuzz.py --max-seconds 120 -k roundtrip,byte_identical
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROPERTIES = [
    # both mail layouts' round trips
    "tests/test_mail_roundtrip.py::test_roundtrip",
    "tests/test_mail_roundtrip.py::test_any_text_parses_and_rerenders",
    "tests/test_layouts.py::test_dev_update_parse_render_roundtrip",
    "tests/test_layouts.py::test_dev_update_export_import_export_is_byte_identical",
    "tests/test_layouts.py::test_xen42_export_import_export_is_byte_identical",
    # MIME input never crashes the importer nor the inbox's reading of a reply
    "tests/test_fuzz_mail.py::test_any_mime_message_imports_or_says_why_not",
    "tests/test_fuzz_mail.py::test_any_mime_reply_reads_into_actions",
    # quoted lines never become commands
    "tests/test_fuzz_mail.py::test_quoted_lines_never_become_commands",
]

# Loaded into each pytest process (`-p nightly_fuzz`): counts the examples the property
# runs by wrapping its inner test (Hypothesis's observability hook would do too, but it prints
# every example's arguments, which costs more than most of these examples), appends the count
# to the log now and then, and once `NIGHTLY_FUZZ_MAX_SECONDS` have passed skips the rest, so a
# sample run ends cleanly with its count.
_COUNT = {"n": 0, "started": time.monotonic(), "cpu": time.process_time()}


def pytest_collection_modifyitems(config, items) -> None:
    log = os.environ.get("NIGHTLY_FUZZ_LOG")
    if not log:
        return
    import pytest

    every = int(os.environ.get("NIGHTLY_FUZZ_EVERY", "5000"))
    max_seconds = float(os.environ.get("NIGHTLY_FUZZ_MAX_SECONDS") or "inf")
    name = os.environ.get("NIGHTLY_FUZZ_PROPERTY", "?")
    started = _COUNT["started"] = time.monotonic()
    _COUNT["cpu"] = time.process_time()

    def counting(inner):
        def run(*args, **kwargs):
            elapsed = time.monotonic() - started
            if elapsed > max_seconds:
                pytest.skip(f"{_COUNT['n']} examples in {elapsed:.0f} s: time is up")
            _COUNT["n"] += 1
            if _COUNT["n"] % every == 0:
                with open(log, "a") as f:
                    f.write(f"{time.strftime('%H:%M:%S')} {name}: {_COUNT['n']} examples "
                            f"in {elapsed:.0f} s\n")
            return inner(*args, **kwargs)
        return run

    for item in items:
        handle = getattr(getattr(item, "obj", None), "hypothesis", None)
        if handle is not None:
            handle.inner_test = counting(handle.inner_test)


def pytest_unconfigure(config) -> None:
    if os.environ.get("NIGHTLY_FUZZ_COUNT"):
        Path(os.environ["NIGHTLY_FUZZ_COUNT"]).write_text(
            f"{_COUNT['n']} {time.monotonic() - _COUNT['started']} "
            f"{time.process_time() - _COUNT['cpu']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", default="/tmp/nightly-fuzz.log")
    ap.add_argument("--every", type=int, default=5000)
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="stop each property after this long (a sample of its rate)")
    ap.add_argument("--checkout", type=Path, default=ROOT,
                    help="run the tests of this checkout (e.g. an older one, to compare); "
                    "run this script with that checkout's Python")
    ap.add_argument("-k", default="", help="only the properties whose name contains one of "
                    "these comma-separated words")
    args = ap.parse_args()
    rows = []
    words = args.k.split(",")
    for prop in [p for p in PROPERTIES if any(w in p for w in words)]:
        count = Path(tempfile.mkstemp(prefix="nightly-fuzz-count-")[1])
        env = dict(os.environ, HYPOTHESIS_PROFILE="nightly", NIGHTLY_FUZZ_LOG=args.log,
                   NIGHTLY_FUZZ_EVERY=str(args.every), NIGHTLY_FUZZ_PROPERTY=prop,
                   NIGHTLY_FUZZ_COUNT=str(count),
                   NIGHTLY_FUZZ_MAX_SECONDS=str(args.max_seconds or ""),
                   # this file as a top-level module: another checkout's bench/ may lack it
                   PYTHONPATH=os.pathsep.join([str(ROOT / "bench"), str(args.checkout)]))
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
             "nightly_fuzz", "--hypothesis-show-statistics", prop],
            cwd=args.checkout, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        # examples run, wall and CPU seconds from collection on (leaving pytest's start out):
        # per CPU second (all threads of the process) is the rate on one quiet core, which a
        # shared machine's wall clock does not show
        ran, running, cpu = (count.read_text() or "0 1 1").split()
        ran = int(ran)
        count.unlink()
        outcome = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        if done.returncode == 0 and " skipped" in done.stdout.splitlines()[-1]:
            outcome = "stopped (time is up)"
        examples = _examples(done.stdout) if outcome == "passed" else f"{ran} examples run"
        rate = f"{ran / float(running):.1f} ({ran / float(cpu):.1f} per CPU s)"
        with open(args.log, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {prop}: {outcome}, {examples} in "
                    f"{seconds:.0f} s\n{done.stdout[-3000:]}\n")
        print(f"{prop}: {outcome} {examples} {seconds:.0f} s {rate}/s", file=sys.stderr)
        rows.append((prop, examples, seconds, rate, outcome))
    print("| property | examples | seconds | examples/s | outcome |\n"
          "| --- | ---: | ---: | ---: | --- |")
    for prop, examples, seconds, rate, outcome in rows:
        print(f"| `{prop.split('::')[1]}` | {examples} | {seconds:.0f} | {rate} | {outcome} |")


def _examples(stdout: str) -> str:
    """'100000 passing, 0 failing, 2378 invalid' summed over the phases of the statistics
    Hypothesis prints ('- 99999 passing, 0 failing, and 2378 invalid test cases' for the
    generate phase, another such line for the reuse phase that replays stored examples)."""
    counts = re.findall(r"(\d+) passing, (\d+) failing, and (\d+) invalid", stdout)
    if not counts:
        return "?"
    return "{} passing, {} failing, {} invalid".format(
        *(sum(int(n) for n in column) for column in zip(*counts)))


if __name__ == "__main__":
    main()
