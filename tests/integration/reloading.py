"""SIGHUP in integration tests: the real signal, handled as `todobot run` handles it."""

from __future__ import annotations

import asyncio
import os
import signal


def reload_lines(caplog) -> list[str]:
    return [r.getMessage().removeprefix("reload: ") for r in caplog.records
            if r.getMessage().startswith("reload: ")]


async def sighup(app, caplog) -> list[str]:
    """A real SIGHUP to this process, handled as `todobot run` handles it; the reload's lines."""
    loop = asyncio.get_running_loop()
    app.handle_signals()
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        async with asyncio.timeout(10):
            while not reload_lines(caplog):
                await asyncio.sleep(0.05)
    finally:
        for sig in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return reload_lines(caplog)
