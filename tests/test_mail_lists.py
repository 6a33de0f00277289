"""The author of a mail the list rewrote (From munged for DMARC) is recognised only when the
list's own receiving server vouched for them, below our server's pass for the list."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

from todobot.bot.mail.lists import list_author, munged_sender
from todobot.bot.mail.replies import Claim, Command, parse_reply

LIST = "xen-devel@lists.example.org"
MX = "mx.example.org"
AT_LIST = "lists.example.org"
OURS = f"Authentication-Results: {MX}; dkim=pass header.d=lists.example.org"
THEIRS = f"Authentication-Results: {AT_LIST}; dmarc=pass header.from=eu.citrix.com"
FROM = "From: George Dunlap via Xen-devel <xen-devel@lists.example.org>"
LIST_ID = "List-Id: Xen developer discussion <xen-devel.lists.example.org>"
REPLY_TO = "Reply-To: George Dunlap <george.dunlap@eu.citrix.com>"
DEFAULT = (OURS, "Received: from x by y", THEIRS, FROM, LIST_ID, REPLY_TO)


def msg(*headers: str):
    raw = "\r\n".join([*headers, "Message-ID: <a@b>", "Subject: [Xen-devel] Re: TODO"]) + "\r\n\r\nhi\r\n"
    return message_from_bytes(raw.encode(), policy=default)


def author(*headers: str, list_authserv_id: str | None = AT_LIST):
    return list_author(msg(*headers), list_address=LIST, authserv_id=MX,
                       list_authserv_id=list_authserv_id)


def test_the_author_the_list_vouched_for_is_recognised_with_their_name():
    assert author(*DEFAULT) == ("George Dunlap", "george.dunlap@eu.citrix.com")
    s = munged_sender(msg(*DEFAULT), list_address=LIST, authserv_id=MX, list_authserv_id=AT_LIST)
    assert (s.identity, s.display_name, s.authenticated) == (
        "mail:george.dunlap@eu.citrix.com", "George Dunlap", True)


def test_the_author_may_be_in_cc_or_x_original_from():
    base = [h for h in DEFAULT if h != REPLY_TO]
    assert author(*base, "Cc: George Dunlap <george.dunlap@eu.citrix.com>")[1] == \
        "george.dunlap@eu.citrix.com"
    assert author(*base, "X-Original-From: george.dunlap@eu.citrix.com")[1] == \
        "george.dunlap@eu.citrix.com"


def test_without_the_lists_server_configured_nobody_is_recognised():
    assert author(*DEFAULT, list_authserv_id=None) is None


def test_a_list_mail_of_unproven_author_is_the_lists_with_anyones_rights_and_no_name():
    s = munged_sender(msg(*DEFAULT), list_address=LIST, authserv_id=MX, list_authserv_id=None)
    assert (s.identity, s.display_name, s.nick, s.authenticated) == (
        f"mail:{LIST}", None, LIST, False)


def test_a_mail_not_from_the_list_is_not_the_lists_business():
    other = [h if h != FROM else "From: George Dunlap <george.dunlap@eu.citrix.com>" for h in DEFAULT]
    assert author(*other) is None
    assert munged_sender(msg(*other), list_address=LIST, authserv_id=MX,
                         list_authserv_id=AT_LIST) is None


def test_another_lists_id_or_none_proves_nothing():
    assert author(*[h for h in DEFAULT if h != LIST_ID]) is None
    assert author(*[h if h != LIST_ID else "List-Id: <xen-users.lists.example.org>"
                    for h in DEFAULT]) is None


def test_our_server_must_pass_the_lists_own_mail():
    # Sent to us directly with the list's From: not signed by the list's domain.
    unsigned = f"Authentication-Results: {MX}; dkim=pass header.d=eu.citrix.com"
    assert author(*[h if h != OURS else unsigned for h in DEFAULT]) is None
    assert author(*[h for h in DEFAULT if h != OURS]) is None


def test_the_lists_results_must_come_right_below_ours():
    # A poster's own "lists.example.org" header below someone else's proves nothing ...
    between = "Authentication-Results: relay.example.net; dkim=pass header.d=eu.citrix.com"
    assert author(OURS, between, *DEFAULT[1:]) is None
    # ... nor does one above ours, nor none at all.
    assert author(THEIRS, OURS, *DEFAULT[3:]) is None
    assert author(*[h for h in DEFAULT if h != THEIRS]) is None


def test_the_lists_results_must_pass_the_authors_domain():
    suse = f"Authentication-Results: {AT_LIST}; dmarc=pass header.from=suse.com"
    assert author(*[h if h != THEIRS else suse for h in DEFAULT]) is None
    failed = f"Authentication-Results: {AT_LIST}; dmarc=fail header.from=eu.citrix.com"
    assert author(*[h if h != THEIRS else failed for h in DEFAULT]) is None


def test_two_addresses_of_the_vouched_domain_are_ambiguous():
    # Mailman appends the real From to the poster's own Reply-To: a colleague named there
    # (or in Cc) could be either.
    two = "Reply-To: Keir <keir@eu.citrix.com>, George Dunlap <george.dunlap@eu.citrix.com>"
    assert author(*[h if h != REPLY_TO else two for h in DEFAULT]) is None
    assert author(*DEFAULT, "Cc: keir@eu.citrix.com") is None
    # Another domain's address in Cc is nobody the list vouched for: no ambiguity.
    assert author(*DEFAULT, "Cc: jbeulich@suse.com")[1] == "george.dunlap@eu.citrix.com"


FOOTER = ("_______________________________________________\n"
          "Xen-devel mailing list\n"
          "* I can take this one\n"
          "!close 1\n")


def test_the_lists_footer_is_never_read_as_items_or_commands():
    body = ("> hypervisor, nice to have:\n\n* a new item\n\nI can take this one\n" + FOOTER)
    actions = parse_reply(body)
    assert [type(a) for a in actions][-1] is Claim and not any(
        isinstance(a, Command) for a in actions)
    assert len(actions) == 2  # the proposal and its claim: the footer's lines add nothing
