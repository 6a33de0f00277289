"""Telling systemd how the service is doing (`Type=notify`, `WatchdogSec=`): the sd_notify
datagram protocol, a few lines of stdlib, so no library is loaded for it. Without
NOTIFY_SOCKET (not under systemd, or `Type=exec`) every call does nothing."""

from __future__ import annotations

import asyncio
import logging
import os
import socket

log = logging.getLogger(__name__)


def notify(state: str) -> bool:
    """Send one state (`READY=1`, `WATCHDOG=1`, `STOPPING=1`); False when there is nowhere
    to send it or it could not be sent (logged: systemd then acts on its own timeouts)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket: a NUL byte instead of the @
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError as exc:
        log.warning("could not tell systemd %s: %s", state, exc)
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises; None when no watchdog is asked for (or it is meant for another process)."""
    usec, pid = os.environ.get("WATCHDOG_USEC", ""), os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid.isdigit() and int(pid) != os.getpid()):
        return None
    return int(usec) / 2 / 1_000_000


async def watchdog() -> None:
    """Ping from the event loop itself: a loop stuck in one task misses the ping and systemd
    restarts the bot (WatchdogSec=)."""
    interval = watchdog_interval()
    if interval is None or not os.environ.get("NOTIFY_SOCKET"):
        return
    while True:
        notify("WATCHDOG=1")
        await asyncio.sleep(interval)
