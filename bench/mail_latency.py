"""Mail latency through a real Dovecot (IMAP IDLE) and an aiosmtpd receiver.

    python bench/mail_latency.py [--replies 200] [--digests 20] [--items 5000]
    python bench/mail_latency.py --through-list [--replies 50]

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
  to the new progress being readable. Mailman's runners look at their queues once a second.
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
from tests.servers.mailman import start_mailing_list  # noqa: E402
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


async def through_list(work: Path, count: int) -> list[float]:
    import smtplib

    owner = "george.dunlap@eu.citrix.com"
    servers = await asyncio.to_thread(
        start_mailing_list, work / "list", {BOT: BOT_PASSWORD, **{m: "x" for m in MEMBERS}},
        MEMBER_DOMAINS, mx_id=AUTHSERV, list_id=LIST_AUTHSERV)
    out = []
    try:
        async with list_bot(servers, "xen-devel", tmp_path=work, acks_per_hour=1000) as (bot, address):
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
                    t0 = time.perf_counter()
                    await asyncio.to_thread(smtp.sendmail, owner, [address], raw)
                    while reader.execute("SELECT progress FROM items WHERE id = ?",
                                         (ITEM,)).fetchone()[0] != progress:
                        if time.perf_counter() - t0 > 60:
                            raise SystemExit(f"reply {n} not applied within 60 s\n{servers.logs()}")
                        await asyncio.sleep(0.002)
                    if n >= 3:
                        out.append((time.perf_counter() - t0) * 1000)
            finally:
                smtp.quit()
                reader.close()
    finally:
        await asyncio.to_thread(servers.stop)
    return out


async def main_async(args) -> None:
    os.environ[PASSWORD_ENV] = BOT_PASSWORD
    if args.through_list:
        work = Path(tempfile.mkdtemp(prefix="todobot-bench-list-"))
        work.chmod(0o755)  # Postfix's and Dovecot's unprivileged processes must reach their files
        try:
            ms = await through_list(work, args.replies)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(f"Machine: {machine()}; Postfix, Mailman 3 and Dovecot on 127.0.0.1, the bot in "
              f"the measuring process.\n")
        print("| measurement | p50 | p99 | n |")
        print("| --- | --- | --- | --- |")
        print(f"| reply through the list: SMTP to Postfix, Mailman, Postfix, Dovecot, to the "
              f"change in the database | {statistics.median(ms):.0f} ms | {pct(ms, 0.99):.0f} ms "
              f"| {len(ms)} |")
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
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
