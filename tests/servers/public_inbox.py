"""A read-only list archive for the mail tests: Debian's public-inbox (as lore.kernel.org runs
it), private to one test module.

An inbox (v2) is made with `public-inbox-init` in a fresh directory, its config there too
(PI_CONFIG; HOME points there, so nothing reads or writes the user's ~/.public-inbox); mail
goes in with `public-inbox-mda`, as a list's archive address receives it (no spam check:
there is no spamc here). `public-inbox-imapd` serves it read-only on 127.0.0.1, on a socket
bound here to a port the kernel chose and handed over by systemd socket activation; it runs
in its own process group and is stopped by the pid we started.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.servers.ircd import HOST, Daemon, ServerUnavailable
from tests.servers.ports import listening_socket

NEEDED = ("public-inbox-init", "public-inbox-mda", "public-inbox-imapd")


def missing() -> list[str]:
    return [p for p in NEEDED if shutil.which(p) is None]


@dataclass
class PublicInbox:
    workdir: Path
    address: str
    newsgroup: str
    port: int
    daemon: Daemon

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "PI_CONFIG": str(self.workdir / "config"),
                "HOME": str(self.workdir)}

    def deliver(self, raw: bytes) -> None:
        """Into the archive, as the list's archive address receives a post."""
        done = subprocess.run(["public-inbox-mda", "--no-precheck"], input=raw,
                              capture_output=True, timeout=60,
                              env={**self.env, "ORIGINAL_RECIPIENT": self.address})
        if done.returncode != 0:
            raise AssertionError(f"public-inbox-mda: {done.returncode} "
                                 f"{done.stderr.decode(errors='replace')}")

    def stop(self) -> None:
        self.daemon.stop()


def start_public_inbox(workdir: Path, *, name: str, address: str) -> PublicInbox:
    if gone := missing():
        raise FileNotFoundError(", ".join(gone))
    workdir.mkdir(parents=True, exist_ok=True)
    newsgroup = "org.example.lists." + name
    env = {**os.environ, "PI_CONFIG": str(workdir / "config"), "HOME": str(workdir)}
    subprocess.run(["public-inbox-init", "-V2", "-L", "basic", "--ng", newsgroup, name,
                    str(workdir / "inbox"), f"http://{HOST}/{name}", address],
                   check=True, capture_output=True, env=env, timeout=60)
    subprocess.run(["git", "config", "-f", str(workdir / "config"), "publicinboxmda.spamcheck",
                    "none"], check=True, capture_output=True, timeout=30)
    sock = listening_socket()
    port = sock.getsockname()[1]
    daemon = Daemon("public-inbox-imapd", ["env", f"PI_CONFIG={workdir / 'config'}",
                                           f"HOME={workdir}", "public-inbox-imapd"],
                    workdir / "imapd.log", workdir, sock=sock)
    daemon.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and daemon.alive():
        try:
            with socket.create_connection((HOST, port), timeout=2) as s:
                if s.recv(200).startswith(b"* OK"):
                    return PublicInbox(workdir, address, newsgroup, port, daemon)
        except OSError:
            pass
        time.sleep(0.1)
    tail = daemon.tail()
    daemon.stop()
    raise ServerUnavailable(f"public-inbox-imapd on {port} not ready:\n{tail}")
