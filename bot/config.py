"""Configuration: a strict YAML schema.

Unknown keys and wrong types are errors that name the key's path (`irc[0].chanels`, with the
nearest valid key suggested), so a typo fails at start instead of being silently ignored.
Secrets never live in the file: keys ending in `_env` name the environment variable that
holds them. Relative paths in a file (`database`, `matrix.data_dir`, `log_file`) are relative
to the file's directory, so a service finds its data whatever directory it starts in.
"""

from __future__ import annotations

import os
import re
import shutil
import types
import typing
from importlib.util import find_spec
from pathlib import Path
from typing import Any, Literal

import yaml
from .config_schema import BaseModel, Field, PrivateAttr, ValidationError, field_validator, model_validator
from .git.settings import GitRepo


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


_Strict = BaseModel  # strict (unknown keys are errors) and frozen: see config_schema.py


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
    """The read-only status page (bot/web/)."""

    listen: str = "127.0.0.1:8080"  # HOST:PORT; loopback unless you mean to publish it
    public_url: str | None = None  # how people reach it (behind a proxy); linked from digests
    archive_url: str | None = None  # where a mail message-id links, e.g. https://lore.kernel.org/r/{msgid}
    healthz: bool = True  # GET /healthz: the database and every transport
    metrics: bool = True  # GET /metrics: counters in the Prometheus text format

    @field_validator("archive_url")
    @classmethod
    def _archive(cls, value: str | None) -> str | None:
        from ..commands.links import safe_url
        if value is not None and ("{msgid}" not in value or not safe_url(value.replace("{msgid}", "x"))):
            raise ValueError("an http(s) URL with {msgid} where the message-id goes, "
                             "like https://lore.kernel.org/r/{msgid}")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host.strip("[]") or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080), got {v!r}")
        return v


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
    tls_verify: bool = True  # a certificate that does not verify stops this network
    tls_ca: str | None = None  # PEM file of the CA (or self-signed cert) to trust instead of the system's
    tls_certfile: str | None = None  # client certificate (CertFP); the key too unless tls_keyfile
    tls_keyfile: str | None = None
    nick: str = "todobot"
    alternates: list[str] = Field(default_factory=list)
    realname: str = "todobot release TODO list"
    username: str = "todobot"
    sasl_account: str | None = None
    sasl_password_env: str | None = None
    sasl_mechanism: str = Field("PLAIN", pattern="^(PLAIN|EXTERNAL)$")  # EXTERNAL: log in by tls_certfile
    nickserv_account: str | None = None  # IDENTIFY as this account (default: the nick)
    nickserv_password_env: str | None = None  # IDENTIFY to NickServ after connecting
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

    @model_validator(mode="after")
    def _one_login(self) -> "IrcNetwork":
        """At most one way for the bot to log in, each with what it needs."""
        external = self.sasl_mechanism == "EXTERNAL"
        methods = [name for name, used in (
            ("SASL PLAIN (sasl_account)", bool(self.sasl_account or self.sasl_password_env)
             and not external),
            ("SASL EXTERNAL", external),
            ("NickServ IDENTIFY (nickserv_password_env)", bool(self.nickserv_password_env)))
            if used]
        if len(methods) > 1:
            raise ValueError(f"choose one login method, not {' and '.join(methods)}")
        if external and not self.tls_certfile:
            raise ValueError("sasl_mechanism EXTERNAL needs tls_certfile (the client certificate)")
        if external and self.sasl_password_env:
            raise ValueError("sasl_mechanism EXTERNAL logs in by certificate: drop sasl_password_env")
        if self.sasl_account and not external and not self.sasl_password_env:
            raise ValueError("sasl_account needs sasl_password_env")
        if self.nickserv_account and not self.nickserv_password_env:
            raise ValueError("nickserv_account needs nickserv_password_env")
        if (self.tls_certfile or self.tls_keyfile or self.tls_ca) and not self.tls:
            raise ValueError("tls_certfile, tls_keyfile and tls_ca need tls: true")
        if self.tls_keyfile and not self.tls_certfile:
            raise ValueError("tls_keyfile needs tls_certfile")
        return self

    def sasl_password(self) -> str | None:
        return _secret(self.sasl_password_env, f"irc[{self.network}].sasl_password_env")

    def nickserv_password(self) -> str | None:
        return _secret(self.nickserv_password_env, f"irc[{self.network}].nickserv_password_env")


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
    max_events: int = Field(5, ge=1, le=50)  # events of one answer before "!more"
    gap_fetch_max: int = Field(1000, ge=0, le=100_000)  # events fetched back after a sync gap
    reply_claim_max_age: float = Field(86400.0, gt=0)  # seconds: older replied-to messages name nothing

    @model_validator(mode="after")
    def _one_secret(self) -> "Matrix":
        if not (self.password_env or self.access_token_env):
            raise ValueError("set password_env or access_token_env")
        return self

    def password(self) -> str | None:
        return _secret(self.password_env, "matrix.password_env")

    def access_token(self) -> str | None:
        return _secret(self.access_token_env, "matrix.access_token_env")


