"""Where the log goes: stderr, or a file that logrotate may move."""

from __future__ import annotations

import json
import logging
import logging.handlers

import pytest

from todobot.bot.logs import setup_logging


@pytest.fixture
def restore_root_logger():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)


def test_stderr_by_default(restore_root_logger, capsys):
    setup_logging("INFO", file=None)
    [handler] = logging.getLogger().handlers
    assert type(handler) is logging.StreamHandler
    logging.getLogger("todobot.test").info("to stderr")
    assert "to stderr" in capsys.readouterr().err


def test_a_file_is_reopened_after_rotation(restore_root_logger, tmp_path):
    path = tmp_path / "todobot.log"
    setup_logging("INFO", file=str(path), fmt="json")
    [handler] = logging.getLogger().handlers
    assert isinstance(handler, logging.handlers.WatchedFileHandler)
    logging.getLogger("todobot.test").info("first")
    path.rename(tmp_path / "todobot.log.1")
    logging.getLogger("todobot.test").info("second")
    assert json.loads(path.read_text())["message"] == "second"


def test_log_files_are_private_also_after_rotation(restore_root_logger, tmp_path):
    path = tmp_path / "todobot.log"
    setup_logging("INFO", file=str(path))
    logging.getLogger("todobot.test").info("first")
    assert path.stat().st_mode & 0o777 == 0o600
    path.rename(tmp_path / "todobot.log.1")
    logging.getLogger("todobot.test").info("second")
    assert path.stat().st_mode & 0o777 == 0o600
    assert "second" in path.read_text()


def test_encryption_keys_never_reach_the_log_even_at_debug(restore_root_logger, tmp_path):
    import sqlite3

    from nio import AsyncClient, AsyncClientConfig
    from nio.crypto import ENCRYPTION_ENABLED
    if not ENCRYPTION_ENABLED:
        pytest.skip("matrix-nio without E2EE support")
    path = tmp_path / "todobot.log"
    setup_logging("DEBUG", file=str(path))
    store = tmp_path / "store"
    store.mkdir()
    client = AsyncClient("http://127.0.0.1:1", "@bot:localhost", store_path=str(store),
                         config=AsyncClientConfig(encryption_enabled=True))
    client.restore_login("@bot:localhost", "DEVICE", "token")  # creates and stores the account
    [db] = list(store.glob("*.db"))
    with sqlite3.connect(db) as conn:
        [(pickle,)] = conn.execute("select account from accounts").fetchall()
    logged = path.read_text()
    assert len(pickle) > 100
    assert str(pickle)[:64] not in logged and "accounts" not in logged
    logging.getLogger("todobot.test").debug("debug lines still go to the file")
    assert "debug lines still go" in path.read_text()


async def test_background_jobs_do_not_repeat_a_changed_database(tmp_path, caplog):
    """Storage says once that the file changed underneath; a retrying loop (sync, scheduler,
    mail, maintenance) must not add a traceback at every turn — other failures keep theirs."""
    from todobot.bot.logs import log_failure
    from todobot.storage import Database
    db = await Database.open(tmp_path / "t.sqlite3")
    (tmp_path / "t.sqlite3").rename(tmp_path / "moved.sqlite3")
    log = logging.getLogger("todobot.test")
    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            try:
                async with db.transaction():
                    pass
            except Exception:
                log_failure(log, "tick failed; retrying later")
        try:
            raise ValueError("something else")
        except ValueError:
            log_failure(log, "tick failed; retrying later")
    await db.close()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(":")[0] for r in errors] == [
        f"database file {tmp_path / 't.sqlite3'} was removed while open", "tick failed; retrying later"]
    assert [bool(r.exc_info) for r in errors] == [False, True]
