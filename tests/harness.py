"""Commands as text in, reply out: the dispatcher and a real database, no transport."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from todobot.bot.config import Config
from todobot.bot.dispatcher import Dispatcher
from todobot.bot.rooms import room_settings
from todobot.commands.messages import Message, Reply, Sender
from todobot.storage import Database, Item, Repository


class Clock:
    """A settable clock (now by default) for code that takes a `clock` callable."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now


async def ids(s, *names: str) -> list[int]:
    """Owners are persons: the ids of the persons with these names (placeholders if new)."""
    return [(await s.owner_named(n)).id for n in names]


def ts(*args: int) -> float:
    """A UTC timestamp: ts(2012, 7, 30, 9)."""
    return datetime(*args, tzinfo=timezone.utc).timestamp()


class Chat:
    def __init__(self, db: Database, config: Config) -> None:
        self.db = db
        self.repo = Repository(db)
        self.config = config
        self.clock = Clock()
        self.dispatcher = Dispatcher(self.repo, config, clock=self.clock)
        # As the console transport binds itself: the operator's terminal has no command rate.
        self.dispatcher.bind_default("console", replace(room_settings(config), cooldown=False))

    @classmethod
    async def open(cls, path: Path | str, **config) -> "Chat":
        config.setdefault("database", str(path))
        return cls(await Database.open(path), Config(**config))

    async def close(self) -> None:
        await self.db.close()

    async def reply(self, text: str, nick: str = "ijc", *, authenticated: bool = True,
                    room: str = "console", transport: str = "console", msg_id: str | None = None,
                    refers_to: tuple[int, ...] | None = None,
                    actions: frozenset[str] = frozenset(), identity: str | None = None,
                    sender: Sender | None = None) -> Reply | None:
        sender = sender or Sender(identity=identity or f"{transport}:{nick}", nick=nick,
                                  authenticated=authenticated)
        msg = Message(transport=transport, room=room, sender=sender, text=text, msg_id=msg_id,
                      refers_to=refers_to, actions=actions)
        return await self.dispatcher.handle(msg)

    async def say(self, text: str, nick: str = "ijc", **kw) -> str | None:
        """The reply as the console prints it (without the `<todobot>` prefix), or None."""
        reply = await self.reply(text, nick, **kw)
        return None if reply is None else reply.plain

    async def item(self, item_id: int) -> Item:
        async with self.repo.session("test", write=False) as s:
            return await s.get(item_id, with_notes=True)

    async def history(self, item_id: int):
        async with self.repo.session("test", write=False) as s:
            return await s.history(item_id, limit=1000)
