"""At most once across restarts and outages: a message is never applied twice, an
acknowledgement committed with its effects is sent after a crash, the inbox comes back
within seconds of the IMAP server."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from .conftest import IAN, WAIT, barrier, mail, not_barrier
from .test_replies import WEEKLY, _weekly_sent, handled

pytestmark = pytest.mark.integration


async def _rounds(bot) -> int:
    """Rounds of attempts the waiting acknowledgement has had."""
    async with bot.repo.session("test", write=False) as s:
        [(_, value)] = await s.kv_prefixed("mail.ack-pending/")
    return int(json.loads(value).get("rounds", 0))


async def _unsee_all(mailbox) -> None:
    """As if the bot died after committing but before flagging the messages \\Seen."""
    async with mailbox._imap() as imap:
        await imap.select(mailbox.folder)
        r = await imap.store("1:*", "-FLAGS.SILENT", r"(\Seen)")
        assert r.result == "OK"


async def test_restart_applies_nothing_twice_and_loses_no_acknowledgement(
        bot_factory, mailbox, smtp_sink):
    smtp_sink.refuse = 10**6  # the ack cannot go out before the "crash"
    body = "> * #10 Bump library SONAMES as necessary.\n\nmine\n\n!status 10 patch posted\n"
    async with bot_factory(seed=_weekly_sent) as bot:
        bot.transport.retry_base = 0.05
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", body,
                                   message_id="<once@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<once@citrix.com>")
        await mailbox.wait_all_seen(1)
        async with bot.repo.session("test", write=False) as s:
            changes = len(await s.history(10))
            assert await s.kv_prefixed("mail.ack-pending/")  # committed with the effects
        # The first round of attempts is over (each refused) before the "crash": a stop in the
        # middle of an attempt leaves its outcome unknown, and the next start rightly gives
        # that acknowledgement up rather than risk sending it twice.
        async with asyncio.timeout(WAIT):
            while await _rounds(bot) < 1:
                await asyncio.sleep(0.05)
    assert smtp_sink.received == []

    await _unsee_all(mailbox)
    smtp_sink.refuse = 0
    async with bot_factory() as bot:
        await mailbox.wait_all_seen(1)
        [ack] = await smtp_sink.wait(1)  # the acknowledgement, sent once after the restart
        assert ack.rcpt_tos == ["ian.jackson@eu.citrix.com"]
        assert "#10 progress: patch posted" in " ".join(ack.msg.get_content().split())
        async with bot.repo.session("test", write=False) as s:
            item = await s.get(10)
            assert len(await s.history(10)) == changes  # nothing applied twice
            assert not await s.kv_prefixed("mail.ack-pending/")
        assert item.owners == [IAN] and item.progress == "patch posted"
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        assert len(not_barrier(smtp_sink.received)) == 1


@pytest.mark.slow
async def test_imap_down_for_30_s_then_back_within_10_s(bot_factory, mailbox, dovecot, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        await asyncio.to_thread(dovecot.stop)
        await asyncio.sleep(30)
        await asyncio.to_thread(dovecot.start)
        back = time.monotonic()
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!claim 10\n",
                                   message_id="<after-outage@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<after-outage@citrix.com>", timeout=WAIT)
        took = time.monotonic() - back
        assert took < 10, f"handled {took:.1f} s after the server's return"


async def test_a_mail_that_fails_is_left_unseen_and_handled_after_a_restart(
        bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        real = bot.transport._handle

        async def flaky(raw: bytes) -> None:
            if b"<fails@citrix.com>" in raw:
                raise RuntimeError("database unavailable")
            await real(raw)

        bot.transport._handle = flaky
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!claim 10\n",
                                   message_id="<fails@citrix.com>", in_reply_to=WEEKLY))
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!claim 8\n",
                                   message_id="<works@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<works@citrix.com>")
        # The inbox takes mail in order: once the second is flagged, the first was done with.
        deadline = time.monotonic() + WAIT
        while b"\\Seen" not in (flags := await mailbox.flags())[1]:
            assert time.monotonic() < deadline, flags
            await asyncio.sleep(0.05)
        assert b"\\Seen" not in flags[0]
    async with bot_factory() as bot:
        await handled(bot, "<fails@citrix.com>")
        await mailbox.wait_all_seen(2)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(10)).owners == [IAN]
