"""Commands said while the bot was down, behind more messages than one sync returns: the
transport pages back with /messages and handles each command once."""

from __future__ import annotations

import asyncio
import json
import re
import signal

import pytest
import yaml

from .conftest import bot_config, items_titled, prepare_db, start_bot, wait_bot_synced
from .test_restart import _spawn_bot, _stop

pytestmark = pytest.mark.integration
CHATTER = 120  # more than the 100 events a sync returns per room


async def _say_behind_a_gap(alice, room: str, item_id: int) -> tuple[str, str]:
    status = await alice.say(room, f"!status {item_id} fixed behind the gap")
    add = await alice.say(room, "!add tools nice added-behind-the-gap")
    for i in range(CHATTER):
        await alice.say(room, f"just chatting, message {i}")
    return status, add


async def _answered_once(alice, bot_user: str, database: str, item_id: int, status: str,
                         add: str) -> None:
    answer = await alice.reply_to(status, bot_user, timeout=120)
    assert answer.body == f"#{item_id} progress: fixed behind the gap (was: none)."
    await alice.reply_to(add, bot_user, timeout=60)
    [item] = await items_titled(database, "gap-target")
    assert item.progress == "fixed behind the gap"
    assert len(await items_titled(database, "added-behind-the-gap")) == 1


async def test_a_command_behind_a_long_gap_is_applied_once(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        ev = await alice.say(room, "!add tools nice gap-target")
        item_id = int(re.match(r"Added #(\d+)", (await alice.reply_to(ev, bot_user)).body)[1])
    finally:
        await app.stop()
    status, add = await _say_behind_a_gap(alice, room, item_id)
    app = await start_bot(config)
    try:
        await _answered_once(alice, bot_user, config.database, item_id, status, add)
        assert app.transports[-1].gap_fetched > 0  # what the limited timeline left out
    finally:
        await app.stop()
    app = await start_bot(config)  # and once more: nothing is handled twice
    try:
        ping = await alice.say(room, "!todo")
        await alice.reply_to(ping, bot_user)  # answers in order: a second answer came before
        assert len(alice.replies_to(status, bot_user)) == 1
        assert len(alice.replies_to(add, bot_user)) == 1
        assert len(await items_titled(config.database, "added-behind-the-gap")) == 1
    finally:
        await app.stop()


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_a_gap_after_kill_9_is_applied_once(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    await prepare_db(config.database)
    config_path = tmp_path / "bot.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    log = tmp_path / "bot.log"
    procs = [_spawn_bot(config_path, log)]
    try:
        await wait_bot_synced(config.database, bot_user)
        ev = await alice.say(room, "!add tools nice gap-target")
        item_id = int(re.match(r"Added #(\d+)", (await alice.reply_to(ev, bot_user, timeout=90)
                                                 ).body)[1])
        procs[-1].send_signal(signal.SIGKILL)
        await asyncio.to_thread(procs[-1].wait, 10)
        status, add = await _say_behind_a_gap(alice, room, item_id)
        procs.append(_spawn_bot(config_path, log))
        await _answered_once(alice, bot_user, config.database, item_id, status, add)
        # Killed again right after answering: the restart fetches the gap again (its token may
        # not be stored yet) and must not act twice.
        procs[-1].send_signal(signal.SIGKILL)
        await asyncio.to_thread(procs[-1].wait, 10)
        procs.append(_spawn_bot(config_path, log))
        ping = await alice.say(room, "!todo")
        await alice.reply_to(ping, bot_user, timeout=90)  # a second answer came before this
        assert len(alice.replies_to(status, bot_user)) == 1
        assert len(await items_titled(config.database, "added-behind-the-gap")) == 1
        assert "gap in" in log.read_text()
    finally:
        for p in procs:
            _stop(p)


async def test_what_lies_beyond_the_bound_is_logged_not_handled(humans, synapse, tmp_path,
                                                                bot_user, caplog):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id],
                        gap_fetch_max=5)
    app = await start_bot(config)
    await wait_bot_synced(config.database, bot_user)
    await app.stop()
    early = await alice.say(room, "!add tools nice too-far-back")
    for i in range(CHATTER):
        await alice.say(room, f"just chatting, message {i}")
    app = await start_bot(config)
    try:
        ping = await alice.say(room, "!todo")
        await alice.reply_to(ping, bot_user, timeout=90)
        assert app.transports[-1].gap_fetched == 5
        assert "stopped at the limit of 5 events" in caplog.text
        assert alice.replies_to(early, bot_user) == []
        assert await items_titled(config.database, "too-far-back") == []
    finally:
        await app.stop()
