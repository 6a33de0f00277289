"""Mail latency through a real Dovecot (IMAP IDLE) and an aiosmtpd receiver.

    python bench/mail_latency.py [--replies 200] [--digests 20] [--items 5000]
    python bench/mail_latency.py --through-list [--replies 50] [--runner-sleep 0.1s]
    python bench/mail_latency.py --idle-cpu 120 [--runner-sleep 0.1s]

Reuses the mail integration fixtures (tests/servers/dovecot.py, tests/integration/mail/
conftest.py): Dovecot on 127.0.0.1 holds the bot's mailbox, aiosmtpd stands in for the list's
mail server, the bot is an App with one mail entry, in this process (as in the tests).
- reply to change: a reply from the item's owner (`!status 8 round N`; the first claims it) is delivered with IMAP
  APPEND; the time runs from just before the APPEND to the new progress being readable in the
  database (a separate sqlite3 connection polls every 2 ms). The bot learns of the mail by
  IDLE. One reply at a time; the next once the acknowledgement has reached aiosmtpd.
- digest mail: the weekly mail of a 5,000-item release, from collecting the digest to the
  mail accepted by aiosmtpd (collect + render + SMTP send), one at a time.
- --through-list: the same reply to change, but through a real Mailman 3 list
  (tests/servers/mailman.py): the owner (a member) sends with SMTP to Postfix, which hands it
  to Mailman, which munges From and adds its prefix and footer and sends it back through
  Postfix to Dovecot, where the bot reads it; the time runs from just before the SMTP send
  to the new progress being readable. Mailman's runners look at their queues every
  `--runner-sleep` (the tests' 0.1s unless told; Mailman's own default is 1s). Each reply is
  split into stages: a watcher process notes Mailman's queue files (named by their enqueue
  time) and the mail's arrival in the bot's Maildir; the bot's IDLE notice and the start of
  its handling are timed in-process. The list's share ends at the IDLE notice.
- --idle-cpu: Mailman's CPU use (every process of its master's group) while the list sits
  idle, the price of a shorter `--runner-sleep`.
Prints Markdown; never run as a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aioimaplib  # noqa: E402
from common import machine, pct  # noqa: E402
from scale import build  # noqa: E402

from tests.integration.mail.conftest import (BOT, BOT_PASSWORD, LIST, PASSWORD_ENV,  # noqa: E402
                                             Mailbox, SinkController, SmtpSink, mail, mail_config, seed_42)
from tests.integration.mail.conftest import (AUTHSERV, LIST_AUTHSERV, MEMBER_DOMAINS,  # noqa: E402
                                             MEMBERS, list_bot)
from tests.servers.dovecot import start_dovecot  # noqa: E402
from tests.servers.mailman import RUNNER_SLEEP, start_mailing_list  # noqa: E402
from todobot.bot.app import App  # noqa: E402
from todobot.bot.mail import MailTransport  # noqa: E402
from todobot.commands.digest import collect  # noqa: E402

WEEKLY = "<weekly-1@example.org>"  # the bot's mail the replies answer
OWNER = "Ian Jackson <Ian.Jackson@eu.citrix.com>"
ITEM = 8  # "Confirm that migration from Xen 4.1 -> 4.2 works" in the seed


async def started(work: Path, dovecot, sink: SmtpSink, folder: str, database: str | None = None,
                  **config_kw) -> App:
    app = App(mail_config(work, dovecot, sink, folder, **config_kw), database=database)
    await app.initialize()
    return app


async def replies(dovecot, sink: SmtpSink, work: Path, count: int) -> list[float]:
    box = Mailbox(dovecot, "replies")
    await box.create()
    # Every reply is the owner's and waits for its acknowledgement: no hourly cap on them.
    app = await started(work, dovecot, sink, box.folder, entry={"acks_per_hour": 1000})
    async with app.repo.session("bench") as s:
        await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")
    await seed_42(app.repo)
    await app.start()
    transport = next(t for t in app.transports if isinstance(t, MailTransport))
    await asyncio.wait_for(transport.inbox.connected.wait(), 30)
    reader = sqlite3.connect(app.database_path)
    # One logged-in connection for every APPEND, so the time excludes connect and login.
    imap = aioimaplib.IMAP4("127.0.0.1", dovecot.port, timeout=10)
    await imap.wait_hello_from_server()
    assert (await imap.login(BOT, BOT_PASSWORD)).result == "OK"
    out = []
    try:
        for n in range(count + 5):  # 5 warm-up
            progress = f"round {n}"
            claim = f"!claim {ITEM}\n" if n == 0 else ""  # the first (warm-up) reply claims
            raw = mail(OWNER, f"{claim}!status {ITEM} {progress}\n\nIan.\n",
                       message_id=f"<bench-{n}@citrix.com>", in_reply_to=WEEKLY)
            acks = len(sink.received)
            t0 = time.perf_counter()
            assert (await imap.append(raw, mailbox=box.folder)).result == "OK"
            while reader.execute("SELECT progress FROM items WHERE id = ?",
                                 (ITEM,)).fetchone()[0] != progress:
                if time.perf_counter() - t0 > 30:
                    raise SystemExit(f"reply {n} not applied within 30 s")
                await asyncio.sleep(0.002)
            if n >= 5:
                out.append((time.perf_counter() - t0) * 1000)
            await sink.wait(acks + 1)
    finally:
        reader.close()
        await imap.logout()
        await app.stop()
    return out


async def digests(dovecot, sink: SmtpSink, work: Path, items: int, count: int) -> tuple[list[float], int]:
    db = work / "big.sqlite3"
    await build(db, items + 1, 2, items)  # release "1.0" holds `items` items
    box = Mailbox(dovecot, "digests")
    await box.create()
    app = await started(work, dovecot, sink, box.folder, database=str(db), entry={"release": "1.0"})
    await app.start()
    transport = next(t for t in app.transports if isinstance(t, MailTransport))
    out, size = [], 0
    try:
        for n in range(count + 2):  # 2 warm-up
            before = len(sink.received)
            t0 = time.perf_counter()
            async with app.repo.session("bench", write=False) as s:
                data = await collect(s, await s.require_release("1.0"), since=time.time() - 7 * 86400)
            await transport.post_digest(LIST, data)
            await sink.wait(before + 1, timeout=60)
            if n >= 2:
                out.append((time.perf_counter() - t0) * 1000)
            size = len(sink.received[-1].raw)
    finally:
        await app.stop()
    return out, size


# Run in a process of its own (never a thread of the bot's): it looks at Mailman's queues and
# the bot's Maildir every millisecond and prints each file's name the first time it sees it,
# with the time. Mailman names a queue file by its enqueue time (time.time()), and Dovecot's
# LMTP renames a delivered mail into new/ when it is complete.
_WATCHER = r"""
import os, sys, time
out = open(sys.argv[1], "a", buffering=1)
dirs = sys.argv[2:]
seen = set()
while True:
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            base = n.split(":")[0].rsplit(".", 1)[0] if "/queue/" in d else n.split(":")[0]
            key = (d.rsplit("/", 1)[0] if d.endswith(("/new", "/cur")) else d, base)
            if key not in seen:
                seen.add(key)
                out.write(f"{time.time():.6f} {d} {n}\n")
    time.sleep(0.001)
