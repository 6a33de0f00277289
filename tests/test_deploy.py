"""deploy/: the systemd units, the Containerfile and the service config are what the README
says (the image itself is not built here)."""

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


def test_containerfile_installs_the_package_non_root_with_a_data_volume():
    text = (DEPLOY / "Containerfile").read_text()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert re.fullmatch(r"FROM \S*python:3\.\d+-slim", lines[0]), lines[0]
    user = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert user and user[-1] not in ("root", "0")
    assert 'VOLUME ["/var/lib/todobot"]' in lines
    assert "pip install '.[e2e]'" in text
    assert 'CMD ["run", "-c", "/etc/todobot/bot.yaml"]' in lines
    # The build context it copies holds everything the package is built from.
    copied = {src for ln in lines if ln.startswith("COPY ") for src in ln.split()[1:-1]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = set(project["tool"]["setuptools"]["package-dir"].values()) | {"pyproject.toml",
                                                                         project["project"]["readme"]}
    assert needed <= copied, needed - copied
    assert all((ROOT / src).exists() for src in copied)


def test_readme_walks_through_the_deploy_files():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Deploying")[1].split("\n## ")[0]
    for name in (*UNITS, "Containerfile", "bot.yaml"):
        assert name in section, name
    for step in ("todobot import", "systemctl reload todobot", "todobot restore", "data_dir",
                 "podman build -f deploy/Containerfile"):
        assert step in section, step
