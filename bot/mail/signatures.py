"""Checking a mail's DKIM signatures ourselves, with dkimpy, where no receiving server does
(`verify_dkim` in a list's config). Off by default: a trusted server's
Authentication-Results (auth.py) is the better proof, and this costs DNS lookups whose
timing the sender's domain controls.

A signature proves the From only when it verifies, signs From (dkimpy insists), covers the
whole body (no `l=` tag, which would let anyone append commands below the signed text) and
its domain is aligned with the From domain. At most MAX_SIGNATURES are tried, each lookup
given DNS_TIMEOUT seconds. Blocking: call it in a thread.
"""

from __future__ import annotations

from collections.abc import Callable

from .auth import aligned

MAX_SIGNATURES = 2
DNS_TIMEOUT = 5  # seconds, each lookup


def signed_by(raw: bytes, domain: str, dnsfunc: Callable | None = None) -> str | None:
    """The domain of the first valid signature aligned with `domain`; None when there is none
    (or anything at all goes wrong: that proves nothing)."""
    import dkim  # only for lists that ask for it: dkimpy loads dnspython

    lookup = {"dnsfunc": dnsfunc} if dnsfunc is not None else {}
    try:
        count = sum(1 for name, _ in dkim.DKIM(raw).headers if name.lower() == b"dkim-signature")
    except Exception:
        return None
    for idx in range(min(count, MAX_SIGNATURES)):
        try:
            checker = dkim.DKIM(raw, timeout=DNS_TIMEOUT)
            prep = checker.verify_headerprep(idx)
            if not prep or b"l" in prep[0]:
                continue
            if not checker.verify(idx=idx, **lookup):
                continue
            signer = checker.domain.decode("ascii").lower().rstrip(".")
        except Exception:  # dkimpy's own errors, DNS failures, malformed tags
            continue
        if aligned(signer, domain):
            return signer
    return None
