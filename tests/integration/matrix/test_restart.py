"""Crashes and restarts: at-most-once handling, no replayed backlog, no new devices."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from nio import AsyncClient, DevicesResponse

from todobot.bot.app import App
from todobot.bot.matrix import MatrixLoginError

from .conftest import (PASSWORD, PASSWORD_ENV, bot_config, items_titled, prepare_db, start_bot,
                       wait_bot_synced)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[3]


def _spawn_bot(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, **{PASSWORD_ENV: PASSWORD})
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "todobot", "run", "-c", str(config_path)],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_sigkill_mid_burst_then_restart(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    # Said before the bot ever ran: backlog, never to be answered.
    backlog = await alice.say(room, "!add tools nice backlog-before-first-sync")

    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    await prepare_db(config.database)
    config_path = tmp_path / "bot.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    log = tmp_path / "bot.log"

    proc = _spawn_bot(config_path, log)
    procs = [proc]
    try:
        await wait_bot_synced(config.database, bot_user)
        ping = await alice.say(room, "!todo")
        await alice.reply_to(ping, bot_user, timeout=90)

        count = 40
        sent: list[str] = []

        async def burst() -> None:
            for i in range(count):
                sent.append(await alice.say(room, f"!add tools nice burst-{i:02d}"))

        sender = asyncio.create_task(burst())
        await alice.wait_until(lambda: sum(bool(alice.replies_to(e, bot_user)) for e in sent) >= 5)
        proc.send_signal(signal.SIGKILL)  # mid-burst, no chance to clean up
        proc.wait(10)
        await sender
        answered_before = sum(bool(alice.replies_to(e, bot_user)) for e in sent)
        assert answered_before < count, "the burst ended before the kill; nothing was tested"

        proc = _spawn_bot(config_path, log)
        procs.append(proc)
        await alice.wait_until(lambda: alice.replies_to(sent[-1], bot_user), timeout=90)
        ping2 = await alice.say(room, "!todo")
        # The bot answers a room in order: a duplicate of an earlier answer came before this.
        await alice.reply_to(ping2, bot_user, timeout=90)

        for i, ev in enumerate(sent):
            assert len(alice.replies_to(ev, bot_user)) <= 1, f"command {i} answered twice"
            found = await items_titled(config.database, f"burst-{i:02d}")
            assert len(found) == 1, f"command {i} had {len(found)} effects"
        assert alice.replies_to(backlog, bot_user) == []
        assert await items_titled(config.database, "backlog-before-first-sync") == []
        assert len(alice.replies_to(ping, bot_user)) == 1
        # Most commands still got their answer (only those caught by the kill may lack one).
        answered = sum(bool(alice.replies_to(e, bot_user)) for e in sent)
        assert answered >= count - 5
    finally:
        for p in procs:
            _stop(p)


async def _bot_devices(synapse, config) -> list[str]:
    creds = json.loads((Path(config.matrix.data_dir) / "credentials.json").read_text())
    client = AsyncClient(synapse.url, creds["user_id"])
    client.restore_login(creds["user_id"], creds["device_id"], creds["access_token"])
    try:
        resp = await client.devices()
        assert isinstance(resp, DevicesResponse), resp
        return [d.id for d in resp.devices]
    finally:
        await client.close()


@pytest.mark.slow
async def test_ten_restarts_add_no_devices(humans, synapse, tmp_path, bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    app = await start_bot(config)
    await alice.wait_until(lambda: app.transports[-1].synced.is_set())
    await app.stop()
    # Registration made a device of its own; the bot's login made one more.
    devices = await _bot_devices(synapse, config)
    bot_device = json.loads((Path(config.matrix.data_dir) / "credentials.json").read_text())
    assert bot_device["device_id"] in devices
    for _ in range(10):
        app = await start_bot(config)
        await alice.wait_until(lambda: app.transports[-1].synced.is_set())
        await app.stop()
    assert sorted(await _bot_devices(synapse, config)) == sorted(devices)
    app = await start_bot(config)
    try:  # and the restored login still works
        ev = await alice.say(room, "!todo")
        await alice.reply_to(ev, bot_user)
    finally:
        await app.stop()
    assert sorted(await _bot_devices(synapse, config)) == sorted(devices)


async def test_revoked_token_fails_loudly(synapse, tmp_path, bot_user):
    config = bot_config(synapse, tmp_path, bot_user)
    app = await start_bot(config)
    await app.stop()
    creds = json.loads((Path(config.matrix.data_dir) / "credentials.json").read_text())
    client = AsyncClient(synapse.url, creds["user_id"])
    client.restore_login(creds["user_id"], creds["device_id"], creds["access_token"])
    await client.logout()
    await client.close()

    app = App(config)
    await app.initialize()
    try:
        with pytest.raises(MatrixLoginError, match="revoked") as err:
            await app.start()
        assert "credentials.json" in str(err.value)
    finally:
        await app.stop()


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_sigkill_twenty_times(humans, synapse, tmp_path, bot_user):
    """Twenty kills at random points of command bursts; then every command has had exactly
    one effect (Matrix keeps what was said while the bot was down) and at most one answer."""
    import random

    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    await prepare_db(config.database)
    config_path = tmp_path / "bot.yaml"
    config_path.write_text(yaml.safe_dump(json.loads(config.model_dump_json())))
    log = tmp_path / "bot.log"
    rng = random.Random(4242)
    sent: list[str] = []
    procs = []
    try:
        for rnd in range(20):
            proc = _spawn_bot(config_path, log)
            procs.append(proc)
            if rnd == 0:
                await wait_bot_synced(config.database, bot_user)
            burst = [await alice.say(room, f"!add tools nice kill-{rnd:02d}-{i}") for i in range(6)]
            sent += burst
            wanted = rng.randrange(0, 6)
            await alice.wait_until(lambda: sum(bool(alice.replies_to(e, bot_user)) for e in burst)
                                   >= wanted, timeout=90)
            proc.send_signal(signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 10)
        proc = _spawn_bot(config_path, log)
        procs.append(proc)
        # The last restart catches up on everything said while the bot was dead.
        await alice.wait_until(lambda: alice.replies_to(sent[-1], bot_user), timeout=120)
        await alice.barrier(room, bot_user, timeout=90)  # late duplicates came before its answer
        for i, ev in enumerate(sent):
            assert len(alice.replies_to(ev, bot_user)) <= 1, f"command {i} answered twice"
        for rnd in range(20):
            for i in range(6):
                found = await items_titled(config.database, f"kill-{rnd:02d}-{i}")
                assert len(found) == 1, f"kill-{rnd:02d}-{i} had {len(found)} effects"
        answered = sum(bool(alice.replies_to(e, bot_user)) for e in sent)
        assert answered >= len(sent) - 20  # only a command caught by a kill may lack its answer
    finally:
        for p in procs:
            _stop(p)
