"""Invites, leaving, history from before the bot joined, display names."""

from __future__ import annotations

import json

import pytest

from .conftest import (PASSWORD, bot_config, items_titled, open_repo, prepare_db, start_bot,
                       unique, wait_bot_synced)

pytestmark = pytest.mark.integration


async def test_invites_history_leave_and_display_names(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")  # allowed to invite, and a release manager
    bob = await humans("bob")  # neither
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id],
                        inviters=[alice.user_id])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)

        # bob's invite is declined.
        bobs_room = await bob.create_room([bot_user])
        await bob.wait_membership(bobs_room, bot_user, "leave")
        assert bobs_room not in app.transports[-1].rooms()

        # alice's invite is accepted; what was said before the bot joined stays unanswered.
        room = await alice.create_room([bob.user_id])
        await bob.join(room)
        before = await alice.say(room, "!add tools nice said-before-the-bot-came")
        await alice.client.room_invite(room, bot_user)
        await alice.wait_membership(room, bot_user, "join")

        # Matrix display names are the default names (bob sets one first).
        await bob.set_name(room, "Bob Builder")
        ev = await alice.say(room, "!add tools nice after-join")
        added = await alice.reply_to(ev, bot_user)
        item_id = int(added.body.split("#")[1].split()[0])
        ev = await bob.say(room, f"!claim {item_id}")
        claimed = await bob.reply_to(ev, bot_user)
        assert claimed.body.startswith(f"#{item_id} claimed by Bob Builder"), claimed.body
        [item] = await items_titled(config.database, "after-join")
        assert item.owners == ["Bob Builder"]
        assert alice.replies_to(before, bot_user) == []
        assert await items_titled(config.database, "said-before-the-bot-came") == []

        # Only a release manager can make the bot leave.
        ev = await bob.say(room, "!leave")
        refused = await bob.reply_to(ev, bot_user)
        assert "Only release managers" in refused.body
        assert room in app.transports[-1].rooms()
        ev = await alice.say(room, "!leave")
        await alice.reply_to(ev, bot_user)
        await alice.wait_membership(room, bot_user, "leave")
    finally:
        await app.stop()


async def test_alias_in_config_binds_its_release(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    alias_name = f"rel43-{alice.name}"
    resp = await alice.client.room_create(alias=alias_name, invite=[bot_user])
    room = resp.room_id
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id],
                        rooms=[{"room": f"#{alias_name}:localhost", "release": "4.3"}])
    await prepare_db(config.database, extra_release="4.3")
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        ev = await alice.say(room, "!add tools nice tracked-in-4.3")
        await alice.reply_to(ev, bot_user)
        [item] = await items_titled(config.database, "tracked-in-4.3", release="4.3")
        assert item.release == "4.3"
    finally:
        await app.stop()


async def test_login_with_an_access_token(humans, synapse, tmp_path, monkeypatch):
    alice = await humans("alice")
    user = unique("todobot")
    reg = synapse.register_login(user, PASSWORD)
    monkeypatch.setenv("TODOBOT_TEST_MATRIX_TOKEN", reg["access_token"])
    room = await alice.create_room([reg["user_id"]])
    config = bot_config(synapse, tmp_path, reg["user_id"], rooms=[room], admins=[alice.user_id],
                        token_env="TODOBOT_TEST_MATRIX_TOKEN")
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, reg["user_id"])
        ev = await alice.say(room, "!todo")
        await alice.reply_to(ev, reg["user_id"])
        creds = json.loads((tmp_path / "matrix-data" / "credentials.json").read_text())
        assert creds["device_id"] == reg["device_id"]
    finally:
        await app.stop()


async def test_refused_commands_count_for_the_cooldown(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    mallory = await humans("mallory")
    room = await alice.create_room([mallory.user_id, bot_user])
    await mallory.join(room)
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id],
                        cooldown={"burst": 3, "rate": 0.05})
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        sent = [await mallory.say(room, "!leave") for _ in range(30)]
        await mallory.wait_until(lambda: any("too many commands" in e.body
                                             for s in sent for e in mallory.replies_to(s, bot_user)))
        await mallory.barrier(room, bot_user, by=alice)  # mallory's own would be refused
        said = [e.body for s in sent for e in mallory.replies_to(s, bot_user)]
        assert sum("too many commands" in b for b in said) == 1, said
        assert sum(b.startswith("Only release managers") for b in said) <= 4, said
        assert room in app.transports[-1].rooms()
    finally:
        await app.stop()


