"""A real Synapse configured with a port someone else holds fails to listen there, and its
fixture moves it to another port (tests/servers/ports.py); a restart keeps the port."""

from __future__ import annotations

import urllib.request

import pytest

from tests.servers import ports, synapse

from .conftest import start_synapse

pytestmark = pytest.mark.integration


def test_synapse_moves_off_a_taken_port(tmp_path, monkeypatch):
    with ports.occupied_port() as port:  # the port written into its config
        monkeypatch.setattr(synapse, "pick_port", lambda: port)
        server = start_synapse(tmp_path / "synapse")
        try:
            assert server.port != port
            assert ports.held_by_group(server.port, server.proc.pid)
            moved = server.port
            server.stop()
            server.start()
            assert server.port == moved
            with urllib.request.urlopen(server.url + "/_matrix/client/versions", timeout=10) as r:
                assert r.status == 200
        finally:
            server.stop()
