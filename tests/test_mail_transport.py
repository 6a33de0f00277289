"""The mail transport against hostile senders, with a fake SMTP send: forged mail is dropped
unanswered, acknowledgements are few, short and well-formed, one bad acknowledgement never
holds up the others, limits count per person across mails, deep MIME is refused."""

from __future__ import annotations

import asyncio
import time
import json
import logging

import aiosmtplib
import pytest

from todobot.bot.mail import MAX_MIME_DEPTH, MailTransport
from todobot.bot.mail.handling import MAX_ACK_CHARS, MAX_ACK_LINES
from tests.harness import Chat

LIST = "xen-devel@lists.example.org"
SERV = "mx.example.org"
WEEKLY = "<weekly-1@example.org>"
IJC = "Ian Campbell <ian.campbell@citrix.com>"
FORGED_IAN = (f"{SERV}; spf=pass smtp.mailfrom=dmarc=pass@evil.example; dkim=none; "
              "dmarc=fail (p=reject) header.from=citrix.com")
TRUSTED_IAN = f"{SERV}; dkim=pass header.d=citrix.com header.s=s1"


class FakeSmtp:
    """Stands in for `outbox.send`: keeps what is sent; `fail` answers each attempt with it."""

    def __init__(self) -> None:
        self.sent: list = []
        self.fail: Exception | None = None
        self.attempts = 0

    async def __call__(self, msg, committing=None) -> None:
        self.attempts += 1
        if self.fail is not None:
            raise self.fail
        if committing is not None:
            await committing()
        self.sent.append(msg)

    def to(self, addr: str) -> list:
        return [m for m in self.sent if str(m["To"]) == addr]


class Rig:
    def __init__(self, chat: Chat, transport: MailTransport, smtp: FakeSmtp) -> None:
        self.chat, self.transport, self.smtp = chat, transport, smtp

    async def deliver(self, raw: bytes) -> bool:
        handled = await self.transport.handle_raw(raw)
        await self.settle()
        return handled

    async def settle(self) -> None:
        """Every acknowledgement the handled mail queued has been tried."""
        while self.transport._tasks:
            await asyncio.gather(*list(self.transport._tasks), return_exceptions=True)

    async def pending(self) -> list:
        async with self.chat.repo.session("test", write=False) as s:
            return await s.kv_prefixed("mail.ack-pending/")

    async def seen(self, message_id: str) -> bool:
        async with self.chat.repo.session("test", write=False) as s:
            return await s.seen_event("mail", message_id)


@pytest.fixture
async def rig(tmp_path):
    entry = {"list": LIST, "from": "todobot <todobot@example.org>", "release": "4.2",
             "authserv_id": SERV, "smtp": {"host": "127.0.0.1", "port": 25, "starttls": False}}
    chat = await Chat.open(tmp_path / "todo.sqlite3", admins=["mail:ian.campbell@citrix.com"],
                           default_release="4.2", mail=[entry], max_adds_per_hour=5)
    async with chat.repo.session("test") as s:
        rel = await s.create_release("4.2")
        for n in range(1, 4):
            await s.add_item(rel, area="tools", severity="nice", title=f"item {n}")
        await s.kv_set(f"mail.sent/{WEEKLY}", "weekly")
    transport = MailTransport(chat.config.mail[0], chat.config, retry_base=0.0)
    smtp = FakeSmtp()
    transport._send = smtp
    await transport.start(chat.dispatcher)
    yield Rig(chat, transport, smtp)
    await transport.stop()
    await chat.close()


