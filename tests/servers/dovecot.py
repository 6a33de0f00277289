"""A real IMAP server for the mail tests: Debian's Dovecot, private to one test session.

The config lives in a fresh directory (mode 755: Dovecot's unprivileged processes must read
it); users come from a passwd-file; mail is stored as dovenull in DIR/mail. It listens on
127.0.0.1 only, on a socket bound here to a port the kernel chose and handed over by systemd
socket activation (Dovecot matches it to the configured listener by port, so no other
process can take the port between choosing and listening). It is started in its own process
group and stopped by the pid we started. Tests deliver mail with IMAP APPEND (no MTA).
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers.ircd import HOST, Daemon, ServerUnavailable
from tests.servers.ports import listening_socket

CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
default_login_user = dovenull
default_internal_user = dovenull
default_internal_group = dovenull
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/users
}}
userdb {{
  driver = static
  args = uid=dovenull gid=dovenull home={dir}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@dataclass
class Dovecot:
    workdir: Path
    port: int
    users: dict[str, str]
    daemon: Daemon

    @property
    def host(self) -> str:
        return HOST

    def start(self, timeout: float = 20.0) -> None:
        (self.workdir / "run" / "master.pid").unlink(missing_ok=True)  # stale after a kill
        self.daemon.start()
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not self.daemon.alive():
                break
            try:
                with socket.create_connection((HOST, self.port), timeout=2) as s:
                    if s.recv(200).startswith(b"* OK"):
                        return
            except OSError as exc:
                last = str(exc)
            time.sleep(0.1)
        tail = self.daemon.tail()
        log = (self.workdir / "dovecot.log")
        logs = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        self.stop()
        raise ServerUnavailable(f"dovecot on {self.port} not ready: {last}\n{tail}\n{logs}")

    def stop(self) -> None:
        self.daemon.stop()

    def alive(self) -> bool:
        return self.daemon.alive()


def start_dovecot(workdir: Path, users: dict[str, str]) -> Dovecot:
    if shutil.which("dovecot") is None:
        raise FileNotFoundError("dovecot")
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("run", "state", "mail"):
        (workdir / sub).mkdir(exist_ok=True)
    # Dovecot's login and mail processes run as dovenull: they must reach the config and
    # the mail directory (temp dirs are 700; every directory above must be searchable too).
    os.chmod(workdir, 0o755)
    shutil.chown(workdir / "mail", "dovenull", "dovenull")
    sock = listening_socket()
    port = sock.getsockname()[1]
    (workdir / "users").write_text("".join(f"{u}:{{PLAIN}}{pw}::::::\n" for u, pw in users.items()))
    (workdir / "dovecot.conf").write_text(CONF.format(dir=workdir, port=port))
    daemon = Daemon("dovecot", ["dovecot", "-F", "-c", str(workdir / "dovecot.conf")],
                    workdir / "daemon.log", workdir, sock=sock)
    server = Dovecot(workdir, port, users, daemon)
    server.start()
    return server
