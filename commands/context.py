"""What a command handler gets: who is asking, where, and the open repository session.

Rights follow the sender's identity, never a name: the sender's person is found by identity,
and an item is theirs when that person is among its owners.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..storage import Item, NotFound, Person, Release, Session
from .errors import Refused
from .messages import Message
from .naming import acceptable
from .settings import Settings


@dataclass
class Context:
    s: Session
    message: Message
    settings: Settings
    release_name: str | None  # the release this room tracks (None: no release yet)
    is_admin: bool
    person: Person | None  # the sender's person, None until they first need one
    # Items the conversation is about: named by the message this one answers, else by the
    # bot in this room a moment ago ("I can take this one").
    recent: tuple[int, ...] = ()
    # What the transport knows this message answers: None when it knows nothing (use
    # `recent`); () when it answers something that names no single item (ask which).
    refers_to: tuple[int, ...] | None = field(default=None)

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    @property
    def identity(self) -> str:
        return self.message.sender.identity

    @property
    def authenticated(self) -> bool:
        return self.message.sender.authenticated

    @property
    def default_name(self) -> str:
        """The name a sender gets until they choose one with !iam."""
        sender = self.message.sender
        name = sender.display_name or sender.nick
        if not acceptable(name):  # a display name "unclaimed", "@x:y" or with look-alikes
            name = sender.nick if acceptable(sender.nick) else re.sub(
                r"[,/()\[\]<>#@]", "_", self.identity.split(":", 1)[-1]).strip("_") or "someone"
        return name

    @property
    def me(self) -> str:
        return self.person.name if self.person is not None else self.default_name

    async def my_person(self) -> Person:
        """The sender's person, created on first need."""
        if self.person is None:
            self.person = await self.s.ensure_person(self.identity, self.default_name)
        return self.person

    async def release(self) -> Release:
        if self.release_name is None:
            raise Refused(f"This room tracks no release yet: a release manager starts one with "
                          f"{self.prefix}release new NAME, or imports a list with "
                          "`todobot import FILE --release NAME`.")
        rel = await self.s.release(self.release_name)
        if rel is None:
            raise Refused(f"Release {self.release_name} does not exist yet: a release manager "
                          f"starts it with {self.prefix}release new {self.release_name}, or "
                          f"imports a list with `todobot import FILE --release {self.release_name}`.")
        return rel

    async def item(self, item_id: int) -> Item:
        try:
            return await self.s.get(item_id)
        except NotFound:  # say where the ids are: a mistyped id is the usual cause
            raise NotFound(f"No item #{item_id}: {self.prefix}todo lists the open ones, "
                           f"{self.prefix}find TEXT finds any.") from None

    def owns(self, item: Item) -> bool:
        """An owner is a person, known by an authenticated identity: a bare IRC nick, or a
        name somebody typed, proves nothing."""
        return (self.authenticated and self.person is not None
                and self.person.id in item.owner_ids)

    def require_owner(self, item: Item, action: str) -> None:
        """`action` reads after "may": "mark it done", "unclaim it"."""
        if self.is_admin or self.owns(item):
            return
        if not self.authenticated:
            raise Refused(f"Log in to your account to {action} (#{item.id}): a nick alone "
                          "does not show whose item it is.")
        who = ", ".join(item.owners) if item.owners else "nobody (unclaimed)"
        raise Refused(f"Only the owners of #{item.id} or a release manager may {action}; "
                      f"it is owned by {who}.")
