"""`/healthz` as the app answers it: the database and every transport, each with its reason."""

from __future__ import annotations

import os

from todobot.bot.app import App
from todobot.bot.config import parse_config
from todobot.bot.transport import Transport


class Fake(Transport):
    def __init__(self, name: str, why: str | None) -> None:
        self.name, self.why = name, why

    async def start(self, dispatcher) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def post(self, room, reply) -> None:
        pass

    def health(self) -> str | None:
        return self.why


async def test_health_names_the_transport_and_the_database_that_fail(tmp_path):
    path = tmp_path / "h.sqlite3"
    irc = Fake("irc:oftc", None)
    app = App(parse_config({"database": str(path)}), transports=[irc, Fake("matrix", None)],
              serve=False)
    await app.initialize()
    try:
        assert await app.health() == (True, {"status": "ok", "database": "ok",
                                             "transports": {"irc:oftc": "ok", "matrix": "ok"}})
        irc.why = "connected but not logged in to its account"
        ok, doc = await app.health()
        assert not ok and doc["status"] == "failing"
        assert doc["transports"]["irc:oftc"] == "connected but not logged in to its account"
        irc.why = None
        os.rename(path, tmp_path / "moved.sqlite3")
        ok, doc = await app.health()
        assert not ok and "was removed while open" in doc["database"]
    finally:
        await app.stop()


def test_irc_is_healthy_when_connected_and_logged_in_as_configured():
    from types import SimpleNamespace
    from todobot.bot.irc import IrcTransport
    t = IrcTransport.__new__(IrcTransport)
    t.net = parse_config({"irc": [{"network": "oftc", "host": "irc.example.org", "port": 6697,
                                   "sasl_account": "bot", "sasl_password_env": "P"}]}).irc[0]
    t._conn = None
    assert t.health() == "not connected to irc.example.org:6697"
    t._conn = SimpleNamespace(account=None)
    assert t.health() == "connected but not logged in to its account"
    t._conn.account = "bot"
    assert t.health() is None


def test_matrix_is_healthy_once_logged_in_and_syncing():
    from todobot.bot.matrix import MatrixTransport
    t = MatrixTransport.__new__(MatrixTransport)
    t._logged_in, t._recovering, t._synced_once = False, False, False
    assert t.health() == "not logged in"
    t._logged_in = True
    assert t.health() == "not synced yet"
    t._recovering = True
    assert t.health().startswith("the homeserver is unreachable")
    t._recovering, t._synced_once = False, True
    assert t.health() is None
