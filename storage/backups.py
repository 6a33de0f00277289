"""Copies of the database file: backups, the copy taken before a schema upgrade, restore.

Every copy goes through SQLite's backup API (consistent while a bot writes) into a temporary
file next to its destination, is checked with `PRAGMA integrity_check`, and only then renamed
into place: a destination never holds half a copy, and an existing one is replaced whole. A
destination that is the database or a file beside it (its `-wal`, `-shm`, `-journal`, `.lock`)
is refused: written over, it would swap a running bot's log or index under it.

A process that has the database open holds a shared `flock` on `<db>.lock`; `restore` takes it
exclusively, so it refuses while a bot (or an import) uses the file and no bot can start while
the file is being swapped.
"""

from __future__ import annotations

import fcntl
import os
import re
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from collections.abc import Iterator

from .migrations import STEPS

STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup or restore that cannot be done, worded for the operator."""


class DatabaseInUse(BackupError):
    pass


class OwnFile(BackupError):
    """A backup's destination (or a restore's source) that is the database or a file SQLite or
    todobot keeps beside it: a usage mistake, refused before anything is touched."""


# A copy over the -wal loses what a running bot acknowledged and shows other processes a
# damaged database; over the .lock, the bot's shared flock no longer keeps `restore` out.
_OWN_FILES = (("", "the database itself"), ("-wal", "the database's write-ahead log"),
              ("-shm", "the database's shared-memory index"),
              ("-journal", "the database's rollback journal"), (".lock", "the database's lock file"))


def _same_file(a: Path, b: Path) -> bool:
    try:
        sa, sb = a.stat(), b.stat()  # through symlinks; hard links share the inode
    except OSError:  # one does not exist (yet): the same path once symlinks are resolved?
        return os.path.realpath(a) == os.path.realpath(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def own_file(db: str | Path, path: str | Path) -> str | None:
    """What `path` is among the database `db`'s own files (the file, its `-wal`, `-shm`,
    `-journal`, the `.lock`), in words; None when it is none of them."""
    # SQLite names the side files after the database's real path: beside the symlink's target.
    bases = {str(db), os.path.realpath(db)}
    for suffix, what in _OWN_FILES:
        if any(_same_file(Path(path), Path(base + suffix)) for base in bases):
            return what
    return None


def refuse_own_dest(db: str | Path, dest: str | Path) -> None:
    if (what := own_file(db, dest)) is not None:
        raise OwnFile(f"{dest} is {what}: back it up to another file, or to a directory for a "
                      "dated copy")


def lock_path(db: str | Path) -> Path:
    return Path(f"{db}.lock")


def hold_shared(db: str | Path) -> int:
    """Take the shared lock every process using `db` holds; returns the fd to close."""
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DatabaseInUse(f"{db} is being restored right now; try again in a moment") from None
    return fd


@contextmanager
def exclusive(db: str | Path) -> Iterator[None]:
    """Sole use of `db`: refused while any todobot process has it open."""
    fd = os.open(lock_path(db), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DatabaseInUse(f"{db} is in use by a running todobot: stop it first "
                                "(systemctl stop todobot)") from None
        yield
    finally:
        os.close(fd)


def check(path: str | Path, name: str | Path | None = None) -> int:
    """The schema version of a todobot database file that passes `integrity_check` (errors
    name the file as `name`)."""
    path, name = Path(path), name or path
    try:
        conn = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BackupError(f"{name}: cannot open: {exc}") from None
    try:
        result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        schema = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name}: not an SQLite database ({exc})") from None
    finally:
        conn.close()
    if result != "ok":
        raise BackupError(f"{name}: integrity check failed: {result}")
    if schema < 1 or "items" not in tables:
        raise BackupError(f"{name}: not a todobot database")
    if schema > len(STEPS):
        raise BackupError(f"{name}: schema version {schema} is newer than this todobot ({len(STEPS)})")
    return schema


def _temp_for(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.tmp-{os.getpid()}")


def copy(src: str | Path, dest: str | Path) -> int:
    """A checked copy of the database `src` at `dest` (replaced whole if it exists); its size."""
    dest = Path(dest)
    refuse_own_dest(src, dest)
    if not dest.parent.is_dir():
        raise BackupError(f"{dest.parent}: no such directory")
    tmp = _temp_for(dest)
    source = sqlite3.connect(str(src), timeout=10)
    try:
        target = sqlite3.connect(str(tmp))
        try:
            source.backup(target)
            target.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{src}: not an SQLite database ({exc})") from None
        finally:
            target.close()
        check(tmp, src)
        os.replace(tmp, dest)
    finally:
        source.close()
        tmp.unlink(missing_ok=True)
    return dest.stat().st_size


def dated_name(db: str | Path, now: datetime | None = None) -> str:
    """`todobot-20261202T091500Z.sqlite3` for the database `todobot.sqlite3`."""
    p = Path(db)
    return f"{p.stem}-{(now or datetime.now(timezone.utc)).strftime(STAMP)}{p.suffix or '.sqlite3'}"


def dated_backups(directory: Path, db: str | Path) -> list[Path]:
    """The dated backups of `db` in `directory` (the ones `dated_name` makes), oldest first."""
    p = Path(db)
    pattern = re.compile(re.escape(p.stem) + r"-\d{8}T\d{6}Z" + re.escape(p.suffix or ".sqlite3"))
    return sorted(f for f in directory.iterdir() if pattern.fullmatch(f.name))


def prune(directory: Path, db: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` dated backups of `db`; returns what was deleted."""
    old = dated_backups(directory, db)[:-keep] if keep > 0 else []
    for f in old:
        f.unlink()
    return old


def restore(src: str | Path, db: str | Path) -> Path | None:
    """Put the backup `src` in place of `db`; returns where the replaced database was kept."""
    src, db = Path(src), Path(db)
    if (what := own_file(db, src)) is not None:
        raise OwnFile(f"{src} is {what}, not a backup: name a copy made by `todobot backup`")
    if not src.is_file():
        raise BackupError(f"{src}: no such file")
    with exclusive(db):
        tmp = _temp_for(db)
        try:
            copy(src, tmp)
            kept = None
            if db.exists():
                # Fold the write-ahead log in first: a -wal left beside the new file would be
                # replayed into it.
                conn = sqlite3.connect(str(db), timeout=10)
                try:
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()
                kept = db.with_name(f"{db.name}.replaced-{datetime.now(timezone.utc).strftime(STAMP)}.bak")
                os.replace(db, kept)
            for side in ("-wal", "-shm"):
                Path(f"{db}{side}").unlink(missing_ok=True)
            os.replace(tmp, db)
        finally:
            tmp.unlink(missing_ok=True)
    return kept
