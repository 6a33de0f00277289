"""What goes wrong talking to the homeserver, sorted by what the transport does about it:
wait and try again (TRANSIENT, ServerError: the wait a rate limit names, else the backoff),
or stop and tell a person (MatrixLoginError)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import ClientConnectionError

# Outages: the request is tried again, after a backoff.
TRANSIENT = (ClientConnectionError, asyncio.TimeoutError, TimeoutError, OSError)


class MatrixLoginError(ValueError):
    """The homeserver refused our credentials; a person has to act (worded for them)."""


class ServerError(Exception):
    def __init__(self, what: str, retry_after: float | None = None) -> None:
        super().__init__(what)
        self.retry_after = retry_after


def check_rate_limit(resp: Any) -> None:
    """A refusal that is a rate limit raises ServerError with the wait the server names."""
    if getattr(resp, "status_code", None) == "M_LIMIT_EXCEEDED":
        raise ServerError("rate-limited", (resp.retry_after_ms or 1000) / 1000)
