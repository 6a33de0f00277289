"""Breaking the bot on purpose: kill -9 mid-burst, two processes on one file, backup under load."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from todobot.storage import Database, Repository

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "TODOBOT_LOG": str(tmp_path / "todobot.log"), "PYTHONPATH": str(ROOT)}


async def _create(db_path: Path, items: int = 0) -> None:
    db = await Database.open(db_path)
    try:
        async with Repository(db).session("test") as s:
            rel = await s.create_release("4.2")
            for i in range(items):
                await s.add_item(rel, area="tools", severity="blocker", title=f"item {i}")
    finally:
        await db.close()


def test_sigkill_during_bursts_loses_nothing_acknowledged(tmp_path):
    db_path = tmp_path / "k.sqlite3"
    asyncio.run(_create(db_path))
    rng = random.Random(1234)
    acknowledged: set[str] = set()
    sent: set[str] = set()
    for rnd in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-m", "todobot", "console", "--db", str(db_path), "--as", "ijc", "--release", "4.2"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1, cwd=tmp_path,
            env=_env(tmp_path))
        titles = [f"fault {rnd}-{i}" for i in range(40)]
        sent.update(titles)
        proc.stdin.write("".join(f"!add tools nice {t}\n" for t in titles))
        proc.stdin.flush()
        kill_after = rng.randrange(0, 30)
        for _ in range(kill_after):
            line = proc.stdout.readline()
            assert line.startswith("<todobot> Added #"), line
            acknowledged.add(line.rsplit(": ", 1)[1].strip())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=20)
        proc.stdin.close()
        proc.stdout.close()
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        titles = [r[0] for r in conn.execute("SELECT title FROM items")]
        assert len(titles) == len(set(titles)), "an effect was duplicated"
        assert acknowledged <= set(titles), "an acknowledged command was lost"
        assert set(titles) <= sent
        created = {r[0] for r in conn.execute("SELECT after FROM history WHERE field = 'created'")}
        assert created == set(titles)  # history and items agree after every crash
    finally:
        conn.close()


def test_two_processes_on_one_database(tmp_path):
    """2 processes x 10 tasks, 1,000 claims over 50 items: one winner each, no lock errors."""
    db_path = tmp_path / "two.sqlite3"
    asyncio.run(_create(db_path, items=50))
    procs = [subprocess.Popen([sys.executable, "-m", "tests.claim_worker", str(db_path), name, "10", "1", "50"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env=_env(tmp_path)) for name in ("a", "b")]
    replies: list[str] = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        replies += json.loads(out)
    assert len(replies) == 1000
    assert not [r for r in replies if "locked" in r or "internal error" in r]
    winners = [r for r in replies if "(was unclaimed)" in r]
    assert len(winners) == 50
    assert sum("is already claimed by" in r for r in replies) == 950
    conn = sqlite3.connect(db_path)
    try:
        for item_id, owners in conn.execute("SELECT id, owners FROM items"):
            assert len(json.loads(owners)) == 1, (item_id, owners)
        claims = conn.execute("SELECT COUNT(*) FROM history WHERE field = 'owners'").fetchone()[0]
        assert claims == 50
    finally:
        conn.close()


async def test_backup_during_writes_is_consistent(tmp_path):
    db_path = tmp_path / "live.sqlite3"
    await _create(db_path, items=200)
    db = await Database.open(db_path)
    repo = Repository(db)
    stop = asyncio.Event()

    async def writer():
        n = 0
        while not stop.is_set():
            async with repo.session("w") as s:
                rel = await s.require_release("4.2")
                await s.add_item(rel, area="a", severity="nice", title=f"w{n}")
            n += 1
            await asyncio.sleep(0)
        return n

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)  # deliberately: the backup runs while writes go on, before and after
    await db.backup(tmp_path / "copy.sqlite3")
    await asyncio.sleep(0.1)
    stop.set()
    written = await task
    await db.close()
    conn = sqlite3.connect(tmp_path / "copy.sqlite3")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        items = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        created = conn.execute("SELECT COUNT(*) FROM history WHERE field = 'created'").fetchone()[0]
        assert 200 < items < 200 + written and items == created
    finally:
        conn.close()
