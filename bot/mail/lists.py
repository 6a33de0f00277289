"""Who wrote a mail the list rewrote. Pure functions.

A list that munges From for DMARC (Mailman 3's `munge_from`) sends every post as
"Jan Beulich via Xen-devel <xen-devel@lists.xenproject.org>" and moves the author to Reply-To
(or Cc). The author's own signature no longer verifies, and Reply-To, Cc and X-Original-From
are whatever the poster wrote, so they prove nothing alone. The author is recognised only
when all of these hold (and then with the rights of their address):

1. From is the configured list address, and List-Id is that list's (`local.domain`);
2. the trusted receiving server (`authserv_id`) passes the list's mail: its topmost
   Authentication-Results pass DKIM or DMARC for the list's domain (auth.verdict);
3. the very next Authentication-Results below them are the list's own receiving server's
   (`list_authserv_id`): written when the post reached the list, before the list changed it.
   Our server strips headers carrying its own id, the list's strips those carrying its id,
   so neither run can be planted by the poster; it must pass DKIM or DMARC for a domain;
4. exactly one address in Reply-To, Cc and X-Original-From (the list's own address left out)
   is of a domain those list results pass (auth.judge). Two or more — the poster named a
   colleague of the same domain — is ambiguous and proves no one.

Otherwise a mail from the list address is the list's: its address, unauthenticated, never its
display name ("Jan Beulich via Xen-devel" is just text), so it has anyone's rights.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import getaddresses

from ...commands.messages import Sender
from ...storage.names import clean
from .auth import Verdict, from_address, header, judge, result_runs, verdict

_AUTHOR_HEADERS = ("Reply-To", "Cc", "X-Original-From")
_LIST_ID = re.compile(r"<([^<>\s]+)>\s*$")


def list_id_of(address: str) -> str:
    """The List-Id Mailman 3 gives the list at `address` (RFC 2919: local.domain)."""
    local, _, domain = address.lower().partition("@")
    return f"{local}.{domain}"


def _list_id(msg: EmailMessage) -> str | None:
    values = msg.get_all("List-Id") or []
    if len(values) != 1:
        return None
    m = _LIST_ID.search(str(values[0]))
    return m.group(1).lower() if m else None


def _candidates(msg: EmailMessage, list_address: str) -> list[tuple[str, str]]:
    values = [v for h in _AUTHOR_HEADERS if (v := header(msg, h)) is not None]
    out: dict[str, str] = {}
    for name, addr in getaddresses(values):
        addr = addr.strip().lower()
        if "@" in addr and addr != list_address:
            out.setdefault(addr, name)
    return [(name, addr) for addr, name in out.items()]


def list_author(msg: EmailMessage, *, list_address: str, authserv_id: str | None,
                list_authserv_id: str | None) -> tuple[str, str] | None:
    """(display name, address) of the author of a mail the list rewrote, when the rule at the
    top proves it; None otherwise."""
    list_address = list_address.lower()
    if not authserv_id or not list_authserv_id:
        return None
    if from_address(msg)[1] != list_address or _list_id(msg) != list_id_of(list_address):
        return None
    if verdict(msg, authserv_id, list_address) is not Verdict.PASS:
        return None
    runs = result_runs(msg, limit=2)
    if len(runs) < 2 or runs[1][0] != list_authserv_id.lower():
        return None
    at_list = runs[1][1]
    vouched = [(n, a) for n, a in _candidates(msg, list_address) if judge(at_list, a) is Verdict.PASS]
    if len(vouched) != 1:
        return None
    name, addr = vouched[0]
    return clean(name), addr


def munged_sender(msg: EmailMessage, *, list_address: str, authserv_id: str | None,
                  list_authserv_id: str | None) -> Sender | None:
    """The sender of a mail whose From is the list itself: its proven author, else the list's
    address with no name and anyone's rights. None for any other mail."""
    if from_address(msg)[1] != list_address.lower():
        return None
    author = list_author(msg, list_address=list_address, authserv_id=authserv_id,
                         list_authserv_id=list_authserv_id)
    if author is None:
        addr = list_address.lower()
        return Sender(identity=f"mail:{addr}", nick=addr, authenticated=False,
                      display_name=None, unverified="this message is not authenticated")
    name, addr = author
    return Sender(identity=f"mail:{addr}", nick=name or addr, authenticated=True,
                  display_name=name or None, unverified="this message is not authenticated")
