"""Tests driven by the command registry, so a new command cannot skip them.

- Every command's `example=` runs, as a release manager, and is understood (no usage error,
  no internal error) — as Sopel turns `@example` into tests.
- A permission matrix: every command with `who` owner or admin is run by a stranger, by an
  unauthenticated namesake of the owner, by the owner and by a release manager — on the
  console and through the IRC transport's identity path. Every refusal leaves the history
  table exactly as it was.
"""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from todobot.bot.irc import IrcTransport
from todobot.bot.irc.connection import IrcLine
from todobot.commands.registry import all_commands
from todobot.commands.messages import Sender
from tests.harness import Chat

ADMIN = "console:ijc"


@pytest.fixture
async def world(tmp_path):
    """Release 4.2 with items #1..#14 (#12 holds a sub-item), all owned by Owen, whose
    identities are console:owen and the IRC account owen; a placeholder named Jan Beulich."""
    c = await Chat.open(tmp_path / "w.sqlite3", admins=[ADMIN], default_release="4.2")
    async with c.repo.session("test") as s:
        rel = await s.create_release("4.2")
        owen = await s.ensure_person("console:owen", "Owen")
        await s.link_identity(owen, "irc:net/owen")
        # Even a nick identity bound to the owner (as a claim made before logging in would
        # leave it) grants nothing while the nick is not logged in.
        await s.link_identity(owen, "irc:net/~owen")
        await s.owner_named("Jan Beulich")
        for n in range(1, 15):
            await s.add_item(rel, area="tools", severity="nice" if n % 2 else "blocker",
                             title=f"item {n}", owners=[owen.id], parent=None)
        await s.add_item(rel, area="tools", severity="blocker", title="sub", parent=12,
                         owners=[owen.id])
        await s.set_milestones(rel, [])
        await s.create_release("4.3")
    yield c
    await c.close()


# Who may run each command, written out here rather than read from the registry it checks:
# lowering a command to "anyone" must fail a test, not quietly drop it from the matrix below.
WHO = {
    "help": "anyone", "iam": "anyone", "whoami": "anyone", "whois": "anyone",
    "blockers": "anyone", "todo": "anyone", "show": "anyone", "history": "anyone",
    "add": "anyone", "sub": "anyone", "claim": "anyone", "status": "anyone", "link": "anyone",
    "note": "anyone", "release": "anyone", "releases": "anyone", "digest": "anyone",
    "stale": "anyone", "find": "anyone", "watch": "anyone", "unwatch": "anyone", "watching": "anyone",
    "unclaim": "owner", "assign": "owner", "done": "owner", "reopen": "owner",
    "person": "admin", "edit": "admin", "blocker": "admin", "nice": "admin", "dup": "admin",
    "defer": "admin", "milestone": "admin", "leave": "admin",
}


# Subcommands only release managers may run, of commands anyone may run otherwise, with an
# example each: written out for the same reason.
ADMIN_VERBS = {"release": {"new": "!release new 9.9"}}


def test_the_registry_grants_what_the_table_says():
    assert {c.name: c.who for c in all_commands()} == WHO
    assert {c.name: set(c.admin_verbs) for c in all_commands() if c.admin_verbs} == \
        {name: set(verbs) for name, verbs in ADMIN_VERBS.items()}


_ADMIN_EXAMPLES = [pytest.param(ex, id=ex) for verbs in ADMIN_VERBS.values() for ex in verbs.values()]


@pytest.mark.parametrize("example", _ADMIN_EXAMPLES)
async def test_admin_subcommands_refuse_everyone_else(world, example):
    """As the matrix below does for whole commands, through the dispatcher's one check."""
    senders = {"stranger": Sender("console:mallory", "mallory"),
               "the owner": Sender("console:owen", "owen"),
               "a release manager's nick, not logged in": _irc_sender("ijc", None),
               "another account with a release manager's nick": _irc_sender("ijc", "mallory")}
    for who, sender in senders.items():
        before = await _history(world)
        reply = await world.reply(example, sender=sender)
        assert _refused(reply) and "release managers" in reply.plain, (who, reply and reply.plain)
        assert await _history(world) == before, who
    reply = await world.reply(example, sender=Sender(ADMIN, "ijc"))
    assert not _refused(reply), reply.plain


def _commands(*who: str):
    by_name = {c.name: c for c in all_commands()}
    return [pytest.param(by_name[name], id=name) for name, w in WHO.items() if w in who]


