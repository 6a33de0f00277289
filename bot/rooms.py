"""Room settings from the config: the one place that derives a room's release, prefix and
digest settings (its own `digest:` over the top-level one). Transports call this once per
room at start and bind the result in the dispatcher."""

from __future__ import annotations

from typing import Any

from ..commands.settings import Settings
from .config import Config, DigestRoom


def room_settings(config: Config, *, release: str | None = None,
                  digest: DigestRoom | None = None, compact: bool = False) -> Settings:
    """Settings of one room. `release` and `digest` are the room's own entries in the config
    (None: none); `compact` is the transport's medium (IRC)."""
    top = config.digest
    every: str | None = None
    if digest is None or digest.enabled:
        every = (digest.every if digest is not None else None) or (top.every if top else None)
    timezone = (digest.timezone if digest is not None else None) or (top.timezone if top else "UTC")
    web = config.web
    url = web.public_url.rstrip("/") if web is not None and web.public_url else None
    return Settings(release=release or config.default_release, prefix=config.prefix,
                    timezone=timezone, digest_every=every,
                    stale_days=top.stale_days if top else None, status_url=url, compact=compact,
                    max_depth=config.max_depth, max_adds_per_hour=config.max_adds_per_hour,
                    project=config.project)


def room_entry(value: Any, key: str) -> tuple[str, str | None, DigestRoom | None]:
    """A room entry as written (`"#chan"` or `{name: "#chan", release: ..., digest: ...}`)
    → (room, release, digest override)."""
    if isinstance(value, str):
        return value, None, None
    return getattr(value, key), value.release, value.digest
