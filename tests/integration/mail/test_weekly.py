"""The weekly mail reaches the list on schedule, once per period, threaded to last week's."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from todobot.storage.digest_data import collect
from todobot.storage import digests

from .conftest import BOT, LIST, WAIT

pytestmark = pytest.mark.integration


async def _backdate(s):
    # The bot "was here" a few minutes ago: the minute that ended while it was down is due.
    await s.kv_set(f"digest.since/4.2/mail/{LIST}", repr(time.time() - 150))


async def test_weekly_mail_on_schedule_with_headers_and_threading(bot_factory, smtp_sink):
    async with bot_factory(seed=_backdate, project="Xen",
                           digest={"every": "* * * * *", "timezone": "UTC"}) as bot:
        [first] = await smtp_sink.wait(1, timeout=60)
        msg = first.msg
        assert first.rcpt_tos == [LIST] and first.mail_from == BOT
        assert msg["From"] == f"todobot <{BOT}>" and msg["To"] == LIST
        assert msg["Subject"] == "Xen 4.2 TODO"  # `project:`; no subject set, none imported
        assert msg["Date"] and msg["Message-ID"].endswith("@example.org>")
        assert msg["In-Reply-To"] is None  # the first week starts the thread
        # Byte for byte: CRLF lines of at most 72 columns of UTF-8 plain text, as written.
        head, _, body = first.raw.partition(b"\r\n\r\n")
        assert b"Content-Type: text/plain; charset=\"utf-8\"" in head
        lines = body.split(b"\r\n")
        # (a link or Message-ID longer than that stands alone on its line, unbroken)
        long = [ln for ln in lines if len(ln.decode("utf-8")) > 72]
        assert all(len(ln.split()) == 1 for ln in long), long
        assert "Pasi Kärkkäinen".encode() in body  # UTF-8, 8bit: no encoding in the way
        assert b"The time line is as follows:" in lines
        assert b"tools, blockers:" in lines
        assert b"    * #10 Bump library SONAMES as necessary." in lines
        assert body.endswith(b"\r\n") and b"\r\r" not in body
        for _ in range(100):  # the slot is marked once the send returns
            async with bot.repo.session("test", write=False) as s:
                rows = [r for r in await digests.slots(s, "4.2")
                        if r.key.transport == "mail" and r.status != "skipped"]
                assert await s.kv_get(f"mail.sent/{msg['Message-ID']}") == "weekly"
            if rows[0].status != "claimed":
                break
            await asyncio.sleep(0.05)
        assert [r.status for r in rows] == ["sent"]
        assert msg["Message-ID"] in rows[0].detail

        # The same period again: nothing more (the slot is taken).
        await bot.app.scheduler.tick()
        assert len(smtp_sink.received) == 1

        # Next week's mail answers this one.
        async with bot.repo.session("test", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=time.time() - 60)
        await bot.transport.post_digest(LIST, data)
        second = (await smtp_sink.wait(2))[1].msg
        assert second["In-Reply-To"] == msg["Message-ID"]
        assert second["References"] == msg["Message-ID"]
        await bot.transport.post_digest(LIST, data)
        third = (await smtp_sink.wait(3))[2].msg
        assert third["In-Reply-To"] == second["Message-ID"]
        assert third["References"].split() == [msg["Message-ID"], second["Message-ID"]]


async def test_failed_send_is_retried_with_the_same_message_id(bot_factory, smtp_sink):
    smtp_sink.refuse = 2  # the list's server says "try again later" twice
    async with bot_factory() as bot:
        bot.transport.retry_base = 0.2
        async with bot.repo.session("test", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=time.time() - 60)
        detail = await bot.transport.post_digest(LIST, data)
        assert "retrying" in detail
        [got] = await smtp_sink.wait(1)
        assert smtp_sink.refused == 2
        assert got.msg["Message-ID"] in detail
        time_left = time.monotonic() + 1.0
        while time.monotonic() < time_left:  # and never a second copy
            assert len(smtp_sink.received) == 1
            await asyncio.sleep(0.1)


async def test_retries_go_on_after_a_restart_and_send_once(bot_factory, smtp_sink):
    smtp_sink.refuse = 10**6
    async with bot_factory() as bot:
        bot.transport.retry_base = 0.2
        async with bot.repo.session("test", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=time.time() - 60)
        detail = await bot.transport.post_digest(LIST, data)
        async with asyncio.timeout(WAIT):  # the first attempt and a retry, both refused
            while smtp_sink.refused < 2:
                await asyncio.sleep(0.05)
        assert smtp_sink.received == []
    smtp_sink.refuse = 0
    async with bot_factory() as bot:
        [got] = await smtp_sink.wait(1, timeout=20)  # the first retry after start: 5 s
        assert got.msg["Message-ID"] in detail
        assert "Pasi Kärkkäinen" in got.msg.get_content()
        async with bot.repo.session("test", write=False) as s:
            assert not await s.kv_prefixed("mail.weekly-retry/")
            key = f"mail.weekly/{LIST}/4.2"
            assert await s.kv_get(key) == f'["{got.msg["Message-ID"]}"]'  # threads from here
        # Sent once: the retry that sent it has ended, and no other is left to send it again.
        async with asyncio.timeout(WAIT):
            while any(t.get_name().startswith("mail-retry") for t in asyncio.all_tasks()):
                await asyncio.sleep(0.05)
        assert len(smtp_sink.received) == 1


async def test_a_retry_cut_short_by_a_crash_is_not_sent_again(bot_factory, smtp_sink, caplog):
    """A process died while handing a retried weekly mail to the server (its mark is left): the
    server may have it, so the next process logs it and never sends it (at most once)."""
    smtp_sink.refuse = 10**6
    async with bot_factory() as bot:
        bot.transport.retry_base = 60.0  # no retry of its own in this test
        async with bot.repo.session("test", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=time.time() - 60)
        await bot.transport.post_digest(LIST, data)
        async with bot.repo.session("test") as s:  # as a dead process's attempt leaves it
            [(key, value)] = await s.kv_prefixed("mail.weekly-retry/")
            await s.kv_set(key, json.dumps({**json.loads(value), "sending": "a-dead-process"}))
    smtp_sink.refuse = 0
    async with bot_factory() as bot:
        bot.transport.retry_base = 0.2
        deadline = time.monotonic() + 10
        while "NOT sent again" not in caplog.text and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        assert smtp_sink.received == []
        assert f"the weekly mail {key.removeprefix('mail.weekly-retry/')} was being sent" in caplog.text
        async with bot.repo.session("test", write=False) as s:
            assert not await s.kv_prefixed("mail.weekly-retry/")
