"""The `todobot` command line: init, demo, console, run, check, release, import, export,
digest, backup, restore."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import socket
import sqlite3
import sys
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from ..commands.settings import Settings
from ..storage import Database, DatabaseProblem, Repository
from ..storage import backups
from ..storage.layouts import LAYOUTS, WRITERS, devupdate, markdown

from .app import App
from .listening import bind, listen_problems
from .config import E2E_EXTRA, Config, ConfigError, check_serving, encryption_available, load_config
from .console import ConsoleTransport
from .logs import setup_logging
from .rooms import room_settings

log = logging.getLogger("todobot")

LAYOUT_NAMES = tuple(LAYOUTS)
WRITER_NAMES = WRITERS  # the layouts a release can be exported in
DEMO_DB = "todobot-demo.sqlite3"
DEMO_RELEASE = "4.2"


def _login() -> str:
    try:
        name = getpass.getuser()
    except Exception:
        name = "me"
    return "".join(ch for ch in name if ch.isalnum() or ch in "-_") or "me"


def _version() -> str:
    from .. import __version__
    return __version__


def _version_line() -> str:
    from ..storage.migrations import LATEST
    return f"todobot {_version()} (schema {LATEST})"


def _setup_logging(config: Config, level: str, on_console: bool) -> None:
    # On the console, logs would interleave with the chat: send them to a file there.
    file = config.log_file or (os.environ.get("TODOBOT_LOG", "todobot.log") if on_console else None)
    setup_logging(level, file=file, fmt=config.log_format)


def seed_text() -> str:
    from importlib import resources  # here: with tempfile and shutil, ~1 MB of RSS for `run`
    return (resources.files("todobot.storage") / "seed" / "xen-4.2.txt").read_text(encoding="utf-8")


async def _open(db_path: str, *, must_exist: bool = False,
                full_check: bool = False) -> tuple[Database, Repository]:
    if must_exist and not Path(db_path).exists():
        raise FileNotFoundError(f"No database at {db_path}")
    db = await Database.open(db_path, full_check=full_check)
    return db, Repository(db)


def console_settings(config: Config, release: str | None = None) -> Settings:
    # The terminal is the operator's own: no per-person limit on adding items.
    return replace(room_settings(config, release=release or config.console.release,
                                 digest=config.console.digest), max_adds_per_hour=None,
                   cooldown=False)


async def _console(config: Config, db_path: str, user: str, release: str | None,
                   banner: list[str] | None = None) -> None:
    # The console only: a bot serving this config may be running; this is no second one.
    app = App(config, database=db_path, serve=False)
    console = ConsoleTransport(user=user, room=config.console.room,
                               settings=console_settings(config, release), on_eof=app.request_stop)
    app.transports.append(console)
    if banner:
        for line in banner:
            print(line)
    await app.run()


def cmd_demo(args: argparse.Namespace) -> int:
    from ..storage.layouts import xen42
    from .mail_import import import_list
    user = args.user or _login()
    db_path = args.db or DEMO_DB
    if not Path(db_path).exists():
        asyncio.run(import_list(db_path, xen42.parse(seed_text(), DEMO_RELEASE), DEMO_RELEASE,
                                actor="demo:seed"))
    config = Config(database=db_path, admins=[f"console:{user}"], default_release=DEMO_RELEASE)
    banner = [f"todobot demo: the Xen {DEMO_RELEASE} TODO list in {db_path}; you are {user}, a "
              "release manager.",
              "Try !help, !blockers, !todo, !show 2 — type <nick> text to speak as someone else; "
              "Ctrl-D quits."]
    asyncio.run(_console(config, db_path, user, DEMO_RELEASE, banner))
    return 0


def cmd_console(args: argparse.Namespace, config: Config) -> int:
    asyncio.run(_console(config, args.db or config.database, args.user or _login(), args.release))
    return 0


def check_run(args: argparse.Namespace, config: Config) -> list[socket.socket]:
    """Config mistakes `run` reports before it logs a line or opens the database; returns
    the status page's sockets, bound (a port in use is one of those mistakes)."""
    if not (config.irc or config.matrix or config.mail or config.web or args.console):
        raise ConfigError(f"{config.source}: nothing to serve: configure irc:, matrix:, mail: or "
                          "web: (or use `todobot console` for the terminal)")
    check_serving(config)
    return bind(config)


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    """Validate the config (and with --db the database, opened read-only) without starting
    anything: exit 0, or 2 with one line per problem."""
    problems: list[str] = []
    try:
        check_serving(config)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines())
    problems += listen_problems(config)
    report = [f"{config.source}: ok"] if not problems else []
    if args.db is not None:
        lines, bad = database_report(args.db)
        report += lines
        problems += bad
    for line in report:
        print(line)
    for line in problems:
        print(f"todobot: {line}", file=sys.stderr)
    return 2 if problems else 0


