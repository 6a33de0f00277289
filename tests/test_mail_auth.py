"""Who sent a mail and whether that is proven; which mails are never read nor answered."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import pytest

from todobot.bot.mail.auth import Verdict, authenticated, automated, sender_of, verdict

SERV = "mx.example.org"


def msg(*headers: str, body: str = "hi\n"):
    head = ["From: George Dunlap <George.Dunlap@eu.citrix.com>", "Message-ID: <a@b>", *headers]
    return message_from_bytes(("\r\n".join(head) + "\r\n\r\n" + body).encode(), policy=default)


def test_identity_is_the_lowercased_address_named_from_the_display_name_once_proven():
    s = sender_of(msg(f"Authentication-Results: {SERV}; dkim=pass header.d=eu.citrix.com"),
                  authserv_id=SERV)
    assert (s.identity, s.display_name, s.nick, s.authenticated) == (
        "mail:george.dunlap@eu.citrix.com", "George Dunlap", "George Dunlap", True)


def test_a_proven_display_name_is_cleaned_by_the_one_rule():
    raw = ("From: =?utf-8?q?George=E2=80=AE_Dun=E2=80=8Blap?= <george.dunlap@eu.citrix.com>\r\n"
           f"Authentication-Results: {SERV}; dkim=pass header.d=eu.citrix.com\r\n\r\nhi\r\n")
    s = sender_of(message_from_bytes(raw.encode(), policy=default), authserv_id=SERV)
    assert (s.display_name, s.authenticated) == ("George Dunlap", True)


def test_an_unauthenticated_sender_is_known_by_the_address_never_the_display_name():
    # Anyone can write "Keir Fraser" in a From: the person made for it must not take his name.
    s = sender_of(msg(), authserv_id=SERV)
    assert (s.identity, s.display_name, s.nick, s.authenticated) == (
        "mail:george.dunlap@eu.citrix.com", None, "george.dunlap@eu.citrix.com", False)


@pytest.mark.parametrize("results,ok", [
    (f"{SERV}; dkim=pass header.d=eu.citrix.com header.s=s1", True),
    (f"{SERV}; dkim=pass (good signature) header.i=@eu.citrix.com", True),
    (f"{SERV}; spf=pass smtp.mailfrom=x; dmarc=pass (p=none) header.from=eu.citrix.com", True),
    (f"{SERV} 1; dkim=pass header.d=eu.citrix.com", True),  # with a version
    ("MX.Example.Org; dkim=pass header.d=EU.citrix.com", True),  # case-insensitive
    (f"{SERV}; dkim=fail header.d=eu.citrix.com", False),
    (f"{SERV}; dkim=pass header.d=citrix.com.evil.org", False),  # another domain's signature
    (f"{SERV}; dkim=pass header.d=evil.org", False),
    (f"{SERV}; dmarc=pass header.from=evil.org", False),
    ("evil.example.net; dkim=pass header.d=eu.citrix.com", False),  # a server we do not trust
    (f"evil.example.net; x=y (dkim=pass header.d=eu.citrix.com) {SERV}", False),
    (f"{SERV}; spf=pass smtp.mailfrom=eu.citrix.com", False),  # SPF is not about From
])
def test_only_the_trusted_servers_dkim_or_dmarc_pass_counts(results, ok):
    m = msg(f"Authentication-Results: {results}")
    assert authenticated(m, SERV, "george.dunlap@eu.citrix.com") is ok


# Hostile headers: each one passed the old regular expressions or an easy mistake.
FORGED_IAN = (f"{SERV}; spf=pass smtp.mailfrom=dmarc=pass@evil.example; dkim=none; "
              "dmarc=fail (p=reject) header.from=citrix.com")


@pytest.mark.parametrize("results,expected", [
    (FORGED_IAN, Verdict.FAIL),
    (f"{SERV}; spf=pass smtp.mailfrom=dmarc=pass@evil.example; dkim=none", Verdict.NONE),
    (f"{SERV}; spf=pass smtp.mailfrom=x@evil.example (dkim=pass header.d=citrix.com)", Verdict.NONE),
    (f'{SERV}; dkim=pass header.d=evil.example header.i="x header.d=citrix.com"', Verdict.NONE),
    (f'{SERV}; dkim=pass header.i="x header.d=citrix.com" header.d=evil.example', Verdict.NONE),
    (f'{SERV}; dkim=pass header.d=evil.example header.b="header.d=citrix.com"', Verdict.NONE),
    (f"{SERV}; dkim=pass header.d=evil.example header.d=citrix.com", Verdict.NONE),  # given twice
    (f"{SERV}; dkim=pass header.d=citrix.com header.d=evil.example", Verdict.NONE),
    (f'{SERV}; dkim=pass reason="x; dmarc=pass header.from=citrix.com" header.d=evil.example',
     Verdict.NONE),
    (f"{SERV}; x-dkim=pass header.d=citrix.com", Verdict.NONE),  # another method's result
    (f"{SERV}; dmarc=pass", Verdict.NONE),  # about which domain?
    (f"{SERV}; dkim=pass header.d=com", Verdict.NONE),  # a top-level domain aligns with nothing
    (f"{SERV}; dkim=pass header.d=evilcitrix.com", Verdict.NONE),
    (f"{SERV}; dkim=pass header.d=eu.citrix.com", Verdict.PASS),  # relaxed: a subdomain
    (f"{SERV}; spf=fail smtp.mailfrom=citrix.com", Verdict.FAIL),
    (f"{SERV}; spf=fail smtp.mailfrom=citrix.com; dkim=pass header.d=citrix.com", Verdict.PASS),
    (f"{SERV}; spf=softfail smtp.mailfrom=citrix.com", Verdict.NONE),
    (f"{SERV}; dmarc=fail header.from=citrix.com; dkim=pass header.d=citrix.com", Verdict.FAIL),
    (f"{SERV}; dmarc=fail header.from=evil.example", Verdict.NONE),  # about another domain
    (f"{SERV}; ;; === garbage", Verdict.NONE),  # unparsable: proves nothing
])
def test_hostile_results_headers_prove_nothing(results, expected):
    m = msg(f"Authentication-Results: {results}")
    assert verdict(m, SERV, "ian.campbell@citrix.com") is expected


def test_a_forged_release_managers_mail_is_forged_not_authenticated():
    # "dmarc=pass" inside the smtp.mailfrom the sender chose is no DMARC result.
    m = message_from_bytes(("From: Ian Campbell <ian.campbell@citrix.com>\r\n"
                            f"Authentication-Results: {FORGED_IAN}\r\n\r\n!blocker 16\r\n").encode(),
                           policy=default)
    assert verdict(m, SERV, "ian.campbell@citrix.com") is Verdict.FAIL
    s = sender_of(m, authserv_id=SERV)
    assert (s.authenticated, s.display_name) == (False, None)


@pytest.mark.parametrize(("signer", "sender", "expected"), [
    ("eu.citrix.com", "ian.campbell@citrix.com", Verdict.PASS),
    ("citrix.com", "george.dunlap@eu.citrix.com", Verdict.PASS),
    ("a.eu.citrix.com", "george.dunlap@b.citrix.com", Verdict.PASS),  # one organization
    ("co.uk", "victim@example.co.uk", Verdict.NONE),  # a public suffix signs for nobody
    ("attacker.example.co.uk", "victim@example.co.uk", Verdict.PASS),
    ("attacker.co.uk", "victim@example.co.uk", Verdict.NONE),
    # Private suffixes: anyone registers a name below them, so a neighbour is no parent.
    ("attacker.duckdns.org", "victim@victim.duckdns.org", Verdict.NONE),
    ("attacker.duckdns.org", "admin@duckdns.org", Verdict.NONE),
    ("attacker.github.io", "victim@victim.github.io", Verdict.NONE),
])
def test_alignment_is_by_organizational_domain(signer, sender, expected):
    m = msg(f"Authentication-Results: {SERV}; dkim=pass header.d={signer}")
    assert verdict(m, SERV, sender) is expected


def test_a_subdomains_signature_aligns_with_its_parent():
    m = msg(f"Authentication-Results: {SERV}; dkim=pass header.d=eu.citrix.com")
    assert verdict(m, SERV, "ian.campbell@citrix.com") is Verdict.PASS


def test_only_the_topmost_results_of_the_trusted_server_count():
    ours = f"Authentication-Results: {SERV}; dkim=pass header.d=eu.citrix.com"
    theirs = "Authentication-Results: relay.example.net; dkim=fail header.d=eu.citrix.com"
    assert verdict(msg(ours, theirs), SERV, "george.dunlap@eu.citrix.com") is Verdict.PASS
    # Below another server's header, "ours" was written by whoever wrote that one.
    assert verdict(msg(theirs, ours), SERV, "george.dunlap@eu.citrix.com") is Verdict.NONE
    # Our server may add several (one per milter): all of the topmost run count.
    fail = f"Authentication-Results: {SERV}; dmarc=fail header.from=eu.citrix.com"
    assert verdict(msg(ours, fail, theirs), SERV, "george.dunlap@eu.citrix.com") is Verdict.FAIL
    assert verdict(msg(ours, theirs, fail), SERV, "george.dunlap@eu.citrix.com") is Verdict.PASS


def test_results_are_read_as_written_not_as_encoded_words_decode():
    m = msg(f"Authentication-Results: {SERV}; =?utf-8?q?dkim=3Dpass_header.d=3Deu.citrix.com?=")
    assert verdict(m, SERV, "george.dunlap@eu.citrix.com") is Verdict.NONE


def test_no_trusted_server_configured_means_nobody_is_authenticated():
    m = msg(f"Authentication-Results: {SERV}; dkim=pass header.d=eu.citrix.com")
    assert authenticated(m, None, "george.dunlap@eu.citrix.com") is False


@pytest.mark.parametrize("headers,from_,to_bot,why", [
    (["Auto-Submitted: auto-replied"], None, True, "Auto-Submitted: auto-replied"),
    (["Auto-Submitted: auto-generated; foo"], None, True, "Auto-Submitted: auto-generated"),
    (["X-Autoreply: yes"], None, True, "an auto-reply"),
    ([], "MAILER-DAEMON@lists.example.org", True, "sent by mailer-daemon@lists.example.org"),
    (["Return-Path: <>"], None, True, "a bounce (empty Return-Path)"),
    (["Precedence: bulk"], None, False, "list traffic that does not answer the bot's mail"),
    (["List-Id: <xen-devel.lists.xen.org>"], None, False,
     "list traffic that does not answer the bot's mail"),
    ([], "todobot@example.org", True, "our own mail"),
])
def test_loops_bounces_and_list_noise_are_ignored(headers, from_, to_bot, why):
    head = list(headers)
    m = msg(*head)
    if from_:
        del m["From"]
        m["From"] = from_
    assert automated(m, replies_to_bot=to_bot, own_addresses={"todobot@example.org"}) == why


def test_ordinary_and_list_replies_to_the_bot_are_read():
    own = {"todobot@example.org"}
    assert automated(msg(), replies_to_bot=False, own_addresses=own) is None
    assert automated(msg("Auto-Submitted: no", "Precedence: list"), replies_to_bot=True,
                     own_addresses=own) is None
