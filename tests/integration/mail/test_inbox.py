"""New mail is noticed by IMAP IDLE within seconds; without IDLE, by polling."""

from __future__ import annotations

import aioimaplib
import pytest

from .conftest import IAN, mail
from .test_replies import WEEKLY, _weekly_sent, handled

pytestmark = pytest.mark.integration


async def test_idle_notices_new_mail_within_10_s(bot_factory, mailbox):
    # The first pass ran at connection; with a poll every hour only IDLE can be this quick.
    async with bot_factory(seed=_weekly_sent, imap={"poll_seconds": 3600}) as bot:
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!claim 10\n",
                                   message_id="<idle@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<idle@citrix.com>", timeout=10)


async def test_without_idle_the_mailbox_is_polled(bot_factory, mailbox, monkeypatch):
    real = aioimaplib.IMAP4.has_capability
    monkeypatch.setattr(aioimaplib.IMAP4, "has_capability",
                        lambda self, cap: False if cap == "IDLE" else real(self, cap))
    async with bot_factory(seed=_weekly_sent, imap={"poll_seconds": 1}) as bot:
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", "!claim 10\n",
                                   message_id="<poll@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<poll@citrix.com>", timeout=10)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(10)).owners == [IAN]
