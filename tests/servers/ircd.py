"""Real IRC servers for integration tests: InspIRCd (+ Anope services) and ngIRCd.

Each launcher writes its configs into a fresh directory, starts the daemon on 127.0.0.1 in its
own process group, waits until it answers a client registration, and kills only that process
group at teardown. ngIRCd gets a socket already listening on a port the kernel chose; InspIRCd
needs port numbers in its config, so it moves to new ones when they turn out taken (ports.py).
Nothing listens on, resolves or connects to anything but 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.ports import (HOST, PortInUse, await_listening, listening_socket,
                                 on_free_ports, socket_activation)

LINK_PASSWORD = "linkpass-test"


class ServerUnavailable(RuntimeError):
    """A binary is missing or the server never came up."""


def missing_binaries(*names: str) -> list[str]:
    return [n for n in names if shutil.which(n) is None]


# -- probing ---------------------------------------------------------------------------------


def probe(port: int, *, timeout: float = 20.0, want_cap: str | None = None) -> str:
    """Register a throwaway client; return the server's CAP LS text once it says 001.

    With `want_cap`, keep trying until that capability is offered (services linked)."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            caps = _probe_once(port, f"probe{os.getpid() % 1000}x{n}", deadline)
        except OSError as exc:
            last_error = str(exc)
            time.sleep(0.2)
            continue
        if want_cap is None or want_cap in caps.split() or any(
                c.startswith(want_cap + "=") for c in caps.split()):
            return caps
        last_error = f"capability {want_cap!r} not offered yet (CAP LS: {caps})"
        time.sleep(0.5)
    raise ServerUnavailable(f"IRC server on port {port} not ready: {last_error}")


def probe_nick(port: int, nick: str, *, timeout: float = 20.0) -> None:
    """Wait until `nick` (a service) is on the network: services have linked."""
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        n += 1
        try:
            with socket.create_connection((HOST, port), timeout=5) as s:
                me = f"svcprobe{os.getpid() % 1000}x{n}"
                s.sendall(f"NICK {me}\r\nUSER probe 0 * :probe\r\n".encode())
                buf = b""
                while time.monotonic() < deadline:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    buf += chunk
                    while b"\r\n" in buf:
                        raw, buf = buf.split(b"\r\n", 1)
                        parts = raw.decode("utf-8", "replace").split(" ")
                        cmd = parts[1] if parts[0].startswith(":") and len(parts) > 1 else parts[0]
                        if cmd == "PING":
                            s.sendall(b"PONG " + raw.split(b" ", 1)[1] + b"\r\n")
                        elif cmd == "001":
                            s.sendall(f"WHOIS {nick}\r\n".encode())
                        elif cmd == "311":
                            s.sendall(b"QUIT :probe done\r\n")
                            return
                        elif cmd == "401":
                            raise OSError(f"{nick} is not on the network yet")
        except OSError:
            time.sleep(0.5)
    raise ServerUnavailable(f"{nick} never appeared on port {port}")


def make_certificate(directory: Path, name: str) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (cert, key): what a private CA would issue."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return str(cert), str(key)


def fingerprint(cert: str) -> str:
    """The SHA-256 fingerprint as InspIRCd's sslinfo shows it (lower-case hex, no colons)."""
    out = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                         check=True, capture_output=True, text=True).stdout
    return out.strip().split("=", 1)[1].replace(":", "").lower()


def _probe_once(port: int, nick: str, deadline: float) -> str:
    with socket.create_connection((HOST, port), timeout=max(0.5, deadline - time.monotonic())) as s:
        s.sendall(f"CAP LS 302\r\nNICK {nick}\r\nUSER probe 0 * :probe\r\n".encode())
        buf = b""
        caps: list[str] = []
        ended = False
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                raise OSError("connection closed during probe")
            buf += chunk
            while b"\r\n" in buf:
                raw, buf = buf.split(b"\r\n", 1)
                parts = raw.decode("utf-8", "replace").split(" ")
                if parts and parts[0].startswith(":"):
                    parts = parts[1:]
                if not parts:
                    continue
                cmd = parts[0]
                if cmd == "PING":
                    s.sendall(f"PONG {' '.join(parts[1:])}\r\n".encode())
                elif cmd == "CAP" and len(parts) > 2 and parts[2] == "LS":
                    text = raw.decode("utf-8", "replace").split(" :", 1)
                    caps.append(text[1] if len(text) > 1 else "")
                    if parts[3] != "*" and not ended:
                        s.sendall(b"CAP END\r\n")
                        ended = True
                elif cmd in ("421", "410") and not ended:
                    s.sendall(b"CAP END\r\n")
                    ended = True
                elif cmd == "001":
                    s.sendall(b"QUIT :probe done\r\n")
                    return " ".join(caps)
                elif cmd == "ERROR":
                    raise OSError(raw.decode("utf-8", "replace"))
        raise OSError("probe timed out")


