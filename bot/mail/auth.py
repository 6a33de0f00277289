"""Who sent a mail, whether that is proven, and whether to read it at all. Pure functions.

From is easy to forge. Only the receiving server we trust (the configured `authserv_id`)
can say who sent a mail, in its `Authentication-Results` header (RFC 8601), read with the
`authres` parser — never by searching the text, where `dkim=` can sit inside another
property's value. Only the topmost such headers count: those above the first one from any
other server. Our server must strip headers arriving from outside that carry its id (RFC
8601 §5; Postfix, Exim and rspamd can), or a forger could put one on top.

A result counts only for its own method and the From domain: `dmarc=pass` with
`header.from` the From domain, or `dkim=pass` with a signing domain (`header.d`, else the
domain of `header.i`) aligned with the From domain (DMARC's relaxed alignment: the same
organizational domain, found with the Public Suffix List). SPF alone never proves From. `dmarc=fail`, or `spf=fail`
without such a DKIM pass, means the mail is forged: it is dropped unanswered. Anything the
parser cannot read, or a result with a property given twice, proves nothing.
"""

from __future__ import annotations

import enum
import functools
import re
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr

import authres

from ...commands.messages import Sender
from ...storage.names import clean

_ROBOT_LOCAL = re.compile(r"(mailer-daemon|postmaster|no-?reply|do-?not-?reply|bounces?)([+-].*)?$", re.I)


class Verdict(enum.Enum):
    PASS = "authenticated"  # the trusted server vouches for the From domain
    NONE = "unauthenticated"  # no proof either way: acts with anyone's rights
    FAIL = "forged"  # the trusted server says From is not the sender's




def header(msg: EmailMessage, name: str) -> str | None:
    """A header's value as text (None when absent). One the email package refuses to decode
    (a CR or LF in an encoded word, say) reads as written, undecoded."""
    try:
        value = msg.get(name)
    except Exception:  # the email package raises ValueError and others on hostile values
        value = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    return None if value is None else str(value)


def from_address(msg: EmailMessage) -> tuple[str, str]:
    """(display name, address lowercased) of the mail's From; ("", "") when there is none.
    A From the email package refuses to decode is read undecoded, without its name."""
    try:
        values, named = [str(v) for v in msg.get_all("From") or []], True
    except Exception:
        values, named = [str(v) for k, v in msg.raw_items() if k.lower() == "from"], False
    pairs = getaddresses(values)
    if len(pairs) != 1 or "@" not in pairs[0][1]:
        return "", ""
    name, addr = pairs[0]
    return clean(name) if named else "", addr.strip().lower()


def sender_of(msg: EmailMessage, *, authserv_id: str | None, proven: bool = False) -> Sender | None:
    """The sender as todobot's identities see it (`mail:ADDRESS`); None without a usable From.
    Only an authenticated mail's display name names its sender: an unauthenticated one is
    known by its address alone (anybody can write "Keir Fraser" in a From). `proven`: the
    From is proven otherwise (signatures.py)."""
    name, addr = from_address(msg)
    if not addr:
        return None
    trusted = proven or verdict(msg, authserv_id, addr) is Verdict.PASS
    shown = name if trusted else ""
    return Sender(identity=f"mail:{addr}", nick=shown or addr, authenticated=trusted,
                  display_name=shown or None, unverified="this message is not authenticated")


def _domain_of(value: str) -> str:
    return value.rsplit("@", 1)[-1].strip().lower().rstrip(".")


def aligned(signer: str, domain: str) -> bool:
    """DMARC's relaxed alignment (RFC 7489 §3.1.1): both domains have the same organizational
    domain, the one just below a public suffix. A suffix anyone can register under
    (`co.uk`, and private ones such as `duckdns.org`) aligns nothing above it: a signature by
    `attacker.duckdns.org` does not vouch for `victim.duckdns.org`, nor for `duckdns.org`."""
    org = _organizational(signer)
    return org is not None and org == _organizational(domain)


@functools.lru_cache(maxsize=4096)
def _organizational(domain: str) -> str | None:
    """`eu.citrix.com` -> `citrix.com`; None for a public suffix itself or no domain at all."""
    domain = domain.strip().lower().rstrip(".")
    if not domain or "." not in domain:
        return None
    return _suffixes().privatesuffix(domain)


