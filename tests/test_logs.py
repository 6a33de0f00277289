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
