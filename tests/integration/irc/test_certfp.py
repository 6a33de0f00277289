"""CertFP: the bot logs in by its client certificate (SASL EXTERNAL) over verified TLS to
InspIRCd + Anope, which sees the certificate's fingerprint (sslinfo) and knows it (ns_cert)."""

from __future__ import annotations

import pytest

from tests.servers.ircd import IrcServer, fingerprint, make_certificate, start_inspircd

from .conftest import Human, _launch, _register_accounts_sync, channel_name

pytestmark = pytest.mark.integration


@pytest.fixture
def inspircd_tls(tmp_path) -> IrcServer:
    server = _launch(start_inspircd, tmp_path / "inspircd", "inspircd", "anope", "openssl",
                     tls=True)
    try:
        _register_accounts_sync(server, "todobot")
        yield server
    finally:
        server.stop()


async def test_sasl_external_by_client_certificate(inspircd_tls, bot_factory, humans, tmp_path):
    server = inspircd_tls
    cert, key = make_certificate(tmp_path, "todobot-client")
    # Logged in to todobot and connected with the certificate: CERT ADD adds its fingerprint.
    owner = await Human.connect(server, "certowner", account="todobot", client_cert=(cert, key))
    try:
        owner.say("NickServ", "CERT ADD")
        said = await owner.hear("NickServ", r"(?i)fingerprint|certificate", command="NOTICE")
        assert "added" in said.lower(), said
    finally:
        await owner.quit()

    chan = channel_name()
    async with bot_factory(server, channels=[chan], sasl=False, tls=True, tls_certfile=cert,
                           tls_keyfile=key, sasl_mechanism="EXTERNAL") as bot:
        conn = bot.transport._conn
        assert conn is not None and conn.account == "todobot" and "sasl" in conn.caps
        watcher = await humans(server, "watcher", channel=chan)
        watcher.send(f"WHOIS {bot.nick}")
        seen = await watcher.expect(lambda ln: ln.command in ("276", "318"))
        assert seen.command == "276" and fingerprint(cert) in seen.params[-1]
