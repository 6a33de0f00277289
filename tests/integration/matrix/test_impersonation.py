"""A display name is a label, never an identity: tried on a real Synapse as mallory would."""

from __future__ import annotations


import pytest

from .conftest import bot_config, items_titled, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def test_display_names_never_grant_rights(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    mallory = await humans("mallory")
    config = bot_config(synapse, tmp_path, bot_user, inviters=[alice.user_id])
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        room = await alice.create_room([mallory.user_id])
        await mallory.join(room)
        await alice.client.room_invite(room, bot_user)
        await alice.wait_membership(room, bot_user, "join")

        await alice.set_name(room, "Alice Matrix")
        ev = await alice.say(room, "!add tools nice alice-owns-this")
        item_id = int((await alice.reply_to(ev, bot_user)).body.split("#")[1].split()[0])
        ev = await alice.say(room, f"!claim {item_id}")
        assert "claimed by Alice Matrix" in (await alice.reply_to(ev, bot_user)).body

        # mallory takes alice's display name: a label, shown apart, with no rights.
        await mallory.set_name(room, "Alice Matrix")
        for command in (f"!done {item_id}", f"!assign {item_id} Mallory", f"!status {item_id} x"):
            ev = await mallory.say(room, command)
            answer = (await mallory.reply_to(ev, bot_user)).body
            if command.startswith("!status"):  # anyone may set progress, under their own name
                assert "progress: x" in answer
            else:
                assert answer.startswith(f"Only the owners of #{item_id}"), answer
        ev = await mallory.say(room, "!iam Alice Matrix")
        assert "Alice Matrix is taken by matrix:" in (await mallory.reply_to(ev, bot_user)).body
        ev = await mallory.say(room, "!iam @alice:localhost")
        assert "not a name" in (await mallory.reply_to(ev, bot_user)).body
        [item] = await items_titled(config.database, "alice-owns-this")
        assert (item.owners, item.state) == (["Alice Matrix"], "open")
        # Her own claims show her apart from alice.
        ev = await mallory.say(room, "!add tools nice mallorys")
        mine = int((await mallory.reply_to(ev, bot_user)).body.split("#")[1].split()[0])
        ev = await mallory.say(room, f"!claim {mine}")
        said = (await mallory.reply_to(ev, bot_user)).body
        shown = said.split(" claimed by ", 1)[1].split(" (was unclaimed)")[0]
        assert shown != "Alice Matrix" and mallory.user_id.split(":")[0][1:] in shown, said
        # alice still owns hers.
        ev = await alice.say(room, f"!done {item_id}")
        assert (await alice.reply_to(ev, bot_user)).body.startswith(f"#{item_id} done")
    finally:
        await app.stop()
