"""The bot stays logged in to its account while services come and go (scripted server)."""
# ruff: noqa: F811 (the scripted server's fixtures, imported from the transport's tests)

from __future__ import annotations

import asyncio
import base64

from tests.test_irc_transport import WAIT, network, run, server  # noqa: F401

NOT_LOGGED_IN = "connected but not logged in to its account"


async def until(pred, timeout: float = WAIT) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def nickserv_session(server, run, monkeypatch, **kw):
    """A bot configured for NickServ, identified at connect; returns (transport, client)."""
    monkeypatch.setenv("TODOBOT_TEST_NS", "s3cret-ns")
    t, _ = await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS",
                             nickserv_account="botacct", **kw))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    await c.expect("CAP END")
    c.welcome()
    await c.expect("PRIVMSG NickServ :IDENTIFY")
    c.send(":NickServ!services@services NOTICE todobot :Password accepted - you are now recognized.")
    await c.expect("JOIN")
    assert t._conn is not None and t._conn.account == "botacct"
    return t, c


async def test_services_linking_during_registration_sasl_after_welcome(server, run, monkeypatch):
    """The server restarted and the bot got in just before services linked: the `sasl`
    offer (CAP NEW) came before 001; the bot logs in right after it."""
    monkeypatch.setenv("TODOBOT_TEST_SASL", "s3cret")
    t, _ = await run(network(server.port, sasl_account="botacct",
                             sasl_password_env="TODOBOT_TEST_SASL"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :cap-notify account-tag")  # services not linked yet
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :account-tag cap-notify")
    await c.expect("CAP END")
    c.send(":srv CAP * NEW :sasl=PLAIN")  # services link while the server registers us
    c.welcome()
    assert t.health() == NOT_LOGGED_IN
    assert await c.expect("CAP REQ") == "CAP REQ sasl"
    c.send(":srv CAP todobot ACK :sasl")
    await c.expect("AUTHENTICATE PLAIN")
    c.send("AUTHENTICATE +")
    payload = base64.b64encode(b"botacct\0botacct\0s3cret").decode()
    assert await c.expect("AUTHENTICATE") == f"AUTHENTICATE {payload}"
    c.send(":srv 900 todobot todobot!todobot@bot.host botacct :You are now logged in",
           ":srv 903 todobot :SASL authentication successful")
    await c.sync()
    assert t._conn is not None and t._conn.account == "botacct"
    assert t.health() is None


async def test_logged_out_by_the_server_logs_in_again_with_sasl(server, run, monkeypatch):
    """901 (services restarted and forgot us): the account is cleared at once and SASL runs
    again on the registered connection (sasl-3.2)."""
    monkeypatch.setenv("TODOBOT_TEST_SASL", "s3cret")
    t, _ = await run(network(server.port, sasl_account="botacct",
                             sasl_password_env="TODOBOT_TEST_SASL"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :cap-notify sasl=PLAIN")
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :cap-notify sasl")
    await c.expect("AUTHENTICATE PLAIN")
    c.send("AUTHENTICATE +")
    await c.expect("AUTHENTICATE ")
    c.send(":srv 900 * todobot!todobot@bot.host botacct :You are now logged in",
           ":srv 903 * :SASL authentication successful")
    await c.expect("CAP END")
    c.welcome()
    await c.expect("JOIN")
    assert t._conn is not None and t._conn.account == "botacct"
    c.send(":srv 901 todobot todobot!todobot@bot.host :You are now logged out")
    assert await c.expect("AUTHENTICATE") == "AUTHENTICATE PLAIN"
    assert t._conn.account is None and t.health() == NOT_LOGGED_IN
    c.send("AUTHENTICATE +")
    await c.expect("AUTHENTICATE ")
    c.send(":srv 900 todobot todobot!todobot@bot.host botacct :You are now logged in",
           ":srv 903 todobot :SASL authentication successful")
    await c.sync()
    assert t._conn.account == "botacct" and t.health() is None


async def test_logged_out_identifies_to_nickserv_again(server, run, monkeypatch):
    t, c = await nickserv_session(server, run, monkeypatch)
    c.send(":srv 901 todobot todobot!todobot@bot.host :You are now logged out")
    assert await c.expect("PRIVMSG") == "PRIVMSG NickServ :IDENTIFY botacct s3cret-ns"
    assert t._conn is not None and t._conn.account is None
    c.send(":NickServ!services@services NOTICE todobot :Password accepted - you are now recognized.")
    await c.sync()
    assert t._conn.account == "botacct"


async def test_nickserv_asking_to_identify_is_answered_once(server, run, monkeypatch):
    """Services came back and ask us to identify: the bot does, once, however often asked
    while its IDENTIFY is unanswered; a NOTICE from anyone else changes nothing."""
    t, c = await nickserv_session(server, run, monkeypatch)
    c.send(":Mallory!m@h NOTICE todobot :This nickname is registered and protected.")
    assert not [ln for ln in await c.sync() if "IDENTIFY" in ln]
    assert t._conn is not None and t._conn.account == "botacct"
    ask = (":NickServ!services@services NOTICE todobot :This nickname is registered and "
           "protected. If it is your nick, type /msg NickServ IDENTIFY password.")
    c.send(":todobot!todobot@bot.host NICK todobot2",  # on an alternate someone registered
           ask.replace(" todobot :", " todobot2 :"))
    assert not [ln for ln in await c.sync() if "IDENTIFY" in ln]
    assert t._conn.account == "botacct"
    c.send(":todobot2!todobot@bot.host NICK todobot", ask)
    assert await c.expect("PRIVMSG") == "PRIVMSG NickServ :IDENTIFY botacct s3cret-ns"
    c.send(ask, ask)
    assert not [ln for ln in await c.sync() if "IDENTIFY" in ln]
    assert t._conn.account is None
    c.send(":NickServ!services@services NOTICE todobot :Password accepted - you are now recognized.")
    await c.sync()
    assert t._conn.account == "botacct"


async def test_registered_only_channel_is_joined_as_soon_as_logged_in(server, run, monkeypatch):
    """A +r channel refused while services were away is retried at the login, not after
    its backoff."""
    monkeypatch.setenv("TODOBOT_TEST_NS", "pw")
    monkeypatch.setattr("todobot.bot.irc.session.IDENTIFY_WAIT", 0.2)
    t, _ = await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    await c.expect("CAP END")
    c.welcome()
    await c.expect("PRIVMSG NickServ")
    c.send(":srv 401 todobot NickServ :No such nick/channel")  # services are away
    assert await c.expect("JOIN") == "JOIN #test,#Rel"
    c.send(":todobot!todobot@bot.host JOIN #test",
           ":srv 477 todobot #Rel :You need to be identified to a registered account to join")
    await c.sync()
    assert t._conn is not None and t._conn.account is None
    c.send(":srv 900 todobot todobot!todobot@bot.host todobot :You are now logged in as todobot")
    assert await c.expect("JOIN") == "JOIN #Rel"
    assert t._conn.account == "todobot"


async def test_no_account_is_warned_once_a_minute_and_retried(server, run, monkeypatch, caplog):
    """Services never answer: each periodic check identifies again, but the WARNING comes
    once a minute (on the injected clock), not per check."""
    monkeypatch.setenv("TODOBOT_TEST_NS", "pw")
    monkeypatch.setattr("todobot.bot.irc.session.IDENTIFY_WAIT", 0.05)
    monkeypatch.setattr("todobot.bot.irc.session.LOGIN_CHECK", 0.05)
    now = [1000.0]
    monkeypatch.setattr("todobot.bot.irc.session.SessionMixin.login_clock",
                        staticmethod(lambda: now[0]))
    caplog.set_level("WARNING", logger="todobot.bot.irc.session")
    t, _ = await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    c.welcome()

    def warnings() -> int:
        return sum(NOT_LOGGED_IN in r.getMessage() for r in caplog.records)

    for _ in range(4):  # the first IDENTIFY, then one per check
        await c.expect("PRIVMSG NickServ :IDENTIFY todobot pw")
    assert warnings() == 1
    now[0] += 61
    await until(lambda: warnings() == 2)
    for _ in range(3):
        await c.expect("PRIVMSG NickServ :IDENTIFY todobot pw")
    assert warnings() == 2
    c.send(":srv 900 todobot todobot!todobot@bot.host todobot :You are now logged in")
    await c.sync()
    assert t._conn is not None and t._conn.account == "todobot" and t.health() is None


async def test_sasl_when_services_link_then_registered_only_channel(server, run, monkeypatch):
    """Services link after the bot joined (CAP NEW): SASL on the open connection, and the
    +r channel refused meanwhile is joined at the login."""
    monkeypatch.setenv("TODOBOT_TEST_SASL", "s3cret")
    t, _ = await run(network(server.port, sasl_account="botacct",
                             sasl_password_env="TODOBOT_TEST_SASL"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :cap-notify")
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :cap-notify")
    await c.expect("CAP END")
    c.welcome()
    assert await c.expect("JOIN") == "JOIN #test,#Rel"
    c.send(":todobot!todobot@bot.host JOIN #test",
           ":srv 477 todobot #Rel :You need to be identified to a registered account to join")
    c.send(":srv CAP todobot NEW :sasl=PLAIN")
    await c.expect("CAP REQ sasl")
    c.send(":srv CAP todobot ACK :sasl")
    await c.expect("AUTHENTICATE PLAIN")
    c.send("AUTHENTICATE +")
    await c.expect("AUTHENTICATE ")
    c.send(":srv 900 todobot todobot!todobot@bot.host botacct :You are now logged in",
           ":srv 903 todobot :SASL authentication successful")
    assert await c.expect("JOIN") == "JOIN #Rel"
    assert t._conn is not None and t._conn.account == "botacct"
