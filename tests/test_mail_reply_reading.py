"""Replies as list members write them: in every layout the bot mails, claims with a reason or
naming several items, top-posted, HTML only, pasting the list back; and every reply the bot
read gets an acknowledgement saying what it understood."""

from __future__ import annotations

import html

import pytest

from hypothesis import given
from hypothesis import strategies as st

from todobot.bot.mail import _plain_body
from todobot.bot.mail.html_text import html_to_text
from todobot.bot.mail.replies import Claim, Command, Original, Propose, parse_reply
from todobot.storage import layouts
from todobot.storage.models import ListItem, ReleaseList

from tests import test_mail_transport
from tests.test_mail_transport import LIST, WEEKLY, mail


@pytest.fixture
async def rig(tmp_path):
    """The mail transport's rig (a real database, a fake SMTP send)."""
    async for r in test_mail_transport.rig.__wrapped__(tmp_path):
        yield r


def quoted(text: str) -> str:
    return "\n".join(f"> {ln}".rstrip() for ln in text.split("\n"))


# ------------------------------------------------------------------ every layout


DEV_UPDATE = """> == Open ==
>
> * #4 Remove the old qemu
>   owner: Ian Jackson
>
> === Testing coverage ===
>
> * #5 Test vTPM
"""


def test_new_bullets_under_a_development_update_heading():
    text = ("> == Open ==\n>\n> * #4 Remove the old qemu\n\n* Nested virt on AMD\n\n"
            "I can take this one.\n\n" + DEV_UPDATE.split("\n", 4)[4] + "\n* Test PVH dom0\n")
    assert parse_reply(text) == [
        Propose("", "nice", "Nested virt on AMD"), Claim(proposal=0, said="I can take this one."),
        Propose("Testing coverage", "nice", "Test PVH dom0")]


def test_a_development_update_section_names_the_severity_and_a_subsection_the_area():
    text = "> == Bugs ==\n>\n> === tools ===\n\n- xl crashes on boot\n\n> == Completed ==\n\n* done\n"
    # nothing new goes under a done section: that is no proposal
    assert parse_reply(text) == [Propose("tools", "blocker", "xl crashes on boot")]


def test_bullets_under_a_quoted_timeline_are_no_items():
    assert parse_reply("> = Timeline =\n>\n> * Feature freeze: 25 March\n\n* RC1: 6 May\n") == []


def test_markdown_checklist_headings_and_items():
    text = ("> ## Blockers\n>\n> ### tools\n>\n> - [ ] **#12** xl crashes (@alice)\n\n"
            "I can take this one.\n\n- a new blocker\n\n> ## Timeline\n\n- [ ] RC2\n")
    assert parse_reply(text) == [Claim(item_id=12, said="I can take this one."),
                                 Propose("tools", "blocker", "a new blocker")]


def test_xen_release_update_underlined_headings_and_items():
    text = ("> OPEN ISSUES AND BLOCKERS\n> ========================\n>\n> Tools\n> -----\n>\n"
            "> #12 [BUG] xl crashes when the config is empty\n>   Information from\n\nmine\n\n"
            "* libxl leaks a fd\n")
    assert parse_reply(text) == [Claim(item_id=12, said="mine"),
                                 Propose("Tools", "blocker", "libxl leaks a fd")]


def _sample() -> ReleaseList:
    return ReleaseList("4.3", [], [
        ListItem(id=4, area="tools", severity="blocker", title="xl crashes", section="Bugs"),
        ListItem(id=7, area="hypervisor", severity="nice", title="PoD sweep", section="Open")])


def test_every_written_layout_reads_its_own_quoted_mail():
    """The bot's own mail in each layout it writes, quoted: a bullet after an item is proposed
    under that item's heading, and a claim after an item takes that item."""
    for name in layouts.WRITERS:
        mail_text = layouts.render(_sample(), layout=name)
        lines = mail_text.rstrip("\n").split("\n")
        at = next(i for i, ln in enumerate(lines) if "xl crashes" in ln)
        text = (quoted("\n".join(lines[:at + 1])) + "\n\nI can take this one.\n\n* a new one\n\n"
                + quoted("\n".join(lines[at + 1:])) + "\n")
        got = parse_reply(text, layout=name)
        assert got[:1] == [Claim(item_id=4, said="I can take this one.")], (name, text)
        assert got[1:] == [Propose("tools", "blocker", "a new one")], (name, text)
        assert parse_reply(text) == got, name  # the layout unknown: every layout is asked


# ------------------------------------------------------------------ claims as people write them


