"""`/metrics` (the Prometheus text format, counted by the dispatcher) and systemd's
notifications (READY=1, WATCHDOG=1, STOPPING=1 over NOTIFY_SOCKET)."""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from todobot.bot import systemd
from todobot.bot.app import App
from todobot.bot.config import Config, parse_config
from todobot.bot.transport import Transport
from todobot.bot.web import StatusServer


class Fake(Transport):
    def __init__(self, name: str, why: str | None = None) -> None:
        self.name, self.why, self.started = name, why, False
        self.on_start = lambda: None

    async def start(self, dispatcher) -> None:
        self.on_start()
        self.started = True

    async def stop(self) -> None:
        pass

    async def post(self, room, reply) -> None:
        pass

    def health(self) -> str | None:
        return self.why


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, read by prometheus_client's own parser of the format."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


async def test_metrics_count_commands_by_outcome_time_them_and_say_which_transport_serves(chat):
    irc, matrix = Fake("irc:oftc"), Fake("matrix", "not synced yet")
    server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0"}),
                          metrics=chat.dispatcher.metrics, transports=lambda: [irc, matrix])
    await server.start()
    try:
        status, kind, body = await _get(server.url + "/metrics")
        assert status == 200 and kind.startswith("text/plain; version=")
        before = _samples(body)
        assert before[("todobot_reply_seconds_count", ())] == 0
        assert before[("todobot_transport_up", (("transport", "irc:oftc"),))] == 1
        assert before[("todobot_transport_up", (("transport", "matrix"),))] == 0

        assert (await chat.say("!claim 1")).startswith("#1")
        await chat.say("!help")
        await chat.say("!nosuch")
        await chat.say("!release new 9.9", nick="mallory")  # not a release manager

        async def broken(*args, **kwargs):
            raise RuntimeError("disk on fire")
        chat.dispatcher._context = broken
        assert (await chat.say("!blockers")).startswith("internal error, logged as ")
        matrix.why = None

        after = _samples((await _get(server.url + "/metrics"))[2])
        def commands(name: str, outcome: str) -> float:
            return after[("todobot_commands_total", (("command", name), ("outcome", outcome)))]
        assert commands("claim", "changed") == 1
        assert commands("help", "info") == 1
        assert commands("unknown", "refused") == 1  # one label for every typo
        assert commands("release", "refused") == 1
        assert commands("blockers", "error") == 1
        assert after[("todobot_errors_total", ())] == 1
        assert after[("todobot_reply_seconds_count", ())] == 5
        assert after[("todobot_reply_seconds_bucket", (("le", "+Inf"),))] == 5
        assert after[("todobot_reply_seconds_sum", ())] > 0
        assert after[("todobot_transport_up", (("transport", "matrix"),))] == 1
    finally:
        await server.stop()


async def test_metrics_and_healthz_can_each_be_turned_off(chat):
    for switch, off, on in (({"metrics": False}, "/metrics", "/healthz"),
                            ({"healthz": False}, "/healthz", "/metrics")):
        server = StatusServer(chat.repo, Config(web={"listen": "127.0.0.1:0", **switch}))
        await server.start()
        try:
            assert (await _get(server.url + off))[0] == 404
            assert (await _get(server.url + on))[0] == 200
        finally:
            await server.stop()


async def test_each_server_reports_its_own_counts(tmp_path):
    """A registry per server, not prometheus_client's process-wide one: two bots in one
    process (the tests) never see, or collide with, each other's counters."""
    from todobot.bot.metrics import Metrics
    first, second = Metrics(), Metrics()
    first.command("help", "info", 0.001)
    servers = [StatusServer(None, Config(web={"listen": "127.0.0.1:0"}), metrics=m)  # type: ignore[arg-type]
               for m in (first, second)]
    for server in servers:
        await server.start()
    try:
        seen = [_samples((await _get(s.url + "/metrics"))[2]) for s in servers]
        key = ("todobot_commands_total", (("command", "help"), ("outcome", "info")))
        assert seen[0][key] == 1 and key not in seen[1]
    finally:
        for server in servers:
            await server.stop()


def test_the_config_turns_them_off_with_a_boolean():
    web = parse_config({"web": {"metrics": False}}).web
    assert web is not None and web.metrics is False and web.healthz is True


# -- systemd -------------------------------------------------------------------------------------

async def _next(sock: socket.socket) -> str:
    """The next datagram; the generous limit only turns a missing one into a failure rather
    than a hang."""
    return (await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 4096), 60)).decode()


async def test_the_app_tells_systemd_ready_then_pings_the_watchdog_then_stopping(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short relative path: a unix socket's name has ~100 bytes
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("notify.sock")
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
        monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 0.1 s
        monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
        irc = Fake("irc:oftc")
        early: list[bytes] = []

        def peek() -> None:  # a datagram sent is queued at once: anything here came too early
            try:
                early.append(sock.recv(4096, socket.MSG_PEEK))
            except BlockingIOError:
                pass
        irc.on_start = peek
        app = App(parse_config({"database": str(tmp_path / "n.sqlite3")}), transports=[irc],
                  serve=False)
        running = asyncio.create_task(app.run())
        try:
            assert await _next(sock) == "READY=1"
            assert irc.started and early == []  # ready once the transports have started
            assert await _next(sock) == "WATCHDOG=1"
            assert await _next(sock) == "WATCHDOG=1"  # and again, from the running loop
            app.request_stop()
            while (state := await _next(sock)) == "WATCHDOG=1":
                pass
            assert state == "STOPPING=1"
            await running
        finally:
            app.request_stop()
            await asyncio.gather(running, return_exceptions=True)


async def test_notify_reaches_an_abstract_socket_and_does_nothing_without_one(monkeypatch):
    name = f"todobot-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.notify("READY=1")
        assert await _next(sock) == "READY=1"
    monkeypatch.delenv("NOTIFY_SOCKET")
    assert systemd.notify("READY=1") is False


def test_the_watchdog_runs_at_half_the_interval_systemd_gives_and_only_for_this_process(monkeypatch):
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    monkeypatch.setenv("WATCHDOG_USEC", "60000000")
    assert systemd.watchdog_interval() == 30
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert systemd.watchdog_interval() is None
    monkeypatch.delenv("WATCHDOG_USEC")
    assert systemd.watchdog_interval() is None
