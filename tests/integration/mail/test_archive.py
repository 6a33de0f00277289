"""Reading a list from its public-inbox archive (public-inbox-imapd on 127.0.0.1), read-only
and without a subscription, as one reads lore.kernel.org: nothing is flagged, the UIDs read
are kept in the database, and a mail's sender is proven exactly as in the bot's own mailbox,
by the configured server's Authentication-Results."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from todobot.bot.app import App
from todobot.bot.config import Config
from todobot.bot.mail import MailTransport

from .conftest import AUTHSERV, BOT, LIST, WAIT, Bot, mail, seed_42, unavailable
from .test_replies import handled

pytestmark = pytest.mark.integration

WEEKLY = "<weekly-archive@example.org>"  # the bot's mail in the thread
IJC = "Ian Campbell <ian.campbell@citrix.com>"  # a release manager (the config's admin)
TRUSTED = f"{AUTHSERV}; dkim=pass header.d=citrix.com header.s=s1"


@pytest.fixture(scope="module")
def archive():
    from tests.servers.public_inbox import missing, start_public_inbox

    if gone := missing():
        unavailable(f"{', '.join(gone)} not installed (run scripts/install-public-inbox.sh)")
    workdir = Path(tempfile.mkdtemp(prefix="todobot-archive-"))
    server = start_public_inbox(workdir, name="xen-devel", address=LIST)
    yield server
    server.stop()
    shutil.rmtree(workdir, ignore_errors=True)


@asynccontextmanager
async def archive_bot(archive, smtp_sink, database: Path) -> AsyncIterator[Bot]:
    entry = {"list": LIST, "from": f"todobot <{BOT}>", "release": "4.2", "authserv_id": AUTHSERV,
             "smtp": {"host": "127.0.0.1", "port": smtp_sink.port, "starttls": False, "tls": False},
             "imap": {"host": "127.0.0.1", "port": archive.port, "tls": False,
                      "folder": archive.newsgroup, "archive": True}}
    app = App(Config(database=str(database), default_release="4.2",
                     admins=["mail:ian.campbell@citrix.com"], mail=[entry]))
    await app.initialize()
    assert app.repo is not None
    await seed_42(app.repo)
    async with app.repo.session("test") as s:
        await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")
    await app.start()
    transport = next(t for t in app.transports if isinstance(t, MailTransport))
    try:
        assert transport.inbox is not None
        await asyncio.wait_for(transport.inbox.connected.wait(), WAIT)
        yield Bot(app, transport)
    finally:
        await app.stop()


async def deliver(archive, raw: bytes) -> None:
    await asyncio.to_thread(archive.deliver, raw)


async def item(bot: Bot, n: int):
    async with bot.repo.session("test", write=False) as s:
        return await s.get(n)


async def test_the_archive_is_read_from_its_end_and_kept_by_uid_across_restarts(
        archive, smtp_sink, tmp_path):
    # In the archive before the bot first looks: the list's history, never replayed.
    await deliver(archive, mail(IJC, "!status 9 old history\n", message_id="<old@citrix.com>",
                                in_reply_to=WEEKLY, Authentication_Results=TRUSTED))
    db = tmp_path / "todo.sqlite3"
    async with archive_bot(archive, smtp_sink, db) as bot:
        await deliver(archive, mail(IJC, "!status 9 read from the archive\n",
                                    message_id="<a1@citrix.com>", in_reply_to=WEEKLY,
                                    Authentication_Results=TRUSTED))
        await handled(bot, "<a1@citrix.com>")
        assert (await item(bot, 9)).progress == "read from the archive"
        async with bot.repo.session("test", write=False) as s:
            assert not await s.seen_event("mail", "<old@citrix.com>")
        await smtp_sink.wait(1)
        assert smtp_sink.received[0].rcpt_tos == ["ian.campbell@citrix.com"]  # privately
    # Posted while the bot is down: read at the next start, from the UID kept.
    await deliver(archive, mail(IJC, "!status 9 while the bot was down\n",
                                message_id="<a2@citrix.com>", in_reply_to=WEEKLY,
                                Authentication_Results=TRUSTED))
    async with archive_bot(archive, smtp_sink, db) as bot:
        await handled(bot, "<a2@citrix.com>")
        assert (await item(bot, 9)).progress == "while the bot was down"
        async with bot.repo.session("test", write=False) as s:
            assert not await s.seen_event("mail", "<old@citrix.com>")


async def test_an_archived_mail_is_its_senders_only_when_the_trusted_server_vouched(
        archive, smtp_sink, tmp_path):
    async with archive_bot(archive, smtp_sink, tmp_path / "todo.sqlite3") as bot:
        # Anyone can put a release manager's address in From; without our server's results
        # it has anyone's rights.
        await deliver(archive, mail(IJC, "!blocker 16\n", message_id="<f1@citrix.com>",
                                    in_reply_to=WEEKLY))
        await handled(bot, "<f1@citrix.com>")
        assert (await item(bot, 16)).severity == "nice"
        # Another server's results, written where ours would be, prove nothing either.
        await deliver(archive, mail(IJC, "!blocker 16\n", message_id="<f2@citrix.com>",
                                    in_reply_to=WEEKLY, Authentication_Results=TRUSTED.replace(
                                        AUTHSERV, "mx.evil.example")))
        await handled(bot, "<f2@citrix.com>")
        assert (await item(bot, 16)).severity == "nice"
        # Our server's dmarc=fail: forged, dropped unanswered.
        answered = len(smtp_sink.received)
        await deliver(archive, mail(IJC, "!blocker 16\n", message_id="<f3@citrix.com>",
                                    in_reply_to=WEEKLY, Authentication_Results=(
                                        f"{AUTHSERV}; dmarc=fail header.from=citrix.com")))
        await handled(bot, "<f3@citrix.com>")
        assert (await item(bot, 16)).severity == "nice"
        # Vouched for: the release manager's command.
        await deliver(archive, mail(IJC, "!blocker 16\n", message_id="<v1@citrix.com>",
                                    in_reply_to=WEEKLY, Authentication_Results=TRUSTED))
        await handled(bot, "<v1@citrix.com>")
        assert (await item(bot, 16)).severity == "blocker"
        await smtp_sink.wait(answered + 1)
        assert not any(r.msg["In-Reply-To"] == "<f3@citrix.com>" for r in smtp_sink.received)