async def _upgrade(person, synapse, room: str) -> str:
    """The homeserver's own room upgrade (POST /rooms/{id}/upgrade): the new room's id."""
    import aiohttp
    from urllib.parse import quote
    url = f"{synapse.url}/_matrix/client/v3/rooms/{quote(room)}/upgrade"
    headers = {"Authorization": f"Bearer {person.client.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json={"new_version": "10"}, headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return body["replacement_room"]


async def test_an_upgraded_room_is_followed_with_its_settings(humans, synapse, tmp_path,
                                                                bot_user):
    from nio import RoomPreset
    alice = await humans("alice")
    created = await alice.client.room_create(invite=[bot_user], preset=RoomPreset.public_chat)
    room = created.room_id
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id],
                        rooms=[{"room": room, "release": "4.3"}])
    await prepare_db(config.database, extra_release="4.3")
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        new = await _upgrade(alice, synapse, room)
        await alice.wait_until(lambda: new in app.transports[-1].rooms())
        await alice.wait_until(lambda: new in alice.client.rooms)
        ev = await alice.say(new, "!add tools nice said-in-the-new-room")
        await alice.reply_to(ev, bot_user)
        [item] = await items_titled(config.database, "said-in-the-new-room", release="4.3")
        assert item.release == "4.3"
    finally:
        await app.stop()
    app = await start_bot(config)  # after a restart, the new room still tracks 4.3
    try:
        await wait_bot_synced(config.database, bot_user)
        ev = await alice.say(new, "!add tools nice after-a-restart")
        await alice.reply_to(ev, bot_user)
        [item] = await items_titled(config.database, "after-a-restart", release="4.3")
        assert item.release == "4.3"
    finally:
        await app.stop()


async def test_a_tombstone_to_a_room_that_does_not_replace_it_is_not_followed(
        humans, synapse, tmp_path, bot_user):
    """Mallory, made an admin of the room (power 100: enough for m.room.tombstone), points a
    tombstone at a room of her own. The bot looks, sees that room's m.room.create does not name
    the old room as its predecessor, leaves it, and goes on serving the old room only, also
    after a restart."""
    from nio import RoomPreset, RoomPutStateResponse
    alice = await humans("alice")
    mallory = await humans("mallory")
    # Version 10: from 12 on, only creators may send a tombstone (level 150).
    created = await alice.client.room_create(invite=[bot_user, mallory.user_id],
                                             preset=RoomPreset.public_chat, room_version="10")
    room = created.room_id
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id], rooms=[room])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        await mallory.join(room)
        levels = await alice.client.room_get_state_event(room, "m.room.power_levels")
        content = dict(levels.content)
        content["users"] = {**content.get("users", {}), mallory.user_id: 100}
        sent = await alice.client.room_put_state(room, "m.room.power_levels", content)
        assert isinstance(sent, RoomPutStateResponse), sent
        await alice.wait_until(lambda: any(
            e.source.get("type") == "m.room.power_levels"
            and mallory.user_id in e.source.get("content", {}).get("users", {})
            for r, e in alice.events if r == room))
        theirs = (await mallory.client.room_create(preset=RoomPreset.public_chat)).room_id
        sent = await mallory.client.room_put_state(room, "m.room.tombstone", {
            "body": "This room has moved", "replacement_room": theirs})
        assert isinstance(sent, RoomPutStateResponse), sent
        await mallory.wait_membership(theirs, bot_user, "join")
        await mallory.wait_membership(theirs, bot_user, "leave")
        await alice.barrier(room, bot_user)  # still answering in the old room
        assert theirs not in app.transports[-1].rooms()
    finally:
        await app.stop()
    db, repo = await open_repo(config.database)
    try:
        async with repo.session("test", write=False) as s:
            assert await s.kv_get(f"matrix:{bot_user}:upgraded:{room}") is None
    finally:
        await db.close()
