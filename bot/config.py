"""Configuration: a strict YAML schema.

Unknown keys and wrong types are errors that name the key's path (`irc[0].chanels`), so a
typo fails at start instead of being silently ignored. Secrets never live in the file: keys
ending in `_env` name the environment variable that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DigestRoom(_Strict):
    """A room's own digest settings, over the top-level `digest:` (unset keys inherit)."""

    every: str | None = None
    timezone: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _schedule(self) -> "DigestRoom":
        if self.every is not None or self.timezone is not None:
            from .schedule import parse_schedule
            parse_schedule(self.every or "daily 00:00", self.timezone or "UTC")
        return self


class Digest(_Strict):
    """The digest todobot posts on schedule into every room (see bot/schedule.py and bot/scheduler.py)."""

    every: str = "monday 09:00"  # "DAY HH:MM", "daily HH:MM", "weekdays HH:MM" or 5-field cron
    timezone: str = "UTC"  # IANA name; the schedule follows its daylight saving
    grace_hours: float = Field(24.0, ge=0)  # a digest missed while down is posted this late at most
    stale_days: int | None = Field(None, ge=1)  # ping owners of claims quiet this long; None: off

    @model_validator(mode="after")
    def _schedule(self) -> "Digest":
        from .schedule import parse_schedule
        parse_schedule(self.every, self.timezone)
        return self


class Web(_Strict):
    """The read-only status page (bot/web.py)."""

    listen: str = "127.0.0.1:8080"  # HOST:PORT; loopback unless you mean to publish it
    public_url: str | None = None  # how people reach it (behind a proxy); linked from digests


class RoomRelease(_Strict):
    """A room that tracks another release than `default_release`."""

    name: str
    release: str | None = None
    digest: DigestRoom | None = None


class Throttle(_Strict):
    """Token bucket per connection: `burst` lines at once, then `rate` lines per second."""

    burst: int = Field(4, ge=1, le=100)
    rate: float = Field(1.0, gt=0, le=1000)  # high rates only where the server exempts the bot


class IrcNetwork(_Strict):
    network: str
    host: str = "127.0.0.1"
    port: int = Field(6697, ge=1, le=65535)
    tls: bool = True
    tls_verify: bool = True
    nick: str = "todobot"
    alternates: list[str] = Field(default_factory=list)
    realname: str = "todobot release TODO list"
    username: str = "todobot"
    sasl_account: str | None = None
    sasl_password_env: str | None = None
    channels: list[str | RoomRelease] = Field(default_factory=list)
    throttle: Throttle = Field(default_factory=Throttle)
    # Where long answers (help, long listings) go: "channel", "notice" (to the user) or "private".
    long_replies: str = Field("channel", pattern="^(channel|notice|private)$")
    max_lines: int = Field(5, ge=1, le=50)  # lines of one answer before "!more"
    ping_interval: float = Field(30.0, gt=0)  # idle seconds before we PING the server
    ping_timeout: float = Field(60.0, gt=0)  # no traffic for this long after our PING: dead link

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, v: Any) -> Any:
        return v or []

    def sasl_password(self) -> str | None:
        return _secret(self.sasl_password_env, f"irc[{self.network}].sasl_password_env")


class MatrixRoom(_Strict):
    room: str
    release: str | None = None
    digest: DigestRoom | None = None


class Matrix(_Strict):
    homeserver: str
    user_id: str
    password_env: str | None = None
    access_token_env: str | None = None
    rooms: list[str | MatrixRoom] = Field(default_factory=list)
    allowed_inviters: list[str] = Field(default_factory=list)
    device_name: str = "todobot"
    data_dir: str = "todobot-matrix"
    e2ee: bool = True

    @model_validator(mode="after")
    def _one_secret(self) -> "Matrix":
        if not (self.password_env or self.access_token_env):
            raise ValueError("set password_env or access_token_env")
        return self

    def password(self) -> str | None:
        return _secret(self.password_env, "matrix.password_env")

    def access_token(self) -> str | None:
        return _secret(self.access_token_env, "matrix.access_token_env")


class Cooldown(_Strict):
    """Per-person command rate on networked transports: `burst` commands at once, then
    `rate` per second. Past it the bot says so once, then ignores that person until the
    bucket refills. The console is exempt."""

    burst: int = Field(10, ge=1, le=1000)
    rate: float = Field(1.0, gt=0, le=1000)


class Console(_Strict):
    room: str = "console"
    release: str | None = None
    digest: DigestRoom | None = None


class Config(_Strict):
    database: str = "todobot.sqlite3"
    prefix: str = Field("!", min_length=1, max_length=10)
    admins: list[str] = Field(default_factory=list)
    default_release: str | None = None
    max_input_chars: int = Field(2000, ge=100, le=100_000)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    cooldown: Cooldown = Field(default_factory=Cooldown)
    console: Console = Field(default_factory=Console)
    irc: list[IrcNetwork] = Field(default_factory=list)
    matrix: Matrix | None = None
    digest: Digest | None = None
    web: Web | None = None
    # More `== Heading ==` sections of the development-update mail layout, and what their
    # items are: {"Wishlist": nice, "Regressions": blocker, "Fixed": done}.
    mail_sections: dict[str, Literal["done", "blocker", "nice"]] = Field(default_factory=dict)

    @field_validator("admins", "irc", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return v or []


def _secret(var: str | None, where: str) -> str | None:
    if var is None:
        return None
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"{where}: environment variable {var} is not set")
    return value


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part) in ("str", "RoomRelease", "MatrixRoom"):
            continue  # pydantic names the union branch it tried; the user does not care
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def parse_config(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        seen = set()
        for err in exc.errors():
            path = _path(err["loc"])
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            if (path, msg) not in seen:
                seen.add((path, msg))
                problems.append(f"{source}: {path}: {msg}")
        raise ConfigError("\n".join(problems)) from None


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a YAML config; `None` gives the built-in defaults."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from None
    return parse_config(data, str(p))
