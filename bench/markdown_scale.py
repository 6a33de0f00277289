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
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devupdate_scale import RELEASE, make_mail, scale  # noqa: E402

from todobot.storage.layouts import devupdate, markdown  # noqa: E402


def make_checklist(items: int) -> str:
    return markdown.render(devupdate.parse(make_mail(items), RELEASE), ids=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    scale(make_checklist(args.items), markdown, filename="checklist.md",
          what="Markdown checklist", runs=args.runs, import_args=[],
          export_args=["--format", "markdown"])


if __name__ == "__main__":
    main()
