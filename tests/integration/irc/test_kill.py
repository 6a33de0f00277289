"""kill -9 the bot 20 times in the middle of IRC command bursts: every command it acknowledged
took effect exactly once, nothing took effect twice, and the database stays intact."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import WAIT, channel_name

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]


async def test_sigkill_during_bursts(ngircd, humans, tmp_path):
    chan = channel_name("kill")
    db_path = tmp_path / "k.sqlite3"
    subprocess.run([sys.executable, "-m", "todobot", "import", str(ROOT / "storage/seed/xen-4.2.txt"),
                    "--release", "4.2", "--db", str(db_path)], check=True, capture_output=True, cwd=ROOT)
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(yaml.safe_dump({
        "database": str(db_path), "default_release": "4.2",
        "cooldown": {"burst": 1000, "rate": 1000}, "max_adds_per_hour": None,
        "irc": [{"network": ngircd.network, "host": ngircd.host, "port": ngircd.port, "tls": False,
                 "nick": "killbot", "alternates": ["killbot2"], "channels": [chan],
                 "throttle": {"burst": 20, "rate": 50}}]}))
    ian = await humans(ngircd, "killwatch", channel=chan)
    rng = random.Random(20)
    acknowledged: set[str] = set()
    sent: set[str] = set()
    with open(tmp_path / "bot.log", "ab") as log:
        for rnd in range(20):
            proc = subprocess.Popen([sys.executable, "-m", "todobot", "run", "-c", str(cfg)], cwd=ROOT,
                                    stdout=log, stderr=log, env={**os.environ, "PYTHONPATH": str(ROOT)})
            try:
                await ian.expect(lambda ln: ln.command == "JOIN" and (ln.nick or "").startswith("killbot"),
                                 timeout=WAIT)
                nick = next(ln.nick for ln in reversed(ian.lines) if ln.command == "JOIN"
                            and (ln.nick or "").startswith("killbot"))
                titles = [f"kill {rnd}-{i}" for i in range(15)]
                sent.update(titles)
                for t in titles:
                    ian.say(chan, f"!add tools nice {t}")
                for _ in range(rng.randrange(0, 12)):
                    said = await ian.hear(nick, r"^Added \x02?#")
                    acknowledged.add(said.rsplit(": ", 1)[1])
            finally:
                proc.send_signal(signal.SIGKILL)
                await asyncio.to_thread(proc.wait, 20)
    # Replies that were on the wire when the bot died still count as acknowledged.
    acknowledged |= {said.rsplit(": ", 1)[1] for said in ian.heard(nick)
                     if said.startswith(("Added #", "Added \x02#"))}
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        titles = [r[0] for r in conn.execute("SELECT title FROM items WHERE title LIKE 'kill %'")]
        assert len(titles) == len(set(titles)), "a command took effect twice"
        assert acknowledged <= set(titles), "an acknowledged command was lost"
        assert len(acknowledged) >= 20
        assert set(titles) <= sent
    finally:
        conn.close()
