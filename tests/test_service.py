"""`todobot run` as a service manager runs it: headless under a closed stdin, paths relative to
the config, config mistakes before the database, SIGTERM and SIGHUP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.test_cli import SEED, todobot


def _start(config: Path, cwd: Path, log: Path, env: dict | None = None) -> subprocess.Popen:
    """`todobot run -c config` from `cwd` with stdin closed, as systemd may start it."""
    with open(log, "ab") as err:
        return subprocess.Popen([sys.executable, "-m", "todobot", "run", "-c", str(config)], cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                preexec_fn=lambda: os.close(0), env={**os.environ, **(env or {})})


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        content = path.read_text(encoding="utf-8") if path.exists() else ""
        if text in content:
            return content
        if proc.poll() is not None:
            raise AssertionError(f"todobot exited {proc.returncode} before {text!r}:\n{content}")
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout} s:\n{content}")


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_web_only_config_runs_headless_with_the_database_next_to_it(tmp_path):
    etc, elsewhere = tmp_path / "etc", tmp_path / "cwd"
    etc.mkdir()
    elsewhere.mkdir()
    (etc / "bot.yaml").write_text('database: todo.sqlite3\nweb: {listen: "127.0.0.1:0"}\n')
    todobot("import", str(SEED), "--release", "4.2", "-c", str(etc / "bot.yaml"), cwd=elsewhere)
    log = tmp_path / "stderr.log"
    proc = _start(etc / "bot.yaml", elsewhere, log)
    content = _wait_for(log, "status page on http://127.0.0.1:", proc)
    port = int(content.split("status page on http://127.0.0.1:")[1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /release/4.2 HTTP/1.0\r\nHost: x\r\n\r\n")
        page = b"".join(iter(lambda: s.recv(65536), b""))
    assert b"200 OK" in page.split(b"\r\n")[0] and b"libxl stable API" in page
    # While it runs: a backup works, a restore is refused.
    (tmp_path / "backups").mkdir()
    out = todobot("backup", str(tmp_path / "backups"), "-c", str(etc / "bot.yaml"), cwd=elsewhere).stdout
    assert out.startswith(f"Backed up to {tmp_path / 'backups'}/todo-")
    backup = next((tmp_path / "backups").iterdir())
    refused = todobot("restore", str(backup), "-c", str(etc / "bot.yaml"), cwd=elsewhere, check=False)
    assert refused.returncode == 1 and "is in use by a running todobot: stop it first" in refused.stderr
    time.sleep(0.5)  # a pause, not a barrier: what it shows is that no exit comes
    assert proc.poll() is None, "a headless bot must keep running with stdin closed"
    assert _stop(proc) == 0
    assert (etc / "todo.sqlite3").exists() and not list(elsewhere.glob("*.sqlite3*"))
    # Stopped cleanly: the write-ahead log is folded into the database file.
    wal = etc / "todo.sqlite3-wal"
    assert not wal.exists() or wal.stat().st_size == 0
    assert "Traceback" not in log.read_text()
    # Stopped, it may be restored.
    todobot("restore", str(backup), "-c", str(etc / "bot.yaml"), cwd=elsewhere)


def test_config_mistakes_stop_the_start_before_the_database(tmp_path, monkeypatch):
    monkeypatch.delenv("TODOBOT_NO_SUCH_SECRET", raising=False)
    cases = {
        'admins: ["ijc"]\nweb: {}\n': "bot.yaml: admins[0]: 'ijc' is not an identity",
        'admins: ["irc:oftc/ijc"]\nweb: {}\n': "bot.yaml: admins[0]: 'irc:oftc/ijc': no IRC network 'oftc'",
        'web: {listen: "8080"}\n': "bot.yaml: web.listen: expected HOST:PORT",
        'irc: [{network: x, chanels: ["#a"]}]\n': "bot.yaml: irc[0].chanels: unknown key (did you mean `channels`?)",
        ('irc: [{network: x, sasl_account: b, sasl_password_env: TODOBOT_NO_SUCH_SECRET}]\n'):
            "bot.yaml: irc[0].sasl_password_env: environment variable TODOBOT_NO_SUCH_SECRET is not set",
        'database: nosuch/todo.sqlite3\nweb: {}\n': "bot.yaml: database: the directory ",
        'log_file: nosuch/todobot.log\nweb: {}\n': "bot.yaml: log_file: the directory ",
        'admins: ["console:ijc"]\n': "bot.yaml: nothing to serve",
    }
    for text, message in cases.items():
        (tmp_path / "bot.yaml").write_text(text)
        proc = todobot("run", "-c", "bot.yaml", cwd=tmp_path, check=False)
        assert proc.returncode == 2 and message in proc.stderr, (text, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert not list(tmp_path.rglob("*.sqlite3*")), text


def test_console_on_a_bot_config_connects_nothing(tmp_path):
    """`todobot console -c bot.yaml` is the console on the bot's database, not a second bot."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(1.0)
    port = listener.getsockname()[1]
    web_port = socket.create_server(("127.0.0.1", 0))  # taken: a status page here would fail
    (tmp_path / "bot.yaml").write_text(
        f'database: todo.sqlite3\nadmins: ["console:ijc", "irc:local/ijc"]\ndefault_release: "4.2"\n'
        f'irc: [{{network: local, host: 127.0.0.1, port: {port}, tls: false, channels: ["#a"]}}]\n'
        f'web: {{listen: "127.0.0.1:{web_port.getsockname()[1]}"}}\n')
    todobot("import", str(SEED), "--release", "4.2", "-c", "bot.yaml", cwd=tmp_path)
    out = todobot("console", "-c", "bot.yaml", "--as", "ijc", stdin="!whoami\n!show 1\n", cwd=tmp_path).stdout
    assert "release manager" in out and "libxl stable API" in out
    try:
        listener.accept()
        raise AssertionError("the console connected to the configured IRC server")
    except TimeoutError:
        pass
    finally:
        listener.close()
        web_port.close()