def database_report(db_path: str) -> tuple[list[str], list[str]]:
    """(what is fine, what is wrong) about the database, read without writing a byte."""
    from ..storage.migrations import LATEST
    if not Path(db_path).is_file():
        return [], [f"{db_path}: no such database file: check --db (it is created on first run)"]
    try:
        conn = sqlite3.connect(f"{Path(db_path).resolve().as_uri()}?mode=ro", uri=True)
        try:
            schema = conn.execute("PRAGMA user_version").fetchone()[0]
            check = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [], [f"{db_path}: cannot be read as a todobot database ({exc}): restore a copy "
                    "made with `todobot backup`"]
    if check != ["ok"]:
        return [], [f"{db_path}: damaged ({check[0]}): restore a copy made with `todobot backup`"]
    if schema > LATEST:
        return [], [f"{db_path}: schema {schema} is newer than this todobot's ({LATEST}): "
                    "upgrade todobot"]
    due = (f"an upgrade to {LATEST} is due at the next start (a copy is saved first as "
           f"{db_path}.pre-v{LATEST}.bak)" if 0 < schema < LATEST else "up to date")
    return [f"{db_path}: schema {schema}, {due}; integrity ok"], []


def cmd_run(args: argparse.Namespace, config: Config,
            listening: list[socket.socket] | None = None) -> int:
    """Serve what the config has (IRC, Matrix, the status page, digests) until SIGTERM;
    headless unless --console. `listening`: the status page's sockets, bound by `check_run`."""
    async def main() -> None:
        app = App(config, database=args.db, config_path=args.config, full_check=args.check,
                  listening=listening)
        if args.console:
            app.transports.append(ConsoleTransport(user=_login(), room=config.console.room,
                                                   settings=console_settings(config),
                                                   on_eof=app.request_stop,
                                                   settings_for=console_settings))
        served = [s for s, on in (("IRC", config.irc), ("Matrix", config.matrix), ("mail", config.mail),
                                  ("web", config.web), ("console", args.console)) if on]
        log.info("todobot %s serving %s from %s", _version(), ", ".join(served), app.database_path)
        if config.matrix is not None and config.matrix.e2ee and not encryption_available():
            log.warning("matrix: end-to-end encryption is off: the encryption extra is not "
                        "installed (%s)", E2E_EXTRA)
        await app.run()
    asyncio.run(main())
    return 0


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from . import mail_import
    return mail_import.run(args, args.db or config.database, max_depth=config.max_depth)


