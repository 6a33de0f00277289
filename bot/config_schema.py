"""Strict, frozen, typed models for bot/config.py, with pydantic 2's error messages.

pydantic cost an IRC-only bot ~12 MB of RSS (7 MB to import it, 5 MB to build these models'
schemas: bench/memory.py). The config needs little of it: fields of str, int, float, bool,
lists, str-keyed dicts, Literal, `X | None`, `str | Model` and nested models, a few bounds
and patterns, and validators. This module checks exactly that and words every error (type,
location, message) as pydantic did, so config errors read as before; `bot/config.py` turns
them into one line per problem. The API is the subset of pydantic's the code uses
(`model_validate`, `model_dump`, `model_copy`, `model_fields`, `model_fields_set`...).
"""

from __future__ import annotations

import math
import re
import sys
import types
import typing
from typing import Any, Callable, Literal

_MISSING: Any = object()
_BAD: Any = object()  # a value that failed to validate; its errors are already recorded
_NONE = type(None)
_TRUE = {"1", "on", "t", "true", "y", "yes"}
_FALSE = {"0", "off", "f", "false", "n", "no"}
_INT = re.compile(r"\s*([+-]?[0-9]+(?:_[0-9]+)*)(?:\.0+)?\s*")

Loc = tuple[Any, ...]


class ValidationError(ValueError):
    """All the problems of one validation; `errors()` lists {loc, msg, type} as pydantic did."""

    def __init__(self, title: str, errors: list[dict[str, Any]]) -> None:
        self.title, self._errors = title, errors
        super().__init__(title)

    def errors(self) -> list[dict[str, Any]]:
        return list(self._errors)

    def __str__(self) -> str:
        n = len(self._errors)
        return f"{n} validation error{'s' if n != 1 else ''} for {self.title}" + "".join(
            f"\n{'.'.join(map(str, e['loc']))}\n  {e['msg']} [type={e['type']}]" for e in self._errors)


class FieldInfo:
    """One field: its default, alias, bounds and (once resolved) its type."""

    def __init__(self, default: Any = _MISSING, *, default_factory: Callable[[], Any] | None = None,
                 alias: str | None = None, ge: float | None = None, gt: float | None = None,
                 le: float | None = None, min_length: int | None = None,
                 max_length: int | None = None, pattern: str | None = None) -> None:
        self.default, self.default_factory, self.alias = default, default_factory, alias
        self.ge, self.gt, self.le = ge, gt, le
        self.min_length, self.max_length, self.pattern = min_length, max_length, pattern
        self.name = ""
        self.owner: type[BaseModel] | None = None
        self._annotation: Any = _MISSING
        self.before: list[Callable[[Any], Any]] = []
        self.after: list[Callable[[Any], Any]] = []

    @property
    def annotation(self) -> Any:
        """The field's type, evaluated in its module on first use (annotations are strings)."""
        if self._annotation is _MISSING:
            assert self.owner is not None
            text = self.owner.__annotations__[self.name]
            self._annotation = eval(text, vars(sys.modules[self.owner.__module__])) \
                if isinstance(text, str) else text
        return self._annotation

    @property
    def key(self) -> str:
        return self.alias or self.name

    def is_required(self) -> bool:
        return self.default is _MISSING and self.default_factory is None

    def get_default(self) -> Any:
        return self.default_factory() if self.default_factory is not None else self.default


def Field(default: Any = _MISSING, **kw: Any) -> Any:  # noqa: N802 (pydantic's name)
    return FieldInfo(default, **kw)


class _Private:
    def __init__(self, default: Any) -> None:
        self.default = default


def PrivateAttr(default: Any = None) -> Any:  # noqa: N802 (pydantic's name)
    return _Private(default)


class _Validator:
    def __init__(self, func: Any, fields: tuple[str, ...], mode: str) -> None:
        self.func = func.__func__ if isinstance(func, classmethod) else func
        self.fields, self.mode = fields, mode


