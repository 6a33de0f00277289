"""Concurrent claims are serialized: no lost update, history consistent with the result."""

from __future__ import annotations

import asyncio
import json

from todobot.commands.claims import MAX_OWNERS


async def test_hundred_concurrent_claims(chat):
    await chat.say("!add tools blocker contended item")
    nicks = [f"dev{i:03d}" for i in range(100)]
    replies = await asyncio.gather(*(chat.say("!claim 4", n) for n in nicks))
    item = await chat.item(4)
    # Exactly MAX_OWNERS claims win, whatever the interleaving: nobody lost, nobody extra.
    assert len(item.owners) == MAX_OWNERS and set(item.owners) <= set(nicks)
    first = item.owners[0]
    assert f"#4 claimed by {first} (was unclaimed): contended item" in replies
    assert sum("(was unclaimed)" in r for r in replies) == 1
    assert sum("as co-owner" in r for r in replies) == MAX_OWNERS - 1
    assert sum(r.startswith(f"An item has at most {MAX_OWNERS} owners") for r in replies) == 100 - MAX_OWNERS
    # History replays to the final state, one row per claim, each building on the previous.
    rows = [c for c in await chat.history(4) if c.field == "owners"]
    assert len(rows) == MAX_OWNERS
    state: list[str] = []
    for row in rows:
        assert json.loads(row.before) == state
        state = json.loads(row.after)
    assert state == item.owners


async def test_concurrent_natural_claims_have_one_winner(chat):
    await chat.say("!add tools blocker another")
    replies = await asyncio.gather(*(chat.say("I can take #4", f"p{i}") for i in range(30)))
    item = await chat.item(4)
    assert len(item.owners) == 1
    assert sum(r.startswith("#4 claimed by") for r in replies) == 1
    assert sum("is already claimed by" in r for r in replies) == 29