@functools.cache
def _suffixes():  # type: ignore[no-untyped-def]
    # The list ships with the package (updated with each release); loaded on the first
    # signature, not at start: a bot without mail never pays for it.
    from publicsuffixlist import PublicSuffixList
    return PublicSuffixList()


def result_runs(msg: EmailMessage, limit: int = 2) -> list[tuple[str, list]]:
    """The topmost Authentication-Results headers, grouped by consecutive authserv-id:
    [(id lowercased, results), ...], at most `limit` groups. A header the parser cannot read
    ends them (nothing below it can be placed)."""
    runs: list[tuple[str, list]] = []
    # Raw values: the header as its server wrote it, not as encoded words decode.
    for name, value in msg.raw_items():
        if name.lower() != "authentication-results":
            continue
        text = str(value).replace("\r", "").replace("\n", "")
        try:
            serv, results = _parsed(text)
        except Exception:  # authres raises its own SyntaxError and others on odd input
            break
        if runs and runs[-1][0] == serv:
            runs[-1][1].extend(results)
        elif len(runs) < limit:
            runs.append((serv, list(results)))
        else:
            break
    return runs


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> tuple[str, tuple]:
    """One header's (authserv-id lowercased, results). Kept for the few headers of the mail
    at hand: a list's mail is judged three times (its sender, then the list's rule) and
    `authres` takes a good part of a millisecond per header."""
    parsed = authres.AuthenticationResultsHeader.parse_value(text)
    return str(parsed.authserv_id).lower(), tuple(parsed.results)


def _trusted_results(msg: EmailMessage, authserv_id: str) -> list:
    """The results of the topmost Authentication-Results headers by `authserv_id`: those
    below another server's header could have been written by anyone."""
    runs = result_runs(msg, limit=1)
    return runs[0][1] if runs and runs[0][0] == authserv_id.lower() else []


def _props(result) -> dict[str, str] | None:
    """`ptype.property` -> value, lowercased keys; None when a property is given twice."""
    out: dict[str, str] = {}
    for p in result.properties:
        key = f"{p.type}.{p.name}".lower()
        if key in out:
            return None
        out[key] = str(p.value)
    return out


def verdict(msg: EmailMessage, authserv_id: str | None, address: str) -> Verdict:
    """What the trusted server's results say about the From `address` (see the top)."""
    if not authserv_id:
        return Verdict.NONE
    return judge(_trusted_results(msg, authserv_id), address)


def judge(results: list, address: str) -> Verdict:
    """What one server's `results` say about `address` (see the top)."""
    if not results:
        return Verdict.NONE
    domain = _domain_of(address)
    dkim_pass = dmarc_pass = dmarc_fail = spf_fail = False
    for result in results:
        props = _props(result)
        if props is None:
            continue
        method, outcome = str(result.method).lower(), str(result.result).lower()
        if method == "dkim" and outcome == "pass":
            signer = props.get("header.d") or _domain_of(props.get("header.i", ""))
            dkim_pass |= aligned(_domain_of(signer), domain)
        elif method == "dmarc":
            about = _domain_of(props.get("header.from", ""))
            dmarc_pass |= outcome == "pass" and about == domain
            dmarc_fail |= outcome == "fail" and about in ("", domain)
        elif method == "spf" and outcome == "fail":
            spf_fail = True
    if dmarc_fail or (spf_fail and not dkim_pass):
        return Verdict.FAIL
    return Verdict.PASS if dkim_pass or dmarc_pass else Verdict.NONE


def authenticated(msg: EmailMessage, authserv_id: str | None, address: str) -> bool:
    return verdict(msg, authserv_id, address) is Verdict.PASS


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
    auto = (header(msg, "Auto-Submitted") or "no").split(";")[0].strip().lower()
    if auto != "no":
        return f"Auto-Submitted: {auto}"
    if any(header(msg, h) is not None for h in ("X-Autoreply", "X-Autorespond")):
        return "an auto-reply"
    if _ROBOT_LOCAL.match(addr.split("@")[0]):
        return f"sent by {addr}"
    return_path = header(msg, "Return-Path")
    if return_path is not None and not parseaddr(return_path)[1]:
        return "a bounce (empty Return-Path)"
    ctype = msg.get_content_type()
    if ctype == "multipart/report":
        return "a delivery report"
    precedence = (header(msg, "Precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list") or header(msg, "List-Id") is not None:
        if not replies_to_bot:
            return "list traffic that does not answer the bot's mail"
    return None
