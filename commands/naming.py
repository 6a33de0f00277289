"""What may be a person's name: shared by !iam, !person, claims for a name, and the names
transports suggest (a Matrix display name, an IRC account)."""

from __future__ import annotations

import re

from ..storage.names import RESERVED_NAMES, mixed_script, visible
from .errors import Refused, UsageError

# Owner names live inside "(A, B / C, progress)" groups in the mail: keep them parseable.
_NAME = re.compile(r"[^\s,/()\[\]<>#@][^,/()\[\]<>]{0,62}[^\s,/()\[\]<>]|[^\s,/()\[\]<>#@]")
IDENTITY = re.compile(r"(console:[^\s/]+|irc:[^\s/]+/[^\s/]+|matrix:@[^\s:]+:\S+|mail:[^\s@]+@[^\s@]+)")


# A name shaped like a Matrix user id (@user:server) would pass for that account.
_MXID = re.compile(r"@[^\s:]+:\S+")


def check_name(name: str) -> str:
    """A name a person may be shown as, or a UsageError/Refused saying why not."""
    if _MXID.fullmatch(name):
        raise Refused("That is a Matrix user id, not a name: say a name, like !iam Ada Lovelace.")
    if IDENTITY.fullmatch(name):
        raise Refused("That is an account, not a name: say the name people know you by.")
    if not _NAME.fullmatch(name) or not visible(name):
        raise UsageError("a name is 1-64 characters without , / ( ) [ ] < > and does not "
                         "start with # or @")
    if name.casefold() in RESERVED_NAMES:
        raise Refused(f"{name!r} is a word the list uses (unclaimed, DONE, none, ?), not a name.")
    if mixed_script(name):
        raise Refused("That name mixes Latin letters with look-alike letters of another script.")
    return name


def acceptable(name: str) -> bool:
    try:
        check_name(name)
    except (UsageError, Refused):
        return False
    return True