"""

STAGES = ["Postfix to Mailman (LMTP)", "Mailman: in runner", "Mailman: pipeline runner",
          "Mailman: out runner, Postfix, Dovecot LMTP", "Dovecot: IDLE notice",
          "bot: IDLE DONE, SEARCH, FETCH", "bot: handling to the change committed"]


def _marks(lines: list[str], queue: Path, maildir: Path) -> list[tuple[float, str]]:
    """(time, stage mark) of each watched file: "in", "pipeline", "out" at their enqueue time
    (from the name), "delivered" when first seen in the bot's Maildir."""
    out = []
    for line in lines:
        seen, d, name = line.split(" ", 2)
        if d.startswith(str(queue)):
            out.append((float(name.split("+", 1)[0]), Path(d).name))
        elif d.startswith(str(maildir)):
            out.append((float(seen), "delivered"))
    return sorted(out)


async def through_list(work: Path, count: int, runner_sleep: str) -> tuple[list[float], list[list[float]]]:
    import smtplib
    import subprocess

    owner = "george.dunlap@eu.citrix.com"
    servers = await asyncio.to_thread(
        start_mailing_list, work / "list", {BOT: BOT_PASSWORD, **{m: "x" for m in MEMBERS}},
        MEMBER_DOMAINS, mx_id=AUTHSERV, list_id=LIST_AUTHSERV, runner_sleep=runner_sleep)
    out, splits = [], []
    pushes: list[float] = []
    handled: list[float] = []
    wait_push = aioimaplib.IMAP4.wait_server_push

    async def timed_push(self, *a, **kw):
        r = await wait_push(self, *a, **kw)
        pushes.append(time.time())
        return r
    aioimaplib.IMAP4.wait_server_push = timed_push
    watcher = None
    try:
        async with list_bot(servers, "xen-devel", tmp_path=work, acks_per_hour=1000) as (bot, address):
            bot_box = servers.dovecot.workdir / "mail" / "todobot-xen-devel@example.org" / "Maildir"
            queue = servers.workdir / "mailman" / "var" / "queue"
            watched = [str(queue / q) for q in ("in", "pipeline", "out")]
            watched += [str(bot_box / "new"), str(bot_box / "cur")]
            seen = work / "watched.txt"
            seen.touch()
            watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, str(seen), *watched],
                                       start_new_session=True)
            handle = bot.transport.inbox.handle

            async def timed_handle(raw: bytes) -> bool:
                handled.append(time.time())
                return await handle(raw)
            bot.transport.inbox.handle = timed_handle
            async with bot.repo.session("bench") as s:
                await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")
            reader = sqlite3.connect(bot.app.database_path)
            smtp = smtplib.SMTP("127.0.0.1", servers.smtp_in, timeout=30)
            try:
                for n in range(count + 3):  # 3 warm-up
                    progress = f"round {n}"
                    claim = f"!claim {ITEM}\n" if n == 0 else ""
                    raw = mail(f"George Dunlap <{owner}>", f"{claim}!status {ITEM} {progress}\n",
                               message_id=f"<bench-list-{n}@citrix.com>", in_reply_to=WEEKLY)
                    raw = raw.replace(f"To: {LIST}".encode(), f"To: {address}".encode())
                    del pushes[:], handled[:]
                    t0, wall0 = time.perf_counter(), time.time()
                    await asyncio.to_thread(smtp.sendmail, owner, [address], raw)
                    while reader.execute("SELECT progress FROM items WHERE id = ?",
                                         (ITEM,)).fetchone()[0] != progress:
                        if time.perf_counter() - t0 > 60:
                            raise SystemExit(f"reply {n} not applied within 60 s\n{servers.logs()}")
                        await asyncio.sleep(0.002)
                    done, wall1 = time.perf_counter(), time.time()
                    # The watcher's lines up to now: the marks of this reply.
                    await asyncio.sleep(0.05)
                    lines = seen.read_text().splitlines()
                    marks = [(t, m) for t, m in _marks(lines, queue, bot_box)
                             if wall0 <= t <= wall1]
                    split = _split(wall0, marks, pushes, handled, wall1)
                    if n >= 3:
                        out.append((done - t0) * 1000)
                        if split is not None:
                            splits.append(split)
            finally:
                smtp.quit()
                reader.close()
    finally:
        aioimaplib.IMAP4.wait_server_push = wait_push
        if watcher is not None:
            watcher.kill()  # by the pid we started
            watcher.wait()
        await asyncio.to_thread(servers.stop)
    return out, splits


