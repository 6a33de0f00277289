"""The IRC transport at the wire level, against a scripted server socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import subprocess

import pytest

from todobot.bot.backoff import Backoff
from todobot.bot.config import Config, IrcNetwork, Throttle
from todobot.bot.irc import IrcTransport
from todobot.bot.irc.connection import build_line, decode_line, nick_of, parse_line, reconnect_backoff
from todobot.commands.messages import Message, Reply, text

WAIT = 10.0


class FakeClient:
    """The server's side of one connection from the bot."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received: list[bytes] = []  # raw lines, CRLF included

    async def line(self, timeout: float = WAIT) -> str:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\n"), timeout)
        self.received.append(raw)
        return raw.decode("utf-8").rstrip("\r\n")

    async def expect(self, pattern: str, timeout: float = WAIT) -> str:
        """Read until a line matches `pattern` (a regex, from the start of the line)."""
        async with asyncio.timeout(timeout):
            while True:
                got = await self.line(timeout)
                if re.match(pattern, got):
                    return got

    def send(self, *lines: str | bytes) -> None:
        for ln in lines:
            self.writer.write((ln.encode() if isinstance(ln, str) else ln) + b"\r\n")

    async def sync(self, token: str = "sync") -> list[str]:
        """Round-trip a PING; returns the lines the bot sent before answering it."""
        start = len(self.received)
        self.send(f"PING :{token}")
        await self.expect(f"PONG {token}")
        return [r.decode().rstrip("\r\n") for r in self.received[start:-1]]

    def welcome(self, nick: str = "todobot") -> None:
        self.send(f":srv 001 {nick} :Welcome to testnet {nick}!todobot@bot.host",
                  ":srv 005 {0} CASEMAPPING=ascii CHANTYPES=# :are supported".format(nick),
                  f":srv 422 {nick} :MOTD File is missing")

    async def register(self, caps: str, nick: str = "todobot") -> None:
        """The usual start: offer `caps`, acknowledge what the bot asks for (all of them, in
        these tests), welcome it and wait for its JOIN."""
        await self.expect("USER ")
        self.send(f":srv CAP * LS :{caps}")
        await self.expect("CAP REQ")
        self.send(f":srv CAP * ACK :{caps}")
        self.welcome(nick)
        await self.expect("JOIN")

    def close(self) -> None:
        self.writer.close()


class FakeServer:
    def __init__(self) -> None:
        self.clients: asyncio.Queue[FakeClient] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, ssl_context=None) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self.clients.put(FakeClient(reader, writer))

    async def client(self, timeout: float = WAIT) -> FakeClient:
        return await asyncio.wait_for(self.clients.get(), timeout)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        while not self.clients.empty():
            self.clients.get_nowait().close()


class FakeDispatcher:
    """Records messages and answers with `answer(msg)`."""

    prefix = "!"

    def __init__(self) -> None:
        self.messages: asyncio.Queue[Message] = asyncio.Queue()
        self.bound: dict[tuple[str, str], str | None] = {}
        self.answer = lambda msg: text(f"echo {msg.text}")

    def bind_room(self, transport: str, room: str, settings) -> None:
        self.bound[(transport, room)] = settings.release

    def bind_default(self, transport: str, settings) -> None:
        self.default = settings

    async def handle(self, msg: Message) -> Reply | None:
        await self.messages.put(msg)
        return self.answer(msg)

    async def next(self) -> Message:
        return await asyncio.wait_for(self.messages.get(), WAIT)


@pytest.fixture
async def server():
    s = FakeServer()
    await s.start()
    yield s
    await s.close()


def network(port: int, **kw) -> IrcNetwork:
    base = dict(network="testnet", host="127.0.0.1", port=port, tls=False, nick="todobot",
                channels=["#test", {"name": "#Rel", "release": "4.3"}],
                throttle=Throttle(burst=20, rate=50))
    base.update(kw)
    return IrcNetwork(**base)


@pytest.fixture
async def run():
    """Start a transport for a network; stopped at teardown."""
    started: list[IrcTransport] = []

    async def start(net: IrcNetwork) -> tuple[IrcTransport, FakeDispatcher]:
        t = IrcTransport(net, Config(irc=[net]))
        d = FakeDispatcher()
        await t.start(d)  # type: ignore[arg-type]
        started.append(t)
        return t, d

    yield start
    for t in started:
        await t.stop()


async def registered(server: FakeServer, nick: str = "todobot") -> FakeClient:
    """Accept the bot and register it without CAP."""
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    await c.expect("CAP END")
    c.welcome(nick)
    await c.expect("JOIN #test,#Rel")
    c.send(f":{nick}!todobot@bot.host JOIN #test", f":{nick}!todobot@bot.host JOIN #Rel")
    return c


# -- parsing ---------------------------------------------------------------------------------


def test_parse_line_with_tags_source_and_trailing():
    ln = parse_line(r"@account=ijc;msgid=a\sb;+draft/x :ijc!i@h PRIVMSG #Test :hello :there")
    assert ln is not None
    assert (ln.command, ln.params, ln.nick) == ("PRIVMSG", ["#Test", "hello :there"], "ijc")
    assert ln.tags == {"account": "ijc", "msgid": "a b", "+draft/x": ""}


