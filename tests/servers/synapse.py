"""A throwaway Synapse homeserver on 127.0.0.1 for integration tests.

    server = Synapse(tmp_dir, venv)        # generates the config once
    server.start()                         # waits for /_matrix/client/versions
    server.register("alice", "pw")
    server.stop(); server.start()          # same data: an outage
    server.close()

Only the client API listens, on one loopback port (Synapse needs its number in the config:
when it turns out taken at the first start, the server moves to another, see ports.py); no
federation, key servers or URL previews, so the server never talks to anything but its own
clients; presence only with `presence=True`. Rate limits are raised far out of the way unless
`default_rate_limits=True`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from tests.servers.ports import PortInUse, await_listening, first_pick, on_free_ports, pick_port

SERVER_NAME = "localhost"
REPO = Path(__file__).resolve().parents[2]
_LIMIT = {"per_second": 1000, "burst_count": 1000}
RAISED_RATE_LIMITS = {
    "rc_message": _LIMIT,
    "rc_login": {"address": _LIMIT, "account": _LIMIT, "failed_attempts": _LIMIT},
    "rc_registration": _LIMIT,
    "rc_joins": {"local": _LIMIT, "remote": _LIMIT},
    "rc_joins_per_room": _LIMIT,
    "rc_invites": {"per_room": _LIMIT, "per_user": _LIMIT, "per_issuer": _LIMIT},
    "rc_room_creation": _LIMIT,
    "rc_key_requests": _LIMIT,
    "rc_presence": {"per_user": _LIMIT},  # (only matters with presence=True)
}


class SynapseUnavailable(RuntimeError):
    """Synapse is not installed in the expected venv."""


def default_venv() -> Path:
    return Path(os.environ.get("TODOBOT_SYNAPSE_VENV") or REPO / ".venv-synapse")


def synapse_python(venv: Path | None = None) -> Path:
    """The venv's python when it can run Synapse; SynapseUnavailable otherwise."""
    python = (venv or default_venv()) / "bin" / "python"
    if not python.exists():
        raise SynapseUnavailable(f"no Synapse venv at {python.parent.parent} "
                                 "(run scripts/install-synapse.sh)")
    if subprocess.run([str(python), "-c", "import synapse"], capture_output=True).returncode:
        raise SynapseUnavailable(f"{python} cannot import synapse "
                                 "(run scripts/install-synapse.sh)")
    return python


class Synapse:
    def __init__(self, directory: Path, venv: Path | None = None, *,
                 default_rate_limits: bool = False, presence: bool = False) -> None:
        self.dir = Path(directory)
        self.python = synapse_python(venv)
        self.port = pick_port()
        self.started = False  # once it ran, the port is the clients' and stays
        self.secret = secrets.token_hex(16)
        self.config = self.dir / "homeserver.yaml"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None
        self._generate(default_rate_limits, presence)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- configuration -------------------------------------------------------------------------
    def _generate(self, default_rate_limits: bool, presence: bool = False) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._run_tool("--server-name", SERVER_NAME, "--config-path", str(self.config),
                       "--data-directory", str(self.dir), "--generate-config",
                       "--report-stats=no")
        cfg = yaml.safe_load(self.config.read_text())
        cfg.update({
            "listeners": [{"port": self.port, "bind_addresses": ["127.0.0.1"], "tls": False,
                           "type": "http", "x_forwarded": False,
                           "resources": [{"names": ["client"], "compress": False}]}],
            "database": {"name": "sqlite3", "args": {"database": str(self.dir / "homeserver.db")}},
            "registration_shared_secret": self.secret,
            "enable_registration": False,
            "bcrypt_rounds": 4,
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation_domain_whitelist": [],
            "url_preview_enabled": False,
            "presence": {"enabled": presence},
            "report_stats": False,
            "enable_metrics": False,
        })
        if not default_rate_limits:
            cfg.update(RAISED_RATE_LIMITS)
        self.config.write_text(yaml.safe_dump(cfg))
        # Quieter logs, in the server's own directory.
        log_cfg_path = Path(cfg["log_config"])
        log_cfg = yaml.safe_load(log_cfg_path.read_text())
        log_cfg.setdefault("root", {})["level"] = "WARNING"
        log_cfg_path.write_text(yaml.safe_dump(log_cfg))
        self._run_tool("--config-path", str(self.config), "--generate-keys")

    def _run_tool(self, *args: str) -> None:
        subprocess.run([str(self.python), "-m", "synapse.app.homeserver", *args], cwd=self.dir,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        assert self.proc is None, "already running"
        if self.started:
            self._start_on(self.port, timeout)
        else:
            # The config has a port already; new ones only when it is taken.
            on_free_ports(1, lambda ports: self._start_on(ports[0], timeout),
                          pick=first_pick(self.port))
            self.started = True

    def _start_on(self, port: int, timeout: float) -> None:
        if port != self.port:  # a new port after "address in use"
            self.port = port
            cfg = yaml.safe_load(self.config.read_text())
            cfg["listeners"][0]["port"] = port
            self.config.write_text(yaml.safe_dump(cfg))
        log_path = self.dir / "stdout.log"
        if not self.started:
            log_path.unlink(missing_ok=True)  # an earlier attempt's "address in use"
        self._log = open(log_path, "ab")
        self.proc = subprocess.Popen(
            [str(self.python), "-m", "synapse.app.homeserver", "--config-path", str(self.config)],
            cwd=self.dir, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            await_listening([port], self.proc.pid, [log_path], alive=lambda: self.running,
                             timeout=timeout)
        except PortInUse:
            self.stop()
            raise
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Synapse exited with {self.proc.returncode}; "
                                   f"see {self.dir / 'stdout.log'}")
            try:
                with urllib.request.urlopen(self.url + "/_matrix/client/versions", timeout=2) as r:
                    if r.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"Synapse did not answer within {timeout:.0f} s")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the process this object started (and only that one)."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    close = stop

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- users ---------------------------------------------------------------------------------
    def register(self, user: str, password: str, admin: bool = False) -> str:
        """Create a user through the shared-secret admin API; returns the user id."""
        return self.register_login(user, password, admin)["user_id"]

    def register_login(self, user: str, password: str, admin: bool = False) -> dict[str, str]:
        """Create a user; returns the server's answer (user_id, access_token, device_id)."""
        path = self.url + "/_synapse/admin/v1/register"
        with urllib.request.urlopen(path, timeout=10) as r:
            nonce = json.load(r)["nonce"]
        mac = hmac.new(self.secret.encode(), digestmod=hashlib.sha1)
        mac.update(b"\x00".join([nonce.encode(), user.encode(), password.encode(),
                                 b"admin" if admin else b"notadmin"]))
        body = json.dumps({"nonce": nonce, "username": user, "password": password,
                           "admin": admin, "mac": mac.hexdigest()}).encode()
        req = urllib.request.Request(path, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def user_id(self, user: str) -> str:
        return f"@{user}:{SERVER_NAME}"
