"""The connection's writer: an answer's first line goes out at once when nothing waits and
the bucket has room; otherwise the writer sends it in its turn, one token per line."""

from __future__ import annotations

import asyncio

from todobot.bot.config import IrcNetwork
from todobot.bot.irc.connection import IrcConnection
from todobot.bot.irc.output import Requester
from todobot.bot.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """Stands in for the StreamWriter: records what is written."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.lines.append(data)

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass

    async def wait_closed(self) -> None:
        pass


def connection(burst: int, clock: Clock) -> tuple[IrcConnection, Wire]:
    net = IrcNetwork(network="t", host="127.0.0.1", port=6667, tls=False, nick="todobot")
    conn = IrcConnection(net, TokenBucket(burst, 1.0, clock))
    wire = Wire()
    conn._writer = wire  # type: ignore[assignment]
    conn._write_task = asyncio.create_task(conn._write_loop())
    return conn, wire


def who(nick: str) -> Requester:
    return Requester(f"t/{nick}", nick, "PRIVMSG", "#c")


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_first_line_is_written_before_the_event_loop_turns():
    conn, wire = connection(burst=2, clock=Clock())
    await settle()  # the writer waits for work
    assert conn.answer(who("ann"), [b"PRIVMSG #c :one", b"PRIVMSG #c :two", b"PRIVMSG #c :three"])
    assert wire.lines == [b"PRIVMSG #c :one\r\n"]  # written within answer()
    await settle()
    assert wire.lines == [b"PRIVMSG #c :one\r\n", b"PRIVMSG #c :two\r\n"]  # burst of 2 spent
    assert conn.bucket.delay() > 0 and len(conn._out) == 1
    conn._write_task.cancel()


async def until(check, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


async def test_an_empty_bucket_or_a_busy_writer_keeps_the_turns():
    net = IrcNetwork(network="t", host="127.0.0.1", port=6667, tls=False, nick="todobot")
    conn = IrcConnection(net, TokenBucket(1, 20.0))  # then a line every 50 ms
    wire = Wire()
    conn._writer = wire  # type: ignore[assignment]
    conn._write_task = asyncio.create_task(conn._write_loop())
    await settle()
    conn.answer(who("ann"), [b"PRIVMSG #c :a1", b"PRIVMSG #c :a2"])
    assert wire.lines == [b"PRIVMSG #c :a1\r\n"]
    # ann's second line waits for a token; bea's answer does not jump ahead of the writer's
    # choice, and when the token comes the fairest line goes first: bea's, served less.
    conn.answer(who("bea"), [b"PRIVMSG #c :b1"])
    assert wire.lines == [b"PRIVMSG #c :a1\r\n"]
    await until(lambda: len(wire.lines) == 3)
    assert wire.lines[1:] == [b"PRIVMSG #c :b1\r\n", b"PRIVMSG #c :a2\r\n"]
    # Idle again with a token: a one-line answer goes at once and the writer stays idle.
    await until(lambda: conn.bucket.delay() == 0 and conn._idle.is_set())
    assert conn.answer(who("cid"), [b"PRIVMSG #c :c1"])
    assert wire.lines[-1] == b"PRIVMSG #c :c1\r\n" and conn._idle.is_set()
    # Before the bucket refills, an answer waits for the writer's turn.
    conn.answer(who("dan"), [b"PRIVMSG #c :d1"])
    assert wire.lines[-1] == b"PRIVMSG #c :c1\r\n" and not conn._idle.is_set()
    await until(lambda: wire.lines[-1] == b"PRIVMSG #c :d1\r\n")
    conn._write_task.cancel()


async def test_an_answer_begun_early_still_counts_its_first_line_for_fairness():
    net = IrcNetwork(network="t", host="127.0.0.1", port=6667, tls=False, nick="todobot")
    conn = IrcConnection(net, TokenBucket(1, 20.0))
    wire = Wire()
    conn._writer = wire  # type: ignore[assignment]
    conn._write_task = asyncio.create_task(conn._write_loop())
    await settle()
    # ann's first line goes at once, before the rest of her answer is rendered...
    assert conn.answer(who("ann"), [b"PRIVMSG #c :a1"], more_to_come=True)
    assert wire.lines == [b"PRIVMSG #c :a1\r\n"] and len(conn._out) == 0
    conn.answer_more(who("ann"), [b"PRIVMSG #c :a2", b"PRIVMSG #c :a3"])
    # ...and she has still been served once: bea, served none, goes next although her
    # answer is longer than what ann has left.
    conn.answer(who("bea"), [b"PRIVMSG #c :b1", b"PRIVMSG #c :b2", b"PRIVMSG #c :b3"])
    await until(lambda: len(wire.lines) == 6)
    assert [ln.split(b":")[1][:2] for ln in wire.lines] == [b"a1", b"b1", b"a2", b"b2", b"a3", b"b3"]
    conn._write_task.cancel()


async def test_a_long_answers_first_line_is_sent_before_the_rest_is_rendered(monkeypatch):
    from todobot.bot.irc import IrcTransport, replies
    from todobot.bot.config import Config
    from todobot.commands.messages import Message, Reply, Sender

    net = IrcNetwork(network="t", host="127.0.0.1", port=6667, tls=False, nick="todobot",
                     channels=["#c"], max_lines=2)
    transport = IrcTransport(net, Config(irc=[net]))
    conn = IrcConnection(net, TokenBucket(20, 50.0))
    wire = Wire()
    conn._writer = wire  # type: ignore[assignment]
    conn._write_task = asyncio.create_task(conn._write_loop())
    conn.registered = True
    conn.source = "todobot!bot@host"
    transport._conn = conn
    await settle()
    on_wire_when_split: list[int] = []
    split = replies.wire_lines

    def spy(command, target, text, source):
        on_wire_when_split.append(len(wire.lines))
        return split(command, target, text, source)
    monkeypatch.setattr(replies, "wire_lines", spy)
    reply = Reply()
    for n in range(4):
        reply.add(f"line {n}")
    msg = Message("irc:t", "#c", Sender("irc:t/ann", "ann"), "!todo")
    transport._deliver(msg, "#c", reply)
    assert on_wire_when_split[:4] == [0, 1, 1, 1]  # lines 2-4 were split after line 1 went
    await settle()
    assert wire.lines == [b"PRIVMSG #c :line 0\r\n", b"PRIVMSG #c :line 1\r\n",
                          b"PRIVMSG #c :(2 more lines: say \x02!more\x02)\r\n"]
    conn._write_task.cancel()
