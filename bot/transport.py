"""The interface every transport (console, IRC, Matrix) implements.

A transport owns its connection: it turns wire events into `Message`s, hands each one to the
dispatcher, and renders the `Reply`s it gets back in its own protocol. It knows nothing about
TODO items. Lifecycle follows the app's: `start` returns once the transport is running in the
background (connecting, reconnecting and receiving are its own business), `stop` ends it and
waits for every task it started.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..commands.messages import Reply

if TYPE_CHECKING:
    from .config import Config
    from .dispatcher import Dispatcher


@dataclass
class Reconfigured:
    """What a transport made of a reloaded config, one line per change: `changes` are applied
    now or under way (a join the server has yet to confirm); `restart` waits for a restart."""

    changes: list[str] = field(default_factory=list)
    restart: list[str] = field(default_factory=list)


class Transport(ABC):
    #: Prefix of the identities this transport produces and of `Message.transport`.
    name: str

    @abstractmethod
    async def start(self, dispatcher: "Dispatcher") -> None:
        """Begin serving. Bind each configured room to its release with
        `dispatcher.bind_room(self.name, room, release)` once its wire id is known."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop serving and wait for every background task of this transport."""

    @abstractmethod
    async def post(self, room: str, reply: Reply) -> None:
        """Send an unsolicited reply (the weekly digest) to one of this transport's rooms."""

    # Optional: `async def post_digest(self, room, data: DigestData) -> str` — a transport that
    # writes the digest itself (mail) gets the data instead of the chat Reply; the string it
    # returns is kept in the slot's record.

    async def notify(self, identity: str, reply: Reply) -> bool:
        """Send `reply` privately to one identity of this transport (a notice, a direct
        message); False when it cannot reach that identity now. The default reaches nobody."""
        return False

    def health(self) -> str | None:
        """Why this transport is not serving now, in one line (`/healthz`); None when it is."""
        return None

    async def queue_lengths(self) -> dict[str, int]:
        """What waits to go out, by queue name (`/metrics`); a transport without a queue of
        its own has none."""
        return {}

    def rooms(self) -> list[str]:
        """The rooms this transport serves now (for scheduled posts)."""
        return []

    def apply_config(self, config: "Config") -> Reconfigured:
        """A reloaded config (SIGHUP): re-bind the rooms' settings, join rooms added and leave
        rooms removed, without dropping the connection."""
        return Reconfigured()

    async def settled(self) -> None:
        """Return once the room changes of the last `apply_config` are done (or failed)."""
