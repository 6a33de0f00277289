"""The weekly mail and the replies to it through a real Mailman 3 list (Postfix, Dovecot):
From munged for DMARC, a subject prefix and a footer. The seed thread's replies sent through
the list give the same items and owners as sent directly (test_replies.py); the list's
rewriting names their authors only when the list's own server vouched for them."""

from __future__ import annotations

import asyncio
import smtplib
import time

import pytest

from todobot.commands.messages import text
from todobot.storage.digest_data import collect

from tests.servers.mailman import FOOTER

from .conftest import MEMBERS, eml, list_bot, mail, wait_mail
from .test_replies import handled, items_by_title

pytestmark = pytest.mark.integration

GEORGE = "george.dunlap@eu.citrix.com"
JAN = "jbeulich@suse.com"
IJC = "ian.campbell@citrix.com"


def post(servers, sender: str, raw: bytes, to: str) -> None:
    """A member sends to the list through its receiving server (Postfix "in")."""
    with smtplib.SMTP("127.0.0.1", servers.smtp_in, timeout=30) as smtp:
        smtp.sendmail(sender, [to], raw)


async def weekly_through_list(bot, address: str, servers) -> str:
    """Post the weekly mail; returns its Message-ID once a member got it from the list."""
    async with bot.repo.session("test", write=False) as s:
        data = await collect(s, await s.require_release("4.2"), since=time.time() - 3600)
    await bot.transport.post_digest(address, data)
    got = await wait_mail(servers, JAN, lambda m: "TODO" in str(m["Subject"])
                          and "todobot" in str(m["From"]) and address in str(m["From"]))
    return str(got["Message-ID"])


async def test_the_seed_threads_replies_through_the_list_give_the_same_items_and_owners(
        mailing_list, tmp_path):
    servers = mailing_list
    async with list_bot(servers, "xen-devel", tmp_path=tmp_path) as (bot, address):
        before = await items_by_title(bot)
        weekly_id = await weekly_through_list(bot, address, servers)
        weekly = await wait_mail(servers, JAN, lambda m: str(m["Message-ID"]) == weekly_id)
        # What the list did to it: From munged, the bot in Reply-To, prefix, List-Id, footer.
        assert str(weekly["From"]) == f"todobot via Xen-devel <{address}>"
        assert "todobot-xen-devel@example.org" in str(weekly["Reply-To"])
        assert str(weekly["Subject"]).startswith("[Xen-devel] ")
        assert str(weekly["List-Id"]) == "<xen-devel.lists.example.org>"
        assert weekly.get_content().rstrip().endswith(FOOTER.rstrip())

        replies = [("george-2012-08-06.eml", GEORGE, "<george-20120806161700@eu.citrix.com>"),
                   ("george-2012-08-06-correction.eml", GEORGE,
                    "<george-20120806161800@eu.citrix.com>"),
                   ("jan-2012-08-07.eml", JAN, "<5020ED8B0200007800093A4E@nat28.tlf.novell.com>"),
                   ("jan-2012-08-13.eml", JAN, "<5028C2F3020000780009444A@nat28.tlf.novell.com>")]
        for name, sender, _ in replies:
            raw = eml(name, in_reply_to=weekly_id, references=weekly_id, to=address, cc="",
                      authentication_results="")
            await asyncio.to_thread(post, servers, sender, raw, address)
        for _, _, mid in replies:
            await handled(bot, mid, timeout=90)

        # The members got the replies through the list too, rewritten.
        george = await wait_mail(servers, JAN, lambda m: str(m["Message-ID"]) == replies[0][2])
        assert str(george["From"]) == f"George Dunlap via Xen-devel <{address}>"
        assert GEORGE in str(george["Reply-To"]).lower()

        # The same as test_replies.py's direct delivery.
        after = await items_by_title(bot)
        new = {t: it for t, it in after.items() if t not in before}
        assert len(new) == 5
        pod = next(it for t, it in new.items() if "p2m_pod_sweep" in t)
        dom0 = next(it for t, it in new.items() if "domain 0 attempts" in t)
        jan = [it for t, it in new.items() if it not in (pod, dom0)]
        assert (pod.area, pod.severity, pod.tags, pod.owners) == ("hypervisor", "nice", ["BUG(?)"],
                                                                  ["George Dunlap"])
        assert (dom0.area, dom0.severity, dom0.owners) == ("tools", "nice", [])
        assert sorted(it.title for it in jan) == [
            "address PoD problems with early host side accesses to guest address space",
            "fix S3 regression(s?) reported by Ben Guthro",
            "fix high change rate to CMOS RTC periodic interrupt causing guest wall clock "
            "time to lag"]
        assert all((it.area, it.severity, it.owners) == ("hypervisor", "nice", []) for it in jan)
        async with bot.repo.session("test", write=False) as s:
            hist = await s.history(pod.id)
        assert {c.actor for c in hist} == {f"mail:{GEORGE} via {replies[0][2]}"}

        # George's acknowledgement reached his own mailbox, privately, not through the list.
        ack = await wait_mail(servers, GEORGE, lambda m: str(m["In-Reply-To"]) == replies[0][2])
        assert ack["List-Id"] is None and ack["Auto-Submitted"] == "auto-replied"
        assert "and claimed it for George Dunlap" in " ".join(ack.get_content().split())
        # The bot's own weekly mail came back through the list and was left alone.
        await handled(bot, weekly_id)


async def _blocker(servers, address: str, message_id: str, in_reply_to: str) -> None:
    raw = mail(f"{MEMBERS[IJC]} <{IJC}>", "!blocker 16\n", message_id=message_id,
               in_reply_to=in_reply_to).replace(b"To: xen-devel@lists.example.org",
                                                f"To: {address}".encode())
    await asyncio.to_thread(post, servers, IJC, raw, address)


async def test_a_release_manager_through_the_list_is_obeyed_only_when_the_list_vouched(
        mailing_list, tmp_path):
    servers = mailing_list
    # Without the list's server configured, the list's rewriting hides who wrote: the mail is
    # the list's, and the list has anyone's rights.
    async with list_bot(servers, "xen-devel-plain", list_authserv_id=None,
                        tmp_path=tmp_path) as (bot, address):
        weekly_id = await weekly_through_list(bot, address, servers)
        await _blocker(servers, address, "<ijc-1@citrix.com>", weekly_id)
        await handled(bot, "<ijc-1@citrix.com>", timeout=90)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(16)).severity == "nice"
    async with list_bot(servers, "xen-devel-vouched", tmp_path=tmp_path) as (bot, address):
        weekly_id = await weekly_through_list(bot, address, servers)
        await _blocker(servers, address, "<ijc-2@citrix.com>", weekly_id)
        await handled(bot, "<ijc-2@citrix.com>", timeout=90)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(16)).severity == "blocker"
        ack = await wait_mail(servers, IJC, lambda m: str(m["In-Reply-To"]) == "<ijc-2@citrix.com>")
        assert "Applied:" in ack.get_content()
        # The bot's own mail comes back through the list with its author vouched for, in the
        # thread: it is still never read as commands.
        await bot.transport.post(address, text("!claim 1"))
        own = await wait_mail(servers, JAN, lambda m: "!claim 1" in m.get_content()
                              and weekly_id in str(m["References"]))
        await handled(bot, str(own["Message-ID"]), timeout=90)
        async with bot.repo.session("test", write=False) as s:
            assert (await s.get(1)).owners == []
