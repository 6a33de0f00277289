"""kill -9 the bot between receiving mail and acknowledging it, again and again: every mail
is applied exactly once, and every mail that changed something is acknowledged at most once
(an acknowledgement is stored with the effects and sent after the restart, unless the bot
died while handing it to the server: then it is logged and never sent twice)."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from .conftest import BOT, BOT_PASSWORD, LIST, PASSWORD_ENV, WAIT, mail

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
ROUNDS = 6
PER_ROUND = 3


def _handled(db: Path) -> set[str]:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    except sqlite3.OperationalError:
        return set()
    try:
        return {r[0] for r in conn.execute(
            "SELECT event_id FROM processed_events WHERE transport = 'mail'")}
    except sqlite3.OperationalError:
        return set()
    finally:
        conn.close()


def _pending(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'mail.ack-pending/%'").fetchone()[0]
    finally:
        conn.close()


def _bot(dovecot, mailbox, smtp_sink, tmp_path: Path):
    """The database (the 4.2 list) and a `start()` for `todobot run` as a child process that
    logs to tmp_path/bot.log."""
    db = tmp_path / "k.sqlite3"
    subprocess.run([sys.executable, "-m", "todobot", "import", str(ROOT / "storage/seed/xen-4.2.txt"),
                    "--release", "4.2", "--db", str(db)], check=True, capture_output=True, cwd=ROOT)
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": str(db), "default_release": "4.2", "log_file": str(tmp_path / "bot.log"),
        # Every mail here is Ian's: no hourly cap on his acknowledgements.
        "mail": [{"list": LIST, "from": f"todobot <{BOT}>", "release": "4.2", "acks_per_hour": 1000,
                  "smtp": {"host": "127.0.0.1", "port": smtp_sink.port, "starttls": False},
                  "imap": {"host": "127.0.0.1", "port": dovecot.port, "tls": False,
                           "username": BOT, "password_env": PASSWORD_ENV,
                           "folder": mailbox.folder}}]}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), PASSWORD_ENV: BOT_PASSWORD}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "todobot", "run", "-c", str(cfg)], cwd=ROOT,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
    return db, start


def _not_sent_again(tmp_path: Path) -> str:
    """The log lines of acknowledgements given up because the bot died while sending them."""
    log = tmp_path / "bot.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return "\n".join(ln for ln in text.splitlines() if "NOT sent again" in ln)


async def test_sigkill_between_receiving_and_acknowledging(dovecot, mailbox, smtp_sink, tmp_path):
    db, start = _bot(dovecot, mailbox, smtp_sink, tmp_path)
    rng = random.Random(14)
    sent: list[str] = []

    for rnd in range(ROUNDS):
        proc = start()
        try:
            ids = [f"<kill-{rnd}-{i}@citrix.com>" for i in range(PER_ROUND)]
            for mid in ids:
                await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>",
                                           f"!note 10 {mid}\n", message_id=mid))
            sent += ids
            # Die once some of this round's mail has been committed, at a random moment.
            deadline = time.monotonic() + WAIT
            want = rng.randrange(1, PER_ROUND + 1)
            while len(set(ids) & _handled(db)) < want and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.choice([0, 0, 0.01, 0.05, 0.2]))
        finally:
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 20)

    proc = start()  # the last run: everything left over is handled and acknowledged
    try:
        deadline = time.monotonic() + WAIT
        while set(sent) - _handled(db) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        acked = lambda: {r.msg["In-Reply-To"] for r in smtp_sink.received}  # noqa: E731
        given_up = lambda: {m for m in sent if f"acknowledgement of {m} " in  # noqa: E731
                            _not_sent_again(tmp_path)}
        # An acknowledgement's row is deleted just after the mail server took it: wait for
        # that too, or SIGTERM can land between the two.
        while (set(sent) - acked() - given_up() or _pending(db)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)

    conn = sqlite3.connect(db)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        notes = [r[0] for r in conn.execute("SELECT text FROM notes WHERE item_id = 10")]
        pending = conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'mail.ack-pending/%'").fetchone()
    finally:
        conn.close()
    assert sorted(notes) == sorted(sent), "a mail was lost or applied twice"
    ack_of = [r.msg["In-Reply-To"] for r in smtp_sink.received]
    assert len(ack_of) == len(set(ack_of)), "an acknowledgement was sent twice"
    assert set(sent) <= acked() | given_up(), "a committed acknowledgement was silently lost"
    assert all(r.rcpt_tos == ["ian.jackson@eu.citrix.com"] for r in smtp_sink.received)
    assert pending == (0,)


async def test_killed_while_the_server_takes_an_acknowledgement_it_is_not_sent_twice(
        dovecot, mailbox, smtp_sink, tmp_path):
    """The list's server keeps the acknowledgement and the bot dies before hearing so: after
    the restart it is not sent again (at-most-once), and the log says so."""
    db, start = _bot(dovecot, mailbox, smtp_sink, tmp_path)
    proc = start()
    smtp_sink.on_received = lambda _: proc.send_signal(signal.SIGKILL)
    try:
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!note 10 once\n",
                                   message_id="<once@citrix.com>"))
        await smtp_sink.wait(1)
        await asyncio.to_thread(proc.wait, 20)
    finally:
        proc.send_signal(signal.SIGKILL)
    smtp_sink.on_received = None
    proc = start()
    try:
        deadline = time.monotonic() + WAIT
        while not _not_sent_again(tmp_path) and len(smtp_sink.received) < 2 \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 20)
    assert [r.msg["In-Reply-To"] for r in smtp_sink.received] == ["<once@citrix.com>"]
    assert "acknowledgement of <once@citrix.com> to ian.jackson@eu.citrix.com" in \
        _not_sent_again(tmp_path)
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT count(*) FROM kv WHERE key LIKE 'mail.ack-pending/%'"
                            ).fetchone() == (0,)
        assert [r[0] for r in conn.execute("SELECT text FROM notes WHERE item_id = 10")] == ["once"]
    finally:
        conn.close()
