"""Who sent a mail and whether that is proven; which mails are never read nor answered."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import pytest

from todobot.bot.mail.auth import authenticated, automated, sender_of

SERV = "mx.example.org"


def msg(*headers: str, body: str = "hi\n"):
    head = ["From: George Dunlap <George.Dunlap@eu.citrix.com>", "Message-ID: <a@b>", *headers]
    return message_from_bytes(("\r\n".join(head) + "\r\n\r\n" + body).encode(), policy=default)


def test_identity_is_the_lowercased_address_named_from_the_display_name():
    s = sender_of(msg(), authserv_id=SERV)
    assert (s.identity, s.display_name, s.nick, s.authenticated) == (
        "mail:george.dunlap@eu.citrix.com", "George Dunlap", "George Dunlap", False)


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