def _loopback(host: str) -> bool:
    """Whether a configured host name means this machine."""
    import ipaddress
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower() == "localhost"


class MailSmtp(_Strict):
    """Where the weekly mail and acknowledgements are sent from (bot/mail/outbox.py)."""

    host: str = "127.0.0.1"
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True  # upgrade a plain connection; the certificate is verified
    tls: bool = False  # TLS from the first byte (port 465); verified
    username: str | None = None  # none for an MTA on localhost
    password_env: str | None = None
    timeout: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _one_tls(self) -> "MailSmtp":
        if self.tls and self.starttls:
            raise ValueError("set tls (TLS from the start) or starttls, not both")
        if not (self.tls or self.starttls) and not _loopback(self.host):
            raise ValueError(f"plain SMTP to {self.host} would send mail and password in clear: "
                             "set starttls: true (or tls: true), or use an MTA on localhost")
        return self

    def password(self, where: str) -> str | None:
        return _secret(self.password_env, f"{where}.smtp.password_env")


class MailImap(_Strict):
    """The mailbox replies arrive in (bot/mail/inbox.py)."""

    host: str = "127.0.0.1"
    port: int = Field(993, ge=1, le=65535)
    tls: bool = True  # verified; false only for a server on localhost
    username: str | None = None
    password_env: str | None = None
    folder: str = "INBOX"
    poll_seconds: float = Field(30.0, gt=0, le=3600)  # when the server has no IDLE
    # A read-only archive (public-inbox-imapd): `folder` is the inbox's newsgroup; the UIDs
    # read are kept in the database, nothing is flagged (bot/mail/inbox.py).
    archive: bool = False

    def password(self, where: str) -> str | None:
        return _secret(self.password_env, f"{where}.imap.password_env")


class MailList(_Strict):
    """A mailing list that gets the weekly mail and whose replies act like chat (bot/mail/)."""

    list: str  # To: of the weekly mail; the "room" of this transport
    from_: str = Field(alias="from")  # "todobot <todobot@example.org>"
    release: str | None = None
    # None: the subject of the mail the release was imported from, else "{project} {release} TODO"
    subject: str | None = None
    authserv_id: str | None = None  # whose Authentication-Results to trust; None: trust none
    acks_per_hour: int = Field(5, ge=0, le=1000)  # acknowledgements to one address an hour, at most
    # Private mails (acknowledgements, change notices) to all addresses together an hour, at
    # most: many senders at once cannot turn the bot into a mail cannon either.
    private_mails_per_hour: int = Field(100, ge=0, le=100_000)
    verify_dkim: bool = False  # check DKIM signatures ourselves when authserv_id gives no verdict
    # The list's own receiving server: a mail the list rewrote (From munged for DMARC) counts
    # as its author's only when this server's results vouch for them (docs/mailing-lists.md).
    list_authserv_id: str | None = None
    smtp: MailSmtp = Field(default_factory=MailSmtp)
    imap: MailImap | None = None  # None: send only
    digest: DigestRoom | None = None

    @field_validator("list")
    @classmethod
    def _address(cls, v: str) -> str:
        if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", v):
            raise ValueError(f"{v!r} is not a mail address (like devel@lists.example.org)")
        return v

    @field_validator("subject")
    @classmethod
    def _subject(cls, v: str | None) -> str | None:
        try:
            v is None or v.format(release="4.2", project="Acme")
        except (KeyError, IndexError, ValueError):
            raise ValueError("subject may use only {release} and {project}") from None
        return v

    def subject_for(self, release: str) -> str:
        """The subject of a mail about `release` that carries no digest (the digest's own is
        `DigestData.subject`)."""
        return " ".join((self.subject or "{release} TODO").format(release=release, project="").split())


class Cooldown(_Strict):
    """Per-person command rate on networked transports: `burst` commands at once, then
    `rate` per second. Every command counts, refused ones too. Past it the bot says so
    once, then drops that person's commands beyond the rate, and warns again only after
    they were quiet long enough for the bucket to refill. The console is exempt."""

    burst: int = Field(10, ge=1, le=1000)
    rate: float = Field(1.0, gt=0, le=1000)


class Console(_Strict):
    room: str = "console"
    release: str | None = None
    digest: DigestRoom | None = None