# -- processes -------------------------------------------------------------------------------


@dataclass
class Daemon:
    """One server process, started in its own process group.

    With `sock` (a listening socket) it starts socket-activated on that socket; a restart
    binds `sock`'s port again. The daemon holds the only copy while it runs, so a stopped
    daemon's port refuses connections as a real outage does."""

    name: str
    argv: list[str]
    log: Path
    cwd: Path
    proc: subprocess.Popen[bytes] | None = None
    sock: socket.socket | None = None
    activated_port: int | None = None  # set from `sock`: what a restart binds again

    def start(self) -> None:
        argv, fds = self.argv, ()
        if self.sock is not None or self.activated_port is not None:
            sock = self.sock or listening_socket(self.activated_port or 0)
            self.sock, self.activated_port = None, sock.getsockname()[1]
            argv, fds = socket_activation(self.argv, sock)
        else:
            sock = None
        out = open(self.log, "ab")
        try:
            self.proc = subprocess.Popen(argv, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=fds)
        finally:
            out.close()
            if sock is not None:
                sock.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)  # the group we created, nothing else
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        else:
            # The leader exited; children it forked may remain in the group.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


@dataclass
class IrcServer:
    """A running test server: where to connect and how to stop/restart it mid-test."""

    kind: str  # "inspircd" or "ngircd"
    port: int
    workdir: Path
    network: str
    daemons: list[Daemon] = field(default_factory=list)
    services: bool = False
    oper: tuple[str, str] = ("testoper", "operpass")
    ready_cap: str | None = None  # what the probe waits for (services linked), else NickServ
    tls_port: int | None = None  # a TLS listener besides the plain one
    link_port: int | None = None  # where Anope links in, when not on `port`
    cert: str | None = None  # its certificate (self-signed for 127.0.0.1): the bot's tls_ca

    @property
    def host(self) -> str:
        return HOST

    def start(self, timeout: float = 60.0) -> None:
        for d in self.daemons:
            d.start()
        try:
            listener = self.daemons[0]
            await_listening([p for p in (self.port, self.link_port, self.tls_port) if p],
                            listener.proc.pid, [listener.log], alive=listener.alive,
                            timeout=timeout)
            probe(self.port, timeout=timeout, want_cap=self.ready_cap)
            if self.services and self.ready_cap is None:
                probe_nick(self.port, "NickServ", timeout=timeout)
        except PortInUse:
            self.stop()
            raise
        except ServerUnavailable as exc:
            logs = "\n".join(f"--- {d.name} ---\n{d.tail()}" for d in self.daemons)
            self.stop()
            raise ServerUnavailable(f"{exc}\n{logs}") from None

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()

    def restart(self, down_for: float = 0.0, *, services: bool = True) -> None:
        """Stop every daemon (clients see the link drop), optionally wait, start again.
        `services=False`: the IRC server alone comes back (`start_services` links them later),
        as after a restart where clients get in before services link."""
        self.stop()
        if down_for:
            time.sleep(down_for)
        if services:
            self.start()
            return
        listener = self.daemons[0]
        listener.start()
        await_listening([p for p in (self.port, self.link_port, self.tls_port) if p],
                        listener.proc.pid, [listener.log], alive=listener.alive)
        probe(self.port)

    def stop_services(self) -> None:
        """Stop the services alone (the IRC server sees them split off)."""
        for d in reversed(self.daemons[1:]):
            d.stop()

    def start_services(self, timeout: float = 60.0) -> None:
        """Start the services (the IRC server kept running) and wait until they linked."""
        for d in self.daemons[1:]:
            d.start()
        probe(self.port, timeout=timeout, want_cap=self.ready_cap)
        if self.ready_cap is None:
            probe_nick(self.port, "NickServ", timeout=timeout)

    def alive(self) -> bool:
        return all(d.alive() for d in self.daemons)


