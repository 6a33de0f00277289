"""The Markdown checklist layout at scale: import and export of a 10,000-item checklist.

    python bench/markdown_scale.py [--items 10000] [--runs 5]

The checklist is `devupdate_scale.py`'s generated development update written in the
markdown-checklist layout (the same items: Completed / Bugs / Open / Backlog with `###` areas,
owner groups, status lines, details, links, notes and sub-items). Then times, each `--runs`
times on a fresh database:
- parse: the text to a list (storage.layouts.markdown.parse);
- import: file to database, as `todobot import` does it (read_list + import_list);
- re-import: the same checklist again into the filled release (nothing changed);
- export: database to checklist text, as `todobot export --format markdown` does it;
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
from devupdate_scale import make_mail, timed  # noqa: E402

from todobot.bot.mail_import import import_list, read_list  # noqa: E402
from todobot.storage import Database, Repository  # noqa: E402
from todobot.storage.layouts import devupdate, markdown  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
RELEASE = "4.3"


def make_checklist(items: int) -> str:
    return markdown.render(devupdate.parse(make_mail(items), RELEASE), ids=False)


async def export_text(db_path: Path) -> str:
    db = await Database.open(db_path)
    try:
        async with Repository(db).session("bench:export", write=False) as s:
            lst = await s.export_list(await s.require_release(RELEASE))
    finally:
        await db.close()
    return markdown.render(lst)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    text = make_checklist(args.items)
    rows: dict[str, list[float]] = {"parse": [], "import (fresh release)": [],
                                    "re-import (nothing changed)": [], "export": []}
    with tempfile.TemporaryDirectory(prefix="todobot-bench-") as tmp:
        work = Path(tmp)
        src = work / "checklist.md"
        src.write_text(text)
        parsed = markdown.parse(text, RELEASE)
        count = sum(1 for _ in devupdate.walk(parsed.items))
        print(f"checklist: {len(text) / 1024:.0f} KiB, {text.count(chr(10))} lines, {count} items "
              f"({len(parsed.warnings)} warnings)", file=sys.stderr)
        for run in range(args.runs):
            db = work / f"run{run}.sqlite3"
            ms, _ = timed(markdown.parse, text, RELEASE)
            rows["parse"].append(ms)
            for label in ("import (fresh release)", "re-import (nothing changed)"):
                def do_import():
                    lst, source, _ = read_list(str(src), RELEASE)  # detected, as users run it
                    assert lst.layout == markdown.NAME
                    return asyncio.run(import_list(str(db), lst, RELEASE, source=source,
                                                   max_depth=8))
                ms, _ = timed(do_import)
                rows[label].append(ms)
            ms, out = timed(lambda: asyncio.run(export_text(db)))
            rows["export"].append(ms)
            print(f"run {run + 1}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in rows.items()),
                  file=sys.stderr)
        again = markdown.parse(out, RELEASE)
        assert sum(1 for _ in devupdate.walk(again.items)) == count, "export lost items"
        cli = {}
        for name, argv in (("import", ["import", str(src), "--release", "cli", "--db",
                                       str(work / "cli.sqlite3")]),
                           ("export", ["export", "--release", "cli", "--format", "markdown",
                                       "--db", str(work / "cli.sqlite3")])):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "todobot", *argv], cwd=REPO, check=True,
                           capture_output=True)
            cli[name] = (time.perf_counter() - t0) * 1000
    print(f"Machine: {machine()}; a Markdown checklist of {count} items "
          f"({len(text) / 1024:.0f} KiB, {text.count(chr(10))} lines); {args.runs} runs, "
          f"each on a fresh database (with {args.runs} runs the p99 is the slowest run).\n")
    print("| measurement | p50 | p99 | runs |")
    print("| --- | --- | --- | --- |")
    for label, values in rows.items():
        print(f"| {label} | {statistics.median(values):.0f} ms | {pct(values, 0.99):.0f} ms "
              f"| {len(values)} |")
    for name, ms in cli.items():
        print(f"| `todobot {name}` as a fresh process (startup included) | {ms:.0f} ms | | 1 |")


if __name__ == "__main__":
    main()
