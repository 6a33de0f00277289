"""The mail transport when sending or handling fails: the weekly mail retried with its own
Message-ID (also after a restart) until it would be stale, a mail the server may have taken
never sent twice, change notices that fail or are over the hour's bound, a mail that cannot
be handled left unseen, and the odd mail (unknown charset, sent twice) read right."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3

import aiosmtplib

from todobot.bot.mail import MailTransport
from todobot.commands.messages import text
from . import test_mail_transport
from .test_mail_transport import LIST, FakeSmtp, mail

rig = test_mail_transport.rig  # the fixture

RETRY = "mail.weekly-retry/"


class FlakySmtp(FakeSmtp):
    """Fails the first `failures` attempts, then sends."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def __call__(self, msg, committing=None) -> None:
        if self.failures:
            self.failures -= 1
            self.attempts += 1
            raise aiosmtplib.SMTPServerDisconnected("connection lost")
        await super().__call__(msg, committing)


class TakenThenGone(FakeSmtp):
    """The server takes the mail (after the bot marks it under way) and never says so: the
    process is stopped meanwhile."""

    async def __call__(self, msg, committing=None) -> None:
        self.attempts += 1
        if committing is not None:
            await committing()
        await asyncio.Event().wait()


class RefusedAfterConnecting(FakeSmtp):
    """Connects and logs in (the bot marks the mail under way), then the server refuses it;
    from the third attempt on, the connection hangs before the login."""

    async def __call__(self, msg, committing=None) -> None:
        self.attempts += 1
        if self.attempts > 2:
            await asyncio.Event().wait()
        if committing is not None:
            await committing()
        raise aiosmtplib.SMTPDataError(451, "try again later")


async def retries(rig) -> dict[str, dict]:
    async with rig.chat.repo.session("test", write=False) as s:
        return {k: json.loads(v) for k, v in await s.kv_prefixed(RETRY)}


async def thread(rig) -> list[str]:
    async with rig.chat.repo.session("test", write=False) as s:
        return json.loads(await s.kv_get(f"mail.weekly/{LIST}/4.2") or "[]")


async def restarted(rig, smtp: FakeSmtp) -> MailTransport:
    await rig.transport.stop()
    again = MailTransport(rig.chat.config.mail[0], rig.chat.config, retry_base=0.0)
    again._send = smtp
    rig.transport = again
    await again.start(rig.chat.dispatcher)
    await rig.settle()
    return again