# -- InspIRCd + Anope ------------------------------------------------------------------------

_INSPIRCD_MODULES = ("cap", "ircv3", "ircv3_accounttag", "ircv3_batch", "ircv3_capnotify",
                     "ircv3_chghost", "ircv3_ctctags", "ircv3_echomessage",
                     "ircv3_invitenotify", "ircv3_labeledresponse", "ircv3_msgid",
                     "ircv3_servertime", "sasl", "services_account", "spanningtree",
                     "monitor", "setname", "hidechans", "chghost", "chgident", "chgname",
                     "svshold", "servprotect")

# A network shaped like OFTC: services accounts, but no SASL and none of the IRCv3 account
# capabilities (no account-tag, extended-join or account-notify); Anope's inspircd3 module
# needs hidechans, chghost, chgident and chgname to link.
_OFTC_LIKE_MODULES = ("cap", "services_account", "spanningtree", "svshold", "servprotect",
                      "hidechans", "chghost", "chgident", "chgname", "monitor")
_TLS_MODULES = ("ssl_gnutls", "sslinfo")

# Flood limits lifted for most tests; `default_limits=True` keeps InspIRCd's own.
_LIFTED = 'threshold="1000000" commandrate="1000000" fakelag="no" recvq="65536"'

INSPIRCD_CONF = """\
# todobot integration test server
<server name="irc.test.local" description="todobot test server" network="{network}" id="1TB">
<admin name="test" nick="test" email="test@test.local">
<bind address="127.0.0.1" port="{port}" type="clients">
<bind address="127.0.0.1" port="{link_port}" type="servers">
{tls}
<dns server="127.0.0.1" timeout="1">
<pid file="{dir}/inspircd.pid">
<files motd="{dir}/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="{dir}/inspircd.log">
<options casemapping="ascii" syntaxhints="no" announcets="no">
<security hidesplits="no" hideulines="no" runasroot="yes">
<performance clonesonconnect="no" quietbursts="yes">
<connect name="main" allow="*" maxchans="50" timeout="60" pingfreq="120" hardsendq="1M"
         softsendq="65536" localmax="1000" globalmax="1000" limit="5000"
         useident="no" resolvehostnames="no" {flood}>
<class name="All" commands="*" privs="*" usermodes="*" chanmodes="*" snomasks="*">
<type name="Admin" classes="All">
<oper name="{oper}" password="{oper_password}" host="*@*" type="Admin">
{modules}
<link name="services.test.local" ipaddr="127.0.0.1" port="{link_port}" allowmask="127.0.0.0/8"
      sendpass="{link_password}" recvpass="{link_password}">
<uline server="services.test.local" silent="yes">
<sasl target="services.test.local" requiressl="no">
"""

