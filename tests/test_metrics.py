"""`/metrics`: the Prometheus text format, counted by the dispatcher."""

from __future__ import annotations


import aiohttp
from prometheus_client.parser import text_string_to_metric_families

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
