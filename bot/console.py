"""The terminal as a chat room for one machine.

Each stdin line is a message in one room; `<nick> text` is said by `nick`, anything else by
the console's own user. Replies print as `<todobot> text`, one line each. Interactive use gets
readline editing and history; piped input is read to EOF, every reply printed in order.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
import logging
import re
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

from .config import Config
from .dispatcher import Dispatcher
from ..commands.messages import Line, Message, Reply, Sender
from ..commands.settings import Settings
from .transport import Reconfigured, Transport

log = logging.getLogger(__name__)

_SPEAKER = re.compile(r"<([^\s<>]{1,32})>\s?(.*)", re.DOTALL)
# Terminal escape sequences in stored text must not drive the user's terminal.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
BOT_NAME = "todobot"


def render_line(line: Line) -> str:
    return _UNPRINTABLE.sub("\ufffd", line.indented).replace("\n", " ")


def render(reply: Reply) -> list[str]:
    """Plain text, one string per output line (no prefix)."""
    return [render_line(line) for line in reply.lines] or [""]


class ConsoleTransport(Transport):
    name = "console"

    def __init__(self, *, user: str, room: str = "console", settings: Settings | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 on_eof: Callable[[], Awaitable[None] | None] | None = None,
                 settings_for: Callable[[Config], Settings] | None = None) -> None:
        """`settings_for` derives the room's settings from a reloaded config (SIGHUP)."""
        self.user = user
        self.room = room
        self.settings = settings
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.on_eof = on_eof
        self.settings_for = settings_for
        self._dispatcher: Dispatcher | None = None
        self.interactive = self.stdin.isatty() and self.stdout.isatty()
        self._task: asyncio.Task[None] | None = None
        self.finished = asyncio.Event()

    def rooms(self) -> list[str]:
        return [self.room]

    async def start(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        # The operator's own terminal: no per-person command rate.
        settings = self.settings or replace(dispatcher.settings_for(self.name, self.room),
                                            cooldown=False)
        dispatcher.bind_room(self.name, self.room, settings)
        if self.interactive:
            try:
                import readline  # noqa: F401  (line editing and history for input())
            except ImportError:
                pass
        self._task = asyncio.create_task(self._loop(dispatcher), name="console")

    def apply_config(self, config: Config) -> Reconfigured:
        if self.settings_for is not None and self._dispatcher is not None:
            self.settings = self.settings_for(config)
            self._dispatcher.bind_room(self.name, self.room, self.settings)
        return Reconfigured()

    async def stop(self) -> None:
        if self._task and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def post(self, room: str, reply: Reply) -> None:
        self._print(reply)

    async def notify(self, identity: str, reply: Reply) -> bool:
        """Everyone at the console is in this one terminal: a private notice is a line
        addressed to the nick."""
        if not identity.startswith(f"{self.name}:"):
            return False
        nick = _UNPRINTABLE.sub("\ufffd", identity.split(":", 1)[1])
        for line in render(reply):
            self.stdout.write(f"-> {nick}: {line}\n")
        self.stdout.flush()
        return True

    def _print(self, reply: Reply) -> None:
        for line in render(reply):
            self.stdout.write(f"<{BOT_NAME}> {line}\n")
        self.stdout.flush()

    def parse(self, line: str) -> Message:
        m = _SPEAKER.fullmatch(line)
        nick, body = (m.group(1), m.group(2)) if m else (self.user, line)
        sender = Sender(identity=f"console:{nick}", nick=nick, authenticated=True)
        return Message(transport=self.name, room=self.room, sender=sender, text=body)

    async def _read(self) -> str | None:
        if self.interactive:
            try:
                return await asyncio.to_thread(input, f"<{self.user}> ")
            except EOFError:
                return None
        line = await asyncio.to_thread(self.stdin.readline)
        return line.rstrip("\r\n") if line else None

    async def _loop(self, dispatcher: Dispatcher) -> None:
        try:
            while True:
                line = await self._read()
                if line is None:
                    break
                if not line.strip():
                    continue
                try:
                    reply = await dispatcher.handle(self.parse(line))
                except Exception:  # the dispatcher answers errors itself; this is a last guard
                    log.exception("console: unhandled error")
                    continue
                if reply is not None:
                    self._print(reply)
        finally:
            self.finished.set()
            if self.on_eof is not None:
                result = self.on_eof()
                if asyncio.iscoroutine(result):
                    await result
