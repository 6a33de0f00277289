"""Synapse at its default rate limits (rc_message 0.2/s, burst 10): no reply is lost."""

from __future__ import annotations

import asyncio

import pytest

from .conftest import (PASSWORD, Human, bot_config, items_titled, start_bot, start_synapse,
                       unique, wait_bot_synced)

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COMMANDS = 30


@pytest.fixture(scope="module")
def strict_synapse(tmp_path_factory):
    server = start_synapse(tmp_path_factory.mktemp("synapse-default-limits"),
                           default_rate_limits=True)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(900)
async def test_thirty_replies_in_a_row_none_lost(strict_synapse, tmp_path):
    # Three people, ten commands each: within each one's own burst, so the commands arrive
    # at once and the bot's thirty replies run into its own limit.
    people = [await Human(strict_synapse, unique(n), tmp_path / n).start()
              for n in ("alice", "bob", "carol")]
    alice = people[0]
    app = None
    try:
        bot_user = strict_synapse.register(unique("todobot"), PASSWORD)
        room = await alice.create_room([p.user_id for p in people[1:]] + [bot_user])
        for p in people[1:]:
            await p.join(room)
        config = bot_config(strict_synapse, tmp_path, bot_user, rooms=[room],
                            admins=[alice.user_id])
        app = await start_bot(config)
        await wait_bot_synced(config.database, bot_user)

        async def commands(who: Human, first: int) -> list[tuple[int, str]]:
            return [(i, await who.say(room, f"!add tools nice rl-{i:02d}"))
                    for i in range(first, first + COMMANDS // 3)]

        batches = await asyncio.gather(*(commands(p, k * COMMANDS // 3)
                                         for k, p in enumerate(people)))
        sent = [pair for batch in batches for pair in batch]
        assert len(sent) == COMMANDS
        await alice.wait_until(lambda: all(alice.replies_to(e, bot_user) for _, e in sent),
                               timeout=600)
        await alice.barrier(room, bot_user, timeout=600)  # a second answer would come before
        for i, ev in sent:
            [reply] = alice.replies_to(ev, bot_user)
            assert reply.body.startswith("Added #") and reply.body.endswith(f"rl-{i:02d}")
            assert len(await items_titled(config.database, f"rl-{i:02d}")) == 1
        assert app.transports[-1].rate_limited > 0, "the server never said 429: nothing tested"
    finally:
        if app is not None:
            await app.stop()
        for p in people:
            await p.close()
