"""The status page's listening sockets, bound once, before the database is opened.

A port in use is a config mistake (exit 2, one line naming `web.listen`), found before the
database is upgraded. The sockets bound then are the ones the status page serves on
(`StatusServer(sockets=...)`): checking by binding and releasing would leave a moment, the
migration, in which another process could take the port. `todobot check` binds and releases:
it only looks.
"""

from __future__ import annotations

import errno
import socket

from .config import Config, ConfigError

BACKLOG = 128  # connections the kernel keeps while the database opens (asyncio's default)


def bind(config: Config) -> list[socket.socket]:
    """Bound and listening sockets for `web.listen` (every address its host names, as asyncio
    would bind them); none without `web:`. A ConfigError of one line when one cannot be
    bound, with nothing left bound."""
    if config.web is None:
        return []
    from .web import parse_listen  # the status page's own HOST:PORT reading
    host, port = parse_listen(config.web.listen)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{config.source}: web.listen {config.web.listen}: {exc.strerror}: "
                          "use an address of this machine") from None
    bound: list[socket.socket] = []
    try:
        for family, kind, proto, _, addr in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            # As asyncio binds: a port left in TIME_WAIT by a restart is free, and an IPv6
            # socket takes IPv6 only (the IPv4 address gets its own socket).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            # Listening now: a port only bound could still be bound by another process that
            # also asks for SO_REUSEADDR; a listening one cannot.
            sock.listen(BACKLOG)
    except OSError as exc:
        for sock in bound:
            sock.close()
        raise ConfigError(listen_problem(config, exc)) from None
    return bound


def listen_problems(config: Config) -> list[str]:
    """What `bind` would refuse, with every socket released again (`todobot check`)."""
    try:
        sockets = bind(config)
    except ConfigError as exc:
        return str(exc).splitlines()
    for sock in sockets:
        sock.close()
    return []


def listen_problem(config: Config, exc: OSError) -> str:
    assert config.web is not None
    what = ("is in use: stop what holds it or choose another port"
            if exc.errno == errno.EADDRINUSE else
            f"cannot be bound ({exc.strerror}): choose an address of this machine and a port "
            "above 1023")
    return f"{config.source}: web.listen {config.web.listen} {what}"
