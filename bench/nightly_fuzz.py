"""The nightly property run of the mail code, one property at a time, with a progress log.

Runs each property below in its own pytest process with `HYPOTHESIS_PROFILE=nightly`
(100,000 examples), one after the other, and appends to `--log` every `--every` examples
(and at the end) how many examples the property has run so far, so that a run stopped by a
deadline still says how far it got. Prints a Markdown table (property, examples, seconds,
outcome) on stdout. Meant to run under `nice -n 19`.

    nice -n 19 python bench/nightly_fuzz.py --log /tmp/nightly-fuzz.log
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
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

# Loaded into each pytest process (`-p bench.nightly_fuzz`): counts the examples Hypothesis
# runs through its observability hook and appends the count to the log now and then.
_COUNT = {"n": 0}


def pytest_configure(config) -> None:
    log = os.environ.get("NIGHTLY_FUZZ_LOG")
    if not log:
        return
    from hypothesis.internal import observability

    # Turning coverage collection off (it would slow every example down several times) also
    # makes Hypothesis write every example to .hypothesis/observed/: not wanted either.
    observability.remove_observability_callback(observability._deliver_to_file)

    every = int(os.environ.get("NIGHTLY_FUZZ_EVERY", "5000"))
    name = os.environ.get("NIGHTLY_FUZZ_PROPERTY", "?")
    started = time.monotonic()

    def seen(obs) -> None:
        if getattr(obs, "type", None) != "test_case" or getattr(
                obs.metadata, "phase", None) == "shrink":
            return
        _COUNT["n"] += 1
        if _COUNT["n"] % every == 0:
            with open(log, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {name}: {_COUNT['n']} examples "
                        f"in {time.monotonic() - started:.0f} s\n")
    observability.add_observability_callback(seen)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--log", default="/tmp/nightly-fuzz.log")
    ap.add_argument("--every", type=int, default=5000)
    ap.add_argument("-k", default="", help="only the properties whose name contains one of "
                    "these comma-separated words")
    args = ap.parse_args()
    rows = []
    words = args.k.split(",")
    for prop in [p for p in PROPERTIES if any(w in p for w in words)]:
        env = dict(os.environ, HYPOTHESIS_PROFILE="nightly", NIGHTLY_FUZZ_LOG=args.log,
                   NIGHTLY_FUZZ_EVERY=str(args.every), NIGHTLY_FUZZ_PROPERTY=prop,
                   HYPOTHESIS_EXPERIMENTAL_OBSERVABILITY_NOCOVER="1", PYTHONPATH=str(ROOT))
        t0 = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
             "bench.nightly_fuzz", "--hypothesis-show-statistics", prop],
            cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.monotonic() - t0
        outcome = "passed" if done.returncode == 0 else f"FAILED (exit {done.returncode})"
        examples = _examples(done.stdout)
        with open(args.log, "a") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {prop}: {outcome}, {examples} in "
                    f"{seconds:.0f} s\n{done.stdout[-3000:]}\n")
        print(f"{prop}: {outcome} {examples} {seconds:.0f} s", file=sys.stderr)
        rows.append((prop, examples, seconds, outcome))
    print("| property | examples | seconds | outcome |\n| --- | ---: | ---: | --- |")
    for prop, examples, seconds, outcome in rows:
        print(f"| `{prop.split('::')[1]}` | {examples} | {seconds:.0f} | {outcome} |")


def _examples(stdout: str) -> str:
    """'100000 passing examples, 0 failing examples, 12 invalid examples' from the
    statistics Hypothesis prints for the generate phase."""
    lines = stdout.splitlines()
    for i, line in enumerate(lines):
        if "during generate phase" in line and i + 1 < len(lines):
            return lines[i + 1].strip().lstrip("- ").split(";")[0]
    return "?"


if __name__ == "__main__":
    main()