ANOPE_CONF = """\
uplink
{{
    host = "127.0.0.1"
    ipv6 = no
    ssl = no
    port = {link_port}
    password = "{link_password}"
}}
serverinfo
{{
    name = "services.test.local"
    description = "todobot test services"
    id = "9TB"
    pid = "{dir}/anope.pid"
    motd = "{dir}/services.motd"
}}
{protocol}
networkinfo
{{
    networkname = "{network}"
    nicklen = 31
    userlen = 10
    hostlen = 64
    chanlen = 32
    modelistsize = 100
    vhost_chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-"
    allow_undotted_vhosts = false
    disallow_start_or_end = ".-"
}}
options
{{
    casemap = "ascii"
    strictpasswords = yes
    badpasslimit = 50
    badpasstimeout = 1h
    updatetimeout = 5m
    expiretimeout = 30m
    readtimeout = 5s
    warningtimeout = 4h
    timeoutcheck = 3s
    retrywait = 1s
    hideprivilegedcommands = yes
    hideregisteredcommands = yes
    nobackupokay = yes
}}
log
{{
    target = "services.log"
    other = "*"
    servers = "*"
    debug = no
}}
service
{{
    nick = "NickServ"
    user = "services"
    host = "services.test.local"
    gecos = "Nickname Registration Service"
}}
module
{{
    name = "nickserv"
    client = "NickServ"
    forceemail = no
    confirmemailchanges = no
    defaults = "ns_private hide_email hide_mask"
    regdelay = 0
    expire = 21d
    secureadmins = yes
    modeonid = yes
    hidenetsplitquit = no
    killquick = 20s
    kill = 60s
    enforceruser = "enforcer"
    enforcerhost = "services.test.local"
    releasetimeout = 1m
    guestnickprefix = "Guest"
    nonicknameownership = yes
    passlen = 32
}}
command {{ service = "NickServ"; name = "HELP"; command = "generic/help"; }}
module {{ name = "ns_identify"; maxlogins = 10; }}
command {{ service = "NickServ"; name = "IDENTIFY"; command = "nickserv/identify"; }}
module {{ name = "ns_register"; registration = "none"; resenddelay = 90s; }}
command {{ service = "NickServ"; name = "REGISTER"; command = "nickserv/register"; }}
module {{ name = "ns_logout" }}
command {{ service = "NickServ"; name = "LOGOUT"; command = "nickserv/logout"; }}
module {{ name = "ns_info" }}
command {{ service = "NickServ"; name = "INFO"; command = "nickserv/info"; }}
module {{ name = "help" }}
module {{ name = "ns_cert" }}
command {{ service = "NickServ"; name = "CERT"; command = "nickserv/cert"; }}
module {{ name = "m_sasl" }}
module {{ name = "db_flatfile"; database = "anope.db"; keepbackups = 3; fork = no; }}
module {{ name = "enc_sha256" }}
"""