def mail(from_: str, body: str, *, message_id: str, subject: str = "Re: Xen 4.2 TODO",
         **headers: str) -> bytes:
    lines = [f"From: {from_}", f"To: {LIST}", f"Subject: {subject}", f"Message-ID: {message_id}",
             f"In-Reply-To: {WEEKLY}", "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()


async def test_a_forged_release_managers_mail_does_nothing_and_gets_no_answer(rig, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    assert await rig.deliver(mail(IJC, "!blocker 1\n!claim 2\n", message_id="<forged@x>",
                                  Authentication_Results=FORGED_IAN))
    assert await rig.seen("<forged@x>")
    assert ((await rig.chat.item(1)).severity, (await rig.chat.item(2)).owners) == ("nice", [])
    assert rig.smtp.sent == [] and await rig.pending() == []
    [line] = [r.getMessage() for r in caplog.records if "<forged@x>" in r.getMessage()]
    assert "forged" in line and "ian.campbell@citrix.com" in line
    # The same mail with the trusted server's pass is obeyed.
    assert await rig.deliver(mail(IJC, "!blocker 1\n", message_id="<real@citrix.com>",
                                  Authentication_Results=TRUSTED_IAN))
    assert (await rig.chat.item(1)).severity == "blocker"
    assert len(rig.smtp.to("ian.campbell@citrix.com")) == 1


async def test_an_unauthenticated_display_name_takes_no_name(rig):
    await rig.deliver(mail('"Keir Fraser" <keir@evil.example>', "!claim 1\n", message_id="<k1@x>"))
    assert (await rig.chat.item(1)).owners == ["keir@evil.example"]
    # The real Keir can still call himself by his name.
    assert "You are now Keir Fraser" in await rig.chat.say(
        "!iam Keir Fraser", "keir", identity="irc:oftc/keir")


async def test_adds_per_hour_count_across_mails_and_transports(rig):
    body = "> tools, nice to have:\n\n* new thing {}\n"
    for n in range(4):
        await rig.deliver(mail("x@evil.example", body.format(n), message_id=f"<a{n}@x>"))
    await rig.deliver(mail("x@evil.example", "!add tools nice fifth\n!add tools nice sixth\n",
                           message_id="<a4@x>"))
    async with rig.chat.repo.session("test", write=False) as s:
        titles = [it.title for it in await s.items(await s.require_release("4.2"))]
    assert [t for t in titles if t.startswith(("new thing", "fifth", "sixth"))] == [
        "new thing 0", "new thing 1", "new thing 2", "new thing 3", "fifth"]
    assert "the limit is 5" in " ".join(rig.smtp.sent[-1].get_content().split())
    # A person's other identities count too.
    async with rig.chat.repo.session("test") as s:
        person = await s.ensure_person("mail:x@evil.example", "x@evil.example")
        await s.link_identity(person, "irc:oftc/x")
    reply = await rig.chat.say("!add tools nice from irc", "x", identity="irc:oftc/x")
    assert "You have added 5 items in the last hour" in reply


async def test_a_hostile_subject_or_name_never_stops_the_acknowledgements(rig):
    evil_subject = "=?utf-8?q?hi=0D=0AX-Evil:_1?="
    await rig.deliver(mail("a@example.org", "!claim 1\n", message_id="<s1@x>", subject=evil_subject))
    await rig.deliver(mail('"=?utf-8?q?B=0D=0AX-Evil:_2?=" <b@example.org>', "!claim 2\n",
                           message_id="<s2@x>"))
    await rig.deliver(mail("c@example.org", "!claim 3\n", message_id="<s3@x>"))
    assert [str(m["To"]) for m in rig.smtp.sent] == ["a@example.org", "b@example.org",
                                                     "c@example.org"]
    for m in rig.smtp.sent:
        assert "X-Evil" not in m and "\r" not in m.as_string().replace("\r\n", "")
    assert str(rig.smtp.sent[0]["Subject"]) == "Re: hi X-Evil: 1"
    assert await rig.pending() == []


async def test_an_acknowledgement_that_cannot_be_built_is_dropped_and_logged(rig, caplog):
    bad = {"to": "a@b.example\r\nBcc: c@d.example", "subject": "s", "in_reply_to": "<old@x>",
           "references": [], "body": "b\n", "message_id": "<ack-old@x>"}
    async with rig.chat.repo.session("test") as s:  # no To: header takes that address
        await s.kv_set("mail.ack-pending/<old@x>", json.dumps(bad))
        await s.kv_set("mail.ack-pending/<older@x>", '{"to": "a@b", "name": "x"}')  # unreadable
    await rig.deliver(mail("c@example.org", "!claim 3\n", message_id="<after@x>"))
    assert [str(m["To"]) for m in rig.smtp.sent] == ["c@example.org"]
    assert await rig.pending() == []
    dropped = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(dropped) == 2 and all("cannot be built" in m for m in dropped)


async def test_a_failing_acknowledgement_is_dropped_after_its_rounds(rig, caplog):
    rig.smtp.fail = aiosmtplib.SMTPServerDisconnected("gone")
    await rig.deliver(mail("a@example.org", "!claim 1\n", message_id="<f1@x>"))
    assert len(await rig.pending()) == 1  # kept: a passing outage
    for _ in range(4):
        await rig.transport._flush_pending()
    assert await rig.pending() == [] and rig.smtp.attempts == 15
    assert any("after 15 attempts" in r.getMessage() for r in caplog.records)
    # Refused for good (5xx): dropped at once.
    rig.smtp.fail = aiosmtplib.SMTPResponseException(550, "no such user")
    await rig.deliver(mail("b@example.org", "!claim 2\n", message_id="<f2@x>"))
    assert await rig.pending() == [] and rig.smtp.attempts == 16


async def test_acknowledgements_to_one_address_are_limited_per_hour(rig, caplog):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    for n in range(15):  # forged "from" the victim: at most acks_per_hour reach them
        await rig.deliver(mail("victim@victim.example", "!frob\n" * 50, message_id=f"<v{n}@x>"))
    assert len(rig.smtp.to("victim@victim.example")) == 5
    assert sum("5 sent in the last hour" in r.getMessage() for r in caplog.records) == 10
    await rig.deliver(mail("other@example.org", "!claim 1\n", message_id="<o@x>"))
    assert len(rig.smtp.to("other@example.org")) == 1  # per address


async def test_private_mails_to_everyone_together_are_limited_per_hour(rig, caplog):
    """Many senders at once (or one forging many addresses) get at most
    private_mails_per_hour answers in all, said once in the log."""
    rig.transport.cfg = rig.transport.cfg.model_copy(update={"private_mails_per_hour": 3})
    for n in range(8):
        await rig.deliver(mail(f"s{n}@example.org", "!frob\n", message_id=f"<s{n}@x>"))
    assert len(rig.smtp.sent) == 3
    assert sum("private_mails_per_hour" in r.getMessage() for r in caplog.records) == 1
    # Nothing counted while refused: an hour later the limit frees again.
    rig.chat.repo.clock = lambda: time.time() + 3601
    await rig.deliver(mail("late@example.org", "!frob\n", message_id="<late@x>"))
    assert len(rig.smtp.to("late@example.org")) == 1


async def test_an_acknowledgement_is_a_short_summary_never_the_senders_text(rig):
    lines = [f"!frob {'attacker text ' * 20}{n}" for n in range(50)]
    await rig.deliver(mail("v@victim.example", "\n".join(lines) + "\n", message_id="<long@x>"))
    [ack] = rig.smtp.sent
    body = ack.get_content()
    assert len(body.splitlines()) <= MAX_ACK_LINES + 1 and len(body) <= MAX_ACK_CHARS + 100
    assert " ".join(body.split()).startswith(
        "Only the first 20 items, claims and commands of a mail are applied; 30 more were ignored.")
    flat = " ".join(body.split())
    assert not any(line in flat for line in lines) and "more lines left out" in body


async def test_indented_command_lines_are_prose(rig):
    await rig.deliver(mail("a@example.org", "As I said:\n\n    !claim 1\n\n!claim 2\n",
                           message_id="<ind@x>"))
    assert (await rig.chat.item(1)).owners == [] and (await rig.chat.item(2)).owners == [
        "a@example.org"]


def _nested(depth: int) -> bytes:
    body = "Content-Type: text/plain\r\n\r\n!claim 1\r\n"
    for i in range(depth):
        body = (f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n{body}\r\n'
                f"--b{i}--\r\n")
    return (f"From: a@example.org\r\nMessage-ID: <deep{depth}@x>\r\nIn-Reply-To: {WEEKLY}\r\n"
            f"MIME-Version: 1.0\r\n{body}").encode()


@pytest.mark.parametrize("depth", [MAX_MIME_DEPTH + 1, 2000])
async def test_deeply_nested_mime_is_refused_with_one_line_and_handled(rig, caplog, depth):
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    assert await rig.deliver(_nested(depth)) is True  # handled: the inbox flags it seen
    assert await rig.seen(f"<deep{depth}@x>")
    assert (await rig.chat.item(1)).owners == [] and rig.smtp.sent == []
    [line] = [r for r in caplog.records if f"<deep{depth}@x>" in r.getMessage()]
    assert "nested deeper" in line.getMessage() and line.exc_info is None


async def test_mime_within_the_depth_limit_is_read(rig):
    await rig.deliver(_nested(MAX_MIME_DEPTH - 1))
    assert (await rig.chat.item(1)).owners == ["a@example.org"]


async def test_a_list_mail_of_unproven_author_gets_no_acknowledgement(rig, caplog):
    """Through a list that munges From, an author the list did not vouch for is the list
    itself: it may act with anyone's rights, but a "private" answer would reach every member."""
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    munged = f'"Jan Beulich via Xen-devel" <{LIST}>'
    await rig.deliver(mail(munged, "!status 1 patch posted\n", message_id="<l1@x>",
                           Reply_To="Jan Beulich <jbeulich@suse.com>",
                           List_Id="<xen-devel.lists.example.org>"))
    assert (await rig.chat.item(1)).progress == "patch posted"
    assert rig.smtp.sent == [] and await rig.pending() == []
    assert any("it is from the list itself" in r.getMessage() for r in caplog.records)


async def test_a_change_notice_is_one_private_mail_within_the_hourly_bound(rig):
    from todobot.commands.messages import text
    assert await rig.transport.notify("mail:ian.campbell@citrix.com", text("#1 done by bob"))
    [msg] = rig.smtp.to("ian.campbell@citrix.com")
    assert msg["Auto-Submitted"] == "auto-generated"
    assert "#1 done by bob" in msg.get_content()
    for _ in range(10):  # the rest of the hour's share, then nothing
        await rig.transport.notify("mail:ian.campbell@citrix.com", text("#1 done by bob"))
    assert len(rig.smtp.to("ian.campbell@citrix.com")) == 5
    # Acknowledgements and notices share the bound: this hour's are used up.
    await rig.deliver(mail(IJC, "!claim 2\n", message_id="<n1@x>",
                           Authentication_Results=TRUSTED_IAN))
    assert len(rig.smtp.to("ian.campbell@citrix.com")) == 5


async def test_a_change_notice_never_goes_to_the_list_or_a_header(rig):
    from todobot.commands.messages import text
    assert not await rig.transport.notify(f"mail:{LIST.upper()}", text("x"))
    assert not await rig.transport.notify("mail:todobot@example.org", text("x"))
    assert not await rig.transport.notify("irc:testnet/ian", text("x"))
    assert rig.smtp.sent == []
    # A value that would add a header line is refused, never sent with it.
    await rig.transport.notify("mail:a@b.example\r\nBcc: all@example.org", text("x"))
    assert all("Bcc" not in m for m in rig.smtp.sent)


async def test_the_bots_own_mail_back_from_the_list_unproven_is_never_read(rig, caplog):
    """Through a list whose server vouches for nobody, the bot's own mail comes back as the
    list's: known by its Message-ID, it is not read as commands, however it is addressed."""
    caplog.set_level(logging.INFO, logger="todobot.bot.mail")
    own = "<weekly-2@example.org>"
    async with rig.chat.repo.session("test") as s:
        await s.kv_set(f"mail.sent/{own}", "weekly")
    munged = f'"todobot via Xen-devel" <{LIST}>'
    await rig.deliver(mail(munged, "!status 1 from our own mail\n", message_id=own,
                           Reply_To="todobot <todobot@example.org>",
                           List_Id="<xen-devel.lists.example.org>"))
    assert (await rig.chat.item(1)).progress != "from our own mail"
    assert any("our own mail, back from the list" in r.getMessage() for r in caplog.records)


async def test_a_mail_handled_before_is_not_applied_again(rig):
    """The inbox fetches a mail again when it could not flag it seen (a crash in between):
    its Message-ID, recorded with its effects, makes the second time a no-op."""
    raw = mail(IJC, "!status 1 once\n", message_id="<once@x>",
               Authentication_Results=TRUSTED_IAN)
    assert await rig.deliver(raw)
    async with rig.chat.repo.session("test") as s:
        await s.update(await s.get(1), progress="changed since")
    assert await rig.deliver(raw)
    assert (await rig.chat.item(1)).progress == "changed since"
    assert len(rig.smtp.to("ian.campbell@citrix.com")) == 1
