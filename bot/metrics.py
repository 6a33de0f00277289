"""What `/metrics` reports, counted with plain ints while the bot runs.

Counting costs a dict update per command, and the bot imports nothing for it: prometheus_client
is imported only when `/metrics` is asked (`collector`), so a bot without `web:` never loads it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

# Upper bounds (seconds) of the reply-time histogram: a command is milliseconds; a slow
# database or a long export shows up in the upper buckets.
REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Counters of one process. `commands`: (command, outcome) -> count; `buckets[i]`: replies
    that took at most REPLY_BUCKETS[i] (not cumulative; the last one: longer)."""

    def __init__(self) -> None:
        self.commands: dict[tuple[str, str], int] = {}
        self.errors = 0
        self.buckets = [0] * (len(REPLY_BUCKETS) + 1)
        self.reply_sum = 0.0

    def command(self, name: str, outcome: str, seconds: float) -> None:
        key = (name, outcome)
        self.commands[key] = self.commands.get(key, 0) + 1
        if outcome == "error":
            self.errors += 1
        self.buckets[bisect_left(REPLY_BUCKETS, seconds)] += 1
        self.reply_sum += seconds


def collector(metrics: Metrics, transports: Callable[[], Iterable[Any]]) -> Any:
    """A prometheus_client Collector reading `metrics` and each transport's `health()` at
    every scrape (imported here: only a bot serving /metrics loads prometheus_client)."""
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)
    from prometheus_client.registry import Collector

    class Export(Collector):
        def collect(self):  # type: ignore[no-untyped-def]
            commands = CounterMetricFamily("todobot_commands", "Commands handled, by outcome",
                                           labels=["command", "outcome"])
            for (name, outcome), n in sorted(metrics.commands.items()):
                commands.add_metric([name, outcome], n)
            yield commands
            yield CounterMetricFamily("todobot_errors", "Commands that failed with an internal "
                                      "or database error", value=metrics.errors)
            running, cumulative = 0, []
            for bound, n in zip((*map(str, REPLY_BUCKETS), "+Inf"), metrics.buckets):
                running += n
                cumulative.append((bound, running))
            yield HistogramMetricFamily("todobot_reply_seconds", "Time to handle a command",
                                        buckets=cumulative, sum_value=metrics.reply_sum)
            up = GaugeMetricFamily("todobot_transport_up", "1 while the transport serves",
                                   labels=["transport"])
            for t in transports():
                up.add_metric([t.name], 1 if t.health() is None else 0)
            yield up

    return Export()
