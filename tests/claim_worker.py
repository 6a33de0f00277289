"""A second bot process for the two-process test: N tasks claiming items through the dispatcher.

Usage: python -m tests.claim_worker DB PROCESS_NAME TASKS FIRST_ITEM LAST_ITEM
Prints one JSON object: every reply text, in no particular order.
"""

from __future__ import annotations

import asyncio
import json
import sys

from todobot.bot.config import Config
from dataclasses import replace

from todobot.bot.dispatcher import Dispatcher
from todobot.bot.rooms import room_settings
from todobot.commands.messages import Message, Sender
from todobot.storage import Database, Repository


async def main(db_path: str, proc: str, tasks: int, first: int, last: int) -> None:
    db = await Database.open(db_path)
    config = Config(database=db_path, default_release="4.2")
    dispatcher = Dispatcher(Repository(db), config)
    # As the console binds itself: no per-person command rate on the operator's terminal.
    dispatcher.bind_default("console", replace(room_settings(config), cooldown=False))
    replies: list[str] = []

    async def worker(n: int) -> None:
        nick = f"{proc}-{n}"
        for item in range(first, last + 1):
            msg = Message(transport="console", room="r", text=f"I can take #{item}",
                          sender=Sender(identity=f"console:{nick}", nick=nick))
            reply = await dispatcher.handle(msg)
            replies.append(reply.plain if reply else "")

    await asyncio.gather(*(worker(n) for n in range(tasks)))
    await db.close()
    print(json.dumps(replies))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])))