async def test_weekly_mails_thread_each_on_the_one_before(rig, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    await rig.transport.post(LIST, text("week 1"))
    await rig.transport.post(LIST, text("week 2"))
    first, second = rig.smtp.sent
    assert await thread(rig) == [str(first["Message-ID"]), str(second["Message-ID"])]
    assert str(second["In-Reply-To"]) == str(first["Message-ID"])
    assert any(f"weekly mail {second['Message-ID']} sent" in r.getMessage() for r in caplog.records)


async def test_a_failed_weekly_mail_is_sent_again_with_the_same_message_id(rig, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    rig.transport._send = smtp = FlakySmtp(failures=2)
    await rig.transport.post(LIST, text("the weekly listing"))
    await rig.settle()
    [sent] = smtp.sent
    assert smtp.attempts == 3 and sent.get_content() == "the weekly listing\n"
    message_id = str(sent["Message-ID"])
    logs = [r.getMessage() for r in caplog.records]
    assert any(f"sending the weekly mail {message_id} failed (connection lost); retrying in the "
               "background" in m for m in logs)
    assert any(f"retrying {message_id} failed (connection lost)" in m for m in logs)
    assert any(f"weekly mail {message_id} sent after retrying" in m for m in logs)
    # Threaded like a first-time success, and nothing left to retry.
    assert (await thread(rig))[-1] == message_id and await retries(rig) == {}


async def test_a_weekly_mail_that_cannot_be_sent_in_time_is_given_up_not_sent_stale(rig, caplog):
    rig.transport._send = smtp = FakeSmtp()
    smtp.fail = aiosmtplib.SMTPConnectError("refused")
    rig.transport.retry_for = 0.0  # its deadline passed: a later try would be stale
    await rig.transport.post(LIST, text("old news"))
    await rig.settle()
    assert smtp.sent == [] and smtp.attempts == 1 and await retries(rig) == {}
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "could not be sent in time; given up" in error
    assert await thread(rig) == []


async def test_a_weekly_mail_still_failing_at_a_stop_is_retried_after_the_restart(rig):
    rig.transport._send = down = FakeSmtp()
    down.fail = aiosmtplib.SMTPServerDisconnected("down")
    rig.transport.retry_base = 3600.0  # the next try would be long after the stop
    await rig.transport.post(LIST, text("this week"))
    [(key, kept)] = (await retries(rig)).items()
    assert "sending" not in kept  # failed before the server took it: safe to send again
    up = FakeSmtp()
    await restarted(rig, up)
    [sent] = up.sent
    assert RETRY + str(sent["Message-ID"]) == key and sent.get_content().splitlines() == ["this week"]
    assert await retries(rig) == {} and (await thread(rig))[-1] == str(sent["Message-ID"])


async def test_a_weekly_mail_the_server_may_have_taken_is_never_sent_twice(rig, caplog):
    rig.transport._send = down = FakeSmtp()
    down.fail = aiosmtplib.SMTPServerDisconnected("down")
    await rig.transport.post(LIST, text("this week"))  # its retry begins at once (retry_base 0)
    rig.transport._send = taking = TakenThenGone()
    while not taking.attempts:
        await asyncio.sleep(0)
    [(key, kept)] = (await retries(rig)).items()
    assert kept["sending"]  # marked before the hand-over
    up = FakeSmtp()
    await restarted(rig, up)
    assert up.sent == [] and await retries(rig) == {}
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert key.removeprefix(RETRY) in error and "NOT sent again" in error


async def test_a_weekly_mail_refused_after_connecting_is_still_sent_after_a_restart(rig):
    rig.transport._send = down = FakeSmtp()
    down.fail = aiosmtplib.SMTPServerDisconnected("down")
    rig.transport.retry_base = 0.001
    await rig.transport.post(LIST, text("this week"))
    rig.transport._send = refusing = RefusedAfterConnecting()
    while refusing.attempts < 3:  # two refused, the third still connecting
        await asyncio.sleep(0)
    [(key, kept)] = (await retries(rig)).items()
    assert "sending" not in kept  # refused: the server did not take it, the mark is gone
    up = FakeSmtp()
    await restarted(rig, up)
    [sent] = up.sent
    assert RETRY + str(sent["Message-ID"]) == key


async def test_another_lists_retry_is_left_to_that_list(rig):
    other = {"key": "mail.weekly/other@x/4.2", "until": 4e9,
             "mail": base64.b64encode(b"To: other@lists.example.org\r\nMessage-ID: <o@x>\r\n\r\n"
                                      b"hi\r\n").decode()}
    async with rig.chat.repo.session("test") as s:
        await s.kv_set(RETRY + "<o@x>", json.dumps(other))
    up = FakeSmtp()
    await restarted(rig, up)
    assert up.sent == [] and list(await retries(rig)) == [RETRY + "<o@x>"]


async def test_a_pending_acknowledgement_another_process_was_sending_is_not_sent_again(rig, caplog):
    pending = {"to": "a@example.org", "subject": "s", "in_reply_to": "<q@x>", "references": [],
               "body": "b\n", "message_id": "<ack@x>", "sending": "a-process-that-died"}
    async with rig.chat.repo.session("test") as s:
        await s.kv_set("mail.ack-pending/<q@x>", json.dumps(pending))
    await rig.transport._flush_pending()
    assert rig.smtp.sent == [] and await rig.pending() == []
    [error] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "the acknowledgement of <q@x> to a@example.org" in error and "NOT sent again" in error


async def test_an_acknowledgement_whose_recipient_is_refused_is_dropped_at_once(rig, caplog):
    rig.smtp.fail = aiosmtplib.SMTPRecipientsRefused(
        [aiosmtplib.SMTPRecipientRefused(550, "no such user", "gone@example.org")])
    await rig.deliver(mail("gone@example.org", "!claim 1\n", message_id="<r1@x>"))
    assert rig.smtp.attempts == 1 and await rig.pending() == []
    assert any("refused by the server" in r.getMessage() for r in caplog.records
               if r.levelname == "ERROR")
    assert (await rig.chat.item(1)).owners == ["gone@example.org"]  # the claim itself stands


async def test_change_notices_that_fail_or_are_over_the_hour_are_dropped_and_logged(rig, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    notice = text("item 1 changed")
    rig.smtp.fail = aiosmtplib.SMTPServerDisconnected("gone")
    assert await rig.transport.notify("mail:w@example.org", notice) is False
    assert any("a change notice to w@example.org failed (gone)" in r.getMessage()
               for r in caplog.records)
    rig.smtp.fail = None
    for _ in range(4):  # acks_per_hour is 5, and the failed one counted
        assert await rig.transport.notify("mail:w@example.org", notice) is True
    assert await rig.transport.notify("mail:w@example.org", notice) is False
    assert any("no change notice to w@example.org" in r.getMessage() for r in caplog.records)
    assert len(rig.smtp.to("w@example.org")) == 4
    # Never to the list itself, nor to an identity that is not an address.
    assert await rig.transport.notify(f"mail:{LIST}", notice) is False
    assert await rig.transport.notify("irc:oftc/w", notice) is False
    assert len(rig.smtp.sent) == 4


async def test_a_mail_that_cannot_be_handled_is_left_unseen_and_handled_later(rig, caplog,
                                                                              monkeypatch):
    raw = mail("a@example.org", "!claim 1\n", message_id="<busy@x>")
    real = rig.chat.dispatcher.run_steps

    async def locked(*args, **kw):
        raise sqlite3.OperationalError("database is locked")
    monkeypatch.setattr(rig.chat.dispatcher, "run_steps", locked)
    assert await rig.deliver(raw) is False
    [error] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"could not handle a message of {len(raw)} bytes; left unseen" in error.getMessage()
    assert not await rig.seen("<busy@x>") and (await rig.chat.item(1)).owners == []
    monkeypatch.setattr(rig.chat.dispatcher, "run_steps", real)
    assert await rig.deliver(raw) is True
    assert (await rig.chat.item(1)).owners == ["a@example.org"]


async def test_the_same_mail_twice_is_obeyed_and_answered_once(rig):
    raw = mail("a@example.org", "!claim 1\n", message_id="<twice@x>")
    assert await rig.deliver(raw) and await rig.deliver(raw)
    assert len(rig.smtp.to("a@example.org")) == 1


async def test_a_mail_in_an_unknown_charset_is_still_read(rig):
    raw = mail("a@example.org", "!claim 1\n", message_id="<cs@x>").replace(
        b"charset=utf-8", b"charset=x-no-such-charset")
    assert await rig.deliver(raw)
    assert (await rig.chat.item(1)).owners == ["a@example.org"]
