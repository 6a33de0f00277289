"""Where the logs go: stderr (journald), or a file that logrotate may move, as text or JSON."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

from ..storage import DatabaseChanged

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that write key material at DEBUG: peewee logs every SQL statement with its
# parameters, and nio's crypto store keeps the pickled Olm account and Megolm sessions through
# peewee. They stay at WARNING whatever `log_level` says.
SECRET_LOGGERS = ("peewee", "nio.store", "nio.crypto")
LOG_FILE_MODE = 0o600


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message[, exception]."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


def private_file_handler(file: str) -> logging.Handler:
    """A WatchedFileHandler whose file, when it creates it (first open, or again after logrotate
    moved it), is readable by the bot's user only: the log names rooms, people and commands."""
    from logging.handlers import WatchedFileHandler  # here: ~0.3 MB of RSS stderr does without

    class PrivateFileHandler(WatchedFileHandler):
        def _open(self):  # type: ignore[no-untyped-def]
            fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, LOG_FILE_MODE)
            return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)

    return PrivateFileHandler(file, encoding="utf-8")


def log_failure(logger: logging.Logger, msg: str, *args: object) -> None:
    """`logger.exception(msg, ...)` for a background job that failed and will try again — but
    without the traceback when the database file changed underneath the bot: storage said so
    once, in one ERROR line, and a loop retrying every few seconds would repeat it for ever."""
    if isinstance(sys.exc_info()[1], DatabaseChanged):
        logger.debug(msg + " (the database file changed underneath)", *args)
    else:
        logger.exception(msg, *args)


def setup_logging(level: str, *, file: str | None, fmt: str = "text") -> None:
    """Log to `file` (reopened when logrotate moves it: WatchedFileHandler), else stderr."""
    handler = private_file_handler(file) if file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in SECRET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
