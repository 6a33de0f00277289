"""SIGHUP's reload, in process: admins, digest, room settings and the rooms themselves change;
connections stay. (Against real servers: tests/integration/*/test_reload_*.py.)"""

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
        assert "irc:local: joining #c" in changes  # at registration: the link is not up yet
        assert any(c.startswith("irc:local #a: release 4.2 -> 4.3, digest_every monday 09:00 -> friday 16:00")
                   for c in changes), changes
        assert any(c.startswith("irc:local #b: digest_every monday 09:00 -> friday 16:00") for c in changes), changes
        assert d.config.admins == ["console:ijc", "irc:local/george"]
        assert d.settings_for("irc:local", "#a").release == "4.3"
        assert d.settings_for("irc:local", "#b").release == "4.2"
        assert d.settings_for("irc:local", "nick").digest_every == "friday 16:00"  # private: the default
        assert app.scheduler.config is app.config and irc.config is app.config
        # The digest schedule follows the rooms: #c gets digests from now on.
        assert sorted(t.room for t in await app.scheduler.targets()) == ["#a", "#b", "#c"]
        assert "reload: admins: +irc:local/george" in caplog.text
        # A file that no longer validates changes nothing.
        cfg.write_text("admins: [george]\n")
        assert app.reload() == []
        assert "keeping the running configuration" in caplog.text and "admins[0]: 'george'" in caplog.text
        assert d.config.admins == ["console:ijc", "irc:local/george"]
        # Nothing changed: said so.
        _write(cfg, admins='["console:ijc", "irc:local/george"]', release="4.3", digest="friday 16:00",
               channels='["#a", {name: "#b", release: "4.2"}, "#c"]', port=port)
        assert app.reload() == []
        assert "nothing changed" in caplog.text
        # A network added, one whose server changed: both wait for a restart, and say so.
        cfg.write_text(cfg.read_text().replace(
            "irc: [", "irc: [{network: other, host: 127.0.0.1, port: 1, tls: false}, ")
            .replace(f"port: {port}, tls: false", f"port: {port}, tls: false, nick: todobot2"))
        assert app.reload() == ["irc:other: added to the configuration; connecting takes a restart",
                                "irc:local: nick changed; reconnecting with it takes a restart"]
        assert irc.attempts == 1  # one connection all along
        assert irc.rooms() == ["#a", "#b", "#c"]
        # A channel removed: unbound, and no digest for it any more.
        cfg.write_text(cfg.read_text().replace('{name: "#b", release: "4.2"}, ', ""))
        assert "irc:local: leaving #b" in app.reload()
        assert sorted(t.room for t in await app.scheduler.targets()) == ["#a", "#c"]
        assert ("irc:local", "#b") not in d.bindings()
    finally:
        await app.stop()
        server.close()


def test_matrix_rooms_rebind_by_room_id_and_removed_rooms_unbind(monkeypatch, tmp_path):
    from todobot.bot.matrix import MatrixTransport
    from todobot.bot.transport import Reconfigured
    monkeypatch.setenv("TODOBOT_T", "x")
    cfg = tmp_path / "bot.yaml"
    body = ("matrix: {{homeserver: 'http://127.0.0.1:1', user_id: '@b:x', password_env: TODOBOT_T,"
            " rooms: ['#xen:x', {{room: '!abc:x', release: '{}'}}, '!old:x']}}\n")
    cfg.write_text(body.format("4.2"))
    config = load_config(cfg)
    t = MatrixTransport(config.matrix, config, None)
    t.dispatcher = d = Dispatcher(None, config)
    t._room_ids["#xen:x"] = "!xen:x"  # as _join_configured records an alias once resolved
    t._successor["!xen:x"] = "!xen2:x"  # ... and a room upgrade it followed
    for room_id, settings in [("!xen:x", t.configured["#xen:x"]), ("!xen2:x", t.configured["#xen:x"]),
                              ("!old:x", t.configured["!old:x"])]:
        t.room_release[room_id] = settings
        d.bind_room("matrix", room_id, settings)
    cfg.write_text(body.format("4.3").replace("'#xen:x'", "{room: '#xen:x', release: '4.1'}")
                   .replace("'!old:x'", "'#new:x'").replace("max_events", "")
                   .replace("rooms:", "max_events: 3, allowed_inviters: ['@ijc:x'], rooms:"))
    new = load_config(cfg)
    assert t.apply_config(new) == Reconfigured(
        changes=["matrix: joining #new:x", "matrix: leaving !old:x",
                 "matrix: allowed_inviters [] -> ['@ijc:x']", "matrix: max_events 5 -> 3"])
    assert d.settings_for("matrix", "!abc:x").release == "4.3"
    assert d.settings_for("matrix", "!xen:x").release == "4.1"
    assert d.settings_for("matrix", "!xen2:x").release == "4.1"  # the upgraded room follows
    assert t.room_release["!abc:x"].release == "4.3"
    assert "!old:x" not in t.room_release and ("matrix", "!old:x") not in d.bindings()
    assert t.mcfg.max_events == 3 and t.mcfg.allowed_inviters == ["@ijc:x"]
    new = new.model_copy(update={"matrix": new.matrix.model_copy(update={"homeserver": "http://127.0.0.1:2"})})
    assert t.apply_config(new).restart == ["matrix: homeserver changed; that takes a restart"]


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


async def test_irc_reload_parts_removed_and_joins_added_channels_on_the_live_link():
    from todobot.bot.config import Config
    from todobot.bot.irc import IrcTransport
    from tests.test_irc_transport import FakeDispatcher, FakeServer, network, registered

    class Dispatcher(FakeDispatcher):
        def unbind_room(self, transport: str, room: str) -> None:
            self.bound.pop((transport, room), None)

    server = FakeServer()
    await server.start()
    net = network(server.port)  # channels #test and #Rel
    t = IrcTransport(net, Config(irc=[net]))
    d = Dispatcher()
    await t.start(d)  # type: ignore[arg-type]
    try:
        c = await registered(server)
        await c.sync()
        # #TEST is #test (same channel), #Rel goes, #new comes; max_lines applies at once.
        new = network(server.port, channels=["#TEST", "#new"], max_lines=2)
        done = t.apply_config(Config(irc=[new]))
        assert done.changes == ["irc:testnet: leaving #Rel", "irc:testnet: joining #new",
                                "irc:testnet: max_lines 5 -> 2"]
        assert done.restart == []
        sent = await c.sync("after-reload")
        assert sent == ["PART #Rel :no longer in todobot's configuration", "JOIN #new"], sent
        assert ("irc:testnet", "#rel") not in d.bound and ("irc:testnet", "#new") in d.bound
        assert sorted(t.rooms()) == ["#new", "#test"] and t.net.max_lines == 2
        c.send(":todobot!todobot@bot.host PART #Rel", ":todobot!todobot@bot.host JOIN #new")
        c.send(":ijc!i@h PRIVMSG #Rel :!list")  # not ours any more: ignored
        c.send(":ijc!i@h PRIVMSG #new :!list")
        assert (await d.next()).room == "#new"
        assert t.sessions == 1 and t.attempts == 1
        # Connection settings wait for a restart, and the log says which.
        held = t.apply_config(Config(irc=[network(1, channels=["#test", "#new"],
                                                  nick="todobot2")]))
        assert held.restart == ["irc:testnet: nick, port changed; reconnecting with it takes a restart"]
        assert t.net.port == server.port
    finally:
        await t.stop()
        await server.close()