@pytest.mark.parametrize("source, nick", [
    ("ijc!ian@xen.org", "ijc"), ("ijc@xen.org", "ijc"), ("ijc", "ijc"),
    ("irc.server.net", "irc.server.net"), ("красный!red@yahoo.ru", "красный"),
    ("a!b!c@d", "a"),
])
def test_nick_of_source_forms(source, nick):
    assert nick_of(source) == nick


def test_decode_falls_back_to_latin1_per_line():
    assert decode_line("café".encode()) == "café"
    assert decode_line("café".encode("latin-1")) == "café"


def test_a_line_cut_inside_a_character_loses_only_that_character():
    line = ":a!b@c PRIVMSG #x :" + "é" * 300
    raw = line.encode()[:510]  # the server cut it at the limit, mid-character
    assert raw[-1:] == b"\xc3"
    assert decode_line(raw) == line[: len(raw.decode("utf-8", "ignore"))]
    assert "\u00c3" not in decode_line(raw)


def test_build_line_cleans_every_part():
    assert build_line("QUIT", "bye\r\nJOIN #evil") == b"QUIT :bye JOIN #evil\r\n"
    with pytest.raises(ValueError):
        build_line("JOIN", "#a b", "key")


def test_backoff_first_retry_quick_and_capped():
    b = reconnect_backoff()
    assert b.next() <= 2.0
    delays = [b.next() for _ in range(20)]
    assert max(delays) <= 300.0 and delays[-1] >= 150.0
    b.reset()
    assert b.next() <= 2.0


# -- registration ----------------------------------------------------------------------------


async def test_registration_bytes_with_cap_and_sasl_plain(server, run, monkeypatch):
    monkeypatch.setenv("TODOBOT_TEST_SASL", "s3cret")
    await run(network(server.port, sasl_account="botacct", sasl_password_env="TODOBOT_TEST_SASL"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS * :multi-prefix message-tags account-tag sasl=PLAIN,EXTERNAL",
           ":srv CAP * LS :server-time extended-join account-notify echo-message batch")
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :message-tags account-tag extended-join account-notify server-time "
           "echo-message multi-prefix sasl")
    await c.expect("AUTHENTICATE PLAIN")
    c.send("AUTHENTICATE +")
    await c.expect("AUTHENTICATE ")
    c.send(":srv 900 * todobot!todobot@bot.host botacct :You are now logged in as botacct",
           ":srv 903 * :SASL authentication successful")
    await c.expect("CAP END")
    payload = base64.b64encode(b"botacct\0botacct\0s3cret")
    assert c.received == [
        b"CAP LS 302\r\n",
        b"NICK todobot\r\n",
        b"USER todobot 0 * :todobot release TODO list\r\n",
        b"CAP REQ :message-tags account-tag extended-join account-notify server-time "
        b"echo-message multi-prefix sasl\r\n",
        b"AUTHENTICATE PLAIN\r\n",
        b"AUTHENTICATE " + payload + b"\r\n",
        b"CAP END\r\n",
    ]
    c.welcome()
    assert await c.expect("JOIN") == "JOIN #test,#Rel"


