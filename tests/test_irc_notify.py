"""Change notices on IRC: a NOTICE to the nick known to be logged in as the account, or none."""

from __future__ import annotations

import time

from todobot.bot.irc.identity import WHOIS_TTL
from todobot.bot.notify import Notifier
from todobot.commands.messages import text
from todobot.commands.watch import Notice

from .test_irc_transport import network, run, server  # noqa: F401  (fixtures)


async def _with_accounts(server, run):  # noqa: F811
    t, d = await run(network(server.port))
    c = await server.client()
    await c.register("extended-join account-notify")
    c.send(":todobot!todobot@bot.host JOIN #test * :bot")
    return t, c


async def test_logged_in_nick_gets_the_notice(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)
    c.send(":ian!i@h JOIN #test ijc :Ian")
    await c.sync()
    assert await t.notify("irc:testnet/ijc", text("#1 changed"))
    assert await c.expect("NOTICE") == "NOTICE ian :#1 changed"


async def test_nick_spelled_like_the_account_gets_nothing(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)
    # "ijc" holds the nick, not the account: logged out, and another account's nick.
    c.send(":ijc!evil@h JOIN #test * :Eve", ":bob!b@h JOIN #test bob :Bob")
    await c.sync()
    assert not await t.notify("irc:testnet/ijc", text("#1 changed"))
    # Logged out after joining: no longer theirs to be told.
    c.send(":bob!b@h ACCOUNT *")
    await c.sync()
    assert not await t.notify("irc:testnet/bob", text("#1 changed"))
    # Out of sight: what the bot knew about the nick's account is gone.
    c.send(":ian!i@h JOIN #test ijc :Ian", ":ian!i@h PART #test")
    await c.sync()
    assert not await t.notify("irc:testnet/ijc", text("#1 changed"))
    await c.sync("end")
    assert not [r for r in c.received if r.startswith(b"NOTICE")]


async def test_bare_nick_and_other_networks_are_never_told(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)
    c.send(":ian!i@h JOIN #test * :Ian")
    await c.sync()
    assert not await t.notify("irc:testnet/~ian", text("#1 changed"))
    c.send(":bob!b@h JOIN #test bob :Bob")
    await c.sync()
    assert not await t.notify("irc:othernet/bob", text("#1 changed"))
    await c.sync("end")
    assert not [r for r in c.received if r.startswith(b"NOTICE")]


async def test_kept_whois_answer_reaches_the_nick_while_valid(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)
    c.send(":kim!k@h JOIN #test * :Kim")
    await c.sync()
    assert not await t.notify("irc:testnet/kimacct", text("x"))
    t._whois_cache["kim"] = ("k@h", "kimacct", time.monotonic())  # as WHOIS leaves it
    assert await t.notify("irc:testnet/kimacct", text("#2 changed"))
    assert await c.expect("NOTICE") == "NOTICE kim :#2 changed"
    t._whois_cache["kim"] = ("k@h", "kimacct", time.monotonic() - WHOIS_TTL - 1)  # ran out
    assert not await t.notify("irc:testnet/kimacct", text("#2 changed"))
    t._whois_cache["kim"] = ("k@h", "kimacct", time.monotonic())
    c.send(":kim!k@h PART #test")  # out of sight: the kept answer no longer counts
    await c.sync()
    assert not await t.notify("irc:testnet/kimacct", text("#2 changed"))


async def test_notifier_reaches_the_network_of_the_identity(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)
    c.send(":ian!i@h JOIN #test ijc :Ian")
    await c.sync()
    notifier = Notifier([t])
    notifier.add([Notice(1, ("irc:testnet/ijc",), "#1 done by bob")])
    assert await notifier.flush() == 1
    assert await c.expect("NOTICE") == "NOTICE ian :#1 done by bob"


async def _with_account_tag_only(server, run):  # noqa: F811
    t, d = await run(network(server.port))
    c = await server.client()
    await c.register("message-tags account-tag")
    c.send(":todobot!todobot@bot.host JOIN #test", ":todobot!todobot@bot.host JOIN #rel")
    return t, d, c


async def test_account_tag_alone_tells_whom_to_notify_while_the_nick_is_in_sight(server, run):  # noqa: F811
    t, d, c = await _with_account_tag_only(server, run)
    c.send(":ian!i@h JOIN #test")
    await c.sync()
    assert not await t.notify("irc:testnet/ijc", text("x"))  # nothing said yet: unknown
    c.send("@account=ijc :ian!i@h PRIVMSG #test :morning")
    await c.sync()
    assert await t.notify("irc:testnet/ijc", text("#1 changed"))
    assert await c.expect("NOTICE") == "NOTICE ian :#1 changed"
    # A nick change moves it with the connection; the old nick is free for anyone.
    c.send("@account=ijc :ian!i@h NICK :ian_away", ":mallory!m@evil JOIN #test",
           ":mallory!m@evil NICK :ian")
    await c.sync()
    assert await t.notify("irc:testnet/ijc", text("#2 changed"))
    assert await c.expect("NOTICE") == "NOTICE ian_away :#2 changed"
    # Logged out: its next line has no tag.
    c.send(":ian_away!i@h PRIVMSG #test :bye")
    await c.sync()
    assert not await t.notify("irc:testnet/ijc", text("x"))


async def test_an_account_tag_is_forgotten_as_the_nick_goes(server, run):  # noqa: F811
    t, d, c = await _with_account_tag_only(server, run)
    for goes in (":ian!i@h QUIT :bye", ":ian!i@h PART #test", ":op!o@h KICK #test ian :out"):
        c.send(":ian!i@h JOIN #test", "@account=ijc :ian!i@h PRIVMSG #test :hi")
        await c.sync()
        assert t._nick_of_account("ijc") == "ian"
        c.send(goes)
        await c.sync()
        assert not await t.notify("irc:testnet/ijc", text("x")), goes
    # Out of sight (a private message, no shared channel): never recorded.
    c.send("@account=ijc :ian!i@h PRIVMSG todobot :hello")
    await c.sync()
    assert t._nick_of_account("ijc") is None
    await c.sync("end")
    assert not [r for r in c.received if r.startswith(b"NOTICE") and b":x\r" in r]


async def test_an_account_tag_counts_only_where_the_server_vouches_for_it(server, run):  # noqa: F811
    t, c = await _with_accounts(server, run)  # extended-join and account-notify, no account-tag
    c.send(":ian!i@h JOIN #test * :Ian", "@account=ijc :ian!i@h PRIVMSG #test :hi")
    await c.sync()
    assert not await t.notify("irc:testnet/ijc", text("x"))
