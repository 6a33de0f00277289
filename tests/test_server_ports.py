"""The test servers' ports (tests/servers/ports.py): a daemon that must be told a port number
moves to a new one when the first is taken; a socket-activated daemon gets the socket itself."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import ports

# A stand-in daemon: listens on the port it is given; when it cannot, it says so on stderr
# (as InspIRCd, Synapse and Dovecot do) and stays up, the way InspIRCd carries on.
DAEMON = """\
import socket, sys, time
s = socket.socket()
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen()
except OSError as exc:
    print("bind failed:", exc, flush=True)
time.sleep(60)
"""


class Launcher:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.tried: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []

    def __call__(self, port_list: list[int]) -> int:
        [port] = port_list
        self.tried.append(port)
        log = self.tmp_path / f"daemon{len(self.tried)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", DAEMON, str(port)], stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        try:
            ports.await_listening([port], proc.pid, [log], alive=lambda: proc.poll() is None,
                                  timeout=20)
        except ports.PortInUse:
            proc.kill()
            raise
        assert ports.held_by_group(port, proc.pid)
        return port

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()


@pytest.fixture
def launcher(tmp_path):
    launch = Launcher(tmp_path)
    yield launch
    launch.close()


@pytest.fixture
def occupied():
    with ports.occupied_port() as port:
        yield port


def test_a_taken_port_moves_the_daemon_to_a_new_one(launcher, occupied):
    port = ports.on_free_ports(1, launcher, pick=ports.first_pick(occupied))
    assert launcher.tried[0] == occupied
    assert port != occupied and launcher.tried == [occupied, port]
    assert ports.held_by_group(port, launcher.procs[-1].pid)


def test_the_retries_are_bounded(launcher, occupied):
    with pytest.raises(ports.PortInUse, match="3 attempts.*in use"):
        ports.on_free_ports(1, launcher, attempts=3, pick=lambda: occupied)
    assert launcher.tried == [occupied] * 3


def test_ports_of_one_launch_are_distinct():
    picks = iter([5000, 5000, 5001])
    assert ports.on_free_ports(2, lambda p: p, pick=lambda: next(picks)) == [5000, 5001]


def test_a_port_held_by_another_program_is_not_the_daemons(occupied):
    assert not ports.held_by_group(occupied, os.getpgid(0) + 10**7)


# The child accepts on fd 3 and answers whether LISTEN_PID and LISTEN_FDS name it.
ACTIVATED = """\
import os, socket
s = socket.socket(fileno=3)
c, _ = s.accept()
c.sendall(f"{os.environ['LISTEN_PID'] == str(os.getpid())} {os.environ['LISTEN_FDS']}".encode())
c.close()
"""


def test_socket_activation_hands_over_the_listening_socket():
    sock = ports.listening_socket()
    port = sock.getsockname()[1]
    argv, fds = ports.socket_activation([sys.executable, "-c", ACTIVATED], sock)
    proc = subprocess.Popen(argv, pass_fds=fds)
    sock.close()  # the daemon holds the only copy now
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as c:
            assert c.recv(100) == b"True 1"
        assert proc.wait(10) == 0
    finally:
        proc.kill()
        proc.wait()
