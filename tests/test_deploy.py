"""deploy/: the systemd units, the Containerfile and the service config are what
docs/deploying.md says (the image itself is not built here)."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNITS = ("todobot.service", "todobot-backup.service", "todobot-backup.timer")


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string((DEPLOY / name).read_text())
    return parser


def test_service_unit_runs_the_bot_hardened():
    svc = _unit("todobot.service")["Service"]
    assert svc["ExecStart"].endswith("/todobot run -c /etc/todobot/bot.yaml")
    assert svc["User"] == "todobot" and svc["StateDirectory"] == "todobot"
    assert svc["ProtectSystem"] == "strict" and svc["NoNewPrivileges"] == "yes"
    assert svc["Restart"] == "on-failure" and svc["RestartPreventExitStatus"] == "2"
    assert svc["EnvironmentFile"] == "/etc/todobot/secrets.env"
    assert svc["ExecReload"] == "/bin/kill -HUP $MAINPID"
    backup = _unit("todobot-backup.service")["Service"]
    assert re.search(r"/todobot backup -c /etc/todobot/bot.yaml --keep \d+ /var/lib/todobot/backups$",
                     backup["ExecStart"])


def test_service_unit_waits_for_ready_and_watches_the_event_loop():
    """Type=notify: systemd waits for READY=1 (bot/systemd.py) and restarts a bot whose event
    loop stopped pinging the watchdog; the ping comes from the main process only."""
    svc = _unit("todobot.service")["Service"]
    assert svc["Type"] == "notify"
    assert svc["NotifyAccess"] == "main"
    seconds = int(svc["WatchdogSec"])
    assert 10 <= seconds <= 600  # long enough for a busy moment, short enough to matter
    assert svc["Restart"] in ("on-failure", "on-watchdog", "always")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_units_pass_systemd_analyze_verify(tmp_path):
    exe = Path(sys.executable).parent / "todobot"  # the unit's /opt/todobot/bin/todobot, here
    for name in UNITS:
        (tmp_path / name).write_text((DEPLOY / name).read_text().replace("/opt/todobot/bin/todobot", str(exe)))
    proc = subprocess.run(["systemd-analyze", "verify", *(str(tmp_path / n) for n in UNITS)],
                          capture_output=True, text=True, timeout=60)
    # Unknown keys are only warnings (exit 0): any output is a finding.
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), proc.stderr


def test_service_config_is_valid_and_keeps_its_data_in_the_state_directory(monkeypatch):
    from todobot.bot.config import load_config
    cfg = load_config(DEPLOY / "bot.yaml")
    assert cfg.database.startswith("/var/lib/todobot/")
    assert cfg.matrix is not None and cfg.matrix.data_dir.startswith("/var/lib/todobot/")
    assert cfg.web is not None


def _containerfile() -> list[tuple[str, str]]:
    """deploy/Containerfile as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Containerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _all(instruction: str) -> list[str]:
    return [rest for word, rest in _containerfile() if word == instruction]


def _exec_form(instruction: str) -> list[str]:
    import json
    [value] = _all(instruction)
    return json.loads(value)


def test_containerfile_base_copies_and_install_match_the_project():
    """What the image is built from exists, is in the build context and is what pip needs.
    (The image itself is not built here: no container runtime.)"""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    [base] = _all("FROM")
    # Pinned: an exact patch release and Debian release, or a digest.
    m = re.fullmatch(r"\S*python:3\.(\d+)\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base)
    assert m and int(m.group(1)) >= int(project["project"]["requires-python"].split(".")[-1]), base
    copied = {src for rest in _all("COPY") for src in rest.split()[:-1]}
    assert all((ROOT / src).exists() for src in copied), copied
    needed = set(project["tool"]["setuptools"]["package-dir"].values()) | {"pyproject.toml",
                                                                         project["project"]["readme"]}
    assert needed <= copied, needed - copied
    ignored = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
               if ln.strip() and not ln.startswith("#")]
    assert not [src for src in copied if any(Path(src).match(pat) for pat in ignored)]
    assert ".venv*" in ignored and ".git" in ignored  # the context stays small
    install = next(rest for rest in _all("RUN") if "pip install" in rest)
    extras = re.search(r"pip install '\.\[([\w,]+)\]'", install)
    assert extras, install
    assert set(extras.group(1).split(",")) <= set(project["project"]["optional-dependencies"])


