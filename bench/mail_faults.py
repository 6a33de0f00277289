"""Mail under faults: the bot killed while replies arrive, Dovecot down, SMTP refusing.

    python bench/mail_faults.py kill [--rounds 20 --per-round 3]
    python bench/mail_faults.py imap-down [--seconds 30]
    python bench/mail_faults.py smtp-down [--seconds 600 --mode 4xx|down]

The real servers of the mail integration tests, on 127.0.0.1 only: Debian's Dovecot holds
the bot's mailbox (tests/servers/dovecot.py), aiosmtpd receives what the bot sends (the
`SmtpSink` of tests/integration/mail/conftest.py, in this process). The bot is
`python -m todobot run` as a child process on the Xen 4.2 list (plus 100 open items to
claim), logging to a file that is read afterwards.

- kill: each round starts the bot, APPENDs `--per-round` replies (each `!claim N` then
  `!done N` on an item of its own), waits until a random number of them is committed, waits
  a random 0–200 ms more, and SIGKILLs the bot. A last run handles what is left. Then: history
  rows per reply (every reply's two changes exactly once), acknowledgements per reply at the
  SMTP receiver (at most once; all of them in the end).
- imap-down: the bot reads its mailbox (IDLE); Dovecot (the process this script started) is
  stopped for `--seconds`; meanwhile a reply is delivered every 10 s straight into the
  Maildir, as an MTA would; then Dovecot is started again on the same port. Then: the bot's
  reconnection attempts (from its log), seconds from Dovecot's return to the bot reading again
  and to every reply applied, each exactly once.
- smtp-down: the digest is due at the next whole minute (a daily slot, `digest.every` as a
  cron line); from before it for `--seconds` the receiver answers 451 to every mail (`4xx`)
  or does not listen at all (`down`). Then: attempts refused, when the weekly mail was
  accepted, how many weekly mails arrived for the slot (one), and the slot's record.
Prints Markdown on stdout, progress on stderr; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402
from aiosmtpd.controller import Controller  # noqa: E402
from common import machine  # noqa: E402

from tests.integration.mail.conftest import (BOT, BOT_PASSWORD, LIST, PASSWORD_ENV,  # noqa: E402
                                             Mailbox, SmtpSink, mail)
from tests.servers.dovecot import Dovecot, start_dovecot  # noqa: E402
from tests.servers.ircd import free_port  # noqa: E402
from todobot.storage import Database, Repository  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "storage" / "seed" / "xen-4.2.txt"
SENDER = "Ian Jackson <Ian.Jackson@eu.citrix.com>"
AUTHSERV = "mx.example.org"  # the replies carry its DKIM pass: `!done` needs an authenticated owner
AUTH_RESULTS = f"{AUTHSERV}; dkim=pass header.d=eu.citrix.com"
EXTRA_ITEMS = 100
WAIT = 60.0


def note(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


# -- the receiving SMTP server ------------------------------------------------------------------


class Receiver(SmtpSink):
    """The sink, refusing every mail with 451 while `refusing` is set, counting the refusals."""

    refusing: bool = False

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusing:
            self.refused += 1
            return "451 4.3.0 try again later"
        return await super().handle_DATA(server, session, envelope)


class Smtp:
    def __init__(self) -> None:
        self.sink = Receiver(port=free_port())
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.sink, hostname="127.0.0.1", port=self.sink.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


# -- the bot as a child process -------------------------------------------------------------------


class Bot:
    def __init__(self, work: Path, dovecot: Dovecot, smtp: Smtp, folder: str,
                 digest: dict | None = None) -> None:
        self.work = work
        self.db = work / "todo.sqlite3"
        self.log = work / "bot.log"
        self.cfg = work / "bot.yaml"
        conf: dict[str, Any] = {
            "database": str(self.db), "default_release": "4.2", "log_file": str(self.log),
            "mail": [{"list": LIST, "from": f"todobot <{BOT}>", "release": "4.2",
                      "authserv_id": AUTHSERV,
                      "acks_per_hour": 1000,  # every reply is one owner's: count them all
                      "smtp": {"host": "127.0.0.1", "port": smtp.sink.port, "starttls": False},
                      "imap": {"host": "127.0.0.1", "port": dovecot.port, "tls": False,
                               "username": BOT, "password_env": PASSWORD_ENV,
                               "folder": folder}}]}
        if digest is not None:
            conf["digest"] = digest
        self.cfg.write_text(yaml.safe_dump(conf))
        self.proc: subprocess.Popen | None = None

    async def prepare(self) -> list[int]:
        await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "todobot", "import", str(SEED), "--release",
                             "4.2", "--db", str(self.db)], check=True, capture_output=True, cwd=ROOT)
        return await _add_items(self.db)

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), PASSWORD_ENV: BOT_PASSWORD,
               "TODOBOT_LOG": str(self.log)}
        self.proc = subprocess.Popen([sys.executable, "-m", "todobot", "run", "-c", str(self.cfg)],
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env, start_new_session=True)

    async def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)  # the group this script created, nothing else
            await asyncio.to_thread(self.proc.wait, 30)
        self.proc = None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def query(self, sql: str, *args: Any) -> list[tuple]:
        try:
            conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        except sqlite3.OperationalError:
            return []
        try:
            return conn.execute(sql, args).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            conn.close()

    def handled(self) -> set[str]:
        return {r[0] for r in self.query(
            "SELECT event_id FROM processed_events WHERE transport = 'mail'")}

    def history_per_reply(self, mids: list[str]) -> collections.Counter:
        """Item history rows written on behalf of each reply (actor `mail:ADDR via <MID>`)."""
        rows = self.query("SELECT actor FROM history WHERE actor LIKE 'mail:% via <%>' "
                          "AND item_id IS NOT NULL")
        per = collections.Counter(a.rsplit(" via ", 1)[1] for (a,) in rows)
        return collections.Counter({m: per.get(m, 0) for m in mids})

    async def wait_log(self, pattern: str, after: int = 0, timeout: float = WAIT) -> float:
        """Seconds until a log line matching `pattern` appears past offset `after`."""
        t0 = time.monotonic()
        rx = re.compile(pattern)
        while not rx.search(self.log_text()[after:]):
            if time.monotonic() - t0 > timeout:
                raise SystemExit(f"no log line /{pattern}/ within {timeout:.0f} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - t0


async def _add_items(db_path: Path) -> list[int]:
    db = await Database.open(db_path)
    try:
        repo = Repository(db)
        async with repo.session("bench") as s:
            rel = await s.require_release("4.2")
            return [(await s.add_item(rel, area="tools", severity="nice",
                                      title=f"fault run item {n}")).id
                    for n in range(EXTRA_ITEMS)]
    finally:
        await db.close()


def reply(item: int, mid: str) -> bytes:
    return mail(SENDER, f"!claim {item}\n!done {item}\n\nIan.\n", message_id=mid,
                Authentication_Results=AUTH_RESULTS)


def deliver_to_maildir(dovecot: Dovecot, folder: str, raw: bytes, n: int) -> None:
    """What an MTA does while the IMAP server is down: a file in the folder's Maildir `new/`."""
    base = dovecot.workdir / "mail" / BOT / "Maildir" / f".{folder}"
    name = f"{int(time.time())}.M{n}P{os.getpid()}.bench"
    tmp, new = base / "tmp" / name, base / "new" / name
    tmp.write_bytes(raw.replace(b"\r\n", b"\n"))
    shutil.chown(tmp, "dovenull", "dovenull")
    os.rename(tmp, new)


