"""Replies on the list, delivered to the bot's real mailbox, act like chat: the seed thread's
own replies, claims, commands, rights by authentication, acknowledgements and loops."""

from __future__ import annotations

import asyncio
import time

import pytest

from todobot.storage.digest_data import collect
from todobot.commands.messages import Message, Sender

from .conftest import AUTHSERV, IAN, LIST, WAIT, barrier, eml, mail, not_barrier

pytestmark = pytest.mark.integration

WEEKLY = "<weekly-1@example.org>"  # stands in for the bot's mail the thread answers
TRUSTED = f"{AUTHSERV}; dkim=pass header.d=citrix.com header.s=sel; dmarc=pass header.from=citrix.com"


async def _weekly_sent(s):
    await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")


async def handled(bot, message_id: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with bot.repo.session("test", write=False) as s:
            if await s.seen_event("mail", message_id):
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message_id} not handled within {timeout} s")
        await asyncio.sleep(0.05)


async def items_by_title(bot) -> dict[str, object]:
    async with bot.repo.session("test", write=False) as s:
        rel = await s.require_release("4.2")
        return {it.title: it for it in await s.items(rel)}


async def test_the_seed_threads_replies_add_what_they_propose(bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        before = await items_by_title(bot)
        replies = [("george-2012-08-06.eml", "<george-20120806161700@eu.citrix.com>"),
                   ("george-2012-08-06-correction.eml", "<george-20120806161800@eu.citrix.com>"),
                   ("jan-2012-08-07.eml", "<5020ED8B0200007800093A4E@nat28.tlf.novell.com>"),
                   ("jan-2012-08-13.eml", "<5028C2F3020000780009444A@nat28.tlf.novell.com>")]
        # George's mail is signed by citrix.com (aligned with eu.citrix.com): his name counts.
        george = f"{AUTHSERV}; dkim=pass header.d=citrix.com"
        for name, _ in replies:
            await mailbox.deliver(eml(name, in_reply_to=WEEKLY, references=WEEKLY,
                                      authentication_results=george if "george" in name else ""))
        for _, mid in replies:
            await handled(bot, mid)
        await mailbox.wait_all_seen(4)
        assert await mailbox.count() == 4  # never deleted

        after = await items_by_title(bot)
        new = {t: it for t, it in after.items() if t not in before}
        assert len(new) == 5
        pod = next(it for t, it in new.items() if "p2m_pod_sweep" in t)
        dom0 = next(it for t, it in new.items() if "domain 0 attempts" in t)
        jan = [it for t, it in new.items() if it not in (pod, dom0)]
        assert (pod.area, pod.severity, pod.tags, pod.owners) == ("hypervisor", "nice", ["BUG(?)"],
                                                                  ["George Dunlap"])
        assert (dom0.area, dom0.severity, dom0.owners) == ("tools", "nice", [])  # offered to Jan
        assert "<george-20120806161700@eu.citrix.com>" in pod.links
        assert sorted(it.title for it in jan) == [
            "address PoD problems with early host side accesses to guest address space",
            "fix S3 regression(s?) reported by Ben Guthro",
            "fix high change rate to CMOS RTC periodic interrupt causing guest wall clock "
            "time to lag"]
        assert all((it.area, it.severity, it.owners) == ("hypervisor", "nice", []) for it in jan)
        pod_patch = next(it for it in jan if it.title.startswith("address PoD"))
        assert pod_patch.progress.startswith("draft patch for 4.0.x exists")
        async with bot.repo.session("test", write=False) as s:
            hist = await s.history(pod.id)
        by = "mail:george.dunlap@eu.citrix.com via <george-20120806161700@eu.citrix.com>"
        assert {c.actor for c in hist} == {by}
        # ... and a chat room of the release sees it as any change.
        console = await bot.app.dispatcher.handle(Message(
            "console", "console", Sender("console:ijc", "ijc"), f"!history {pod.id}"))
        assert f"{by} created" in console.plain and "owners" in console.plain

        # One private acknowledgement for each reply; nothing to the list. The discussion
        # replies are told that nothing in them could be acted on.
        got = await smtp_sink.wait(4)
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        assert len(not_barrier(smtp_sink.received)) == 4
        assert not smtp_sink.to(LIST)
        for r in got:
            if r.msg["In-Reply-To"] in (replies[1][1], replies[2][1]):
                assert " ".join(r.msg.get_content().split()) == (
                    "Nothing I could act on: no commands, claims or new items found outside "
                    "quoted text.")
        george = [r for r in smtp_sink.to("george.dunlap@eu.citrix.com")
                  if r.msg["In-Reply-To"] == replies[0][1]]
        assert len(george) == 1 and george[0].rcpt_tos == [george[0].rcpt_tos[0]]
        ack = george[0].msg
        assert ack["Auto-Submitted"] == "auto-replied"
        assert ack["In-Reply-To"] == "<george-20120806161700@eu.citrix.com>"
        assert ack["Subject"] == "Re: 4.2 TODO / Release Plan"
        body = ack.get_content()
        flat = " ".join(body.split())
        assert flat.startswith("Applied: * Added #")
        assert (f"* Added #{pod.id} (hypervisor, nice to have) and claimed it for George Dunlap:"
                " [BUG(?)] Under certain conditions, the p2m_pod_sweep code") in flat
        assert f"* Added #{dom0.id} (tools, nice to have): [BUG(?)] If domain 0" in flat
        assert all(len(line) <= 72 for line in body.splitlines())
        assert any("jbeulich@suse.com" in r.rcpt_tos[0].lower() for r in got)

        # Next week's mail shows them in their sections, George owning the p2m_pod_sweep one.
        async with bot.repo.session("test", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=time.time() - 3600)
        await bot.transport.post_digest(LIST, data)
        await smtp_sink.wait(6)  # four acknowledgements, the barrier's, the weekly mail
        weekly = " ".join(smtp_sink.to(LIST)[0].msg.get_content().split())
        section = weekly.split("hypervisor, nice to have:")[-1].split("tools, nice to have:")[0]
        assert f"* #{pod.id} [BUG(?)] Under certain conditions, the p2m_pod_sweep" in section
        assert "(George Dunlap)" in section.split(f"#{pod.id} ")[1].split("* #")[0]
        assert f"* #{pod_patch.id} address PoD problems" in section
        tools = weekly.split("tools, nice to have:")[-1]
        dom0_text = tools.split(f"* #{dom0.id} [BUG(?)] ")[1].split("* #")[0]
        assert "If domain 0 attempts to access a guests' memory" in dom0_text
        assert "George Dunlap" not in dom0_text


async def test_claim_under_a_quoted_item_and_status_command(bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        body = ("On Mon, 6 Aug 2012, todobot wrote:\n> tools, blockers:\n>\n"
                ">     * #10 Bump library SONAMES as necessary.\n"
                ">       <20502.39440.969619.824976@mariner.uk.xensource.com>\n\n"
                "I can take this one.\n\n"
                "> * [CHECK] Confirm that migration from Xen 4.1 -> 4.2 works.\n\n"
                "Mine.\n\n!status 8 testing with 4.1.3\n!frobnicate 3\n\nIan.\n")
        await mailbox.deliver(mail("Ian Jackson <Ian.Jackson@eu.citrix.com>", body,
                                   message_id="<claim-1@citrix.com>", in_reply_to=WEEKLY))
        await handled(bot, "<claim-1@citrix.com>")
        async with bot.repo.session("test", write=False) as s:
            sonames, migration = await s.get(10), await s.get(8)
        assert sonames.owners == [IAN]
        assert migration.owners == [IAN] and migration.progress == "testing with 4.1.3"
        [ack] = await smtp_sink.wait(1)
        assert ack.rcpt_tos == ["Ian.Jackson@eu.citrix.com".lower()]
        text = ack.msg.get_content()
        assert f"#10 claimed by {IAN} (was unclaimed)" in " ".join(text.split())
        assert "#8 progress: testing with 4.1.3" in text
        assert "Not applied:" in text and "!frobnicate 3: Unknown command !frobnicate." in text


async def test_release_manager_commands_need_a_trusted_dkim_pass(bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        ijc = "Ian Campbell <Ian.Campbell@citrix.com>"
        # Forged: no results header, then one from a server we do not trust.
        await mailbox.deliver(mail(ijc, "!blocker 16\n", message_id="<f1@x>", in_reply_to=WEEKLY))
        await mailbox.deliver(mail(ijc, "!blocker 16\n", message_id="<f2@x>", in_reply_to=WEEKLY,
                                   Authentication_Results="evil.example.net; dkim=pass "
                                   "header.d=citrix.com"))
        # A pass for another domain than From's does not count either.
        await mailbox.deliver(mail(ijc, "!blocker 16\n", message_id="<f3@x>", in_reply_to=WEEKLY,
                                   Authentication_Results=f"{AUTHSERV}; dkim=pass header.d=evil.org"))
        for mid in ("<f1@x>", "<f2@x>", "<f3@x>"):
            await handled(bot, mid)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(16)).severity == "nice"
        acks = await smtp_sink.wait(3)
        for a in acks:
            assert a.rcpt_tos == ["ian.campbell@citrix.com"]
            assert ("!blocker 16: Only release managers may use !blocker, and this message is "
                    "not authenticated.") in " ".join(a.msg.get_content().split())
        # The same command, with the trusted server's DKIM pass: obeyed.
        await mailbox.deliver(mail(ijc, "!blocker 16\n", message_id="<ok@citrix.com>",
                                   in_reply_to=WEEKLY, Authentication_Results=TRUSTED))
        await handled(bot, "<ok@citrix.com>")
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(16)).severity == "blocker"
        ok = (await smtp_sink.wait(4))[3]
        assert ok.rcpt_tos == ["ian.campbell@citrix.com"] and "Applied:" in ok.msg.get_content()


async def test_auto_replies_bounces_and_list_noise_are_ignored(bot_factory, mailbox, smtp_sink):
    async with bot_factory(seed=_weekly_sent) as bot:
        await mailbox.deliver(mail("Jan Beulich <JBeulich@suse.com>", "I am away.\n!claim 1\n",
                                   message_id="<away@suse.com>", in_reply_to=WEEKLY,
                                   Auto_Submitted="auto-replied"))
        await mailbox.deliver(mail("MAILER-DAEMON@lists.example.org", "!claim 1\n",
                                   message_id="<bounce@lists>", subject="Undelivered"))
        await mailbox.deliver(mail("Someone <s@example.com>", "!claim 1\n",
                                   message_id="<other-thread@example.com>",
                                   in_reply_to="<not-ours@example.com>", Precedence="list"))
        await mailbox.deliver(mail("Someone <s@example.com>", "!claim 2\n",
                                   message_id="<ours@example.com>", in_reply_to=WEEKLY,
                                   Precedence="bulk"))
        for mid in ("<away@suse.com>", "<bounce@lists>", "<other-thread@example.com>",
                    "<ours@example.com>"):
            await handled(bot, mid)
        await mailbox.wait_all_seen(4)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).owners == []
            assert (await s.get(2)).owners == ["s@example.com"]  # list mail answering the bot's: read
        await smtp_sink.wait(1)
        await barrier(bot, mailbox, smtp_sink, in_reply_to=WEEKLY)
        assert [r.rcpt_tos for r in not_barrier(smtp_sink.received)] == [["s@example.com"]]