def cmd_release(args: argparse.Namespace, config: Config) -> int:
    """`release new NAME`: an empty release, as `!release new NAME` starts one in chat."""
    from ..storage.names import release_name_problem

    problem = release_name_problem(args.name)
    if problem:
        raise ValueError(problem)
    db_path = args.db or config.database

    async def create() -> str:
        db, repo = await _open(db_path, full_check=args.check)
        try:
            async with repo.session(f"cli:{_login()}") as s:
                taken = await s.release_like(args.name)
                if taken is not None:
                    raise ValueError(f"release {taken.name} exists already in {db_path}")
                await s.create_release(args.name)
        finally:
            await db.close()
        return str(Path(db_path).resolve())
    where = asyncio.run(create())
    print(f"Started release {args.name} in {where}; in chat: !add AREA blocker|nice TITLE, "
          "!milestone DATE NAME")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from . import init_config
    return init_config.run(args, login=_login())


def cmd_export(args: argparse.Namespace, config: Config) -> int:
    from ..storage.formats import to_json
    from ..storage.layouts import render

    async def export() -> str:
        db, repo = await _open(args.db or config.database, must_exist=True, full_check=args.check)
        try:
            async with repo.session("cli:export", write=False) as s:
                lst = await s.export_list(await s.require_release(args.release))
        finally:
            await db.close()
        if args.format == "json":
            return to_json(lst)
        # --format markdown is the Markdown checklist layout (--layout markdown-checklist)
        layout = markdown.NAME if args.format == "markdown" else args.layout
        return render(lst, ids=not args.no_ids, layout=layout)

    sys.stdout.write(asyncio.run(export()))
    return 0


def cmd_digest(args: argparse.Namespace, config: Config) -> int:

    from ..commands.render_digest import render_html, render_markdown, render_text
    from ..storage.digest_data import collect
    from ..storage import digests

    settings = room_settings(config)
    tz, status_url = settings.tz, settings.status_url

    async def build() -> str:
        db, repo = await _open(args.db or config.database, must_exist=True, full_check=args.check)
        try:
            async with repo.session("cli:digest", write=False) as s:
                rel = await s.require_release(args.release)
                if args.since:
                    since = _since(args.since, tz)
                else:  # since the last digest posted anywhere for this release, else a week
                    since = await digests.last_sent_at(s, rel.name) or s.now - 7 * 86400
                data = await collect(s, rel, since=since, tz=tz,
                                     stale_days=settings.stale_days)
        finally:
            await db.close()
        if args.format == "markdown":
            return render_markdown(data, status_url=status_url)
        if args.format == "html":
            return render_html(data, status_url=status_url)
        return render_text(data, status_url=status_url)

    sys.stdout.write(asyncio.run(build()))
    return 0


def _since(text: str, tz: Any) -> float:
    """`--since YYYY-MM-DD` as the start of that day in `tz`."""
    from datetime import datetime
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=tz).timestamp()
    except ValueError:
        raise ValueError(f"--since {text}: give a day as YYYY-MM-DD, e.g. --since "
                         f"{datetime.now():%Y-%m-%d}") from None


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def cmd_backup(args: argparse.Namespace, config: Config) -> int:
    db_path = args.db or config.database
    if not Path(db_path).exists():
        raise FileNotFoundError(f"No database at {db_path}")
    dest = Path(args.dest)
    if args.keep is not None and args.keep < 1:
        raise ValueError(f"--keep {args.keep}: keep at least 1 backup (--keep 14 keeps the "
                         "newest 14)")
    if (args.dest.endswith("/") or args.keep is not None) and not dest.is_dir():
        what = "a file, not a directory" if dest.exists() else "no such directory"
        raise ValueError(f"{dest}: {what}: --keep prunes the dated backups in a directory; "
                         f"create it first (mkdir -p {dest})")
    if dest.is_dir():
        dest = dest / backups.dated_name(db_path)
    # A usage mistake touches nothing: refused before the check opens (and checkpoints) it.
    backups.refuse_own_dest(db_path, dest)
    _checked(db_path, args.check)  # a damaged database is refused, not copied
    size = backups.copy(db_path, dest)
    print(f"Backed up to {dest} ({_size(size)}, integrity check ok)")
    if args.keep is not None:
        for old in backups.prune(dest.parent, db_path, args.keep):
            print(f"Removed the older backup {old}")
    return 0