# -- the runs -----------------------------------------------------------------------------------


async def run_kill(dovecot: Dovecot, smtp: Smtp, work: Path, rounds: int, per_round: int) -> None:
    box = Mailbox(dovecot, "kill")
    await box.create()
    bot = Bot(work, dovecot, smtp, box.folder)
    items = await bot.prepare()
    rng = random.Random(16)
    sent: list[str] = []
    t_start = time.monotonic()
    killed_with = collections.Counter()
    for rnd in range(rounds):
        bot.start()
        try:
            mids = [f"<kill-{rnd}-{i}@citrix.com>" for i in range(per_round)]
            for i, mid in enumerate(mids):
                await box.deliver(reply(items[len(sent) + i], mid))
            sent += mids
            want = rng.randrange(1, per_round + 1)
            deadline = time.monotonic() + WAIT
            while len(set(mids) & bot.handled()) < want and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(rng.choice([0, 0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2]))
        finally:
            killed_with[len(set(mids) & bot.handled())] += 1
            await bot.signal(signal.SIGKILL)
        note(f"round {rnd + 1}/{rounds}: killed; {len(bot.handled() & set(sent))}/{len(sent)} "
             f"handled, {len(smtp.sink.received)} acknowledgements received")
    bot.start()  # the last run: what is left is handled and acknowledged
    try:
        deadline = time.monotonic() + WAIT
        acked = lambda: {r.msg["In-Reply-To"] for r in smtp.sink.received}  # noqa: E731
        while (set(sent) - bot.handled() or set(sent) - acked()) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(2)  # anything sent twice would arrive by now
    finally:
        await bot.signal(signal.SIGTERM)
    seconds = time.monotonic() - t_start
    per_reply = bot.history_per_reply(sent)
    acks = collections.Counter(r.msg["In-Reply-To"] for r in smtp.sink.received)
    pending = bot.query("SELECT count(*) FROM kv WHERE key LIKE 'mail.ack-pending/%'")
    integrity = bot.query("PRAGMA integrity_check")
    done = bot.query(f"SELECT count(*) FROM items WHERE id IN ({','.join(map(str, items[:len(sent)]))})"
                     " AND state = 'done'")
    print(f"Machine: {machine()}; Dovecot and aiosmtpd on 127.0.0.1, the bot a child process.\n")
    print(f"kill -9 the bot {rounds} times while replies arrive ({per_round} per round, each "
          f"`!claim N` + `!done N` on an item of its own); {seconds:.0f} s in all.\n")
    print("| measurement | result |\n| --- | --- |")
    print(f"| replies delivered | {len(sent)} |")
    print(f"| replies handled (processed_events) | {len(bot.handled() & set(sent))} |")
    print(f"| history rows per reply | {dict(collections.Counter(per_reply.values()))} "
          f"(count: replies) |")
    print(f"| items claimed and done | {done[0][0] if done else '?'} / {len(sent)} |")
    print(f"| acknowledgements per reply at the SMTP receiver | "
          f"{dict(collections.Counter(acks[m] for m in sent))} (count: replies) |")
    print(f"| acknowledgements received in all | {len(smtp.sink.received)} |")
    print(f"| acknowledgements still pending in the database | {pending[0][0] if pending else '?'} |")
    print(f"| replies committed when the kill landed | {dict(sorted(killed_with.items()))} "
          f"(committed of the round's: rounds) |")
    print(f"| integrity_check | {integrity[0][0] if integrity else '?'} |")


