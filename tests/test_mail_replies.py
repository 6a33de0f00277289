"""What a reply on the list means: the seed thread's real replies, then the rules one by one."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest

from todobot.bot.mail.replies import Claim, Command, Propose, parse_reply
from todobot.commands.proposals import read_bullet

DATA = Path(__file__).parent / "data" / "mail"


def body(name: str) -> str:
    msg = message_from_bytes((DATA / name).read_bytes(), policy=default)
    return msg.get_body(preferencelist=("plain",)).get_content()


def test_george_proposes_two_and_claims_the_first_only():
    actions = parse_reply(body("george-2012-08-06.eml"))
    assert [type(a) for a in actions] == [Propose, Claim, Propose]
    pod, claim, dom0 = actions
    assert (pod.area, pod.severity) == ("hypervisor", "nice")
    assert pod.text.startswith("[BUG(?)] Under certain conditions, the p2m_pod_sweep code")
    assert pod.text.endswith("more testing.)")
    assert claim == Claim(proposal=0, said="I can take this one.")
    assert (dom0.area, dom0.severity) == ("tools", "nice")
    assert "domain 0 attempts to access" in dom0.text
    # "do you want to take this one?" and "I can do it, but ..." are not claims; " -George" is
    # a sign-off.


def test_jan_proposes_three_hypervisor_items():
    actions = parse_reply(body("jan-2012-08-13.eml"))
    assert [(a.area, a.severity) for a in actions] == [("hypervisor", "nice")] * 3
    assert [a.text[:29] for a in actions] == ["fix S3 regression(s?) reporte",
                                              "address PoD problems with ear",
                                              "fix high change rate to CMOS "]
    # continuation lines are part of their bullet; the closing remark is not an item
    assert actions[1].text.endswith("which I'll expect to get to today)")


@pytest.mark.parametrize("name", ["george-2012-08-06-correction.eml", "jan-2012-08-07.eml"])
def test_discussion_means_nothing(name):
    # Jan's reply quotes George's "I can take this one." and both quote headings and items.
    assert parse_reply(body(name)) == []


def test_bullet_fields_as_the_mail_format_reads_them():
    a = parse_reply(body("jan-2012-08-13.eml"))
    tags, title, details, progress, links = read_bullet("hypervisor", "nice", a[1].text)
    assert title == "address PoD problems with early host side accesses to guest address space"
    assert progress.startswith("draft patch for 4.0.x exists") and details == ""
    g = parse_reply(body("george-2012-08-06.eml"))
    tags, title, details, progress, links = read_bullet("hypervisor", "nice", g[0].text)
    assert tags == ["BUG(?)"]
    assert title == ("Under certain conditions, the p2m_pod_sweep code will stop halfway through "
                     "searching, causing a guest to crash even if there was zeroed memory available.")
    assert progress == ""  # a parenthesised sentence is an aside, kept in the details
    assert details.startswith("This is NOT a regression") and details.endswith("more testing.)")


def test_claim_under_a_quoted_item_by_id_or_title():
    text = ("On Mon, 6 Aug 2012, Ian Campbell wrote:\n> tools, blockers:\n>\n"
            ">     * #10 Bump library SONAMES as necessary.\n>       <20502.39440@mariner>\n\n"
            "I'll take it.\n\n> * [CHECK] Confirm that migration from Xen 4.1 -> 4.2\n"
            ">   works.\n\nmine\n")
    assert parse_reply(text) == [
        Claim(item_id=10, said="I'll take it."),
        Claim(quoted="[CHECK] Confirm that migration from Xen 4.1 -> 4.2 works.", said="mine")]


def test_claim_needs_something_just_before_it():
    # Reported as naming nothing (the acknowledgement asks which item), never guessed.
    assert parse_reply("I can take this one.\n") == [Claim(said="I can take this one.")]
    # quoted prose after the item: the claim is no longer "just after" the item
    assert parse_reply("> * #10 Bump SONAMES\n>\n> I think this is done?\n\nmine\n") == [
        Claim(said="mine")]
    # a remark between the item and the claim
    assert parse_reply("> * #10 Bump SONAMES\n\nHmm, not sure.\n\nmine\n") == [Claim(said="mine")]


def test_commands_in_unquoted_text_only():
    text = ("!status 8 patch posted\n> !done 9\nSome text\n!claim 12\n\n-- \n!done 12 sig\n")
    assert parse_reply(text) == [Command("!status 8 patch posted"), Command("!claim 12")]
    assert parse_reply("!status 8 x", prefix="?") == []


def test_sign_off_and_attribution_are_not_read():
    text = ("On Mon, Aug 6, 2012 at 5:17 PM, George Dunlap\n<George.Dunlap@eu.citrix.com> wrote:\n"
            "> hypervisor, nice to have:\n\n* a new item\n\n -George\n\n!claim 3\n")
    assert parse_reply(text) == [Propose("hypervisor", "nice", "a new item")]


def test_bullets_without_a_quoted_heading_are_prose():
    assert parse_reply("Things I noticed:\n\n* one\n* two\n") == []


def test_blocker_heading_and_dash_bullets():
    assert parse_reply("> tools, blockers:\n\n- xl fails\n  on boot\n- another\n") == [
        Propose("tools", "blocker", "xl fails on boot"), Propose("tools", "blocker", "another")]


def test_claim_with_an_id_needs_no_context():
    assert parse_reply("I can take #12\n") == [Claim(item_id=12, said="I can take #12")]
