"""What a command needs to know about the room it runs in.

Each transport resolves its rooms' settings once, at start (from the config, in
`todobot.bot.rooms`), and binds them in the dispatcher; a command reads them from its
context. Commands never see the config itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from zoneinfo import ZoneInfo

from ..storage import MAX_DEPTH


@dataclass(frozen=True)
class Settings:
    release: str | None = None  # the release this room tracks; None: the newest, pinned at first use
    prefix: str = "!"
    timezone: str = "UTC"  # the digest's IANA zone: "today" and "changes since" are days here
    digest_every: str | None = None  # the room's digest schedule; None: no scheduled digest here
    stale_days: int | None = None  # claims quiet this long are called stale; None: off
    status_url: str | None = None  # the status page's public URL, without a trailing slash
    compact: bool = False  # a medium without markup where every line costs (IRC): packed answers
    max_depth: int = MAX_DEPTH  # how deep sub-items may nest
    max_adds_per_hour: int | None = 30  # items one person may add per hour (release managers: any)
    cooldown: bool = True  # the per-person command rate applies (not on the operator's terminal)
    project: str | None = None  # the config's `project:` ("Acme"), named in digest headers

    @property
    def tz(self) -> tzinfo:
        return ZoneInfo(self.timezone)
