"""Hostile senders against the real mailbox and SMTP server: a forged release manager's mail
does nothing and gets no answer; an unauthenticated display name takes no name and limits
count per sender across mails; a hostile Subject or From name never stops later
acknowledgements, across a restart; a forged From gets at most a few short acknowledgements;
MIME nested 2,000 deep is refused and flagged seen."""

from __future__ import annotations

import pytest

from .conftest import AUTHSERV, LIST, barrier, mail, not_barrier
from .test_replies import WEEKLY, _weekly_sent, handled

pytestmark = pytest.mark.integration

IJC = "Ian Campbell <Ian.Campbell@citrix.com>"
# The sender chooses smtp.mailfrom: "dmarc=pass" inside it is no DMARC result.
FORGED = (f"{AUTHSERV}; spf=pass smtp.mailfrom=dmarc=pass@evil.example; dkim=none; "
          "dmarc=fail (p=reject) header.from=citrix.com")
HIDDEN = f'{AUTHSERV}; dkim=pass header.d=evil.example header.i="x header.d=citrix.com"'


async def test_a_forged_release_managers_mail_does_nothing_and_gets_no_answer(
        bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(mail(IJC, "!blocker 16\n!claim 1\n", message_id="<forged@x>",
                                   in_reply_to=WEEKLY, Authentication_Results=FORGED))
        await mailbox.deliver(mail(IJC, "!blocker 16\n", message_id="<hidden@x>",
                                   in_reply_to=WEEKLY, Authentication_Results=HIDDEN))
        for mid in ("<forged@x>", "<hidden@x>"):
            await handled(bot, mid)
        await mailbox.wait_all_seen(2)
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(16)).severity == "nice" and (await s.get(1)).owners == []
        # The forged one: nothing at all. The merely unauthenticated one: refused, and told.
        [ack] = not_barrier(smtp_sink.received)
        assert ack.msg["In-Reply-To"] == "<hidden@x>" and ack.rcpt_tos == ["ian.campbell@citrix.com"]
        assert "not authenticated" in ack.msg.get_content()


async def test_a_display_name_takes_no_name_and_adds_count_across_mails(
        bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent, max_adds_per_hour=3) as bot:
        await mailbox.deliver(mail('"Keir Fraser" <keir@evil.example>', "!claim 1\n",
                                   message_id="<keir@x>", in_reply_to=WEEKLY))
        for n in range(4):
            await mailbox.deliver(mail("x@evil.example", f"!add tools nice spam {n}\n",
                                       message_id=f"<spam{n}@x>", in_reply_to=WEEKLY))
        for mid in ["<keir@x>"] + [f"<spam{n}@x>" for n in range(4)]:
            await handled(bot, mid)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).owners == ["keir@evil.example"]
            assert await s.person_named("Keir Fraser") is None  # still free for the real Keir
        titles = await bot.item_titles()
        assert [t for t in titles if t.startswith("spam")] == ["spam 0", "spam 1", "spam 2"]
        acks = await smtp_sink.wait(5)
        last = next(a for a in acks if a.msg["In-Reply-To"] == "<spam3@x>")
        assert "the limit is 3" in " ".join(last.msg.get_content().split())


async def test_a_hostile_subject_or_name_never_stops_later_acknowledgements(
        bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(mail("A <a@example.org>", "!claim 1\n", message_id="<subj@x>",
                                   in_reply_to=WEEKLY, subject="=?utf-8?q?hi=0D=0AX-Evil:_1?="))
        await mailbox.deliver(mail('"=?utf-8?q?B=0D=0AX-Evil:_2?=" <b@example.org>', "!claim 2\n",
                                   message_id="<name@x>", in_reply_to=WEEKLY))
        await mailbox.deliver(mail("C <c@example.org>", "!claim 3\n", message_id="<later@x>",
                                   in_reply_to=WEEKLY))
        acks = await smtp_sink.wait(3)
        assert sorted(a.rcpt_tos[0] for a in acks) == ["a@example.org", "b@example.org",
                                                       "c@example.org"]
        for a in acks:
            assert a.msg["X-Evil"] is None
        subj = next(a for a in acks if a.rcpt_tos == ["a@example.org"]).msg["Subject"]
        assert subj == "Re: hi X-Evil: 1"
    # Nothing left to fail at the next start; later mail is still answered.
    async with bot_factory() as bot:
        await mailbox.deliver(mail("D <d@example.org>", "!claim 4\n", message_id="<after@x>",
                                   in_reply_to=WEEKLY))
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        assert [a.rcpt_tos for a in not_barrier(smtp_sink.received)][3:] == [["d@example.org"]]


async def test_a_forged_from_gets_at_most_five_short_acknowledgements(
        bot_factory, mailbox, smtp_sink):
    body = "".join(f"!frob {'attacker text ' * 10}{n}\n" for n in range(50))
    async with bot_factory(seed=_weekly_sent) as bot:
        for n in range(15):
            await mailbox.deliver(mail("Victim <victim@victim.example>", body,
                                       message_id=f"<bs{n}@x>", in_reply_to=WEEKLY))
        for n in range(15):
            await handled(bot, f"<bs{n}@x>")
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        acks = smtp_sink.to("victim@victim.example")
        assert len(acks) == 5
        for a in acks:
            text = a.msg.get_content()
            assert len(text.splitlines()) <= 41 and len(text) <= 3100
            assert "attacker text " * 10 not in " ".join(text.split())


async def test_mime_nested_2000_deep_is_refused_and_flagged_seen(bot_factory, mailbox, smtp_sink):
    body = "Content-Type: text/plain\r\n\r\n!claim 1\r\n"
    for i in range(2000):
        body = f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n{body}\r\n--b{i}--\r\n'
    raw = (f"From: a@example.org\r\nTo: {LIST}\r\nMessage-ID: <deep@x>\r\nIn-Reply-To: {WEEKLY}\r\n"
           f"MIME-Version: 1.0\r\n{body}").encode()
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(raw)
        await handled(bot, "<deep@x>")
        await mailbox.wait_all_seen(1)
        assert bot.transport.inbox.failed == set()
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).owners == []
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        assert not_barrier(smtp_sink.received) == []