async def test_sasl_after_registration_when_services_arrive_late(server, run, monkeypatch):
    monkeypatch.setenv("TODOBOT_TEST_SASL", "s3cret")
    t, _ = await run(network(server.port, sasl_account="botacct",
                             sasl_password_env="TODOBOT_TEST_SASL"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :cap-notify account-tag")  # services not linked: no sasl yet
    assert await c.expect("CAP ") == "CAP REQ :account-tag cap-notify"
    c.send(":srv CAP * ACK :account-tag cap-notify")
    await c.expect("CAP END")
    c.welcome()
    await c.expect("JOIN")
    c.send(":srv CAP todobot NEW :sasl=PLAIN")
    assert await c.expect("CAP ") == "CAP REQ sasl"
    c.send(":srv CAP todobot ACK :sasl")
    await c.expect("AUTHENTICATE PLAIN")
    c.send("AUTHENTICATE +")
    payload = base64.b64encode(b"botacct\0botacct\0s3cret").decode()
    assert await c.expect("AUTHENTICATE") == f"AUTHENTICATE {payload}"
    c.send(":srv 900 todobot todobot!todobot@bot.host botacct :You are now logged in",
           ":srv 903 todobot :SASL authentication successful")
    sent = await c.sync()
    assert not [ln for ln in sent if ln.startswith("CAP END")]
    assert t._conn is not None and t._conn.account == "botacct"


async def test_server_without_cap_registers_plainly(server, run):
    t, _ = await run(network(server.port))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv 421 * CAP :Unknown command")
    c.welcome()
    await c.expect("JOIN #test,#Rel")
    assert not any(r.startswith(b"CAP END") for r in c.received)
    c.send(":todobot!todobot@bot.host JOIN #test", ":todobot!todobot@bot.host JOIN #Rel")
    await c.sync()
    assert t.ready.is_set()


async def test_no_sasl_requested_without_an_account(server, run):
    await run(network(server.port))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :sasl account-tag")
    assert await c.expect("CAP ") == "CAP REQ account-tag"


async def test_nick_in_use_takes_alternate_then_regains(server, run):
    t, _ = await run(network(server.port, alternates=["todobot2"]))
    t.regain_interval = 0.3
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    c.send(":srv 433 * todobot :Nickname is already in use")
    assert await c.expect("NICK ") == "NICK todobot2"
    c.welcome("todobot2")
    await c.expect("JOIN ")
    # The regain timer asks for the configured nick back.
    assert await c.expect("NICK ") == "NICK todobot"
    c.send(":srv 433 todobot2 todobot :Nickname is already in use")
    # The holder leaves: the bot takes the nick at once.
    c.send(":todobot!x@y QUIT :bye")
    assert await c.expect("NICK ") == "NICK todobot"
    c.send(":todobot2!todobot@bot.host NICK todobot")
    await c.sync()
    assert t._conn is not None and t._conn.nick == "todobot"


async def test_alternates_exhausted_adds_suffix(server, run):
    await run(network(server.port))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv 433 * todobot :Nickname is already in use")
    assert await c.expect("NICK ") == "NICK todobot_"
    c.send(":srv 433 * todobot_ :Nickname is already in use")
    assert re.fullmatch(r"NICK todobot_\d+", await c.expect("NICK "))


# -- keepalive and reconnect -----------------------------------------------------------------


async def test_ping_is_answered(server, run):
    await run(network(server.port))
    c = await registered(server)
    c.send("PING :irc.test 12345")
    assert await c.expect("PONG") == "PONG :irc.test 12345"
    c.send("PING token")
    assert await c.expect("PONG") == "PONG token"


async def test_reconnects_and_rejoins_after_the_socket_closes(server, run):
    t, _ = await run(network(server.port))
    c = await registered(server)
    await c.sync()
    assert t.sessions == 1
    c.close()
    c2 = await server.client(timeout=5.0)  # the first retry comes within 2 s
    await c2.expect("NICK todobot")
    c2.send(":srv CAP * LS :")
    c2.welcome()
    assert await c2.expect("JOIN") == "JOIN #test,#Rel"
    assert t.sessions == 2


async def test_watchdog_notices_a_silent_server(server, run):
    t, _ = await run(network(server.port, ping_interval=0.3, ping_timeout=0.5))
    c = await registered(server)
    assert await c.expect("PING", timeout=5) == "PING todobot-keepalive"
    # No answer: the bot gives up on this link and connects again.
    c2 = await server.client(timeout=10.0)
    await c2.expect("NICK todobot")
    assert t.sessions == 1


async def test_watchdog_is_satisfied_by_traffic(server, run):
    t, _ = await run(network(server.port, ping_interval=0.3, ping_timeout=0.5))
    c = await registered(server)
    ping = await c.expect("PING", timeout=5)
    c.send(f":srv PONG srv :{ping.split()[-1]}")
    await asyncio.sleep(0.4)  # deliberately: traffic before the 0.5 s timeout runs out
    c.send(":srv PONG srv :x")
    await c.sync()
    assert server.clients.empty() and t.sessions == 1


# -- messages in -----------------------------------------------------------------------------


async def test_account_tag_identity(server, run):
    t, d = await run(network(server.port))
    c = await server.client()
    await c.register("message-tags account-tag")
    c.send("@account=ijc;msgid=m1;time=2024-05-01T12:00:00.000Z :Ian!i@h PRIVMSG #TEST :!whoami")
    m = await d.next()
    assert (m.sender.identity, m.sender.nick, m.sender.authenticated) == ("irc:testnet/ijc", "Ian", True)
    assert (m.room, m.msg_id, m.private, m.transport) == ("#test", None, False, "irc:testnet")  # IRC never replays
    assert m.at == 1714564800.0
    assert await c.expect("PRIVMSG") == "PRIVMSG #test :echo !whoami"
    c.send("@msgid=m2 :ijc!evil@h PRIVMSG #test :!blocker 1")  # the admin's nick, no account
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/~ijc", False)


async def test_identity_from_extended_join_and_account_notify(server, run):
    _, d = await run(network(server.port))
    c = await server.client()
    await c.register("extended-join account-notify")
    c.send(":ian!i@h JOIN #test ijc :Ian", ":ian!i@h PRIVMSG #test :hi")
    assert (await d.next()).sender.identity == "irc:testnet/ijc"
    c.send(":ian!i@h ACCOUNT *", ":ian!i@h PRIVMSG #test :hi")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/~ian", False)


async def test_private_message_and_formatting_and_latin1(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG todobot :\x02!help\x02 \x0304red")
    m = await d.next()
    assert (m.private, m.room, m.text) == (True, "ian", "!help red")
    # A private answer is a NOTICE (bots never trigger auto-replies).
    assert await c.expect("NOTICE|PRIVMSG") == "NOTICE ian :echo !help red"
    c.send(b":ian!i@h PRIVMSG #test :caf\xe9")
    assert (await d.next()).text == "café"


async def test_ctcp_notices_and_other_channels_are_ignored(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :\x01VERSION\x01", ":ian!i@h NOTICE #test :!todo",
           ":ian!i@h PRIVMSG #other :!todo", ":ian!i@h PRIVMSG #rel :!todo")
    m = await d.next()
    assert (m.room, m.text) == ("#rel", "!todo")
    await c.sync()
    assert d.messages.empty()


async def test_invite_only_for_configured_channels(server, run):
    t, _ = await run(network(server.port))
    c = await registered(server)
    c.send(":mallory!m@h INVITE todobot :#evil")
    before = await c.sync()
    assert not [ln for ln in before if ln.startswith("JOIN")]
    c.send(":op!o@h KICK #test todobot :out", ":op!o@h INVITE todobot #TEST")
    assert await c.expect("JOIN") == "JOIN #test"


# -- messages out ----------------------------------------------------------------------------


async def test_reply_text_cannot_inject_lines(server, run):
    _, d = await run(network(server.port))
    d.answer = lambda msg: text("title\r\nJOIN #evil\rQUIT\nx\0y")
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :!show 1")
    await c.expect("PRIVMSG")
    sent = await c.sync()
    assert c.received[-2 - len(sent)].startswith(b"PRIVMSG #test :title JOIN #evil QUIT x")
    assert not [ln for ln in sent if ln.startswith(("JOIN", "QUIT"))]


async def test_long_answer_stops_at_max_lines_and_more_continues(server, run):
    t, d = await run(network(server.port, max_lines=3))

    def listing(msg):
        r = Reply()
        for i in range(8):
            r.bullet(f"item {i} " + "word " * 150)  # each about 750 bytes: two wire lines
        return r

    d.answer = listing
    c = await registered(server)
    c.send(":bot!todobot@bot.host JOIN #test")
    c.send(":ian!i@h PRIVMSG #test :!todo")
    lines = [await c.expect("PRIVMSG") for _ in range(4)]
    assert lines[3] == "PRIVMSG #test :(13 more lines: say \x02!more\x02)"
    assert all(len(r) <= 512 for r in c.received)
    assert (await c.sync()) == []
    c.send(":ian!i@h PRIVMSG #test :!more")
    more = [await c.expect("PRIVMSG") for _ in range(4)]
    assert more[3] == "PRIVMSG #test :(10 more lines: say \x02!more\x02)"
    c.send(":other!o@h PRIVMSG #test :!more")
    assert await c.expect("PRIVMSG") == "PRIVMSG #test :other: there is nothing more to show."
    assert d.messages.qsize() == 1  # "!more" never reached the dispatcher


async def test_lines_fit_512_bytes_with_our_prefix(server, run):
    _, d = await run(network(server.port))
    d.answer = lambda msg: text("é" * 700)
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :!x")
    await c.expect("PRIVMSG")
    await c.expect("PRIVMSG")
    source = b":todobot!todobot@bot.host "
    assert all(len(source) + len(r) <= 512 for r in c.received)


async def test_long_replies_by_notice(server, run):
    _, d = await run(network(server.port, long_replies="notice"))
    d.answer = lambda msg: Reply(long=True).add("help text")
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :!help")
    assert await c.expect("NOTICE|PRIVMSG") == "NOTICE ian :help text"


async def test_rooms_bound_to_releases(server, run):
    t, d = await run(network(server.port))
    assert d.bound == {("irc:testnet", "#test"): None, ("irc:testnet", "#rel"): "4.3"}
    assert sorted(t.rooms()) == ["#rel", "#test"]


async def test_stop_sends_quit(server, run):
    t, _ = await run(network(server.port))
    c = await registered(server)
    await c.sync()
    await t.stop()
    assert await c.expect("QUIT") == "QUIT :todobot stopping"


# -- identity by WHOIS (no account capabilities) ---------------------------------------------


async def test_accounts_learned_on_one_connection_are_not_used_on_the_next(server, run):
    """After a reconnect nothing the old connection said about a nick counts: whoever holds
    it on the new one is asked about."""
    _, d = await run(network(server.port))
    c = await server.client()
    await c.register("extended-join account-notify")
    c.send(":ian!i@h JOIN #test ijc :Ian", ":ian!i@h PRIVMSG #test :!blocker 1")
    assert (await d.next()).sender.identity == "irc:testnet/ijc"
    c.close()
    c2 = await server.client()
    await c2.expect("USER ")
    c2.send(":srv CAP * LS :")  # this server tells no accounts by itself
    c2.welcome()
    await c2.expect("JOIN")
    c2.send(":ian!other@elsewhere PRIVMSG #test :!blocker 1")
    assert await c2.expect("WHOIS") == "WHOIS ian"
    c2.send(":srv 311 todobot ian other elsewhere * :Ian", ":srv 318 todobot ian :End of /WHOIS list.")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/~ian", False)


async def test_whois_learns_the_account_before_an_admin_command(server, run):
    t, d = await run(network(server.port))
    c = await registered(server)
    c.send(":Ian!i@h JOIN #test", ":Ian!i@h PRIVMSG #test :!blocker 1")
    assert await c.expect("WHOIS") == "WHOIS Ian"
    assert d.messages.empty()  # the command waits for the answer
    c.send(":srv 311 todobot Ian i h * :Ian", ":srv 330 todobot Ian ijc :is logged in as",
           ":srv 318 todobot Ian :End of /WHOIS list.")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/ijc", True)
    # Cached: the next command does not ask again.
    c.send(":Ian!i@h PRIVMSG #test :!done 1")
    assert (await d.next()).sender.identity == "irc:testnet/ijc"
    assert not [ln for ln in await c.sync() if ln.startswith("WHOIS")]
    # A nick change forgets it: the new nick is asked about.
    c.send(":Ian!i@h NICK ijc_away", ":ijc_away!i@h PRIVMSG #test :!done 1")
    assert await c.expect("WHOIS") == "WHOIS ijc_away"
    c.send(":srv 311 todobot ijc_away i h * :Ian", ":srv 318 todobot ijc_away :End of /WHOIS list.")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/~ijc_away", False)


async def test_not_logged_in_is_asked_again_soon(server, run, monkeypatch):
    """Someone refused for not being logged in identifies (which the bot cannot see without
    account-notify) and tries again: WHOIS is asked anew, not answered from a minute-long
    cache. (Found with Anope down and back on ngIRCd.)"""
    monkeypatch.setattr("todobot.bot.irc.identity.WHOIS_TTL_NO_ACCOUNT", 0.3)
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ijc!i@h JOIN #test", ":ijc!i@h PRIVMSG #test :!blocker 1")
    await c.expect("WHOIS ijc")
    c.send(":srv 311 todobot ijc i h * :Ian", ":srv 318 todobot ijc :End of /WHOIS list.")
    assert (await d.next()).sender.authenticated is False
    await asyncio.sleep(0.5)
    c.send(":ijc!i@h PRIVMSG #test :!blocker 1")
    await c.expect("WHOIS ijc", timeout=2)
    c.send(":srv 311 todobot ijc i h * :Ian", ":srv 330 todobot ijc ijc :is logged in as",
           ":srv 318 todobot ijc :End")
    assert (await d.next()).sender.identity == "irc:testnet/ijc"


async def test_whois_registered_nick_means_the_nick_is_the_account(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":george!g@h PRIVMSG todobot :!whoami")
    assert await c.expect("WHOIS") == "WHOIS george"
    c.send(":srv 311 todobot george g h * :George", ":srv 307 todobot george :is a registered nick",
           ":srv 318 todobot george :End")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated) == ("irc:testnet/george", True)


async def test_reading_commands_and_chat_never_ask_whois(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :!blockers", ":ian!i@h PRIVMSG #test :hello there")
    assert (await d.next()).sender.authenticated is False
    assert (await d.next()).text == "hello there"
    assert not [ln for ln in await c.sync() if ln.startswith("WHOIS")]


async def test_whois_without_answer_is_unconfirmed_not_a_grant(server, run, monkeypatch):
    monkeypatch.setattr("todobot.bot.irc.inbound.WHOIS_WAIT", 0.3)
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ijc!i@h PRIVMSG #test :!blocker 1")
    await c.expect("WHOIS ijc")
    m = await d.next()
    assert (m.sender.identity, m.sender.authenticated, m.sender.unconfirmed) == (
        "irc:testnet/~ijc", False, True)


async def test_an_unanswered_whois_delays_only_its_asker(server, run, monkeypatch):
    """A server that never answers WHOIS: the asker's command waits (bounded) and is then
    answered as unconfirmed; everyone else is served meanwhile, and the asker's own later
    messages stay behind their first."""
    monkeypatch.setattr("todobot.bot.irc.inbound.WHOIS_WAIT", 1.0)
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ijc!i@h PRIVMSG #test :!blocker 1", ":ijc!i@h PRIVMSG #test :!blockers")
    await c.expect("WHOIS ijc")
    c.send(":george!g@h PRIVMSG #test :!todo")
    first = await d.next()
    assert (first.sender.nick, first.text) == ("george", "!todo")  # not behind ijc's wait
    m1, m2 = await d.next(), await d.next()
    assert [(m.sender.nick, m.text) for m in (m1, m2)] == [("ijc", "!blocker 1"), ("ijc", "!blockers")]
    assert (m1.sender.authenticated, m1.sender.unconfirmed) == (False, True)
    # The answer is one line, and the next command asks again rather than trusting silence.
    assert (await c.expect("PRIVMSG #test")).endswith("echo !todo")
    assert (await c.expect("PRIVMSG #test")).endswith("echo !blocker 1")
    c.send(":ijc!i@h PRIVMSG #test :!blocker 1")
    await c.expect("WHOIS ijc")


async def test_account_tag_needs_no_whois(server, run):
    _, d = await run(network(server.port))
    c = await server.client()
    await c.register("account-tag")
    c.send(":ijc!i@h PRIVMSG #test :!blocker 1")
    assert (await d.next()).sender.authenticated is False
    assert not [ln for ln in await c.sync() if ln.startswith("WHOIS")]


# -- the bot's own login ------------------------------------------------------------------------


async def test_nickserv_identify_holds_joins_until_confirmed(server, run, monkeypatch, caplog):
    monkeypatch.setenv("TODOBOT_TEST_NS", "s3cret-ns")
    caplog.set_level("DEBUG")
    t, _ = await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS",
                             nickserv_account="botacct"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    await c.expect("CAP END")
    c.welcome()
    assert await c.expect("PRIVMSG") == "PRIVMSG NickServ :IDENTIFY botacct s3cret-ns"
    sent = await c.sync()
    assert not [ln for ln in sent if ln.startswith("JOIN")]
    c.send(":NickServ!services@services NOTICE todobot :Password accepted - you are now recognized.")
    assert await c.expect("JOIN") == "JOIN #test,#Rel"
    assert t._conn is not None and t._conn.account == "botacct"
    assert "s3cret-ns" not in caplog.text and "NickServ" in caplog.text


async def test_nickserv_failure_is_logged_and_the_bot_carries_on(server, run, monkeypatch, caplog):
    monkeypatch.setenv("TODOBOT_TEST_NS", "wrong")
    t, _ = await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    await c.expect("CAP END")
    c.welcome()
    assert await c.expect("PRIVMSG") == "PRIVMSG NickServ :IDENTIFY todobot wrong"
    c.send(":NickServ!s@s NOTICE todobot :Password incorrect.")
    assert await c.expect("JOIN") == "JOIN #test,#Rel"
    assert t._conn is not None and t._conn.account is None
    assert "NickServ login as todobot failed" in caplog.text and "wrong" not in caplog.text


async def test_nickserv_silence_joins_after_the_wait(server, run, monkeypatch):
    monkeypatch.setenv("TODOBOT_TEST_NS", "pw")
    monkeypatch.setattr("todobot.bot.irc.session.IDENTIFY_WAIT", 0.3)
    await run(network(server.port, nickserv_password_env="TODOBOT_TEST_NS"))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    c.welcome()
    await c.expect("PRIVMSG NickServ")
    assert await c.expect("JOIN", timeout=5) == "JOIN #test,#Rel"


def make_cert(directory, name: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert, key), made with openssl."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


@pytest.fixture
async def tls_server(tmp_path):
    """A fake server behind TLS with a certificate of its own; asks for a client certificate."""
    cert, key = make_cert(tmp_path, "server")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(make_cert(tmp_path, "client")[0])
    s = FakeServer()
    await s.start(ctx)
    s.cert = cert  # type: ignore[attr-defined]
    yield s
    await s.close()


async def test_tls_verified_with_tls_ca(tls_server, run):
    t, _ = await run(network(tls_server.port, tls=True, tls_ca=tls_server.cert))
    c = await tls_server.client()
    await c.expect("USER ")
    assert t.failed is None


async def test_tls_certificate_that_does_not_verify_stops_the_network(tls_server, run, tmp_path,
                                                                       caplog):
    other_ca, _ = make_cert(tmp_path, "other")
    t, _ = await run(network(tls_server.port, tls=True, tls_ca=other_ca))
    async with asyncio.timeout(WAIT):
        while t.failed is None:
            await asyncio.sleep(0.05)
    assert "127.0.0.1" in t.failed and "did not verify" in t.failed
    assert "giving up on this network" in caplog.text
    # No retry loop: one attempt, then down until the config is fixed; the connection's
    # supervisor has ended, so no later attempt can come.
    async with asyncio.timeout(WAIT):
        await t._supervisor
    assert t.attempts == 1 and tls_server.clients.empty()


async def test_a_certificate_changed_mid_run_is_refused_and_retried(tmp_path, run, monkeypatch,
                                                                    caplog):
    """The certificate verified, then the server restarts with one the bot does not trust:
    every reconnect is refused (logged, no traceback) and retried with backoff, and the bot
    is back as soon as the trusted certificate is."""
    monkeypatch.setattr("todobot.bot.irc.session.reconnect_backoff", lambda: Backoff(0.2, 0.4))
    cert, key = make_cert(tmp_path, "server")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    s = FakeServer()
    await s.start(ctx)
    try:
        t, _ = await run(network(s.port, tls=True, tls_ca=cert))
        c = await registered(s)
        await c.sync()
        ctx.load_cert_chain(*make_cert(tmp_path, "impostor"))  # new handshakes get this one
        c.close()
        async with asyncio.timeout(WAIT):
            while t.attempts < 4:
                await asyncio.sleep(0.05)
        assert t.failed is not None and "did not verify" in t.failed
        assert caplog.text.count("refusing to connect") >= 2 and "Traceback" not in caplog.text
        assert t.sessions == 1 and s.clients.empty()  # nothing spoke to the impostor
        ctx.load_cert_chain(cert, key)
        c2 = await registered(s)
        assert t.sessions == 2 and t.failed is None
        # Stopping while the server's lines arrive: the cancel must not be lost in the read
        # (it was, and stop() then waited for the keepalive: 90 s).
        stopping = asyncio.create_task(t.stop())
        done, _ = await asyncio.wait({stopping}, timeout=WAIT)
        assert done, "stop() hung"
        c2.close()
    finally:
        await s.close()


async def test_sasl_external_sends_an_empty_response(tls_server, run, tmp_path):
    cert, key = str(tmp_path / "client.pem"), str(tmp_path / "client.key")
    await run(network(tls_server.port, tls=True, tls_ca=tls_server.cert, tls_certfile=cert,
                      tls_keyfile=key, sasl_mechanism="EXTERNAL"))
    c = await tls_server.client()
    assert c.writer.get_extra_info("peercert") is not None  # the server saw our certificate
    await c.expect("USER ")
    c.send(":srv CAP * LS :sasl=PLAIN,EXTERNAL")
    assert await c.expect("CAP REQ") == "CAP REQ sasl"
    c.send(":srv CAP * ACK :sasl")
    assert await c.expect("AUTHENTICATE") == "AUTHENTICATE EXTERNAL"
    c.send("AUTHENTICATE +")
    assert await c.expect("AUTHENTICATE") == "AUTHENTICATE +"
    c.send(":srv 900 * todobot!t@h botacct :You are now logged in", ":srv 903 * :ok")
    await c.expect("CAP END")


# -- staying in the channel --------------------------------------------------------------------


async def test_kicks_in_a_row_rejoin_after_growing_waits(server, run, monkeypatch, caplog):
    monkeypatch.setattr("todobot.bot.irc.channels.REJOIN_AFTER_KICK", 0.2)
    monkeypatch.setattr("todobot.bot.irc.channels.KICK_BACKOFF_MAX", 0.8)
    t, _ = await run(network(server.port))
    c = await registered(server)
    await c.sync()
    for _ in range(4):
        c.send(":op!o@h KICK #test todobot :go away")
        assert await c.expect("JOIN", timeout=5) == "JOIN #test"
        c.send(":todobot!todobot@bot.host JOIN #test")
    waits = re.findall(r"kicked from #test by op: go away; rejoining in ([\d.]+)s", caplog.text)
    assert waits == ["0.2", "0.4", "0.8", "0.8"]  # doubled each time, capped
    # A kick long after the last one starts over.
    monkeypatch.setattr("todobot.bot.irc.channels.KICK_CALM", 0.0)
    await asyncio.sleep(0.05)
    c.send(":op!o@h KICK #test todobot :again")
    assert await c.expect("JOIN", timeout=5) == "JOIN #test"
    assert "by op: again; rejoining in 0.2s" in caplog.text


async def test_kick_rejoins_after_a_pause_and_ban_backs_off(server, run, monkeypatch, caplog):
    monkeypatch.setattr("todobot.bot.irc.channels.REJOIN_AFTER_KICK", 0.2)
    monkeypatch.setattr("todobot.bot.irc.channels.BANNED_BACKOFF", (0.3, 0.6))
    t, _ = await run(network(server.port))
    c = await registered(server)
    await c.sync()
    c.send(":op!o@h KICK #test todobot :out")
    assert await c.expect("JOIN", timeout=5) == "JOIN #test"
    c.send(":srv 474 todobot #test :Cannot join channel (+b)")
    assert await c.expect("JOIN", timeout=5) == "JOIN #test"
    c.send(":srv 474 todobot #test :Cannot join channel (+b)")
    assert await c.expect("JOIN", timeout=5) == "JOIN #test"
    assert t._ban_backoff["#test"] == 0.6  # doubled, capped
    assert "cannot join #test (banned" in caplog.text
    c.send(":todobot!todobot@bot.host PART #Rel", ":srv 477 todobot #Rel :Cannot join channel (+r)")
    assert await c.expect("JOIN", timeout=5) == "JOIN #Rel"
    assert "cannot join #Rel (registered nicks only" in caplog.text


# -- how people address the bot ----------------------------------------------------------------


@pytest.mark.parametrize("said,seen", [
    ("todobot: blockers", "!blockers"),
    ("TodoBot, claim 12", "!claim 12"),
    ("todobot: !todo", "!todo"),
    ("todobot: I'll take it", "I'll take it"),
    ("george: blockers", "george: blockers"),
    ("blockers", "blockers"),
])
async def test_commands_addressed_by_nick(server, run, said, seen):
    _, d = await run(network(server.port))
    d.answer = lambda msg: None
    c = await registered(server)
    c.send(f"@account=x :ian!i@h PRIVMSG #test :{said}")
    assert (await d.next()).text == seen


async def test_no_prefix_needed_in_private(server, run):
    _, d = await run(network(server.port))
    d.answer = lambda msg: None
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG todobot :todo mine", ":ian!i@h PRIVMSG todobot :hello")
    assert (await d.next()).text == "!todo mine"
    assert (await d.next()).text == "hello"


async def test_ctcp_action_is_plain_language_and_version_ping_clientinfo_answered(server, run):
    _, d = await run(network(server.port))
    d.answer = lambda msg: None
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG #test :\x01ACTION will take this one\x01")
    assert (await d.next()).text == "I will take this one"
    c.send(":ian!i@h PRIVMSG todobot :\x01VERSION\x01")
    assert re.fullmatch("NOTICE ian :\x01VERSION todobot \\S+\x01", await c.expect("NOTICE"))
    c.send(":ian!i@h PRIVMSG todobot :\x01PING 12345 678\x01")
    assert await c.expect("NOTICE") == "NOTICE ian :\x01PING 12345 678\x01"
    c.send(":ian!i@h PRIVMSG todobot :\x01CLIENTINFO\x01")
    assert await c.expect("NOTICE") == "NOTICE ian :\x01CLIENTINFO ACTION CLIENTINFO PING VERSION\x01"
    c.send(":ian!i@h PRIVMSG todobot :\x01FINGER\x01", ":ian!i@h PRIVMSG todobot :\x01TIME\x01")
    assert not [ln for ln in await c.sync() if ln.startswith("NOTICE")]
    assert d.messages.empty()


async def test_isupport_flags_and_values_through_featureset(server, run):
    t, _ = await run(network(server.port))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :")
    c.send(":srv 001 todobot :Welcome", ":srv 005 todobot WHOX CASEMAPPING=ascii NICKLEN=30 CHANTYPES=#& :ok",
           ":srv 422 todobot :no MOTD")
    await c.expect("JOIN")
    c.send(":todobot!t@h JOIN #test")
    assert await c.expect("WHO") == "WHO #test %tna,217"
    assert t._conn is not None and (t._conn.casemapping, t._conn.is_channel("&x")) == ("ascii", True)


async def test_unconfirmed_account_is_said_in_the_refusal(tmp_path):
    """The dispatcher's refusal for a sender whose account could not be learnt."""
    from tests.harness import Chat
    from todobot.commands.messages import Sender

    chat = await Chat.open(tmp_path / "db.sqlite3", admins=["irc:testnet/ijc"])
    try:
        sender = Sender(identity="irc:testnet/~ijc", nick="ijc", authenticated=False, unconfirmed=True)
        reply = await chat.dispatcher.handle(Message(transport="irc:testnet", room="#test",
                                                     sender=sender, text="!blocker 1"))
        assert reply is not None and reply.outcome == "refused"
        assert "could not confirm your account" in reply.plain
    finally:
        await chat.close()


# -- fair output: a queue per requester, a bounded backlog per person --------------------------


def lines(*texts: str) -> Reply:
    """A reply of one wire line per text."""
    reply = Reply()
    for t in texts:
        reply.add(t)
    return reply


async def test_a_newcomer_is_answered_before_everyone_elses_backlog(server, run):
    _, d = await run(network(server.port, throttle=Throttle(burst=1, rate=4)))
    d.answer = lambda msg: lines(*(f"{msg.sender.nick} line {i}" for i in range(3)))
    c = await registered(server)
    await c.sync()
    for nick in ("ann", "bea", "cid", "dan"):
        c.send(f":{nick}!u@{nick}.example PRIVMSG #test :!show 1")
    for _ in range(4):
        await d.next()
    first = await c.expect("PRIVMSG")  # 12 lines queued; the bucket lets one out at a time
    assert first == "PRIVMSG #test :ann line 0"
    d.answer = lambda msg: text("eve: #2 one line")
    c.send(":eve!u@eve.example PRIVMSG #test :!show 2")
    await d.next()
    following = [await c.expect("PRIVMSG") for _ in range(2)]
    assert "PRIVMSG #test :eve: #2 one line" in following
    # Then the others in turn: nobody gets a second line while another has had fewer.
    rest = [await c.expect("PRIVMSG") for _ in range(10)]
    firsts = [ln.split(":", 1)[1].split()[0] for ln in [first, *following, *rest]
              if "line 0" in ln]
    assert firsts == ["ann", "bea", "cid", "dan"]


async def test_a_flood_of_answers_to_one_person_is_cut_and_counted(server, run):
    _, d = await run(network(server.port, throttle=Throttle(burst=1, rate=5)))
    d.answer = lambda msg: lines(f"answer {msg.text[-2:]} a", f"answer {msg.text[-2:]} b")
    c = await registered(server)
    await c.sync()
    c.send(*(f":alice!u@h PRIVMSG #test :!show {i:02}" for i in range(15)))
    for _ in range(15):
        await d.next()
    got = []
    while not (got and "dropped" in got[-1]):
        got.append(await c.expect("PRIVMSG"))
    answered = {ln.split()[3] for ln in got[:-1]}
    assert len(got) - 1 == 2 * len(answered) and 0 < len(answered) < 15
    assert got[-1] == (f"PRIVMSG #test :{15 - len(answered)} more answers for alice dropped: "
                       "ask again with a narrower query")
    assert not [ln for ln in await c.sync() if "dropped" in ln]  # said once
    c.send(":alice!u@h PRIVMSG #test :!show 99")  # her queue drained: answered again
    assert await c.expect("PRIVMSG") == "PRIVMSG #test :answer 99 a"


async def test_private_answers_and_more_are_notices(server, run):
    _, d = await run(network(server.port))
    c = await registered(server)
    c.send(":ian!i@h PRIVMSG todobot :!show 1", ":ian!i@h PRIVMSG todobot :more")
    assert await c.expect("NOTICE|PRIVMSG") == "NOTICE ian :echo !show 1"
    assert await c.expect("NOTICE|PRIVMSG") == "NOTICE ian :ian: there is nothing more to show."
    c.send(":ian!i@h PRIVMSG #test :!show 1")
    assert await c.expect("NOTICE|PRIVMSG") == "PRIVMSG #test :echo !show 1"