def cmd_restore(args: argparse.Namespace, config: Config) -> int:
    db_path = args.db or config.database
    kept = backups.restore(args.src, db_path)
    print(f"Restored {db_path} from {args.src}" +
          (f"; the replaced database is kept at {kept}" if kept else ""))
    return 0


def _checked(db_path: str, full: bool) -> None:
    async def check() -> None:
        db, _ = await _open(db_path, must_exist=True, full_check=full)
        await db.close()
    asyncio.run(check())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="todobot", description="A release manager's TODO list in chat.")
    p.add_argument("--version", action="version", version=_version_line(),
                   help="print the version and the database schema it writes, and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-c", "--config", help="YAML config file (see bot.example.yaml); relative "
                        "paths in it are relative to its directory")
        sp.add_argument("--db", help="SQLite database file (overrides `database:`)")
        sp.add_argument("--check", action="store_true",
                        help="check the whole database file (integrity_check) before using it; "
                        "a quick check always runs")

    def user(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--as", dest="user", help="your nick (default: your login name)")

    def release(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--release", required=True, help="the release's name, e.g. 4.2")

    d = sub.add_parser("demo", help="the console on a demo database preloaded with the Xen 4.2 list")
    d.add_argument("--db", help=f"database file (default {DEMO_DB})")
    user(d)

    c = sub.add_parser("console", help="the terminal as a chat room, on the config's database "
                       "(connects no IRC or Matrix)")
    common(c)
    user(c)
    c.add_argument("--release", help="the release this console tracks (default: the config's)")

    r = sub.add_parser("run", help="serve what the config has (IRC, Matrix, status page, digests) "
                       "until stopped; SIGHUP reloads the config")
    common(r)
    r.add_argument("--console", action="store_true", help="also serve the terminal console")

    n = sub.add_parser("init", help="write a first bot.yaml from a few questions (or flags)")
    n.add_argument("-o", "--output", default="bot.yaml", help="the file to write (default bot.yaml)")
    n.add_argument("--force", action="store_true", help="replace the file if it exists")
    n.add_argument("--yes", action="store_true",
                   help="ask nothing: the flags given, defaults for the rest")
    n.add_argument("--project", help="the project's name (Acme): mail subjects, page titles")
    n.add_argument("--irc", metavar="HOST[:PORT]/#CHANNEL", help="an IRC server and channel")
    n.add_argument("--irc-network", metavar="NAME",
                   help="the NETWORK of irc:NETWORK/ACCOUNT (default: from the server's name)")
    n.add_argument("--matrix", metavar="URL", help="a Matrix homeserver")
    n.add_argument("--matrix-room", metavar="ROOM", help="the Matrix room (#alias:server)")
    n.add_argument("--matrix-user", metavar="MXID", help="the bot's Matrix account")
    n.add_argument("--admin", action="append", metavar="IDENTITY",
                   help="a release manager (irc:NETWORK/ACCOUNT, matrix:@u:server, "
                   "mail:ADDRESS, console:NICK); repeat for more")
    n.add_argument("--list", metavar="ADDRESS", help="the mailing list of the weekly mail")

    rl = sub.add_parser("release", help="`release new NAME`: start an empty release")
    common(rl)
    rl.add_argument("verb", choices=("new",), help="new: start a release")
    rl.add_argument("name", metavar="NAME", help="the release's name, e.g. 2.0")

    k = sub.add_parser("check", help="check the config (and with --db the database, read-only) "
                       "without starting anything; exit 2 with one line per problem")
    k.add_argument("-c", "--config", required=True, help="YAML config file to check")
    k.add_argument("--db", help="also check this database: schema, upgrade due, integrity")

    i = sub.add_parser("import", help="import a release mail (or JSON export) into a release")
    common(i)
    i.add_argument("file", help="the mail as plain text, .eml or mbox, a .json export, or - for stdin")
    release(i)
    i.add_argument("--replace", action="store_true",
                   help="drop the release's items the file does not name")
    i.add_argument("--layout", choices=LAYOUT_NAMES, help="the mail's layout (default: detected)")
    i.add_argument("--message-id", help="in an mbox, the message to import (default: the newest "
                   "whose subject looks like a TODO or status mail)")
    i.add_argument("--dry-run", action="store_true",
                   help="print what the import would add, change and drop; write nothing")

    e = sub.add_parser("export", help="print a release as a mail, JSON or Markdown")
    common(e)
    release(e)
    e.add_argument("--format", choices=("mail", "json", "markdown"), default="mail",
                   help="output format (default: mail; markdown: the same as --layout "
                   f"{markdown.NAME})")
    e.add_argument("--no-ids", action="store_true", help="mail without #ids, for posting")
    e.add_argument("--layout", choices=WRITER_NAMES,
                   help="mail layout (default: the one the release was imported from)")

    g = sub.add_parser("digest", help="print a release's digest, for pasting into a mailing list")
    common(g)
    release(g)
    g.add_argument("--format", choices=("mail", "markdown", "html"), default="mail",
                   help="output format (default: mail)")
    g.add_argument("--since", metavar="YYYY-MM-DD",
                   help="changes since this day (default: the last digest posted, else a week)")

    b = sub.add_parser("backup", help="an online, checked copy of the database (safe while the bot runs)")
    common(b)
    b.add_argument("dest", help="the copy's file (replaced whole if it exists), or a directory "
                   "for a dated copy inside")
    b.add_argument("--keep", type=int, metavar="N",
                   help="with a directory: keep only the newest N dated copies of this database")

    s = sub.add_parser("restore", help="replace the database by a backup (the bot must be stopped; "
                       "the replaced file is kept)")
    common(s)
    s.add_argument("src", help="the backup file to restore")
    return p



def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "init":  # before any config: it writes the first one
        return cmd_init(args)
    try:
        config = load_config(getattr(args, "config", None))
        devupdate.add_sections(config.mail_sections)
        on_console = args.command in ("demo", "console") or (args.command == "run" and args.console)
        # One-shot commands (import, export, backup) speak through their output, not INFO logs.
        listening = check_run(args, config) if args.command == "run" else []
        level = config.log_level if args.command in ("demo", "console", "run") else "WARNING"
        _setup_logging(config, level, on_console)
        handler = {"console": cmd_console, "run": partial(cmd_run, listening=listening), "import": cmd_import,
                   "export": cmd_export, "backup": cmd_backup, "restore": cmd_restore,
                   "digest": cmd_digest, "release": cmd_release, "check": cmd_check}
        if args.command == "demo":
            return cmd_demo(args)
        return handler[args.command](args, config)
    except ConfigError as exc:  # one line per problem, each naming the file
        for line in str(exc).splitlines():
            print(f"todobot: {line}", file=sys.stderr)
        return 2
    except backups.OwnFile as exc:  # a usage mistake, as argparse's own are: exit 2
        print(f"todobot: {exc}", file=sys.stderr)
        return 2
    except backups.BackupError as exc:
        print(f"todobot: {exc}", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        if exc.filename is not None:  # the OS's own "[Errno 2] ..." says nothing of what to do
            print(f"todobot: {exc.filename}: no such file: check the path", file=sys.stderr)
        else:
            print(f"todobot: {exc.args[0] if len(exc.args) == 1 else exc}", file=sys.stderr)
        return 1
    except DatabaseProblem as exc:
        print(f"todobot: {exc}", file=sys.stderr)
        return 1
    except sqlite3.Error as exc:
        print(f"todobot: database error: {exc}", file=sys.stderr)
        return 1
    except (OSError, ValueError, LookupError) as exc:
        print(f"todobot: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
