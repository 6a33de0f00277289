"""`todobot init`: a first bot.yaml from a few answers — asked on the terminal, or given as
flags for scripts (`--yes` takes the defaults for the rest). Each answer is checked by the
config's own rules as it is given, and the file written is read back by the config loader
before it is kept, so what `init` writes is what `todobot run` accepts."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

from .config import ConfigError, _admin_problem, parse_config

_IRC = re.compile(r"(?P<host>[A-Za-z0-9.-]+)(?::(?P<port>[0-9]{1,5}))?/(?P<channel>[#&]\S+)")
_MATRIX_ROOM = re.compile(r"[#!][^:\s]+:\S+")
_MATRIX_USER = re.compile(r"@[^:\s]+:\S+")
_MAIL = re.compile(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+")


class Answered(ValueError):
    """An answer the config would not take; the text says why and what to write."""


@dataclass
class Answers:
    project: str | None = None
    irc: tuple[str, int, str] | None = None  # host, port, channel
    irc_network: str | None = None
    matrix: str | None = None  # homeserver URL
    matrix_room: str | None = None
    matrix_user: str | None = None
    admins: list[str] = field(default_factory=list)
    mail_list: str | None = None


# -- one check per answer ------------------------------------------------------------------------

def parse_project(text: str) -> str | None:
    text = text.strip()
    if not text:
        return None
    try:
        parse_config({"project": text})
    except ConfigError:
        raise Answered("a project name is one line of visible text, up to 40 characters, "
                       "like Acme") from None
    return text


def parse_irc(text: str) -> tuple[str, int, str] | None:
    text = text.strip()
    if not text:
        return None
    m = _IRC.fullmatch(text)
    if not m or not 1 <= int(m["port"] or 6697) <= 65535:
        raise Answered("write the server and channel as HOST[:PORT]/#CHANNEL, like "
                       "irc.libera.chat:6697/#acme")
    return m["host"], int(m["port"] or 6697), m["channel"]


def network_of(host: str) -> str:
    """The NETWORK part of irc:NETWORK/ACCOUNT identities, from the server's name:
    irc.libera.chat → libera, irc.oftc.net → oftc, localhost → localhost."""
    labels = [p for p in host.lower().split(".") if p]
    if labels and labels[0] == "irc" and len(labels) > 1:
        labels = labels[1:]
    return (re.sub(r"[^a-z0-9-]", "", labels[0]) or "irc") if labels else "irc"


def parse_matrix_room(text: str) -> str | None:
    text = text.strip()
    if text and not _MATRIX_ROOM.fullmatch(text):
        raise Answered("a Matrix room is #alias:server or !id:server, like #acme:example.org")
    return text or None


def parse_matrix_user(text: str) -> str | None:
    text = text.strip()
    if text and not _MATRIX_USER.fullmatch(text):
        raise Answered("the bot's Matrix account is @name:server, like @todobot:example.org")
    return text or None


def parse_homeserver(text: str) -> str | None:
    text = text.strip()
    if text and not re.fullmatch(r"https?://[^\s/]+/?", text):
        raise Answered("the homeserver is a URL, like https://matrix.example.org")
    return text.rstrip("/") or None


def parse_admins(text: str, networks: list[str]) -> list[str]:
    out = [a.strip() for a in re.split(r"[,\s]+", text) if a.strip()]
    for entry in out:
        problem = _admin_problem(entry, networks)
        if problem:
            raise Answered(problem)
    return out


def parse_mail_list(text: str) -> str | None:
    text = text.strip()
    if text and not _MAIL.fullmatch(text):
        raise Answered("the list's address is like acme-devel@lists.example.org")
    return text or None


# -- asking --------------------------------------------------------------------------------------

Ask = Callable[[str], str | None]  # prompt -> the answer line, None at the end of input


def _stdin_ask(prompt: str) -> str | None:
    try:
        return input(prompt)
    except EOFError:
        return None


def _ask(ask: Ask, question: str, default: str, check: Callable[[str], object],
         out=sys.stdout) -> object:
    """Ask until an answer passes `check`; an empty answer is the default; the end of the
    input takes the default for this and every later question."""
    shown = f" [{default}]" if default else ""
    while True:
        line = ask(f"{question}{shown}: ")
        answer = default if line is None or not line.strip() else line.strip()
        try:
            return check(answer)
        except Answered as exc:
            print(f"  {exc}", file=out)
            if line is None:  # no more input: a bad default cannot be asked again
                raise


def interview(given: Answers, *, login: str, ask: Ask = _stdin_ask, out=sys.stdout,
              flags: set[str] = frozenset()) -> Answers:  # type: ignore[assignment]
    """The questions a flag did not answer."""
    a = given
    if "project" not in flags:
        a.project = _ask(ask, "Project name, shown in mail subjects and page titles (empty: none)",
                         "", parse_project, out)  # type: ignore[assignment]
    if "irc" not in flags and "matrix" not in flags:
        a.irc = _ask(ask, "IRC server and channel, HOST[:PORT]/#CHANNEL (empty: no IRC)", "",
                     parse_irc, out)  # type: ignore[assignment]
        if a.irc is None:
            a.matrix = _ask(ask, "Matrix homeserver URL (empty: no Matrix)", "",
                            parse_homeserver, out)  # type: ignore[assignment]
    if a.irc is not None and "irc_network" not in flags:
        a.irc_network = _ask(ask, "IRC network name, as in irc:NETWORK/ACCOUNT identities",
                             network_of(a.irc[0]), lambda t: re.sub(r"\s", "", t) or None,
                             out)  # type: ignore[assignment]
    if a.matrix is not None:
        host = re.sub(r"^https?://(matrix\.)?", "", a.matrix)
        if "matrix_room" not in flags:
            a.matrix_room = _ask(ask, "Matrix room", f"#release:{host}", parse_matrix_room,
                                 out)  # type: ignore[assignment]
        if "matrix_user" not in flags:
            a.matrix_user = _ask(ask, "The bot's Matrix account", f"@todobot:{host}",
                                 parse_matrix_user, out)  # type: ignore[assignment]
    if "admins" not in flags:
        example = (f"irc:{a.irc_network}/ACCOUNT" if a.irc else
                   f"matrix:@you:{a.matrix_user.split(':', 1)[1]}" if a.matrix_user else "")
        a.admins = _ask(ask, "Release managers' identities, separated by commas"
                        + (f" (like {example})" if example else ""), f"console:{login}",
                        lambda t: parse_admins(t, [a.irc_network] if a.irc else []),
                        out)  # type: ignore[assignment]
    if "mail_list" not in flags:
        a.mail_list = _ask(ask, "Mailing list that gets the weekly mail (empty: none)", "",
                           parse_mail_list, out)  # type: ignore[assignment]
    return a


# -- writing -------------------------------------------------------------------------------------

def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML scalar


def render(a: Answers) -> str:
    """The commented bot.yaml for these answers."""
    out = ["# todobot configuration, written by `todobot init`. bot.example.yaml documents",
           "# every key; `todobot run -c bot.yaml` checks this file before it starts.", ""]
    out += ["# The project's name: mail subjects, the digest's header, the status page's title.",
            f"project: {_q(a.project)}" if a.project else "# project: Acme", ""]
    out += ["# SQLite database, relative to this file.", "database: todobot.sqlite3", ""]
    out += ["# Release managers: they start releases (!release new NAME), set milestones,",
            "# move items between blockers and nice to have. Identities, never nicks.",
            "admins:"] + [f"  - {_q(x)}" for x in a.admins] + [""]
    if a.irc is not None:
        host, port, channel = a.irc
        out += ["irc:", f"  - network: {_q(a.irc_network or network_of(host))}",
                f"    host: {_q(host)}", f"    port: {port}",
                f"    tls: {'true' if port != 6667 else 'false'}",
                "    nick: todobot",
                "    # The bot's own login, where the network offers SASL:",
                "    # sasl_account: todobot",
                "    # sasl_password_env: TODOBOT_IRC_PASSWORD",
                f"    channels: [{_q(channel)}]", ""]
    if a.matrix is not None:
        out += ["matrix:", f"  homeserver: {_q(a.matrix)}",
                f"  user_id: {_q(a.matrix_user or '@todobot:example.org')}",
                "  access_token_env: TODOBOT_MATRIX_TOKEN   # the variable holding its token",
                f"  rooms: [{_q(a.matrix_room)}]" if a.matrix_room else "  rooms: []", ""]
    if a.mail_list is not None:
        domain = a.mail_list.rsplit("@", 1)[1]
        out += ["# The weekly mail, sent through the MTA on this machine (see bot.example.yaml",
                "# for SMTP login and for reading replies over IMAP).",
                "mail:", f"  - list: {_q(a.mail_list)}",
                f"    from: {_q(f'todobot <todobot@{domain}>')}",
                "    digest: {every: \"monday 09:00\", timezone: UTC}",
                "    smtp: {host: 127.0.0.1, port: 25, starttls: false}", ""]
    out += ["# A digest in the chat rooms too:", "# digest: {every: \"monday 09:00\", timezone: UTC}"]
    return "\n".join(out) + "\n"


# flag -> the answer it gives and the check it passes
_FLAGS: list[tuple[str, str, Callable[[str], object]]] = [
    ("project", "project", parse_project), ("irc", "irc", parse_irc),
    ("irc_network", "irc_network", lambda t: re.sub(r"\s", "", t) or None),
    ("matrix", "matrix", parse_homeserver), ("matrix_room", "matrix_room", parse_matrix_room),
    ("matrix_user", "matrix_user", parse_matrix_user), ("list", "mail_list", parse_mail_list)]


def run(args: argparse.Namespace, *, login: str, ask: Ask = _stdin_ask) -> int:
    """The `init` subcommand; returns the exit status."""
    path = Path(args.output)
    if path.exists() and not args.force:
        print(f"todobot: {path} exists; `todobot init --force` replaces it", file=sys.stderr)
        return 1
    if not path.parent.is_dir():
        print(f"todobot: {path.parent}: no such directory", file=sys.stderr)
        return 1
    given, flags = Answers(), set()
    try:
        for flag, attr, check in _FLAGS:
            value = getattr(args, flag)
            if value is not None:
                setattr(given, attr, check(value))
                flags.add(attr)
        if given.irc is not None and given.irc_network is None:
            given.irc_network = network_of(given.irc[0])
        if args.admin:
            nets = [given.irc_network] if given.irc_network else []
            given.admins = parse_admins(",".join(args.admin), nets)
            flags.add("admins")
        if args.yes:
            answers = given
            answers.admins = answers.admins or [f"console:{login}"]
            if answers.matrix is not None:
                host = re.sub(r"^https?://(matrix\.)?", "", answers.matrix)
                answers.matrix_user = answers.matrix_user or f"@todobot:{host}"
        else:
            answers = interview(given, login=login, ask=ask, flags=flags)
    except Answered as exc:
        print(f"todobot: {exc}", file=sys.stderr)
        return 2
    text = render(answers)
    try:  # what `todobot run` will read: refuse to write a file it would not take
        parse_config(yaml.safe_load(text), str(path))
    except ConfigError as exc:
        print(f"todobot: the answers make no valid config:\n{exc}", file=sys.stderr)
        return 2
    path.write_text(text, encoding="utf-8")
    config = f" -c {path}"
    print(f"Wrote {path}. Next:")
    print(f"  todobot release new 1.0{config}   # or say !release new 1.0 in the room")
    print(f"  todobot run{config}")
    return 0