def field_validator(*fields: str, mode: Literal["before", "after"] = "after") -> Any:
    """`cls.f(value) -> value` for the named fields, before or after their type is checked;
    a ValueError is reported at the field."""
    return lambda func: _Validator(func, fields, mode)


def model_validator(*, mode: Literal["after"] = "after") -> Any:
    """`self.f() -> self` once every field is valid; a ValueError is reported at the model."""
    return lambda func: _Validator(func, (), mode)


def _error(errors: list[dict[str, Any]], loc: Loc, kind: str, msg: str) -> Any:
    errors.append({"loc": loc, "type": kind, "msg": msg})
    return _BAD


def _value_error(errors: list[dict[str, Any]], loc: Loc, exc: Exception) -> Any:
    if isinstance(exc, AssertionError):
        return _error(errors, loc, "assertion_error", f"Assertion failed, {exc}")
    return _error(errors, loc, "value_error", f"Value error, {exc}")


class BaseModel:
    """A strict, frozen record: unknown keys are errors, attributes cannot be reassigned."""

    model_fields: typing.ClassVar[dict[str, FieldInfo]] = {}
    _privates: typing.ClassVar[dict[str, Any]] = {}
    _model_validators: typing.ClassVar[list[Callable[[Any], Any]]] = []

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        fields = dict(cls.model_fields)
        privates = dict(cls._privates)
        for name in cls.__dict__.get("__annotations__", {}):
            value = cls.__dict__.get(name, _MISSING)
            if name.startswith("_"):
                privates[name] = value.default if isinstance(value, _Private) else value
            else:
                info = value if isinstance(value, FieldInfo) else FieldInfo(value)
                info.name, info.owner = name, cls
                fields[name] = info
            if value is not _MISSING:
                delattr(cls, name)  # values live on instances
        model_validators = list(cls._model_validators)
        for attr, value in list(cls.__dict__.items()):
            if isinstance(value, _Validator):
                for name in value.fields:
                    if name not in fields:
                        raise TypeError(f"{cls.__name__}.{attr} validates unknown field {name!r}")
                    getattr(fields[name], value.mode).append(value.func.__get__(cls))
                if not value.fields:
                    model_validators.append(value.func)
                delattr(cls, attr)
        cls.model_fields, cls._privates, cls._model_validators = fields, privates, model_validators

    def __init__(self, **data: Any) -> None:
        errors: list[dict[str, Any]] = []
        type(self)._fill(self, data, (), errors)
        if errors:
            raise ValidationError(type(self).__name__, errors)

    @classmethod
    def model_validate(cls, data: Any) -> Any:
        errors: list[dict[str, Any]] = []
        out = _check(cls, data, (), errors)
        if errors:
            raise ValidationError(cls.__name__, errors)
        return out

    @classmethod
    def _fill(cls, obj: BaseModel, data: dict[Any, Any], loc: Loc, errors: list[dict[str, Any]]) -> Any:
        """Validate `data` into `obj`, recording problems in `errors`: fields in order, then
        the unknown keys, then (if all went well) the model's own validators."""
        start = len(errors)
        values, given, known = {}, set(), set()
        for name, info in cls.model_fields.items():
            key = info.key if info.key in data else name  # by alias first, else by name
            known.add(key)
            if key not in data:
                if info.is_required():
                    _error(errors, loc + (info.key,), "missing", "Field required")
                else:
                    values[name] = info.get_default()
                continue
            given.add(name)
            values[name] = _field(info, data[key], loc + (key,), errors)
        for key in data:
            if not isinstance(key, str):
                _error(errors, loc + (_key_loc(key),), "invalid_key", "Keys should be strings")
            elif key not in known:
                _error(errors, loc + (key,), "extra_forbidden", "Extra inputs are not permitted")
        if len(errors) > start:
            return _BAD
        object.__setattr__(obj, "__dict__", {**cls._privates, **values})
        object.__setattr__(obj, "_fields_set", given)
        for check in cls._model_validators:
            try:
                check(obj)
            except (ValueError, AssertionError) as exc:
                return _value_error(errors, loc, exc)
        return obj

    @property
    def model_fields_set(self) -> set[str]:
        return self._fields_set  # type: ignore[attr-defined, no-any-return]

    def model_dump(self, *, exclude: set[str] | frozenset[str] = frozenset()) -> dict[str, Any]:
        return {name: _dump(getattr(self, name)) for name in self.model_fields if name not in exclude}

    def model_dump_json(self) -> str:
        import json
        return json.dumps(self.model_dump(), separators=(",", ":"))

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Any:
        """A shallow copy with `update` applied as is (not validated), like pydantic's."""
        new = object.__new__(type(self))
        object.__setattr__(new, "__dict__", {**self.__dict__, **(update or {})})
        object.__setattr__(new, "_fields_set", self.model_fields_set | set(update or ()))
        return new

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self._privates:
            raise TypeError(f"{type(self).__name__} is frozen: cannot set {name}")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise TypeError(f"{type(self).__name__} is frozen: cannot delete {name}")

    def _values(self) -> tuple[Any, ...]:
        return tuple(self.__dict__[k] for k in (*self.model_fields, *self._privates))

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseModel)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((type(self), self._values()))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(" + ", ".join(
            f"{name}={getattr(self, name)!r}" for name in self.model_fields) + ")"


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, dict):
        return {k: _dump(v) for k, v in value.items()}
    return value


