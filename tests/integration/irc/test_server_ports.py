"""A real InspIRCd given a port someone else holds says so, and its fixture moves it to
another port (tests/servers/ports.py); ngIRCd never has the race: it gets its socket."""

from __future__ import annotations

import functools

import pytest

from tests.servers import ircd, ports
from tests.servers.ircd import start_inspircd, start_ngircd

from .conftest import _launch

pytestmark = pytest.mark.integration


def test_inspircd_moves_off_a_taken_port(tmp_path, monkeypatch):
    with ports.occupied_port() as port:  # the first port chosen for the clients
        monkeypatch.setattr(ircd, "on_free_ports", functools.partial(
            ports.on_free_ports, pick=ports.first_pick(port)))
        server = _launch(start_inspircd, tmp_path / "inspircd", "inspircd", services=False)
        try:
            assert port not in (server.port, server.link_port)
            assert ports.held_by_group(server.port, server.daemons[0].proc.pid)  # and it answered
        finally:
            server.stop()


def test_ngircd_listens_on_the_socket_it_was_given(tmp_path):
    server = _launch(start_ngircd, tmp_path / "ngircd", "ngircd")
    try:
        assert ports.held_by_group(server.port, server.daemons[0].proc.pid)
        assert "from systemd" in (tmp_path / "ngircd" / "ngircd.out").read_text()
        server.restart()  # binds the same port again; the start answered a registration
        assert ports.held_by_group(server.port, server.daemons[0].proc.pid)
    finally:
        server.stop()
