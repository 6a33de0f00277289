"""Span and Line are immutable values: equal by content, hashable, never changed in place."""

from __future__ import annotations

import pytest

from todobot.commands.messages import Line, Reply, Span


def test_spans_and_lines_stay_frozen_values():
    span = Span("#3", bold=True, item=3)
    assert span == Span("#3", True, None, None, 3) and hash(span) == hash(Span("#3", bold=True, item=3))
    assert span._replace(text="#4") == Span("#4", bold=True, item=3)
    with pytest.raises(AttributeError):
        span.text = "x"  # type: ignore[misc]
    line = Line((span,), "bullet", 1)
    assert line == Line(spans=(span,), kind="bullet", level=1)
    with pytest.raises(AttributeError):
        line.level = 2  # type: ignore[misc]
    assert Reply().add("a", "", span).lines == [Line((Span("a"), span))]