async def run_imap_down(dovecot: Dovecot, smtp: Smtp, work: Path, seconds: float) -> None:
    box = Mailbox(dovecot, "down")
    await box.create()
    bot = Bot(work, dovecot, smtp, box.folder)
    items = await bot.prepare()
    bot.start()
    sent: list[str] = []
    try:
        await bot.wait_log(r"mail \S+: reading down")
        before = [f"<before-{i}@citrix.com>" for i in range(2)]
        for i, mid in enumerate(before):
            await box.deliver(reply(items[i], mid))
        sent += before
        while set(sent) - bot.handled():
            await asyncio.sleep(0.05)
        mark = len(bot.log_text())
        note(f"stopping Dovecot (pid {dovecot.daemon.proc.pid}) for {seconds:.0f} s")
        t_down = time.monotonic()
        dovecot.stop()
        meanwhile = []
        n = 0
        while time.monotonic() - t_down < seconds:
            await asyncio.sleep(min(10.0, seconds - (time.monotonic() - t_down)))
            if time.monotonic() - t_down < seconds - 1:
                mid = f"<meanwhile-{n}@citrix.com>"
                deliver_to_maildir(dovecot, box.folder, reply(items[len(sent)], mid), n)
                meanwhile.append(mid)
                sent.append(mid)
                n += 1
        down_log = bot.log_text()[mark:]
        await asyncio.to_thread(dovecot.start)
        t_up = time.monotonic()
        note(f"Dovecot back (pid {dovecot.daemon.proc.pid}) on port {dovecot.port}")
        back = await bot.wait_log(r"mail \S+: reading down", after=mark)
        while set(sent) - bot.handled():
            if time.monotonic() - t_up > WAIT:
                raise SystemExit("replies not handled within 60 s of Dovecot's return")
            await asyncio.sleep(0.05)
        applied = time.monotonic() - t_up
        await asyncio.sleep(2)
    finally:
        await bot.signal(signal.SIGTERM)
    retries = re.findall(r"IMAP 127\.0\.0\.1:\d+: (.*); retrying in (\d+) s", down_log)
    per_reply = bot.history_per_reply(sent)
    print(f"Machine: {machine()}; Dovecot and aiosmtpd on 127.0.0.1, the bot a child process.\n")
    print(f"Dovecot stopped for {seconds:.0f} s while the bot was reading its mailbox (IDLE); "
          f"{len(meanwhile)} replies delivered into the Maildir meanwhile.\n")
    print("| measurement | result |\n| --- | --- |")
    print(f"| reconnection attempts logged while down | {len(retries)} |")
    print(f"| delays between attempts (s) | {', '.join(d for _, d in retries)} |")
    reasons = collections.Counter(r for r, _ in retries)
    print(f"| what the log said | {'; '.join(f'{k} ({v}x)' for k, v in reasons.items())} |")
    print(f"| Dovecot back to the bot reading again | {back:.1f} s |")
    print(f"| Dovecot back to every reply applied | {applied:.1f} s |")
    print(f"| history rows per reply (2 = applied once) | "
          f"{dict(collections.Counter(per_reply.values()))} (count: replies) |")
    acks = collections.Counter(r.msg["In-Reply-To"] for r in smtp.sink.received)
    print(f"| acknowledgements per reply | {dict(collections.Counter(acks[m] for m in sent))} "
          f"(count: replies) |")


