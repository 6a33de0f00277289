"""Who sent a mail, whether that is proven, and whether to read it at all. Pure functions.

From is easy to forge. A mail counts as authenticated only when the receiving server we
trust (the configured `authserv_id`) says so in its `Authentication-Results` header (RFC
8601): `dkim=pass` with a signing domain that is the From domain, or `dmarc=pass`. That
server must strip such headers arriving from outside carrying its own id (RFC 8601 §5;
Postfix, Exim and rspamd do); any other server's results are ignored.
"""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

from ...commands.messages import Sender

_RESINFO = re.compile(r"\b(dkim|dmarc)\s*=\s*(\w+)([^;]*)", re.I)
_PROP = re.compile(r"\bheader\.(d|i|from)\s*=\s*\"?([^\s;\"]+)", re.I)
_COMMENT = re.compile(r"\([^()]*\)")
_ROBOT_LOCAL = re.compile(r"(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+-].*)?$", re.I)


def from_address(msg: EmailMessage) -> tuple[str, str]:
    """(display name, address lowercased) of the mail's From; ("", "") when there is none."""
    values = msg.get_all("From") or []
    pairs = getaddresses([str(v) for v in values])
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        return "", ""
    name, addr = pairs[0]
    return " ".join(name.split()), addr.strip().lower()


def sender_of(msg: EmailMessage, *, authserv_id: str | None) -> Sender | None:
    """The sender as todobot's identities see it (`mail:ADDRESS`); None without a usable From."""
    name, addr = from_address(msg)
    if not addr:
        return None
    return Sender(identity=f"mail:{addr}", nick=name or addr.split("@")[0],
                  authenticated=authenticated(msg, authserv_id, addr),
                  display_name=name or None, unverified="this message is not authenticated")


def _domain_of(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def authenticated(msg: EmailMessage, authserv_id: str | None, address: str) -> bool:
    if not authserv_id:
        return False
    domain = _domain_of(address)
    for header in msg.get_all("Authentication-Results") or []:
        text = _COMMENT.sub(" ", str(header))
        serv, _, rest = text.partition(";")
        if not serv.split() or serv.split()[0].lower() != authserv_id.lower():
            continue
        for m in _RESINFO.finditer(rest):
            method, result, props = m[1].lower(), m[2].lower(), dict(
                (k.lower(), v) for k, v in _PROP.findall(m[3]))
            if result != "pass":
                continue
            if method == "dmarc" and _domain_of(props.get("from", domain)) == domain:
                return True
            if method == "dkim":
                signer = props.get("d") or props.get("i")
                if signer and _domain_of(signer) == domain:
                    return True
    return False


def message_ids(value: str | None) -> list[str]:
    """The `<...>` ids in an In-Reply-To or References header."""
    return re.findall(r"<[^<>\s]+>", value or "")


def automated(msg: EmailMessage, *, replies_to_bot: bool, own_addresses: set[str]) -> str | None:
    """Why this mail must be ignored without an answer (loops, bounces, list noise); None: read it."""
    _, addr = from_address(msg)
    if not addr:
        return "no usable From"
    if addr in own_addresses:
        return "our own mail"
    auto = str(msg.get("Auto-Submitted", "no")).split(";")[0].strip().lower()
    if auto != "no":
        return f"Auto-Submitted: {auto}"
    if any(msg.get(h) is not None for h in ("X-Autoreply", "X-Autorespond")):
        return "an auto-reply"
    if _ROBOT_LOCAL.match(addr.split("@")[0]):
        return f"sent by {addr}"
    return_path = parseaddr(str(msg.get("Return-Path", "")))[1]
    if msg.get("Return-Path") is not None and not return_path:
        return "a bounce (empty Return-Path)"
    ctype = msg.get_content_type()
    if ctype == "multipart/report":
        return "a delivery report"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("bulk", "junk", "list") or msg.get("List-Id") is not None:
        if not replies_to_bot:
            return "list traffic that does not answer the bot's mail"
    return None
