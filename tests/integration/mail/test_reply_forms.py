"""Replies as list members write them, through the bot's real mailbox (Dovecot) and the list's
SMTP server: a new bullet under a development update's `== Open ==` and a claim of it, a claim
with its reason, a top-posted claim about what the original names, an HTML-only reply. Each
acts, and each sender gets an acknowledgement saying what was done."""

from __future__ import annotations

import pytest

from .conftest import mail
from .test_replies import WEEKLY, handled, items_by_title

pytestmark = pytest.mark.integration

WHO = "anthony.perard@citrix.com"


async def _weekly_sent(s):
    await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")


async def _dev_update(s):
    await _weekly_sent(s)
    await s.set_layout(await s.require_release("4.2"), "xen-dev-update")


async def _ack(smtp_sink, addr: str) -> str:
    got = await smtp_sink.wait(1)
    [ack] = [r for r in got if addr in r.rcpt_tos]
    return " ".join(ack.msg.get_content().split())


async def test_a_new_bullet_under_open_in_a_development_update_is_added_and_claimed(
        bot_factory, mailbox, smtp_sink):
    body = ("On Mon, 13 May 2013, George Dunlap wrote:\n> == Open ==\n>\n"
            "> * #5 More formally deprecate xm/xend.\n>   owner: ?\n\n"
            "* Nested virtualisation on AMD hosts\n\nI can take this one.\n\n"
            "> === Testing coverage ===\n>\n> * #20 Test vTPM\n")
    async with bot_factory(seed=_dev_update) as bot:
        await mailbox.deliver(mail(f"Anthony <{WHO}>", body, message_id="<dev@x>",
                                   in_reply_to=WEEKLY))
        await handled(bot, "<dev@x>")
        new = (await items_by_title(bot))["Nested virtualisation on AMD hosts"]
        assert (new.area, new.severity, new.owners) == ("", "nice", [WHO])
        ack = await _ack(smtp_sink, WHO)
        assert f"Added #{new.id} ((no area), nice to have) and claimed it for {WHO}" in ack


async def test_a_claim_with_its_reason(bot_factory, mailbox, smtp_sink):
    body = ("> tools, blockers:\n>\n>     * #8 Confirm that migration from Xen 4.1 -> 4.2\n"
            ">       works.\n\nI can take this one. We have a couple of boxes to test it on.\n")
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(mail(f"Anthony <{WHO}>", body, message_id="<reason@x>",
                                   in_reply_to=WEEKLY))
        await handled(bot, "<reason@x>")
        assert (await items_by_title(bot))[
            "Confirm that migration from Xen 4.1 -> 4.2 works."].owners == [WHO]
        assert "#8 claimed by" in await _ack(smtp_sink, WHO)


async def test_a_top_posted_claim_takes_what_the_original_names(bot_factory, mailbox, smtp_sink):
    body = ("I can take this one.\n\nAnthony\n\n-----Original Message-----\nFrom: Ian Campbell\n"
            "Sent: Monday, August 13, 2012 9:00 AM\nSubject: Re: Xen 4.2 TODO / Release Plan\n\n"
            "Nobody has picked up #10 (Bump library SONAMES as necessary) yet.\n!claim 5\n")
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(mail(f"Anthony <{WHO}>", body, message_id="<top@x>",
                                   in_reply_to=WEEKLY))
        await handled(bot, "<top@x>")
        titles = await items_by_title(bot)
        assert titles["Bump library SONAMES as necessary."].owners == [WHO]
        assert titles["More formally deprecate xm/xend."].owners == []  # the original's words
        assert "#10 claimed by" in await _ack(smtp_sink, WHO)


async def test_an_html_only_reply_acts(bot_factory, mailbox, smtp_sink):
    html = ("<html><body><div dir=ltr><blockquote class=gmail_quote><div>!claim 8</div>"
            "<div>tools, blockers:</div><ul><li>#5 More formally deprecate xm/xend.</li></ul></blockquote>"
            "<div>I can take this one.</div></div></body></html>")
    raw = mail(f"Anthony <{WHO}>", html, message_id="<html@x>", in_reply_to=WEEKLY).replace(
        b"Content-Type: text/plain", b"Content-Type: text/html")
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(raw)
        await handled(bot, "<html@x>")
        titles = await items_by_title(bot)
        assert titles["More formally deprecate xm/xend."].owners == [WHO]
        assert titles["Confirm that migration from Xen 4.1 -> 4.2 works."].owners == []  # quoted
        assert "#5 claimed by" in await _ack(smtp_sink, WHO)
