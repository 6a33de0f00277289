"""IRC identity learnt by WHOIS, bound to the exact `nick!user@host` a command came from,
against a scripted server on 127.0.0.1: answers about another connection, nicks that change
hands, what is forgotten when, MONITOR, and WHOIS that clones cannot starve."""
# ruff: noqa: F811 (the scripted server's fixtures, imported from the transport's tests)

from __future__ import annotations

import pytest

from todobot.bot.config import Throttle
from todobot.bot.irc.identity import WHOIS_PER_USERHOST
from todobot.bot.irc.inbound import CHANGED_HANDS
from tests.test_irc_transport import (FakeClient, FakeServer, network, registered, run,  # noqa: F401
                                      server)


def whois_answer(c: FakeClient, nick: str, user: str, host: str, account: str | None = None) -> None:
    """The server's answer to `WHOIS nick`: 311, 330 when logged in, 318."""
    c.send(f":srv 311 todobot {nick} {user} {host} * :{nick}",
           *([f":srv 330 todobot {nick} {account} :is logged in as"] if account else []),
           f":srv 318 todobot {nick} :End of /WHOIS list.")


async def asks(c: FakeClient) -> list[str]:
    """The WHOIS lines the bot sent since the last look."""
    return [ln for ln in await c.sync() if ln.startswith("WHOIS")]


async def with_monitor(server: FakeServer) -> FakeClient:
    c = await registered(server)
    c.send(":srv 005 todobot MONITOR=100 :are supported")
    await c.sync()
    return c


async def recognised(c: FakeClient, d, source: str, target: str = "todobot",
                     account: str = "bob") -> None:
    """`source` sends `!whoami`; the bot asks WHOIS and learns `account`."""
    nick, _, userhost = source.partition("!")
    user, _, host = userhost.partition("@")
    c.send(f":{source} PRIVMSG {target} :!whoami")
    assert await c.expect("WHOIS") == f"WHOIS {nick}"
    whois_answer(c, nick, user, host, account)
    assert (await d.next()).sender.identity == f"irc:testnet/{account}"


# -- a kept answer is for the source it was asked about, while the bot can see it go ----------


async def test_a_kept_answer_is_not_given_to_the_next_holder_of_the_nick(server, run):
    """bob, in private only, is recognised and quits (unseen); someone unidentified takes
    "bob" and sends `!done 20`: asked again, and not bob."""
    _, d = await run(network(server.port))
    c = await registered(server)
    await recognised(c, d, "bob!b@home")
    c.send(":bob!x@elsewhere PRIVMSG todobot :!done 20")
    assert await c.expect("WHOIS") == "WHOIS bob"
    whois_answer(c, "bob", "x", "elsewhere")
    m = await d.next()
    assert (m.text, m.sender.identity, m.sender.authenticated) == ("!done 20", "irc:testnet/~bob", False)