def test_a_claim_followed_by_its_reason():
    text = "> * #4 xl crashes\n\nI can take this one. We have a couple of boxes to test it on.\n"
    assert parse_reply(text) == [Claim(
        item_id=4, said="I can take this one. We have a couple of boxes to test it on.")]
    assert parse_reply("> * #4 xl crashes\n\nI can take this one. But not before May.\n") == []


def test_two_items_named_are_both_claimed():
    assert parse_reply("I'll take #4 and #7\n") == [Claim(item_id=4, said="I'll take #4 and #7"),
                                                   Claim(item_id=7, said="I'll take #4 and #7")]


OUTLOOK = """I can take this one.

Regards,
Jan

-----Original Message-----
From: Ian Campbell
Sent: Monday, August 06, 2012 10:00 AM
To: xen-devel
Subject: Re: 4.2 TODO

Is anybody looking at #4 (xl crashes)?
!claim 9
* not an item
"""

GMAIL = """I can take this one

On Mon, Aug 6, 2012 at 9:58 AM, Ian Campbell <ian.campbell@citrix.com> wrote:
> Is anybody looking at the crash in xl when the config is empty?
> It is #4 in the list.
"""


def test_outlook_top_post_claims_what_the_original_names_and_never_reads_it():
    [claim] = parse_reply(OUTLOOK)
    assert claim.said == "I can take this one." and claim.original.ids == (4,)
    assert "Is anybody looking at #4" in claim.original.text


def test_newer_outlook_separator_starts_the_original_too():
    text = ("mine\n\n________________________________\nFrom: Ian Campbell\nSent: Monday\n"
            "Subject: Re: 4.2 TODO\n\nAnyone for #7?\n!done 7\n")
    assert parse_reply(text) == [Claim(said="mine", original=Original(
        (7,), "From: Ian Campbell\nSent: Monday\nSubject: Re: 4.2 TODO\n\nAnyone for #7?\n!done 7"))]


def test_gmail_top_post_claims_what_the_quoted_original_names():
    [claim] = parse_reply(GMAIL)
    assert claim == Claim(said="I can take this one", original=Original(
        (4,), "Is anybody looking at the crash in xl when the config is empty?\nIt is #4 in the list."))


def test_a_signature_before_the_original_is_the_senders():
    text = "mine\n\n-- \nJan\n\nOn Mon, 6 Aug 2012, Ian wrote:\n> * #10 Bump SONAMES\n"
    assert parse_reply(text) == [Claim(said="mine", original=Original((10,), "* #10 Bump SONAMES"))]


# ------------------------------------------------------------------ HTML


def test_html_blockquotes_are_quoted_text_and_nest():
    text = html_to_text("<div>I can take this one.</div><blockquote><p>tools, blockers:</p>"
                        "<ul><li>#10 Bump SONAMES</li></ul><blockquote>!claim 3<br>x</blockquote>"
                        "</blockquote><p>a<br>b</p><ol><li>one</li><li>two<ul><li>sub</li></ul></li></ol>")
    assert text == ("I can take this one.\n\n> tools, blockers:\n>\n> * #10 Bump SONAMES\n>\n"
                    "> > !claim 3\n> > x\n>\na\nb\n\n* one\n* two\n  * sub\n")


_HTML_LINES = st.sampled_from(["!claim 1", "!done 3", "tools, blockers:", "* new item",
                               "I can take this one.", "mine", "#10 Bump SONAMES", "", "x"])


@given(st.lists(st.tuples(st.booleans(), st.one_of(_HTML_LINES, st.text(max_size=20))), max_size=15),
       st.sampled_from(["div", "p", "li"]))
def test_html_blockquote_content_never_commands(lines, tag):
    """Whatever a reply asks for comes from outside its <blockquote>s."""
    parts = [f"<blockquote><{tag}>{html.escape(t)}</{tag}></blockquote>" if q
             else f"<{tag}>{html.escape(t)}</{tag}>" for q, t in lines]
    own = {" ".join(t.split()) for q, t in lines if not q}
    own_words = set(" ".join(own).split())
    for action in parse_reply(html_to_text("".join(parts))):
        if isinstance(action, Command):
            assert action.line in own, (action, lines)
        else:
            said = action.said if isinstance(action, Claim) else action.text
            assert set(said.split()) <= own_words, (action, lines)


def _html_mail(body: str, message_id: str, from_: str = "a@example.org") -> bytes:
    head = (f"From: {from_}\r\nTo: {LIST}\r\nSubject: Re: Xen 4.2 TODO\r\n"
            f"Message-ID: {message_id}\r\nIn-Reply-To: {WEEKLY}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/html; charset=utf-8\r\n\r\n")
    return (head + body).encode()


