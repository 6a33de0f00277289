"""`todobot import`: read a mail file (or JSON export), merge it into a release, say what
happened — or, with --dry-run, what would happen — and where it was written."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ..storage import MAX_DEPTH, Database, ReleaseList, Repository, Session
from ..storage import layouts
from ..storage.formats import from_json
from ..storage.layouts.common import MailFormatError
from ..storage.mailfile import read_mail_file
from ..storage.names import release_name_problem

MAX_WARNINGS_SHOWN = 20


class _DryRun(Exception):
    """Raised inside the import's transaction so that it rolls back."""


@dataclass
class ImportResult:
    stats: dict[str, int]
    created: bool
    changes: list[str] = field(default_factory=list)  # dry run: what would change


def read_list(path: str, release: str, *, layout: str | None = None,
              message_id: str | None = None) -> tuple[ReleaseList, str | None, str | None]:
    """The list in a file, its source (Message-ID and date, for the history) and its
    Message-ID; `-` reads stdin."""
    raw = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    mail = read_mail_file(raw, message_id)
    if path.endswith(".json") or mail.text.lstrip().startswith("{"):
        return from_json(mail.text), mail.source, mail.message_id
    lst = layouts.parse(mail.text, release, layout)
    lst.subject = mail.subject
    if not lst.items and not lst.milestones:  # headings alone: nothing to import
        raise MailFormatError("no TODO list found: no items and no timeline",
                              warnings=lst.warnings[:5])
    return lst, mail.source, mail.message_id


async def import_list(db_path: str, lst: ReleaseList, release: str, *, replace: bool = False,
                      actor: str = "cli:import", source: str | None = None,
                      dry_run: bool = False, max_depth: int = MAX_DEPTH) -> ImportResult:
    db = await Database.open(db_path)
    repo = Repository(db)
    result = ImportResult({}, False)

    async def work(s: Session) -> None:
        result.created = await s.release(release) is None
        mark = await s.history_mark()
        result.stats = await s.import_list(release, lst, replace=replace, source=source,
                                           max_depth=max_depth)
        if dry_run:
            result.changes = await _describe(s, mark)
            raise _DryRun  # rolls the transaction back
    try:
        await repo.run(actor, work)  # one hand-off to the database thread for the whole list
    except _DryRun:
        pass
    finally:
        await db.close()
    return result


async def _describe(s, mark: int) -> list[str]:
    """The history rows the import wrote, as one line each: added, changed field by field,
    dropped."""
    out = []
    for c in await s.history_after(mark):
        if c.item_id is None:
            if c.field == "layout":
                out.append(f"release layout: {c.before} -> {c.after}")
            elif c.field in ("intro", "milestones"):
                out.append(f"release {'timeline' if c.field == 'milestones' else 'intro'} changed")
            continue
        title = (await s.get(c.item_id)).title[:60]
        if c.field == "created":
            out.append(f"add #{c.item_id}: {title}")
        elif c.field == "state" and c.after == "dropped":
            out.append(f"drop #{c.item_id}: {title}")
        elif c.field == "note":
            out.append(f"note #{c.item_id}: {c.after}")
        else:
            out.append(f"change #{c.item_id} {c.field}: {_show(c.before)} -> {_show(c.after)}")
    return out


def _show(value: str | None) -> str:
    if value is None or value in ("", "[]"):
        return "(none)"
    if value.startswith("["):
        try:
            return ", ".join(json.loads(value)) or "(none)"
        except (ValueError, TypeError):
            pass
    return value if len(value) <= 60 else value[:57] + "..."


def run(args, db_path: str, *, max_depth: int = MAX_DEPTH) -> int:
    """The `import` subcommand; returns the exit status."""
    problem = release_name_problem(args.release)
    if problem:
        print(f"todobot: {problem}", file=sys.stderr)
        return 1
    try:
        lst, source, mid = read_list(args.file, args.release, layout=args.layout,
                                     message_id=args.message_id)
    except MailFormatError as exc:
        print(f"todobot: {exc}", file=sys.stderr)
        if exc.unread:
            print("The first lines, none of them part of a list:", file=sys.stderr)
            for n, text in exc.unread:
                print(f"  line {n}: {text[:72]}", file=sys.stderr)
        for w in exc.warnings:
            print(f"  {w}", file=sys.stderr)
        return 1
    existed = Path(db_path).exists()
    target = db_path if existed or not args.dry_run else ":memory:"  # a dry run creates nothing
    actor = f"mail-import:{mid}" if mid else "cli:import"
    result = asyncio.run(import_list(target, lst, args.release, replace=args.replace, actor=actor,
                                     source=source, dry_run=args.dry_run, max_depth=max_depth))
    if result.created:
        print(f"{'Would create' if args.dry_run else 'Created'} release {args.release}")
    to_confirm = result.stats.pop("to confirm", 0)
    counts = ", ".join(f"{v} {k}" for k, v in result.stats.items())
    if args.dry_run:
        print(f"Dry run, nothing written to {Path(db_path).resolve()}: {counts}")
        for line in result.changes:
            print(f"  {line}")
    else:
        print(f"Imported into {args.release}: {counts}")
        print(f"Database: {Path(db_path).resolve()}")
    if to_confirm:
        # Someone had chosen the name: the items went to a placeholder, not to them.
        print(f"{to_confirm} owner{'s' * (to_confirm != 1)} need{'s' * (to_confirm == 1)} "
              "confirming: !person pending")
    if lst.warnings:
        print(f"todobot: {len(lst.warnings)} warning(s), these lines were not imported:",
              file=sys.stderr)
        for w in lst.warnings[:MAX_WARNINGS_SHOWN]:
            print(f"  {w}", file=sys.stderr)
        if len(lst.warnings) > MAX_WARNINGS_SHOWN:
            print(f"  ... and {len(lst.warnings) - MAX_WARNINGS_SHOWN} more", file=sys.stderr)
    return 0
