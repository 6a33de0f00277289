"""What a command handler gets: who is asking, where, and the open repository session."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .messages import Message
from ..storage import Item, Release, Session

from .registry import Refused, UsageError
from .settings import Settings

_ID = re.compile(r"#?(\d{1,12})")


def parse_id(token: str) -> int:
    """`12` or `#12`; anything else is a usage error."""
    m = _ID.fullmatch(token.strip())
    if not m:
        raise UsageError(f"{token!r} is not an item id (like 12 or #12)")
    return int(m.group(1))


def split_id(args: str, *, rest_required: bool = False) -> tuple[int, str]:
    """`ID REST...` → (id, rest)."""
    parts = args.split(None, 1)
    if not parts:
        raise UsageError()
    rest = parts[1].strip() if len(parts) > 1 else ""
    if rest_required and not rest:
        raise UsageError()
    return parse_id(parts[0]), rest


@dataclass
class Context:
    s: Session
    message: Message
    prefix: str
    release_name: str | None  # the release this room tracks (None: no release yet)
    is_admin: bool
    me: str  # the sender's display name (from !iam, the protocol, or the nick)
    has_name: bool  # whether `me` was set with !iam
    settings: Settings

    @property
    def identity(self) -> str:
        return self.message.sender.identity

    async def release(self) -> Release:
        if self.release_name is None:
            raise Refused("This room tracks no release yet: import a list with "
                          "`todobot import FILE --release NAME`.")
        rel = await self.s.release(self.release_name)
        if rel is None:
            raise Refused(f"Release {self.release_name} does not exist yet: import a list with "
                          f"`todobot import FILE --release {self.release_name}`.")
        return rel

    async def item(self, item_id: int) -> Item:
        return await self.s.get(item_id)

    def owns(self, item: Item) -> bool:
        """Owner checks need an authenticated sender: a bare IRC nick proves nothing."""
        if not self.message.sender.authenticated:
            return False
        mine = self.me.casefold()
        return any(o.casefold() == mine for o in item.owners)

    def require_owner(self, item: Item, action: str) -> None:
        """`action` reads after "may": "mark it done", "unclaim it"."""
        if self.is_admin or self.owns(item):
            return
        if not self.message.sender.authenticated and any(
                o.casefold() == self.me.casefold() for o in item.owners):
            raise Refused(f"You must be logged in to your account to {action} (#{item.id}).")
        who = ", ".join(item.owners) if item.owners else "nobody (unclaimed)"
        raise Refused(f"Only the owners of #{item.id} or a release manager may {action}; "
                      f"it is owned by {who}.")
