"""A reload (SIGHUP) with a live Matrix sync: an aliased room's release changes in place, a room
added to `rooms:` is joined and answered in, a room removed is left, a room the bot was invited
to (not in the config) is kept — all on the same login and sync loop."""

from __future__ import annotations

import logging

import pytest
import yaml
from nio import JoinedMembersResponse
from nio.api import RoomPreset

from ..reloading import sighup
from .conftest import bot_config, items_titled, prepare_db, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def _members(person, room: str) -> set[str]:
    resp = await person.client.joined_members(room)
    assert isinstance(resp, JoinedMembersResponse), resp
    return {m.user_id for m in resp.members}


async def test_reload_rebinds_joins_and_leaves_rooms(humans, synapse, tmp_path, bot_user, caplog):
    caplog.set_level(logging.INFO)
    alice = await humans("alice")
    alias_name, added_name = f"reload-{alice.name}", f"added-{alice.name}"
    room = (await alice.client.room_create(alias=alias_name, invite=[bot_user])).room_id
    dropped = await alice.create_room([bot_user])  # configured by id, removed by the reload
    invited = await alice.create_room([])  # never configured: alice invites the bot
    added = (await alice.client.room_create(alias=added_name, preset=RoomPreset.public_chat)).room_id
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id], inviters=[alice.user_id],
                        rooms=[{"room": f"#{alias_name}:localhost", "release": "4.3"}, dropped])
    await prepare_db(config.database, extra_release="4.3")
    app = await start_bot(config)
    bot = app.transports[-1]
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.client.room_invite(invited, bot_user)
        await alice.wait_until(lambda: {room, dropped, invited} <= set(bot.rooms()))
        sync_task, token = bot._task, bot.client.access_token
        data = config.model_dump()
        data["matrix"]["rooms"] = [{"room": f"#{alias_name}:localhost", "release": "4.2"},
                                   f"#{added_name}:localhost"]
        (tmp_path / "bot.yaml").write_text(yaml.safe_dump(data))
        app.config_path = str(tmp_path / "bot.yaml")
        changes = await sighup(app, caplog)
        assert any(c.startswith(f"matrix {room}: release 4.3 -> 4.2") for c in changes), changes
        assert f"matrix: joining #{added_name}:localhost" in changes
        assert f"matrix: leaving {dropped}" in changes
        assert not [c for c in changes if "restart" in c], changes
        await bot.settled()
        # The room added: joined, and answered in.
        assert bot_user in await _members(alice, added)
        ev = await alice.say(added, "!release")
        assert (await alice.reply_to(ev, bot_user)).body.startswith("Release 4.2")
        # The room removed: left. The room alice invited the bot to: kept.
        assert bot_user not in await _members(alice, dropped)
        assert dropped not in bot.rooms() and added in bot.rooms()
        assert bot_user in await _members(alice, invited)
        # The aliased room tracks its new release.
        ev = await alice.say(room, "!add tools nice tracked-in-4.2-after-reload")
        await alice.reply_to(ev, bot_user)
        [item] = await items_titled(config.database, "tracked-in-4.2-after-reload", release="4.2")
        assert item.release == "4.2"
        # Same login, same sync loop all along.
        assert bot._task is sync_task and not sync_task.done() and bot.client.access_token == token
    finally:
        await app.stop()