async def test_a_kept_answer_needs_the_same_user_and_host(server, run):
    """Even for a nick the bot sees in a channel, an answer about bob!b@home is not used for
    bob!x@elsewhere."""
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!b@home JOIN #test")
    await recognised(c, d, "bob!b@home", "#test")
    c.send(":bob!b@home PRIVMSG #test :!whoami")  # the same source: kept
    assert (await d.next()).sender.identity == "irc:testnet/bob"
    assert await asks(c) == []
    c.send(":bob!x@elsewhere PRIVMSG #test :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"


async def test_no_kept_answer_for_a_nick_out_of_sight_without_monitor(server, run):
    """The same bob!b@home again, in private: the bot shares no channel with him, so would
    not see him quit and someone with that user@host take the nick; it asks again."""
    _, d = await run(network(server.port))
    c = await registered(server)
    await recognised(c, d, "bob!b@home")
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"
    assert not [ln for ln in await c.sync() if ln.startswith("MONITOR")]  # not offered


async def test_with_monitor_an_answer_is_kept_while_the_same_source_is_online(server, run):
    _, d = await run(network(server.port))
    c = await with_monitor(server)
    await recognised(c, d, "bob!b@home")
    assert await c.expect("MONITOR") == "MONITOR + bob"
    # Until the server says who holds "bob", the kept answer is not used.
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"
    whois_answer(c, "bob", "b", "home", "bob")
    await d.next()
    c.send(":srv 730 todobot :bob!b@home")
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    assert (await d.next()).sender.identity == "irc:testnet/bob"
    assert await asks(c) == []
    # Online under another user@host: not bob's answer.
    c.send(":srv 730 todobot :bob!x@elsewhere", ":bob!x@elsewhere PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"


async def test_with_monitor_an_answer_is_forgotten_when_the_nick_goes_offline(server, run):
    t, d = await run(network(server.port))
    c = await with_monitor(server)
    await recognised(c, d, "bob!b@home")
    c.send(":srv 730 todobot :bob!b@home")
    await c.sync()
    c.send(":srv 731 todobot :bob")  # quit or changed nick: unseen otherwise
    assert await c.expect("MONITOR") == "MONITOR - bob"
    assert "bob" not in t._whois_cache
    # The same user@host takes "bob" again (and the server says so): asked anew.
    c.send(":srv 730 todobot :bob!b@home", ":bob!b@home PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"


# -- the answer must be about the connection the command came from -------------------------


async def test_an_answer_about_another_connection_refuses_the_command(server, run):
    """An unidentified "bob" sends `!done 10` and renames; the real bob takes his nick back
    before the WHOIS goes out, and the server answers about him: the command is refused."""
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!x@elsewhere PRIVMSG todobot :!done 10")
    assert await c.expect("WHOIS") == "WHOIS bob"
    whois_answer(c, "bob", "b", "home", "bob")
    assert await c.expect("NOTICE") == f"NOTICE bob :bob: {CHANGED_HANDS}"
    assert d.messages.empty()
    # The real bob's own command is his.
    c.send(":bob!b@home PRIVMSG todobot :!done 10")
    assert await c.expect("WHOIS") == "WHOIS bob"
    whois_answer(c, "bob", "b", "home", "bob")
    m = await d.next()
    assert (m.text, m.sender.identity) == ("!done 10", "irc:testnet/bob")


async def test_one_answer_judges_each_waiting_command_by_its_own_source(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!x@elsewhere PRIVMSG todobot :!done 10", ":bob!b@home PRIVMSG todobot :!done 11")
    assert await c.expect("WHOIS") == "WHOIS bob"
    assert await asks(c) == []  # one question for the nick
    whois_answer(c, "bob", "b", "home", "bob")
    assert await c.expect("NOTICE") == f"NOTICE bob :bob: {CHANGED_HANDS}"
    m = await d.next()
    assert (m.text, m.sender.identity) == ("!done 11", "irc:testnet/bob")
    assert d.messages.empty()


async def test_no_311_means_the_nick_was_gone(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!b@home PRIVMSG todobot :!done 10")
    await c.expect("WHOIS bob")
    c.send(":srv 401 todobot bob :No such nick", ":srv 318 todobot bob :End of /WHOIS list.")
    assert await c.expect("NOTICE") == f"NOTICE bob :bob: {CHANGED_HANDS}"
    assert d.messages.empty()


@pytest.mark.parametrize("event", [":bob!b@home NICK mallory", ":bob!b@home QUIT :bye",
                                   ":alice!a@home NICK bob"])
async def test_a_nick_or_quit_while_whois_is_pending_refuses_the_held_commands(server, run, event):
    """Seen in a shared channel: whatever the answer says, it is about whoever holds the nick
    after that, not necessarily the sender (here even the same user@host)."""
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!b@home JOIN #test", ":bob!b@home PRIVMSG #test :!done 10")
    await c.expect("WHOIS bob")
    c.send(event)
    if "QUIT" in event:
        c.send(":bob!b@home JOIN #test")
    c.send(":bob!b@home PRIVMSG #test :!done 11")  # after the change: judged by the answer
    whois_answer(c, "bob", "b", "home", "bob")
    assert await c.expect("PRIVMSG #test") == f"PRIVMSG #test :bob: {CHANGED_HANDS}"
    m = await d.next()
    assert (m.text, m.sender.identity) == ("!done 11", "irc:testnet/bob")


# -- forgotten on QUIT, NICK, PART, KICK and ACCOUNT ---------------------------------------------


async def extended_join(server: FakeServer) -> FakeClient:
    c = await server.client()
    await c.register("extended-join account-notify")
    c.send(":todobot!todobot@bot.host JOIN #test", ":todobot!todobot@bot.host JOIN #Rel")
    return c


@pytest.mark.parametrize("event, asked", [
    (":bob!b@home QUIT :bye", "bob"),
    (":bob!b@home PART #test", "bob"),
    (":op!o@h KICK #test bob :out", "bob"),
    (":bob!b@home NICK bob2", "bob2"),
])
async def test_whois_answers_are_forgotten(server, run, event, asked):
    """After each event the kept answer is gone, and the next command from that source asks
    again (bob is still in #Rel after leaving #test; after QUIT he comes back)."""
    t, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!b@home JOIN #test", ":bob!b@home JOIN #Rel")
    await recognised(c, d, "bob!b@home", "#test")
    c.send(":bob!b@home PRIVMSG #test :!whoami")
    assert (await d.next()).sender.identity == "irc:testnet/bob" and await asks(c) == []
    c.send(event)
    await c.sync()
    assert t._whois_cache == {}, event
    if "QUIT" in event:
        c.send(":bob!b@home JOIN #Rel")
    c.send(f":{asked}!b@home PRIVMSG #Rel :!whoami")
    assert await c.expect("WHOIS") == f"WHOIS {asked}"


async def test_whois_answers_are_forgotten_on_a_nick_taking_that_nick(server, run):
    t, d = await run(network(server.port))
    c = await with_monitor(server)
    await recognised(c, d, "bob!b@home")
    c.send(":srv 730 todobot :bob!b@home", ":alice!a@h JOIN #test", ":alice!a@h NICK bob")
    await c.sync()
    assert t._whois_cache == {}


async def test_whois_answers_are_forgotten_on_account(server, run):
    t, d = await run(network(server.port))
    c = await registered(server)
    c.send(":bob!b@home JOIN #test")
    await recognised(c, d, "bob!b@home", "#test")
    c.send(":bob!b@home ACCOUNT *")
    await c.sync()
    assert t._whois_cache == {}
    c.send(":bob!b@home PRIVMSG #test :!whoami")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/~bob", False)


@pytest.mark.parametrize("event", [":bob!b@home QUIT :bye", ":bob!b@home PART #test",
                                   ":op!o@h KICK #test bob :out", ":bob!b@home NICK bob2",
                                   ":todobot!todobot@bot.host PART #test",
                                   ":op!o@h KICK #test todobot :out"])
async def test_accounts_from_extended_join_are_forgotten_out_of_sight(server, run, event):
    """extended-join told bob's account; once the bot no longer shares a channel with him (or
    he is no longer "bob") nothing keeps it fresh, so the next "bob" is asked about."""
    t, d = await run(network(server.port))
    c = await extended_join(server)
    c.send(":bob!b@home JOIN #test bob :Bob", ":bob!b@home PRIVMSG #test :!whoami")
    assert (await d.next()).sender.identity == "irc:testnet/bob"
    c.send(event)
    await c.sync()
    assert "bob" not in t._accounts, event
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"


async def test_an_account_is_kept_while_a_channel_is_still_shared(server, run):
    t, d = await run(network(server.port))
    c = await extended_join(server)
    c.send(":bob!b@home JOIN #test bob :Bob", ":bob!b@home JOIN #Rel bob :Bob",
           ":bob!b@home PART #test")
    c.send(":bob!b@home PRIVMSG #Rel :!whoami")
    assert (await d.next()).sender.identity == "irc:testnet/bob"
    assert await asks(c) == []


async def test_names_make_a_nick_visible_and_the_bot_leaving_hides_it(server, run):
    t, d = await run(network(server.port))
    c = await registered(server)
    c.send(":srv 353 todobot = #test :@todobot +bob carol", ":srv 366 todobot #test :End")
    await recognised(c, d, "bob!b@home", "#test")
    c.send(":bob!b@home PRIVMSG todobot :!whoami")  # seen in #test: kept
    assert (await d.next()).sender.identity == "irc:testnet/bob" and await asks(c) == []
    c.send(":op!o@h KICK #test todobot :out")
    await c.sync()
    assert t._whois_cache == {}
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS bob"


# -- WHOIS that clones cannot starve ----------------------------------------------------------


async def test_a_release_manager_behind_forty_clones_is_asked_about_next(server, run):
    """40 unidentified clones (one user@host) send `!whoami`; only a few of their WHOIS are
    asked, the rest answered as unconfirmed at once. The release manager's WHOIS then goes
    out before any further line, he is recognised, and answered before the clones' backlog."""
    t, d = await run(network(server.port, throttle=Throttle(burst=1, rate=2)))
    c = await registered(server)
    await c.sync()
    c.send(*(f":clone{i}!clone@evil PRIVMSG todobot :!whoami" for i in range(40)))
    unconfirmed = [await d.next() for _ in range(40 - WHOIS_PER_USERHOST)]
    assert all(m.sender.unconfirmed and m.sender.nick.startswith("clone") for m in unconfirmed)
    await c.sync()
    start = len(c.received)
    c.send(":ijc!ijc@home PRIVMSG todobot :!whoami")
    first = [await c.line() for _ in range(2)]
    assert "WHOIS ijc" in first, first  # not behind the clones' answers
    whois_answer(c, "ijc", "ijc", "home", "ijc")
    asked = len(c.received)
    while (m := await d.next()).sender.nick != "ijc":
        pass
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/ijc", True)
    # His answer is not behind the clones' either: they are one requester, served once.
    assert await c.expect("NOTICE ijc") == "NOTICE ijc :echo !whoami"
    meanwhile = [r for r in c.received[asked:] if r.startswith(b"NOTICE clone")]
    assert len(meanwhile) <= 2, meanwhile
    sent = [r.decode() for r in c.received]
    assert len([ln for ln in sent if ln.startswith("WHOIS clone")]) <= WHOIS_PER_USERHOST
    assert start < len(sent)


async def test_a_whois_given_up_before_it_went_out_is_taken_back(server, run, monkeypatch):
    monkeypatch.setattr("todobot.bot.irc.inbound.WHOIS_WAIT", 0.3)
    t, d = await run(network(server.port))
    c = await registered(server)
    await c.sync()
    assert t._conn is not None
    bucket = t._conn.bucket
    bucket.tokens = -2 * bucket.rate  # nothing goes out for 2 s, past the WHOIS wait
    c.send(":bob!b@home PRIVMSG todobot :!whoami")
    m = await d.next()
    assert (m.sender.authenticated, m.sender.unconfirmed) == (False, True)
    # The answer goes out once the bucket allows; a WHOIS still queued would go before it.
    assert await c.expect("NOTICE bob") == "NOTICE bob :echo !whoami"
    assert not [r for r in c.received if r.startswith(b"WHOIS")]
    assert t._whois_asked == {}
