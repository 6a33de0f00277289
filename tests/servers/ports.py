"""Ports for the test servers without the probe-then-close race.

Asking the kernel for a free port and closing it again leaves a gap in which another test
(or another developer's run) can take the port. So:

- a daemon that can take an already-listening socket gets one bound to port 0 here and keeps
  it (`listening_socket`, `socket_activation`: systemd's LISTEN_FDS protocol, which ngIRCd and
  Dovecot speak); nothing is ever closed and re-bound, so there is no gap;
- a daemon that must be told a port number (InspIRCd and the Anope link to it, Synapse) is
  started by `on_free_ports`, which picks numbers, and when the daemon says the address is
  in use (`await_listening` reads its output and watches who holds the port) tries again
  with new numbers, a bounded number of times.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

HOST = "127.0.0.1"
ATTEMPTS = 5
IN_USE = "address already in use"  # strerror(EADDRINUSE), as the daemons log it

T = TypeVar("T")


class PortInUse(RuntimeError):
    """The daemon could not listen on the port it was given: someone else has it."""


def pick_port() -> int:
    """A port free right now (it may be taken before the daemon binds it: see on_free_ports)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def first_pick(port: int) -> Callable[[], int]:
    """A `pick` for on_free_ports that gives `port` first (one already configured), then
    fresh ones."""
    given = iter([port])
    return lambda: next(given, None) or pick_port()


@contextmanager
def occupied_port() -> Iterator[int]:
    """A port another program listens on until the block ends: for tests of moving on."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        s.listen()
        yield s.getsockname()[1]


def on_free_ports(count: int, launch: Callable[[list[int]], T], *, attempts: int = ATTEMPTS,
                  pick: Callable[[], int] = pick_port) -> T:
    """`launch(ports)` on `count` distinct fresh ports; when it raises PortInUse, again on
    new ones, up to `attempts` times."""
    last: PortInUse | None = None
    for _ in range(attempts):
        ports: list[int] = []
        while len(ports) < count:
            if (p := pick()) not in ports:
                ports.append(p)
        try:
            return launch(ports)
        except PortInUse as exc:
            last = exc
    raise PortInUse(f"no usable port in {attempts} attempts; last: {last}")


def listening_socket(port: int = 0) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 (port 0: the kernel's choice, read with
    getsockname). Handed to a daemon, it is never closed between choosing and listening."""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart after TIME_WAIT
        s.bind((HOST, port))
        s.listen(128)
    except OSError:
        s.close()
        raise
    return s


# The socket arrives as fd 3 with LISTEN_FDS=1 and LISTEN_PID set to the daemon's own pid,
# which exec keeps: so a tiny exec shim sets them, not the parent.
_SHIM = ("import os, sys; os.dup2(int(sys.argv[1]), 3); os.environ.update(LISTEN_FDS='1', "
         "LISTEN_PID=str(os.getpid())); os.execvp(sys.argv[2], sys.argv[2:])")


def socket_activation(argv: list[str], sock: socket.socket) -> tuple[list[str], tuple[int, ...]]:
    """The argv and pass_fds that start `argv` with `sock` as its systemd-activated listener."""
    return [sys.executable, "-c", _SHIM, str(sock.fileno()), *argv], (sock.fileno(),)


# -- who listens where ---------------------------------------------------------------------------


def _listen_inodes(port: int) -> set[str]:
    """Inodes of the sockets listening on 127.0.0.1:port (or on every address)."""
    wanted = {f"0100007F:{port:04X}", f"00000000:{port:04X}"}
    out = set()
    try:
        rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:
        return out
    for row in rows:
        cols = row.split()
        if len(cols) > 9 and cols[1] in wanted and cols[3] == "0A":  # 0A: LISTEN
            out.add(cols[9])
    return out


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[2]) == pgid:  # field 5: pgrp
                pids.append(int(entry.name))
    return pids


def held_by_group(port: int, pgid: int) -> bool:
    """Whether a process of group `pgid` holds a socket listening on `port`."""
    inodes = {f"socket:[{i}]" for i in _listen_inodes(port)}
    if not inodes:
        return False
    for pid in _group(pgid):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in inodes:
                    return True
            except OSError:
                continue
    return False


def await_listening(ports: Iterable[int], pgid: int, outputs: Iterable[Path], *,
                    alive: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until the daemon (process group `pgid`) listens on every port. Raises PortInUse
    as soon as its output says an address is in use; returns early if it exited or the time
    is up (its own readiness check then reports the failure)."""
    ports, outputs = list(ports), list(outputs)
    deadline = time.monotonic() + timeout
    while True:
        running = alive()  # before reading: a daemon that logged and exited is seen logging
        for out in outputs:
            try:
                text = out.read_text(errors="replace")
            except OSError:
                continue
            if IN_USE in text.casefold():
                line = next(ln for ln in text.splitlines() if IN_USE in ln.casefold())
                raise PortInUse(f"{out.name}: {line.strip()}")
        if not running or all(held_by_group(p, pgid) for p in ports):
            return
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