def test_sighup_reloads_admins_and_digest_and_keeps_a_bad_file_out(tmp_path):
    cfg = tmp_path / "bot.yaml"
    base = 'database: todo.sqlite3\nlog_file: bot.log\nlog_format: json\nweb: {listen: "127.0.0.1:0"}\n'
    cfg.write_text(base + 'admins: ["console:ijc"]\ndigest: {every: "monday 09:00"}\n')
    proc = _start(cfg, tmp_path / "..", tmp_path / "stderr.log")
    log = tmp_path / "bot.log"
    try:
        _wait_for(log, "status page on", proc)
        log.rename(tmp_path / "bot.log.1")  # as logrotate does: todobot writes to a new bot.log
        cfg.write_text(base + 'admins: ["console:ijc", "console:george"]\n'
                              'digest: {every: "friday 16:00", timezone: Europe/London}\n')
        proc.send_signal(signal.SIGHUP)
        content = _wait_for(log, "reload: digest:", proc)
        assert "reload: admins: +console:george" in content
        assert "every: monday 09:00" in content and "every: friday 16:00" in content
        cfg.write_text(base + 'admins: ["george"]\n')
        proc.send_signal(signal.SIGHUP)
        content = _wait_for(log, "keeping the running configuration", proc)
        assert "admins[0]: 'george' is not an identity" in content
        cfg.write_text(base.replace("127.0.0.1:0", "127.0.0.1:1") + 'admins: ["console:ijc"]\n')
        proc.send_signal(signal.SIGHUP)
        content = _wait_for(log, "takes a restart", proc)
        assert "reload: admins: -console:george" in content and "web changed" in content
        assert proc.poll() is None
    finally:
        assert _stop(proc) == 0
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert not (tmp_path / "stderr.log").read_text().strip()