def start_inspircd(workdir: Path, *, network: str = "testnet", default_limits: bool = False,
                   services: bool = True, oftc_like: bool = False, tls: bool = False,
                   monitor: bool = True, without: tuple[str, ...] = (),
                   timeout: float = 60.0) -> IrcServer:
    """InspIRCd on free ports, with Anope linked (SASL, NickServ) unless services=False.

    `oftc_like`: no SASL and no IRCv3 account capabilities (NickServ IDENTIFY only).
    `monitor=False`: without the `monitor` module (no MONITOR in ISUPPORT).
    `without`: modules left out, e.g. ("ircv3",): account-tag but neither extended-join nor
    account-notify.
    `tls`: also a TLS listener (`tls_port`) with a certificate made here (`cert`), which
    asks for client certificates and shows their fingerprints (sslinfo)."""
    missing = missing_binaries("inspircd", *(["anope"] if services else []))
    if missing:
        raise ServerUnavailable(f"not installed: {', '.join(missing)} "
                                "(run scripts/install-irc-servers.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    cert = make_certificate(workdir, "server") if tls else None

    def launch(ports: list[int]) -> IrcServer:
        port, link_port, *tls_port = ports
        for old in ("inspircd.out", "inspircd.log", "anope.out"):  # an earlier attempt's
            (workdir / old).unlink(missing_ok=True)
        server = IrcServer("inspircd", port, workdir, network, services=services,
                           ready_cap="sasl" if services and not oftc_like else None,
                           link_port=link_port)
        names = _OFTC_LIKE_MODULES if oftc_like else _INSPIRCD_MODULES
        left_out = (*without, *(() if monitor else ("monitor",)))
        names = tuple(m for m in names if m not in left_out)
        tls_conf = ""
        if cert:
            server.tls_port, (server.cert, key) = tls_port[0], cert
            names = (*names, *_TLS_MODULES)
            tls_conf = (f'<sslprofile name="tls" provider="gnutls" certfile="{server.cert}" '
                        f'keyfile="{key}" hash="sha256" requestclientcert="yes">\n'
                        f'<bind address="127.0.0.1" port="{server.tls_port}" type="clients" '
                        f'sslprofile="tls">')
        modules = "\n".join(f'<module name="{m}">' for m in names)
        (workdir / "motd.txt").write_text("todobot test server\n")
        conf = workdir / "inspircd.conf"
        conf.write_text(INSPIRCD_CONF.format(
            network=network, port=port, link_port=link_port, dir=workdir, modules=modules,
            tls=tls_conf, flood="" if default_limits else _LIFTED, link_password=LINK_PASSWORD,
            oper=server.oper[0], oper_password=server.oper[1]))
        server.daemons.append(Daemon("inspircd", ["inspircd", f"--config={conf}", "--nofork",
                                                  "--runasroot"], workdir / "inspircd.out", workdir))
        if services:
            server.daemons.append(_anope(workdir, network, link_port))
        server.start(timeout)
        return server

    # InspIRCd 3 takes no inherited sockets and cannot report a port 0 choice.
    return on_free_ports(3 if tls else 2, launch)


_INSPIRCD_PROTOCOL = """\
module
{
    name = "inspircd3"
    use_server_side_mlock = yes
    use_server_side_topiclock = yes
}"""
_NGIRCD_PROTOCOL = 'module { name = "ngircd" }'


def _anope(workdir: Path, network: str, link_port: int, protocol: str = _INSPIRCD_PROTOCOL) -> Daemon:
    adir = workdir / "anope"
    for sub in ("conf", "data", "data/backups", "logs"):
        (adir / sub).mkdir(parents=True, exist_ok=True)
    (adir / "conf" / "services.motd").write_text("todobot test services\n")
    (adir / "conf" / "services.conf").write_text(ANOPE_CONF.format(
        link_port=link_port, link_password=LINK_PASSWORD, network=network, dir=adir / "conf",
        protocol=protocol))
    argv = ["anope", "--nofork", f"--confdir={adir / 'conf'}", "--config=services.conf",
            f"--dbdir={adir / 'data'}", f"--logdir={adir / 'logs'}", "--modulesdir=/usr/lib/anope"]
    # Anope runs as root here (it warns and waits a few seconds): pytest's temp directories are
    # private to root, so the packaged `irc` user could not reach its own config.
    return Daemon("anope", argv, workdir / "anope.out", adir)


# -- ngIRCd ----------------------------------------------------------------------------------

NGIRCD_CONF = """\
[Global]
    Name = irc.ngircd.test
    Info = todobot test server
    Listen = 127.0.0.1
    Ports = {port}
    MotdPhrase = todobot test server
    PidFile = {dir}/ngircd.pid
    ServerUID = {uid}
    ServerGID = {gid}
[Limits]
    MaxConnectionsIP = 0
    MaxJoins = 50
    MaxNickLength = 30
    PingTimeout = 120
    PongTimeout = 60
[Options]
    DNS = no
    Ident = no
    PAM = no
    OperCanUseMode = yes
[Operator]
    Name = {oper}
    Password = {oper_password}
{services}"""

# Anope links in on the client port (ngIRCd takes servers there too).
NGIRCD_SERVICES = """\
[Server]
    Name = services.test.local
    MyPassword = {link_password}
    PeerPassword = {link_password}
    ServiceMask = *Serv
    Passive = yes
"""


def start_ngircd(workdir: Path, *, network: str = "ngnet", services: bool = False,
                 timeout: float = 30.0) -> IrcServer:
    """ngIRCd on a port the kernel chose; with `services`, Anope linked (NickServ, no SASL): the RFC-only
    network where accounts are learnt by WHOIS."""
    missing = missing_binaries("ngircd", *(["anope"] if services else []))
    if missing:
        raise ServerUnavailable(f"not installed: {', '.join(missing)} "
                                "(run scripts/install-irc-servers.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    sock = listening_socket()  # ngIRCd takes it by socket activation: no gap to lose it in
    port = sock.getsockname()[1]
    server = IrcServer("ngircd", port, workdir, network, services=services)
    conf = workdir / "ngircd.conf"
    conf.write_text(NGIRCD_CONF.format(
        port=port, dir=workdir, uid=os.getuid(), gid=os.getgid(), oper=server.oper[0],
        oper_password=server.oper[1],
        services=NGIRCD_SERVICES.format(link_password=LINK_PASSWORD) if services else ""))
    server.daemons.append(Daemon("ngircd", ["ngircd", "-n", "-f", str(conf)],
                                 workdir / "ngircd.out", workdir, sock=sock))
    if services:
        server.daemons.append(_anope(workdir, network, port, _NGIRCD_PROTOCOL))
    server.start(timeout)
    return server
