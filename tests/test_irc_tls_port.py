"""`tls: true` against a plain-text port is one line that says what to change, quickly —
not 30 s of silence and an empty "connection lost"."""

from __future__ import annotations

import asyncio
import pytest

from todobot.bot.config import IrcNetwork
from todobot.bot.irc.connection import IrcConnection, NotTls
from todobot.bot.ratelimit import TokenBucket


async def _server(greet: bytes | None):
    async def client(reader, writer):
        if greet:
            writer.write(greet)
            await writer.drain()
        await reader.read(65536)  # the ClientHello, read as a line of garbage
        writer.close()
    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


@pytest.mark.parametrize("greet,says", [
    (b":irc.example.org NOTICE * :*** Looking up your hostname...\r\n", "answered the TLS handshake"),
    (None, "answered the TLS handshake"),  # silent until the client speaks, then closes
])
async def test_tls_against_a_plain_text_port_says_what_to_change(greet, says):
    server, port = await _server(greet)
    conn = IrcConnection(IrcNetwork(network="t", host="127.0.0.1", port=port, tls=True),
                         TokenBucket(4, 1.0))
    try:
        with pytest.raises(NotTls) as exc:
            await conn.open(timeout=10)
        message = str(exc.value)
        assert f"127.0.0.1:{port}" in message and "set tls: false" in message and "\n" not in message
    finally:
        server.close()
        await server.wait_closed()


async def test_a_tls_handshake_that_never_ends_says_so():
    async def client(reader, writer):
        await asyncio.sleep(30)  # accepts, never answers
    server = await asyncio.start_server(client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = IrcConnection(IrcNetwork(network="t", host="127.0.0.1", port=port, tls=True),
                         TokenBucket(4, 1.0))
    try:
        with pytest.raises(NotTls, match="did not answer the TLS handshake: is this a plain-text port"):
            await conn.open(timeout=0.5)
    finally:
        server.close()


async def test_an_unreachable_server_is_not_blamed_on_tls():
    server, port = await _server(None)
    server.close()
    await server.wait_closed()
    conn = IrcConnection(IrcNetwork(network="t", host="127.0.0.1", port=port, tls=True),
                         TokenBucket(4, 1.0))
    with pytest.raises(OSError) as exc:
        await conn.open(timeout=5)
    assert not isinstance(exc.value, NotTls)