class Config(_Strict):
    project: str | None = Field(None, min_length=1, max_length=40)  # "Acme": subjects, titles, headers
    database: str = "todobot.sqlite3"
    prefix: str = Field("!", min_length=1, max_length=10)
    admins: list[str] = Field(default_factory=list)
    default_release: str | None = None
    max_input_chars: int = Field(2000, ge=100, le=100_000)
    max_depth: int = Field(8, ge=1, le=12)  # how deep sub-items may nest (chat and import)
    max_adds_per_hour: int | None = Field(30, ge=1)  # items one person may add an hour; null: no limit
    notify_owners: bool = True  # owners are told of others' changes to their items (!watch)
    log_level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_file: str | None = None  # None: stderr (todobot run) or todobot.log (the console)
    log_format: str = Field("text", pattern="^(text|json)$")  # json: one object per line
    cooldown: Cooldown = Field(default_factory=Cooldown)
    console: Console = Field(default_factory=Console)
    irc: list[IrcNetwork] = Field(default_factory=list)
    matrix: Matrix | None = None
    digest: Digest | None = None
    web: Web | None = None
    mail: list[MailList] = Field(default_factory=list)
    git: list[GitRepo] = Field(default_factory=list)  # branches whose commits close items
    # More `== Heading ==` sections of the development-update mail layout, and what their
    # items are: {"Wishlist": nice, "Regressions": blocker, "Fixed": done}.
    mail_sections: dict[str, Literal["done", "blocker", "nice"]] = Field(default_factory=dict)

    # The file it was read from ("" when built in code): named in errors found after parsing.
    _source: str = PrivateAttr(default="")

    @field_validator("admins", "irc", "mail", "git", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        return v or []

    @property
    def source(self) -> str:
        return self._source or "config"

    @field_validator("project")
    @classmethod
    def _project(cls, v: str | None) -> str | None:
        from ..storage.names import clean, visible  # the one rule for what text shows

        if v is not None and (clean(v) != v or not visible(v)):
            raise ValueError("project is one line of visible text, like Acme")
        return v

    @field_validator("admins")
    @classmethod
    def _mail_admins(cls, v: list[str]) -> list[str]:
        # Mail identities are lowercased addresses (bot/mail/), so `mail:Ian@X` matches too.
        return [a.lower() if a.startswith("mail:") else a for a in v]


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


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models a field's type may hold (through lists, unions and None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (list, typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _suggestion(loc: tuple[Any, ...]) -> str:
    """' (did you mean `channels`?)' for an unknown key at `loc`, when one is close enough."""
    models: list[type[BaseModel]] = [Config]
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        named = [m for m in models if m.__name__ == part]
        if named:  # pydantic names the union branch it tried
            models = named
            continue
        models = [m for model in models if part in model.model_fields
                  for m in _models_in(model.model_fields[part].annotation)]
    keys = sorted({k for m in models for k in m.model_fields})
    import difflib  # only for a mistyped key: not loaded by every start

    close = difflib.get_close_matches(str(loc[-1]), keys, n=1, cutoff=0.6)
    return f" (did you mean `{close[0]}`?)" if close else ""


_IDENTITY_FORMS = "console:NICK, irc:NETWORK/ACCOUNT, matrix:@user:server or mail:ADDRESS"
_MATRIX_ID = re.compile(r"@[^:\s]+:\S+")
_MAIL = re.compile(r"[^@\s]+@[^@\s]+")


def _admin_problem(entry: str, networks: list[str]) -> str | None:
    """Why an `admins:` entry can never match anyone, or None when it is well formed."""
    kind, _, rest = entry.partition(":")
    if any(ch in "*?[]" for ch in entry):
        return (f"{entry!r}: an identity is matched exactly, wildcards match nobody: write each "
                f"release manager's identity in full ({_IDENTITY_FORMS})")
    if kind == "console" and rest and not any(ch.isspace() for ch in rest):
        return None
    if kind == "irc":
        network, slash, account = rest.partition("/")
        if not (network and slash and account):
            return f"{entry!r}: expected irc:NETWORK/ACCOUNT"
        if account.startswith("~"):
            return (f"{entry!r} is a nick without a services account, which proves nothing: "
                    f"write irc:{network}/ACCOUNT, the account they log in to")
        if network not in networks:
            have = ", ".join(networks) or "none"
            return f"{entry!r}: no IRC network {network!r} is configured under irc: (configured: {have})"
        return None
    if kind == "matrix" and _MATRIX_ID.fullmatch(rest):
        return None
    if kind == "mail" and _MAIL.fullmatch(rest):
        return None
    return f"{entry!r} is not an identity: write {_IDENTITY_FORMS}"


def _file_problems(cfg: Config) -> list[str]:
    """Mistakes the schema cannot see: identities that would give nobody rights."""
    networks = [net.network for net in cfg.irc]
    labels = [g.label for g in cfg.git]
    return [f"admins[{i}]: {problem}" for i, entry in enumerate(cfg.admins)
            if (problem := _admin_problem(entry, networks)) is not None] + [
        f"git[{i}]: another entry is also named {label!r}: give each a `name`"
        for i, label in enumerate(labels) if label in labels[:i]]


def parse_config(data: Any, source: str = "config") -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        problems = []
        seen = set()
        for err in exc.errors():
            path = _path(err["loc"])
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + _suggestion(err["loc"])
            else:
                msg = err["msg"].removeprefix("Value error, ")
            if (path, msg) not in seen:
                seen.add((path, msg))
                problems.append(f"{source}: {path}: {msg}")
        raise ConfigError("\n".join(problems)) from None
    problems = _file_problems(cfg)
    if problems:
        raise ConfigError("\n".join(f"{source}: {p}" for p in problems))
    cfg._source = source
    return cfg


def _relative_to(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


def resolve_paths(cfg: Config, base: Path) -> Config:
    """`database`, `matrix.data_dir`, `log_file` and `git[].path` made relative to `base` (the config
    file's directory) rather than to wherever the process happens to start."""
    update: dict[str, Any] = {"database": _relative_to(base, cfg.database)}
    if cfg.log_file:
        update["log_file"] = _relative_to(base, cfg.log_file)
    if cfg.matrix is not None:
        update["matrix"] = cfg.matrix.model_copy(
            update={"data_dir": _relative_to(base, cfg.matrix.data_dir)})
    if any(g.path for g in cfg.git):
        update["git"] = [g.model_copy(update={"path": _relative_to(base, g.path)}) if g.path else g
                         for g in cfg.git]
    out = cfg.model_copy(update=update)
    out._source = cfg._source
    return out


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
        raise ConfigError(_yaml_problem(p, exc)) from None
    return resolve_paths(parse_config(data, str(p)), p.resolve().parent)


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line report as one line: where, what, and what to do."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return (f"{path}:{where}: not valid YAML ({' '.join(str(what).split())}): fix the file "
            "there (check indentation, colons and quotes)")


# -- checks before serving: the environment the config needs -------------------------------------

E2E_EXTRA = "pip install 'release-todobot[e2e]'"
DKIM_EXTRA = "pip install 'release-todobot[dkim]'"


def encryption_available() -> bool:
    """matrix-nio's encryption needs its `e2e` extra (vodozemac and its key store)."""
    return all(find_spec(mod) is not None for mod in ("vodozemac", "peewee"))


def _env_keys(node: Any, path: str) -> list[tuple[str, str]]:
    """(path, variable) of every `*_env` key set anywhere in the config."""
    out: list[tuple[str, str]] = []
    if isinstance(node, BaseModel):
        for name in type(node).model_fields:
            value = getattr(node, name)
            where = f"{path}.{name}" if path else name
            if name.endswith("_env") and isinstance(value, str):
                out.append((where, value))
            else:
                out.extend(_env_keys(value, where))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out.extend(_env_keys(value, f"{path}[{i}]"))
    return out


def _missing_parent(what: str, path: str) -> str | None:
    parent = Path(path).parent
    if parent.is_dir():
        return None
    return f"{what}: the directory {parent} does not exist (create it, or fix the path {path})"


def serving_problems(cfg: Config) -> list[str]:
    """What stops `todobot run` before it opens the database: unset secrets, a missing
    encryption extra, directories that do not exist."""
    problems = [f"{where}: environment variable {var} is not set"
                for where, var in _env_keys(cfg, "") if not os.environ.get(var)]
    if cfg.matrix is not None and cfg.matrix.e2ee and "e2ee" in cfg.matrix.model_fields_set \
            and not encryption_available():
        problems.append(f"matrix.e2ee: true needs the encryption extra: {E2E_EXTRA}")
    problems += [f"mail[{i}].verify_dkim: true needs the DKIM extra: {DKIM_EXTRA}"
                 for i, m in enumerate(cfg.mail) if m.verify_dkim and find_spec("dkim") is None]
    if cfg.git and shutil.which("git") is None:
        problems.append("git: watching repositories needs the git program; install git")
    for what, path in (("database", cfg.database), ("log_file", cfg.log_file),
                       ("matrix.data_dir", cfg.matrix.data_dir if cfg.matrix else None)):
        if path and path != ":memory:" and (problem := _missing_parent(what, path)):
            problems.append(problem)
    return [f"{cfg.source}: {p}" for p in problems]


def check_serving(cfg: Config) -> None:
    problems = serving_problems(cfg)
    if problems:
        raise ConfigError("\n".join(problems))
