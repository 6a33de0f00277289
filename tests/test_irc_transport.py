"""The IRC transport at the wire level, against a scripted server socket on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import re

import pytest

from todobot.bot.config import Config, IrcNetwork, Throttle
from todobot.bot.irc import IrcTransport
from todobot.bot.irc_conn import Backoff, build_line, decode_line, parse_line
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

    def close(self) -> None:
        self.writer.close()


class FakeServer:
    def __init__(self) -> None:
        self.clients: asyncio.Queue[FakeClient] = asyncio.Queue()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
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
    b = Backoff()
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
    await asyncio.sleep(0.4)
    c.send(":srv PONG srv :x")
    await c.sync()
    assert server.clients.empty() and t.sessions == 1


# -- messages in -----------------------------------------------------------------------------


async def test_account_tag_identity(server, run):
    t, d = await run(network(server.port))
    c = await server.client()
    await c.expect("USER ")
    c.send(":srv CAP * LS :message-tags account-tag")
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :message-tags account-tag")
    await c.expect("CAP END")
    c.welcome()
    await c.expect("JOIN")
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
    await c.expect("USER ")
    c.send(":srv CAP * LS :extended-join account-notify")
    await c.expect("CAP REQ")
    c.send(":srv CAP * ACK :extended-join account-notify")
    c.welcome()
    await c.expect("JOIN")
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
    assert await c.expect("PRIVMSG") == "PRIVMSG ian :echo !help red"
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
