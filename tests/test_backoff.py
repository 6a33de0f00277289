"""The one backoff class both transports use: doubling, capped, optionally jittered."""

from __future__ import annotations

import pytest

from todobot.bot.backoff import Backoff


def test_plain_backoff_doubles_to_the_cap_and_resets():
    b = Backoff(1.0, 30.0)
    assert [b.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    b.reset()
    assert b.next() == 1


def test_jittered_backoff_stays_in_the_upper_half_of_each_step():
    b = Backoff(2.0, 300.0, jitter=True)
    for step in (2, 4, 8, 16, 32, 64, 128, 256, 300, 300):
        assert step / 2 <= b.next() <= step
    # bots that lost the same server do not all come back at the same instant
    firsts = {Backoff(2.0, 300.0, jitter=True).next() for _ in range(20)}
    assert len(firsts) > 1


def test_many_attempts_do_not_overflow():
    b = Backoff(5.0, 320.0)
    for _ in range(5000):
        b.next()
    assert b.next() == 320


@pytest.mark.parametrize("first, cap", [(0, 10), (10, 5), (-1, 5)])
def test_nonsense_limits_are_refused(first, cap):
    with pytest.raises(ValueError):
        Backoff(first, cap)
