"""The development-update mail layout at scale: import and export of a 10,000-item mail.

    python bench/devupdate_scale.py [--items 10000] [--runs 5]

Generates a mail shaped like the Xen 4.3 development updates (tests/data/
xen-4.3-dev-update.txt): intro, timeline, Completed / Bugs / Open / Backlog with `===`
subsections, items with owner and status lines, details, `>` links and notes, `@` notes and
`-` sub-items. Then times, each `--runs` times on a fresh database:
- parse: the text to a list (storage.layouts.devupdate.parse);
- import: file to database, as `todobot import` does it (read_list + import_list: parse,
  one transaction, history rows);
- re-import: the same mail again into the filled release (the weekly case: nothing changed);
- export: database to mail text, as `todobot export` does it (export_list + render);
- and once each, the whole `todobot import` / `todobot export` command as a fresh process.
Prints Markdown; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import machine, pct  # noqa: E402

from todobot.bot.mail_import import import_list, read_list  # noqa: E402
from todobot.storage import Database, Repository  # noqa: E402
from todobot.storage.layouts import devupdate  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RELEASE = "4.3"
SECTIONS = [("Completed", 0.2), ("Bugs", 0.1), ("Open", 0.55), ("Backlog", 0.15)]
AREAS = ["Xen ARM", "Testing coverage", "Tools", "Hypervisor", "QEMU", "libxl", "Docs", "x86"]
PEOPLE = ["Ian Campbell", "George Dunlap", "Jan Beulich", "Stefano Stabellini",
          "Anthony Perard", "Konrad Wilk", "Dan Magenheimer", "Roger Pau Monne", "Wei Liu"]
STATUS = ["patches posted", "v9 posted", "in progress", "Fixed in qemu-xen-unstable",
          "waiting for review", "needs a tester"]


def make_mail(items: int) -> str:
    """A development-update mail of `items` items (every fourth has a sub-item)."""
    out = ["This information will be mirrored on the Xen 4.3 Roadmap wiki page:",
           " http://wiki.xen.org/wiki/Xen_Roadmap/4.3", "",
           "The key goals we're focusing on now, in order, are as follows:",
           "1. Have a bug-free 4.3 release", "2. Have an awesome 4.3 release", "",
           "= Timeline =", "",
           "* Feature freeze: 25 March 2013", "* Code freezing point: 15 April 2013",
           "* First RC: 6 May 2013  <== WE ARE HERE", "* Release: 17 June 2013", "",
           "Last updated: 13 May 2013", ""]
    n = 0
    for section, share in SECTIONS:
        out += [f"== {section} ==", ""]
        end = min(items, n + round(items * share)) if section != "Backlog" else items
        per_area = -(-(end - n) // len(AREAS))
        for a, area in enumerate(AREAS):
            if a:
                out += [f"=== {area} ===", ""]
            area_end = min(end, n + per_area)
            while n < area_end:
                n += 1
                i = n
                tag = "[BUG] " if section == "Bugs" and i % 2 else ""
                out.append(f"* {tag}{area} work item {i}: make the thing behave")
                owners = ", ".join(PEOPLE[(i + k) % len(PEOPLE)] for k in range(1 + i % 2))
                out.append(f"  owner: {owners if i % 7 else '???'}")
                if i % 3 == 0:
                    out += ["  Older 32-bit PV kernels that run on a 64-bit hypervisor",
                            "  with xend do not start with xl."]
                if i % 2 == 0:
                    out.append(f"  > http://marc.info/?l=xen-devel&m={136001232423525 + i}")
                if i % 5 == 0:
                    out.append("  > Reported on xen-users by a Fedora user")
                if i % 9 == 0:
                    out.append(f"  @{PEOPLE[i % len(PEOPLE)].split()[0]} to ask for a test case")
                out.append(f"  status: {STATUS[i % len(STATUS)]}")
                if i % 4 == 0 and n < area_end:
                    n += 1
                    out.append(f"  - follow-up {n} of item {i} (external)")
                out.append("")
    return "\n".join(out) + "\n"


async def export_text(db_path: Path, layout) -> str:
    db = await Database.open(db_path)
    try:
        async with Repository(db).session("bench:export", write=False) as s:
            lst = await s.export_list(await s.require_release(RELEASE))
    finally:
        await db.close()
    return layout.render(lst)


def timed(fn, *args):
    t0 = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - t0) * 1000, result


def scale(text: str, layout, *, filename: str, what: str, runs: int,
          import_args: list[str], export_args: list[str]) -> None:
    """Time parse, import, re-import and export of `text` in `layout` (a layout module), each
    `runs` times on a fresh database, and the CLI once each; print the Markdown table.
    `import_args`/`export_args`: what `todobot import`/`export` need for this layout
    (none: the layout is detected, as users run it)."""
    rows: dict[str, list[float]] = {"parse": [], "import (fresh release)": [],
                                    "re-import (nothing changed)": [], "export": []}
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        src = work / filename
        src.write_text(text)
        parsed = layout.parse(text, RELEASE)
        count = sum(1 for _ in devupdate.walk(parsed.items))
        print(f"{what}: {len(text) / 1024:.0f} KiB, {text.count(chr(10))} lines, {count} items "
              f"({len(parsed.warnings)} warnings)", file=sys.stderr)
        forced = layout.NAME if "--layout" in import_args else None
        for run in range(runs):
            db = work / f"run{run}.sqlite3"
            ms, _ = timed(layout.parse, text, RELEASE)
            rows["parse"].append(ms)
            for label in ("import (fresh release)", "re-import (nothing changed)"):
                def do_import():
                    lst, source, _ = read_list(str(src), RELEASE, layout=forced)
                    assert lst.layout == layout.NAME
                    return asyncio.run(import_list(str(db), lst, RELEASE, source=source,
                                                   max_depth=8))
                ms, _ = timed(do_import)
                rows[label].append(ms)
            ms, out = timed(lambda: asyncio.run(export_text(db, layout)))
            rows["export"].append(ms)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in rows.items()),
                  file=sys.stderr)
        again = layout.parse(out, RELEASE)
        assert sum(1 for _ in devupdate.walk(again.items)) == count, "export lost items"
        cli = {}
        db_args = ["--db", str(work / "cli.sqlite3")]
        for name, argv in (("import", ["import", str(src), "--release", "cli", *import_args]),
                           ("export", ["export", "--release", "cli", *export_args])):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "todobot", *argv, *db_args], cwd=REPO,
                           check=True, capture_output=True)
            cli[name] = (time.perf_counter() - t0) * 1000
    print(f"Machine: {machine()}; a {what} of {count} items "
          f"({len(text) / 1024:.0f} KiB, {text.count(chr(10))} lines); {runs} runs, "
          f"each on a fresh database (with {runs} runs the p99 is the slowest run).\n")
    print("| measurement | p50 | p99 | runs |")
    print("| --- | --- | --- | --- |")
    for label, values in rows.items():
        print(f"| {label} | {statistics.median(values):.0f} ms | {pct(values, 0.99):.0f} ms "
              f"| {len(values)} |")
    for name, ms in cli.items():
        print(f"| `todobot {name}` as a fresh process (startup included) | {ms:.0f} ms | | 1 |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    scale(make_mail(args.items), devupdate, filename="dev-update.txt",
          what="development-update mail", runs=args.runs,
          import_args=["--layout", devupdate.NAME], export_args=[])


if __name__ == "__main__":
    main()