async def test_an_html_only_reply_is_read(rig):
    body = ("<html><body><div>I can take this one.</div><br><div class=gmail_quote>"
            "<blockquote><p>tools, nice to have:</p><ul><li>#2 item 2</li></ul></blockquote>"
            "<blockquote>!claim 3</blockquote></div></body></html>")
    from email import message_from_bytes
    from email.policy import default
    assert _plain_body(message_from_bytes(_html_mail(body, "<x@y>"), policy=default)).startswith(
        "I can take this one.\n\n> tools")
    body = ("<div><blockquote><p>tools, nice to have:</p><ul><li>#2 item 2</li></ul></blockquote>"
            "<p>I can take this one.</p><blockquote>!claim 3</blockquote></div>")
    await rig.deliver(_html_mail(body, "<html1@x>"))
    assert (await rig.chat.item(2)).owners == ["a@example.org"]
    assert (await rig.chat.item(3)).owners == []  # quoted: never a command
    [ack] = rig.smtp.to("a@example.org")
    assert "#2 claimed by a@example.org" in ack.get_content()


# ------------------------------------------------------------------ with the database


async def test_pasted_bullets_are_already_there(rig):
    body = "> tools, nice to have:\n\n* #1 item 1\n* item 2\n* a new one\n\nI can take this one.\n"
    await rig.deliver(mail("a@example.org", body, message_id="<paste@x>"))
    async with rig.chat.repo.session("t", write=False) as s:
        titles = [it.title for it in await s.items(await s.release("4.2"))]
    assert titles == ["item 1", "item 2", "item 3", "a new one"]
    ack = " ".join(rig.smtp.to("a@example.org")[0].get_content().split())
    assert "“item 1” is already #1: not added again." in ack
    assert "“item 2” is already #2: not added again." in ack
    assert "Added #4 (tools, nice to have) and claimed it for a@example.org" in ack


async def test_a_claim_after_a_pasted_bullet_takes_the_existing_item(rig):
    await rig.deliver(mail("a@example.org", "> tools, nice to have:\n\n* item 3\n\nmine\n",
                           message_id="<paste2@x>"))
    assert (await rig.chat.item(3)).owners == ["a@example.org"]


async def test_a_top_post_claims_the_one_item_its_original_names(rig):
    await rig.deliver(mail("a@example.org", OUTLOOK.replace("#4 (xl crashes)", "#2"),
                           message_id="<top1@x>"))
    assert (await rig.chat.item(2)).owners == ["a@example.org"]
    assert (await rig.chat.item(1)).owners == []
    # by its title alone
    async with rig.chat.repo.session("t") as s:
        await s.add_item(await s.release("4.2"), area="tools", severity="blocker",
                         title="xl crashes when the config is empty")
    text = ("I can take this one\n\nOn Mon, 6 Aug 2012, Ian wrote:\n> Is anybody looking at\n"
            "> XL crashes when the config is empty? It is a blocker.\n")
    await rig.deliver(mail("b@example.org", text, message_id="<top2@x>"))
    assert (await rig.chat.item(4)).owners == ["b@example.org"]


async def test_an_ambiguous_claim_asks_which_one(rig):
    text = "I can take this one\n\nOn Mon, 6 Aug 2012, Ian wrote:\n> #1 or #2, whichever is easier.\n"
    await rig.deliver(mail("a@example.org", text, message_id="<amb@x>"))
    assert (await rig.chat.item(1)).owners == [] and (await rig.chat.item(2)).owners == []
    ack = " ".join(rig.smtp.to("a@example.org")[0].get_content().split())
    assert "“I can take this one”: which one did you mean: #1 or #2? Say !claim ID." in ack
    # a claim with nothing before it and no original: asked too, never guessed
    await rig.deliver(mail("b@example.org", "I can take this one.\n", message_id="<amb2@x>"))
    ack = " ".join(rig.smtp.to("b@example.org")[0].get_content().split())
    assert "no item comes before it" in ack and "say !claim ID" in ack


async def test_every_reply_read_is_answered_even_when_it_asks_nothing(rig):
    await rig.deliver(mail("a@example.org", "> tools, nice to have:\n> * #1 item 1\n\nThanks, "
                           "looks good.\n", message_id="<talk@x>"))
    [ack] = rig.smtp.to("a@example.org")
    assert " ".join(ack.get_content().split()) == (
        "Nothing I could act on: no commands, claims or new items found outside quoted text.")
    assert await rig.pending() == []


async def test_a_mail_without_text_is_told_so(rig):
    raw = mail("a@example.org", "AAAA\n", message_id="<bin@x>").replace(
        b"Content-Type: text/plain; charset=utf-8", b"Content-Type: application/octet-stream")
    await rig.deliver(raw)
    [ack] = rig.smtp.to("a@example.org")
    assert " ".join(ack.get_content().split()) == (
        "Nothing I could act on: the mail has no text part I could read.")
