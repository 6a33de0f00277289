"""Span and Line write their own __init__ (speed): it must stay the dataclass's."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from todobot.commands.messages import Line, Reply, Span


@pytest.mark.parametrize("cls", [Span, Line])
def test_init_takes_every_field_with_its_default(cls):
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    fields = dataclasses.fields(cls)
    assert [(p.name, p.default) for p in params] == [
        (f.name, inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default)
        for f in fields]
    values = {f.name: object() for f in fields}
    made = cls(**values)
    assert all(getattr(made, name) is value for name, value in values.items())


def test_spans_and_lines_stay_frozen_values():
    span = Span("#3", bold=True, item=3)
    assert span == Span("#3", True, None, None, 3) and hash(span) == hash(Span("#3", bold=True, item=3))
    assert dataclasses.replace(span, text="#4") == Span("#4", bold=True, item=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        span.text = "x"  # type: ignore[misc]
    line = Line((span,), "bullet", 1)
    assert line == Line(spans=(span,), kind="bullet", level=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        line.level = 2  # type: ignore[misc]
    assert Reply().add("a", "", span).lines == [Line((Span("a"), span))]
