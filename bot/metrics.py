"""What `/metrics` reports, counted with plain ints while the bot runs.

Counting costs a dict update per command, digest or mail, and the bot imports nothing for it:
prometheus_client is imported only when `/metrics` is asked (`collector`), so a bot without
`web:` never loads it. Queue lengths are not counted but asked for at each scrape: every
transport (and the notifier) answers `queue_lengths()`, as it answers `health()`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from typing import Any

# Upper bounds (seconds) of the reply-time histogram: a command is milliseconds; a slow
# database or a long export shows up in the upper buckets.
REPLY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# What became of a mail the inbox read (`todobot_mails_read_total{outcome}`).
MAIL_OUTCOMES = ("acted", "answered", "refused", "nothing", "forged", "dropped", "duplicate",
                 "failed")


class Metrics:
    """Counters of one process. `commands`: (command, outcome) -> count; `buckets[i]`: replies
    that took at most REPLY_BUCKETS[i] (not cumulative; the last one: longer); `digests`:
    (transport, room) -> digests posted; `mails`: outcome -> mails read."""

    def __init__(self) -> None:
        self.commands: dict[tuple[str, str], int] = {}
        self.errors = 0
        self.buckets = [0] * (len(REPLY_BUCKETS) + 1)
        self.reply_sum = 0.0
        self.digests: dict[tuple[str, str], int] = {}
        self.mails: dict[str, int] = dict.fromkeys(MAIL_OUTCOMES, 0)

    def command(self, name: str, outcome: str, seconds: float) -> None:
        key = (name, outcome)
        self.commands[key] = self.commands.get(key, 0) + 1
        if outcome == "error":
            self.errors += 1
        self.buckets[bisect_left(REPLY_BUCKETS, seconds)] += 1
        self.reply_sum += seconds

    def digest_sent(self, transport: str, room: str) -> None:
        key = (transport, room)
        self.digests[key] = self.digests.get(key, 0) + 1

    def mail_read(self, outcome: str) -> None:
        self.mails[outcome] = self.mails.get(outcome, 0) + 1  # one of MAIL_OUTCOMES


async def queue_lengths(sources: Iterable[Any]) -> dict[tuple[str, str], int]:
    """(source's name, queue) -> length, from each source's `queue_lengths()`. Sources of one
    name (the mail transports of several lists) share their queue: one sample, not a sum."""
    out: dict[tuple[str, str], int] = {}
    for source in sources:
        for queue, length in (await source.queue_lengths()).items():
            out[(source.name, queue)] = length
    return out


def collector(metrics: Metrics, transports: Callable[[], Iterable[Any]],
              queues: Callable[[], dict[tuple[str, str], int]] = dict) -> Any:
    """A prometheus_client Collector reading `metrics`, each transport's `health()` and the
    queue lengths `queues` returns, at every scrape (imported here: only a bot serving
    /metrics loads prometheus_client)."""
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
            digests = CounterMetricFamily("todobot_digests_sent", "Scheduled digests posted, "
                                          "by transport and room", labels=["transport", "room"])
            for (transport, room), n in sorted(metrics.digests.items()):
                digests.add_metric([transport, room], n)
            yield digests
            mails = CounterMetricFamily("todobot_mails_read", "Mails the inbox read, by what "
                                        "became of them", labels=["outcome"])
            for outcome, n in metrics.mails.items():
                mails.add_metric([outcome], n)
            yield mails
            up = GaugeMetricFamily("todobot_transport_up", "1 while the transport serves",
                                   labels=["transport"])
            serving: dict[str, int] = {}
            for t in transports():  # the mail transports of several lists share one name
                serving[t.name] = min(serving.get(t.name, 1), 1 if t.health() is None else 0)
            for name, value in serving.items():
                up.add_metric([name], value)
            yield up
            waiting = GaugeMetricFamily("todobot_queue_length", "What waits to go out: IRC "
                                        "lines, mails, change-notice batches",
                                        labels=["source", "queue"])
            for (source, queue), n in sorted(queues().items()):
                waiting.add_metric([source, queue], n)
            yield waiting

    return Export()