def test_containerfile_runs_todobot_run_as_its_own_user_with_data_on_the_volume():
    from todobot.bot.cli import build_parser
    from todobot.bot.config import load_config
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    # Not root: the last USER is the system user the image creates.
    users = _all("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    created = re.search(r"useradd [^&]*?--uid (\d+) [^&]*?(\S+)\s*(?:&&|$)", " ".join(_all("RUN")))
    assert created and users[-1] == f"{created.group(1)}:{created.group(1)}", created
    name = created.group(2)
    # ENTRYPOINT + CMD is `todobot run -c CONFIG`, and the CLI takes exactly that.
    argv = _exec_form("ENTRYPOINT") + _exec_form("CMD")
    assert argv[0] in project["project"]["scripts"], argv
    args = build_parser().parse_args(argv[1:])
    assert args.command == "run" and args.config == "/etc/todobot/bot.yaml", args
    assert "/etc/todobot" in " ".join(_all("RUN"))  # the mount point exists in the image
    # The volume, owned by that user, is where the service config keeps its data.
    [volume] = _exec_form("VOLUME")
    assert f"chown -R {name}:{name} {volume}" in " ".join(_all("RUN"))
    assert f"mkdir -p {volume}/backups" in " ".join(_all("RUN"))  # as the backup unit uses
    cfg = load_config(DEPLOY / "container.yaml")
    assert cfg.matrix is not None and cfg.web is not None
    for path in (cfg.database, cfg.matrix.data_dir):
        assert Path(path).is_relative_to(volume), path
    assert _all("EXPOSE") == [cfg.web.listen.rsplit(":", 1)[1]]
    assert _all("STOPSIGNAL") == ["SIGTERM"]


def test_container_config_listens_inside_the_container_and_is_otherwise_the_services():
    from todobot.bot.config import load_config
    service, container = load_config(DEPLOY / "bot.yaml"), load_config(DEPLOY / "container.yaml")
    assert service.web is not None and container.web is not None
    assert service.web.listen.startswith("127.0.0.1:")
    assert container.web.listen == "0.0.0.0:" + service.web.listen.rsplit(":", 1)[1]
    same = service.model_dump() | {"web": container.web.model_dump()}
    assert same == container.model_dump()


def test_containerfile_healthcheck_labels_and_version():
    """HEALTHCHECK asks the status page's /healthz on the exposed port with Python (no curl in
    slim images); the OCI labels carry the version the project has."""
    import json
    import shlex

    from todobot import __version__
    [check] = _all("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert {"--interval", "--timeout", "--retries"} <= {o.split("=")[0] for o in options.split()}
    argv = json.loads(command)
    assert argv[:2] == ["python", "-c"], argv
    [port] = _all("EXPOSE")
    assert f"urlopen('http://127.0.0.1:{port}/healthz', timeout=" in argv[2]
    compile(argv[2], "HEALTHCHECK", "exec")
    assert _all("ARG") == [f"VERSION={__version__}"]
    labels = dict(kv.split("=", 1) for kv in shlex.split(" ".join(_all("LABEL"))))
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.licenses"] == "MIT"
    assert labels["org.opencontainers.image.base.name"].endswith(_all("FROM")[0].split("/")[-1])


def test_the_deploying_page_walks_through_the_deploy_files():
    readme = (ROOT / "docs" / "deploying.md").read_text(encoding="utf-8")
    section = readme.split("## Deploying")[1].split("\n## ")[0]
    for name in (*UNITS, "Containerfile", "bot.yaml", "container.yaml"):
        assert name in section, name
    for step in ("todobot import", "systemctl reload todobot", "data_dir", "todobot check",
                 "podman build -f deploy/Containerfile", "-v todobot-data:/var/lib/todobot"):
        assert step in section, step