async def run_smtp_down(dovecot: Dovecot, smtp: Smtp, work: Path, seconds: float, mode: str) -> None:
    box = Mailbox(dovecot, "digest")
    await box.create()
    now = datetime.now(timezone.utc)
    slot = (now + timedelta(seconds=90)).replace(second=0, microsecond=0)
    bot = Bot(work, dovecot, smtp, box.folder,
              digest={"every": f"{slot.minute} {slot.hour} * * *", "timezone": "UTC"})
    await bot.prepare()
    # Refusing from before the slot.
    if mode == "4xx":
        smtp.sink.refusing = True
    else:
        smtp.stop()
    t_refuse = time.time()
    bot.start()
    try:
        note(f"digest slot {slot:%H:%M} UTC; SMTP {mode} until "
             f"{datetime.fromtimestamp(slot.timestamp() + seconds, timezone.utc):%H:%M:%S}")
        await asyncio.sleep(max(0.0, slot.timestamp() + seconds - time.time()))
        if mode == "4xx":
            smtp.sink.refusing = False
        else:
            smtp.start()
        t_back = time.time()
        note("SMTP accepting again")
        subject = "Xen 4.2 TODO / Release Plan"
        deadline = time.monotonic() + seconds + 300
        weekly = lambda: [r for r in smtp.sink.received if r.msg["Subject"] == subject]  # noqa: E731
        while not weekly() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        t_arrived = time.time() if weekly() else None
        await asyncio.sleep(60)  # a second copy would arrive by now
    finally:
        await bot.signal(signal.SIGTERM)
    log = bot.log_text()
    attempts = re.findall(r"(sending the weekly mail|retrying) \S+ failed \((.*?)\)", log)
    slots = bot.query("SELECT slot_at, status, detail FROM digest_slots")
    print(f"Machine: {machine()}; Dovecot and aiosmtpd on 127.0.0.1, the bot a child process.\n")
    print(f"SMTP {'answering 451 to every mail' if mode == '4xx' else 'not listening'} for "
          f"{seconds:.0f} s from {slot.timestamp() - t_refuse:.0f} s before the digest slot "
          f"({slot:%H:%M} UTC, daily).\n")
    print("| measurement | result |\n| --- | --- |")
    print(f"| sending attempts that failed (bot log) | {len(attempts)} |")
    if attempts:
        print(f"| what the log said | {attempts[0][1]} |")
    if mode == "4xx":
        print(f"| mails refused at the receiver (451) | {smtp.sink.refused} |")
    print(f"| weekly mails received for the slot | {len(weekly())} |")
    if t_arrived is not None:
        print(f"| slot to the weekly mail accepted | {t_arrived - slot.timestamp():.0f} s |")
        print(f"| SMTP back to the weekly mail accepted | {t_arrived - t_back:.0f} s |")
    for slot_at, status, detail in slots:
        print(f"| slot record ({datetime.fromtimestamp(slot_at, timezone.utc):%H:%M}) | "
              f"{status}: {detail} |")


async def main_async(args) -> None:
    os.environ[PASSWORD_ENV] = BOT_PASSWORD
    work = Path(tempfile.mkdtemp(prefix="todobot-bench-faults-"))
    spool = Path(tempfile.mkdtemp(prefix="todobot-bench-dovecot-"))
    dovecot = start_dovecot(spool, {BOT: BOT_PASSWORD})
    smtp = Smtp()
    smtp.start()
    try:
        if args.run == "kill":
            await run_kill(dovecot, smtp, work, args.rounds, args.per_round)
        elif args.run == "imap-down":
            await run_imap_down(dovecot, smtp, work, args.seconds or 30)
        else:
            await run_smtp_down(dovecot, smtp, work, args.seconds or 600, args.mode)
    finally:
        smtp.stop()
        dovecot.stop()
        if args.keep:
            note(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(spool, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", choices=["kill", "imap-down", "smtp-down"])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--per-round", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0, help="outage (30 s imap, 600 s smtp)")
    ap.add_argument("--mode", choices=["4xx", "down"], default="4xx")
    ap.add_argument("--keep", action="store_true", help="keep the bot's directory (log, db)")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
