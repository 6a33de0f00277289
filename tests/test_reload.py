"""SIGHUP's reload, in process: admins, digest and room settings change; connections stay."""

from __future__ import annotations

import asyncio
import logging
import socket

from todobot.bot.app import App
from todobot.bot.config import load_config
from todobot.bot.dispatcher import Dispatcher


def _write(path, *, admins, release, digest="monday 09:00", channels='["#a", {name: "#b", release: "4.2"}]',
           port):
    path.write_text(f'database: todo.sqlite3\nadmins: {admins}\ndefault_release: "{release}"\n'
                    f'digest: {{every: "{digest}"}}\n'
                    f'irc: [{{network: local, host: 127.0.0.1, port: {port}, tls: false, channels: {channels}}}]\n')


async def test_reload_applies_admins_digest_and_room_settings(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    server = socket.create_server(("127.0.0.1", 0))  # accepts, never answers: the link stays up
    port = server.getsockname()[1]
    cfg = tmp_path / "bot.yaml"
    _write(cfg, admins='["console:ijc"]', release="4.2", port=port)
    app = App(load_config(cfg), config_path=str(cfg))
    await app.initialize()
    await app.start()
    try:
        irc = app.transports[0]
        d = app.dispatcher
        for _ in range(100):
            if irc.attempts:
                break
            await asyncio.sleep(0.02)
        assert d.settings_for("irc:local", "#a").release == "4.2"
        assert d.settings_for("irc:local", "#a").digest_every == "monday 09:00"
        _write(cfg, admins='["console:ijc", "irc:local/george"]', release="4.3", digest="friday 16:00",
               channels='["#a", {name: "#b", release: "4.2"}, "#c"]', port=port)
        changes = app.reload()
        assert "admins: +irc:local/george" in changes
        assert "irc:local: joining #c takes a restart" in changes
        assert any(c.startswith("irc:local #a: release 4.2 -> 4.3, digest_every monday 09:00 -> friday 16:00")
                   for c in changes), changes
        assert any(c.startswith("irc:local #b: digest_every monday 09:00 -> friday 16:00") for c in changes), changes
        assert d.config.admins == ["console:ijc", "irc:local/george"]
        assert d.settings_for("irc:local", "#a").release == "4.3"
        assert d.settings_for("irc:local", "#b").release == "4.2"
        assert d.settings_for("irc:local", "nick").digest_every == "friday 16:00"  # private: the default
        assert app.scheduler.config is app.config and irc.config is app.config
        assert "reload: admins: +irc:local/george" in caplog.text
        # A file that no longer validates changes nothing.
        cfg.write_text("admins: [george]\n")
        assert app.reload() == []
        assert "keeping the running configuration" in caplog.text and "admins[0]: 'george'" in caplog.text
        assert d.config.admins == ["console:ijc", "irc:local/george"]
        # Nothing changed: said so.
        _write(cfg, admins='["console:ijc", "irc:local/george"]', release="4.3", digest="friday 16:00",
               channels='["#a", {name: "#b", release: "4.2"}, "#c"]', port=port)
        assert app.reload() == ["irc:local: joining #c takes a restart"]
        assert irc.attempts == 1  # one connection all along
    finally:
        await app.stop()
        server.close()


def test_matrix_rooms_rebind_by_room_id(monkeypatch, tmp_path):
    from todobot.bot.matrix import MatrixTransport
    monkeypatch.setenv("TODOBOT_T", "x")
    cfg = tmp_path / "bot.yaml"
    body = ("matrix: {{homeserver: 'http://127.0.0.1:1', user_id: '@b:x', password_env: TODOBOT_T,"
            " rooms: ['#xen:x', {{room: '!abc:x', release: '{}'}}]}}\n")
    cfg.write_text(body.format("4.2"))
    config = load_config(cfg)
    t = MatrixTransport(config.matrix, config, None)
    t.dispatcher = d = Dispatcher(None, config)
    t._room_ids["#xen:x"] = "!xen:x"  # as _join_configured records an alias once resolved
    cfg.write_text(body.format("4.3").replace("'#xen:x'", "{room: '#xen:x', release: '4.1'}"))
    new = load_config(cfg)
    assert t.apply_config(new) == []
    assert d.settings_for("matrix", "!abc:x").release == "4.3"
    assert d.settings_for("matrix", "!xen:x").release == "4.1"
    assert t.room_release["!abc:x"].release == "4.3"


async def test_reload_rebinds_the_console_of_run_console(tmp_path):
    import io

    from todobot.bot.cli import console_settings
    from todobot.bot.console import ConsoleTransport
    cfg = tmp_path / "bot.yaml"
    cfg.write_text('database: todo.sqlite3\ndefault_release: "4.2"\n')
    config = load_config(cfg)
    console = ConsoleTransport(user="ijc", settings=console_settings(config), stdin=io.StringIO(""),
                               stdout=io.StringIO(), settings_for=console_settings)
    app = App(config, config_path=str(cfg), transports=[console])
    await app.initialize()
    await app.start()
    try:
        cfg.write_text('database: todo.sqlite3\ndefault_release: "4.2"\nconsole: {release: "4.3"}\n')
        assert "console console: release 4.2 -> 4.3" in app.reload()
        assert app.dispatcher.settings_for("console", "console").release == "4.3"
    finally:
        await app.stop()
