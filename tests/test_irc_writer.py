"""The connection's writer: an answer's first line goes out at once when nothing waits and
the bucket has room; otherwise the writer sends it in its turn, one token per line."""

from __future__ import annotations

import asyncio

from todobot.bot.config import IrcNetwork
from todobot.bot.irc_conn import IrcConnection
from todobot.bot.irc_out import Requester
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
