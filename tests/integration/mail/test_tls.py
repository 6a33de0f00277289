"""Sending is TLS-verified, as for IRC: STARTTLS on the submission port or TLS from the first
byte; a certificate the bot cannot verify stops the send."""

from __future__ import annotations

import ssl
import subprocess

import pytest

from todobot.bot.config import parse_config
from todobot.bot.mail import outbox

from .conftest import BOT, LIST, SinkController, SmtpSink

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
async def test_tls_is_verified(cert, implicit):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*map(str, cert))
    sink = SmtpSink()
    if implicit:
        controller = SinkController(sink, ssl_context=server_ctx)
    else:
        controller = SinkController(sink, tls_context=server_ctx, require_starttls=True)
    controller.start()
    try:
        entry = parse_config({"mail": [{"list": LIST, "from": BOT, "smtp": {
            "host": "127.0.0.1", "port": sink.port, "starttls": not implicit, "tls": implicit,
            "timeout": 10}}]}).mail[0]
        msg = outbox.weekly_message(entry, release="4.2", body="hello\n",
                                    message_id=outbox.new_message_id(entry), previous=[])
        with pytest.raises(Exception) as err:  # the system's CAs do not know the test certificate
            await outbox.send(entry, msg, password=None)
        assert "CERTIFICATE_VERIFY_FAILED" in repr(err.value) or "certificate verify" in str(err.value)
        assert sink.received == []
        await outbox.send(entry, msg, password=None,
                          ssl_context=ssl.create_default_context(cafile=str(cert[0])))
        [got] = sink.received
        assert got.rcpt_tos == [LIST] and got.raw.endswith(b"\r\n\r\nhello\r\n")
    finally:
        controller.stop()