async def _history(chat) -> list[tuple]:
    async with chat.repo.session("t", write=False) as s:
        return [tuple(r) for r in await s._all("SELECT * FROM history ORDER BY id")]


def _irc_sender(nick: str, account: str | None) -> Sender:
    """A sender as the IRC transport makes it from a wire line (account-tag)."""
    transport = IrcTransport.__new__(IrcTransport)
    transport.net = SimpleNamespace(network="net")
    transport._casemapping = "rfc1459"
    conn = SimpleNamespace(caps={"account-tag"})
    tags = {"account": account} if account else {}
    line = IrcLine("PRIVMSG", ["#chan", "x"], f"{nick}!u@h", tags)
    known, found = IrcTransport._known_account(transport, conn, line, nick)
    assert known
    return IrcTransport._sender(transport, nick, found)


@pytest.mark.parametrize("cmd", _commands("anyone", "owner", "admin"))
async def test_every_example_runs(world, cmd):
    example = cmd.example.replace("!", "!", 1)
    reply = await world.reply(example, "ijc")
    assert reply is not None, example
    assert not reply.plain.startswith("Usage:"), (example, reply.plain)
    assert "internal error" not in reply.plain, (example, reply.plain)


_NOT_ALLOWED = re.compile(r"Only (the owners|release managers)|Log in")


def _refused(reply) -> bool:
    return reply is not None and reply.outcome == "refused"


@pytest.mark.parametrize("cmd", _commands("owner", "admin"))
async def test_permission_matrix(world, cmd):
    example = cmd.example
    senders = {
        "stranger": Sender("console:mallory", "mallory"),
        "namesake on the console": Sender("console:owen-2", "Owen", display_name="Owen"),
        "unauthenticated namesake on IRC": _irc_sender("owen", None),
        "another account with the owner's nick on IRC": _irc_sender("owen", "mallory"),
    }
    for who, sender in senders.items():
        before = await _history(world)
        reply = await world.reply(example, sender=sender)
        assert _refused(reply), (who, example, reply and reply.plain)
        assert await _history(world) == before, (who, example)


OWNERS = {"owner": lambda: Sender("console:owen", "owen"),
          "owner on IRC": lambda: _irc_sender("owen_", "owen"),
          "release manager": lambda: Sender(ADMIN, "ijc")}


@pytest.mark.parametrize("who", list(OWNERS))
@pytest.mark.parametrize("cmd", _commands("owner", "admin"))
async def test_owners_and_release_managers_may(world, cmd, who):
    reply = await world.reply(cmd.example, sender=OWNERS[who]())
    if cmd.who == "admin" and who != "release manager":
        assert _refused(reply) and "release managers" in reply.plain, (who, cmd.example)
    else:  # allowed: it may still say why it made no change, but never "not allowed"
        assert not _refused(reply) or not _NOT_ALLOWED.search(reply.plain), (who, reply.plain)


def test_examples_use_the_declared_syntax():
    """An example names the command it documents and every declared required argument."""
    for cmd in all_commands():
        assert re.match(rf"!{cmd.name}\b", cmd.example), cmd.name


def test_who_matches_the_commands_table():
    """The commands table (docs/commands.md) says who may run each command; the registry must agree,
    so weakening a command's `who` is caught even though the matrix above follows it."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "docs" / "commands.md").read_text(encoding="utf-8")
    table = readme.split("## Commands")[1].split("\n## ")[0]
    levels = {"anyone": "anyone", "anyone logged in": "anyone", "owners, release managers": "owner",
              "release managers": "admin"}
    seen = set()
    verbs = set()
    for row in table.splitlines():
        if not row.startswith("| `!"):
            continue
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        who = re.sub(r"\s*\(.*\)", "", cells[-1])
        sub = re.fullmatch(r"`!(\w+) (\w+) [A-Z].*`", cells[0])
        if sub and sub[1] in ADMIN_VERBS:  # a release managers' subcommand has its own row
            assert levels[who] == "admin" and sub[2] in ADMIN_VERBS[sub[1]], row
            verbs.add((sub[1], sub[2]))
            continue
        for name in re.findall(r"`!(\w+)", cells[0]):
            cmd = next((c for c in all_commands() if c.name == name), None)
            if cmd is not None:
                assert cmd.who == levels[who], (name, cmd.who, who)
                seen.add(name)
    assert seen == {c.name for c in all_commands()}, {c.name for c in all_commands()} - seen
    assert verbs == {(n, v) for n, vs in ADMIN_VERBS.items() for v in vs}, verbs
