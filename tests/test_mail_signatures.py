"""DKIM signatures checked by the bot itself (`verify_dkim`), with a test key and a stand-in
for DNS: only a whole-body signature of the From's domain, that verifies, proves the From."""

from __future__ import annotations

from pathlib import Path

import dkim
import pytest

from todobot.bot.mail.signatures import MAX_SIGNATURES, signed_by

from .test_mail_transport import IJC, LIST, WEEKLY, mail, rig  # noqa: F401  (the fixture)

DATA = Path(__file__).parent / "data" / "dkim"
KEY = (DATA / "citrix.com.key").read_bytes()
TXT = (DATA / "s1._domainkey.citrix.com.txt").read_bytes().strip()
HEADERS = [b"from", b"to", b"subject", b"message-id"]


def dns(name: bytes, timeout: float = 5) -> bytes | None:
    """The one published key, s1._domainkey.citrix.com."""
    return TXT if name.rstrip(b".").lower() == b"s1._domainkey.citrix.com" else None


def signed(raw: bytes, domain: bytes = b"citrix.com", **kw) -> bytes:
    return dkim.sign(raw, b"s1", domain, KEY, include_headers=kw.pop("headers", HEADERS), **kw) + raw


def test_a_valid_signature_of_the_from_domain_proves_it():
    raw = signed(mail(IJC, "!blocker 1\n", message_id="<s@citrix.com>"))
    assert signed_by(raw, "citrix.com", dns) == "citrix.com"
    assert signed_by(raw, "eu.citrix.com", dns) == "citrix.com"  # relaxed alignment
    assert signed_by(raw, "evil.example", dns) is None


@pytest.mark.parametrize("change", ["appended", "length", "from changed", "no key", "garbage"])
def test_anything_else_proves_nothing(change):
    raw = mail(IJC, "!claim 1\n", message_id="<s@citrix.com>")
    if change == "appended":  # a command added below the signed text
        raw = signed(raw) + b"!blocker 1\r\n"
    elif change == "length":  # l= signs only so much of the body: the rest could be anyone's
        raw = signed(raw, length=True)
    elif change == "from changed":  # a signed mail of citrix.com's, sent on as another's
        raw = signed(raw).replace(b"ian.campbell@citrix.com", b"keir@citrix.com")
    elif change == "no key":
        raw = signed(raw, domain=b"other.example")
    else:
        raw = b"DKIM-Signature: v=1; a=rsa-sha256; d=citrix.com; s=s1; b=;;;\r\n" + raw
    assert signed_by(raw, "citrix.com", dns) is None


def test_at_most_a_few_signatures_are_tried():
    lookups: list[bytes] = []

    def counting(name: bytes, timeout: float = 5) -> bytes | None:
        lookups.append(name)
        return None
    raw = mail(IJC, "!claim 1\n", message_id="<many@x>")
    for n in range(10):
        raw = dkim.sign(raw, f"k{n}".encode(), b"citrix.com", KEY, include_headers=HEADERS) + raw
    assert signed_by(raw, "citrix.com", counting) is None and len(lookups) == MAX_SIGNATURES


async def test_a_list_that_verifies_dkim_obeys_a_signed_release_manager(rig):  # noqa: F811
    rig.transport.dkim_dns = dns
    raw = signed(mail(IJC, "!blocker 1\n", message_id="<dkim1@citrix.com>"))
    await rig.deliver(raw)
    assert (await rig.chat.item(1)).severity == "nice"  # verify_dkim is off: not proven
    rig.transport.cfg = rig.transport.cfg.model_copy(update={"verify_dkim": True})
    await rig.deliver(signed(mail(IJC, "!blocker 1\n", message_id="<dkim2@citrix.com>")))
    assert (await rig.chat.item(1)).severity == "blocker"
    await rig.deliver(signed(mail(IJC, "!nice 1\n", message_id="<dkim3@citrix.com>"))
                      + b"!blocker 2\r\n")
    assert (await rig.chat.item(2)).severity == "nice"
