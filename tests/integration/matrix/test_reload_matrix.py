"""A reload (SIGHUP) with a live Matrix sync: an aliased room's release changes in place."""

from __future__ import annotations

import pytest
import yaml

from .conftest import bot_config, items_titled, prepare_db, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration


async def test_reload_rebinds_an_aliased_room(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    alias_name = f"reload-{alice.name}"
    resp = await alice.client.room_create(alias=alias_name, invite=[bot_user])
    room = resp.room_id
    config = bot_config(synapse, tmp_path, bot_user, admins=[alice.user_id],
                        rooms=[{"room": f"#{alias_name}:localhost", "release": "4.3"}])
    await prepare_db(config.database, extra_release="4.3")
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        data = config.model_dump()
        data["matrix"]["rooms"] = [{"room": f"#{alias_name}:localhost", "release": "4.2"}]
        (tmp_path / "bot.yaml").write_text(yaml.safe_dump(data))
        app.config_path = str(tmp_path / "bot.yaml")
        changes = app.reload()
        assert any(c.startswith(f"matrix {room}: release 4.3 -> 4.2") for c in changes), changes
        ev = await alice.say(room, "!add tools nice tracked-in-4.2-after-reload")
        await alice.reply_to(ev, bot_user)
        [item] = await items_titled(config.database, "tracked-in-4.2-after-reload", release="4.2")
        assert item.release == "4.2"
    finally:
        await app.stop()