def _split(t0: float, marks: list[tuple[float, str]], pushes: list[float], handled: list[float],
           t1: float) -> list[float] | None:
    """Milliseconds of each of STAGES for one reply, or None when a mark was missed."""
    first = {}
    for t, m in marks:
        first.setdefault(m, t)
    delivered = first.get("delivered")
    push = next((p for p in pushes if delivered is not None and p >= delivered), None)
    hand = next((h for h in handled if push is not None and h >= push), None)
    points = [t0, first.get("in"), first.get("pipeline"), first.get("out"), delivered, push, hand, t1]
    if any(p is None for p in points):
        return None
    return [(b - a) * 1000 for a, b in zip(points, points[1:])]


def _group_ticks(pgid: int) -> dict[str, int]:
    """CPU clock ticks (user + system) so far of each process in the process group, by its
    command line (Mailman's runners are named `--runner=NAME:...`)."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        runner = next((a.decode().split("=", 1)[1].split(":")[0] for a in argv
                       if a.startswith(b"--runner=")), "master")
        out[f"{runner} ({stat.parent.name})"] = int(fields[11]) + int(fields[12])
    return out


def idle_cpu(work: Path, seconds: float, runner_sleep: str) -> tuple[float, dict[str, float]]:
    """Mailman's CPU while the list is idle: percent of one core, in all and per runner."""
    servers = start_mailing_list(work / "list", {BOT: BOT_PASSWORD}, MEMBER_DOMAINS,
                                 mx_id=AUTHSERV, list_id=LIST_AUTHSERV, runner_sleep=runner_sleep)
    try:
        servers.create_list("xen-devel", members={m: "x" for m in MEMBERS})
        time.sleep(20)  # past the start-up
        master = next(d for d in servers.daemons if d.name == "mailman").proc.pid
        before, t0 = _group_ticks(master), time.monotonic()
        time.sleep(seconds)
        after, elapsed = _group_ticks(master), time.monotonic() - t0
    finally:
        servers.stop()
    hz = os.sysconf("SC_CLK_TCK")
    per = {k: 100 * (after[k] - before.get(k, 0)) / hz / elapsed for k in after}
    return sum(per.values()), per