def _field(info: FieldInfo, value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    """One given value: before-validators, type, bounds, after-validators."""
    try:
        for check in info.before:
            value = check(value)
    except (ValueError, AssertionError) as exc:
        return _value_error(errors, loc, exc)
    value = _check(info.annotation, value, loc, errors)
    if value is _BAD or value is None:
        return value
    if _bounds(info, value, loc, errors) is _BAD:
        return _BAD
    try:
        for check in info.after:
            value = check(value)
    except (ValueError, AssertionError) as exc:
        return _value_error(errors, loc, exc)
    return value


def _plural(n: int) -> str:
    return f"{n} character{'' if n == 1 else 's'}"


def _bounds(info: FieldInfo, value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if isinstance(value, str):
        if info.min_length is not None and len(value) < info.min_length:
            return _error(errors, loc, "string_too_short",
                          f"String should have at least {_plural(info.min_length)}")
        if info.max_length is not None and len(value) > info.max_length:
            return _error(errors, loc, "string_too_long",
                          f"String should have at most {_plural(info.max_length)}")
        if info.pattern is not None and not re.search(info.pattern, value):
            return _error(errors, loc, "string_pattern_mismatch",
                          f"String should match pattern '{info.pattern}'")
    elif isinstance(value, (int, float)):
        if info.le is not None and not value <= info.le:
            return _error(errors, loc, "less_than_equal", f"Input should be less than or equal to {info.le}")
        if info.ge is not None and not value >= info.ge:
            return _error(errors, loc, "greater_than_equal",
                          f"Input should be greater than or equal to {info.ge}")
        if info.gt is not None and not value > info.gt:
            return _error(errors, loc, "greater_than", f"Input should be greater than {info.gt}")
    return value


def _text(value: Any) -> str | None:
    """str, or bytes that decode as UTF-8 (pydantic's lax mode accepts both)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def _str(value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if isinstance(value, (str, bytes, bytearray)):
        text = _text(value)
        if text is None:
            return _error(errors, loc, "string_unicode",
                          "Input should be a valid string, unable to parse raw data as a unicode string")
        return str(text)
    return _error(errors, loc, "string_type", "Input should be a valid string")


def _int(value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return _error(errors, loc, "finite_number", "Input should be a finite number")
        if value != int(value):
            return _error(errors, loc, "int_from_float",
                          "Input should be a valid integer, got a number with a fractional part")
        if not -2.0**63 < value < 2.0**63:
            return _error(errors, loc, "int_parsing_size",
                          "Unable to parse input string as an integer, exceeded maximum size")
        return int(value)
    if isinstance(value, (str, bytes)):
        m = _INT.fullmatch(_text(value) or "")
        if m is None or not m.group(1).isascii():
            return _error(errors, loc, "int_parsing",
                          "Input should be a valid integer, unable to parse string as an integer")
        return int(m.group(1))
    return _error(errors, loc, "int_type", "Input should be a valid integer")


def _float(value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (str, bytes)):
        raw = _text(value) or ""
        text = raw.strip()
        try:
            if text.isascii() and not ("_" in text and text != raw):
                return float(text)
        except ValueError:
            pass
        return _error(errors, loc, "float_parsing",
                      "Input should be a valid number, unable to parse string as a number")
    return _error(errors, loc, "float_type", "Input should be a valid number")


def _bool(value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1) or isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    if isinstance(value, (int, str, bytes)) or isinstance(value, float) and value.is_integer() \
            and -2.0**63 < value < 2.0**63:
        text = "" if isinstance(value, (int, float)) else (_text(value) or "").lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        return _error(errors, loc, "bool_parsing", "Input should be a valid boolean, unable to interpret input")
    return _error(errors, loc, "bool_type", "Input should be a valid boolean")


_SCALARS: dict[Any, Callable[[Any, Loc, list[dict[str, Any]]], Any]] = {
    str: _str, int: _int, float: _float, bool: _bool}


def _key_loc(key: Any) -> Any:
    return key if isinstance(key, str) else int(key) if isinstance(key, int) else str(key)


def _tag(tp: Any) -> str:
    """How pydantic names a branch of a union in an error's location."""
    return tp.__name__ if isinstance(tp, type) else str(tp)


def _check(tp: Any, value: Any, loc: Loc, errors: list[dict[str, Any]]) -> Any:
    """`value` as type `tp`, or _BAD with its problems appended to `errors`."""
    scalar = _SCALARS.get(tp)
    if scalar is not None:
        return scalar(value, loc, errors)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            return _error(errors, loc, "model_type",
                          f"Input should be a valid dictionary or instance of {tp.__name__}")
        return tp._fill(object.__new__(tp), value, loc, errors)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        if not isinstance(value, (list, tuple, set, frozenset)):
            return _error(errors, loc, "list_type", "Input should be a valid list")
        items = [_check(args[0], v, loc + (i,), errors) for i, v in enumerate(value)]
        return _BAD if any(v is _BAD for v in items) else items
    if origin is dict:
        if not isinstance(value, dict):
            return _error(errors, loc, "dict_type", "Input should be a valid dictionary")
        out = {}
        for k, v in value.items():
            key = _check(args[0], k, loc + (_key_loc(k), "[key]"), errors)
            out[key] = _check(args[1], v, loc + (_key_loc(k),), errors)
        return _BAD if _BAD in out or any(v is _BAD for v in out.values()) else out
    if origin is Literal:
        if isinstance(value, str) and value in args:
            return value
        names = [repr(a) for a in args]
        wanted = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
        return _error(errors, loc, "literal_error", f"Input should be {wanted}")
    if origin in (typing.Union, types.UnionType):
        branches = [a for a in args if a is not _NONE]
        if value is None and len(branches) < len(args):
            return None
        if len(branches) == 1:
            return _check(branches[0], value, loc, errors)
        tried: list[dict[str, Any]] = []
        for branch in branches:
            out = _check(branch, value, loc + (_tag(branch),), tried)
            if out is not _BAD:
                return out
        errors.extend(tried)
        return _BAD
    raise TypeError(f"config_schema cannot check {tp!r} at {loc}")