async def main_async(args) -> None:
    os.environ[PASSWORD_ENV] = BOT_PASSWORD
    if args.idle_cpu:
        work = Path(tempfile.mkdtemp(prefix="todobot-bench-list-"))
        work.chmod(0o755)
        try:
            total, per = await asyncio.to_thread(idle_cpu, work, args.idle_cpu, args.runner_sleep)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        busy = ", ".join(f"{k} {v:.2f}%" for k, v in sorted(per.items(), key=lambda kv: -kv[1])
                         if v >= 0.01)
        print(f"Mailman idle for {args.idle_cpu:.0f} s, runners' sleep_time {args.runner_sleep}: "
              f"{total:.2f}% of one core ({busy or 'nothing measurable'})")
        return
    if args.through_list:
        work = Path(tempfile.mkdtemp(prefix="todobot-bench-list-"))
        work.chmod(0o755)  # Postfix's and Dovecot's unprivileged processes must reach their files
        try:
            ms, splits = await through_list(work, args.replies, args.runner_sleep)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"Machine: {machine()}; Postfix, Mailman 3 (runners' sleep_time "
              f"{args.runner_sleep}) and Dovecot on 127.0.0.1, the bot in the measuring "
              f"process.\n")
        print("| measurement | p50 | p99 | n |")
        print("| --- | --- | --- | --- |")
        print(f"| reply through the list: SMTP to Postfix, Mailman, Postfix, Dovecot, to the "
              f"change in the database | {statistics.median(ms):.0f} ms | {pct(ms, 0.99):.0f} ms "
              f"| {len(ms)} |")
        if splits:
            print("\nWhere the time goes, per reply (stages timed by file names and a watcher; "
                  f"{len(splits)} of {len(ms)} replies had every mark):\n")
            print("| stage | p50 | p99 |")
            print("| --- | --- | --- |")
            for i, name in enumerate(STAGES):
                col = [sp[i] for sp in splits]
                print(f"| {name} | {statistics.median(col):.0f} ms | {pct(col, 0.99):.0f} ms |")
            lists = [sum(sp[:5]) for sp in splits]
            bots = [sum(sp[5:]) for sp in splits]
            print(f"| **the list** (SMTP send to the IDLE notice) | {statistics.median(lists):.0f} ms "
                  f"| {pct(lists, 0.99):.0f} ms |")
            print(f"| **the bot** (IDLE notice to the change) | {statistics.median(bots):.1f} ms "
                  f"| {pct(bots, 0.99):.1f} ms |")
        return
    work = Path(tempfile.mkdtemp(prefix="todobot-bench-mail-"))
    spool = Path(tempfile.mkdtemp(prefix="todobot-bench-dovecot-"))  # as the fixture makes it
    dovecot = start_dovecot(spool, {BOT: BOT_PASSWORD})
    sink = SmtpSink()
    controller = SinkController(sink)
    controller.start()
    try:
        reply_ms = await replies(dovecot, sink, work, args.replies) if args.replies else []
        digest_ms, size = (await digests(dovecot, sink, work, args.items, args.digests)
                           if args.digests else ([], 0))
    finally:
        controller.stop()
        dovecot.stop()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(spool, ignore_errors=True)
    print(f"Machine: {machine()}; Dovecot (IMAP IDLE) and aiosmtpd on 127.0.0.1, the bot "
          f"in the measuring process.\n")
    print("| measurement | p50 | p99 | n |")
    print("| --- | --- | --- | --- |")
    if reply_ms:
        print(f"| reply: IMAP APPEND to the change in the database | "
              f"{statistics.median(reply_ms):.1f} ms | {pct(reply_ms, 0.99):.1f} ms | {len(reply_ms)} |")
    if digest_ms:
        print(f"| weekly mail of {args.items:,} items ({size / 1024:.0f} KiB): collect, render, "
              f"SMTP to accepted | {statistics.median(digest_ms):.0f} ms "
              f"| {pct(digest_ms, 0.99):.0f} ms | {len(digest_ms)} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replies", type=int, default=200)
    ap.add_argument("--digests", type=int, default=20)
    ap.add_argument("--items", type=int, default=5000)
    ap.add_argument("--through-list", action="store_true",
                    help="replies through a real Mailman 3 list (Postfix, Dovecot)")
    ap.add_argument("--runner-sleep", default=RUNNER_SLEEP,
                    help=f"Mailman's queue runners' sleep_time (default {RUNNER_SLEEP}, as the "
                         "tests run the list; Mailman's own default is 1s)")
    ap.add_argument("--idle-cpu", type=float, metavar="SECONDS", default=0,
                    help="instead: Mailman's CPU use while the list is idle for SECONDS")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
