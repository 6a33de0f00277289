"""Upgrades from every earlier schema keep each owner's person and identities.

tests/data/schemas/vN.sqlite3 were written by the code of the commit where schema N was the
latest (scripts/make-schema-fixtures.py); vN.json holds what that code answered.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import aiosqlite
import pytest

from tests.harness import Chat
from todobot.storage import migrations

DATA = Path(__file__).parent / "data" / "schemas"
SCHEMAS = sorted(int(p.stem[1:]) for p in DATA.glob("v*.sqlite3"))
# The first schema whose code had `!person list`: what every older one should now show.
PERSON_LIST = json.loads((DATA / "v4.json").read_text(encoding="utf-8"))["person_list"]


def _old(schema: int) -> dict:
    return json.loads((DATA / f"v{schema}.json").read_text(encoding="utf-8"))


def _nick(identity: str) -> str:
    return identity.rsplit("/", 1)[-1].split(":")[-1]


async def _upgraded(tmp_path: Path, schema: int) -> Chat:
    path = tmp_path / "todo.sqlite3"
    shutil.copy(DATA / f"v{schema}.sqlite3", path)
    return await Chat.open(path, admins=["console:rm"], default_release="4.2")


# The schema the repair step upgrades from (numbers may move when steps are merged).
BEFORE_REPAIR = migrations.STEPS.index(migrations._rebind_claims)


def test_every_earlier_schema_has_a_fixture():
    """At least every schema before the repair; a schema added since wants its fixture too
    (scripts/make-schema-fixtures.py N)."""
    assert SCHEMAS == list(range(1, len(SCHEMAS) + 1)) and SCHEMAS[-1] >= BEFORE_REPAIR
    for schema in SCHEMAS:
        with sqlite3.connect(DATA / f"v{schema}.sqlite3") as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == schema


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_upgrade_keeps_whoami_and_person_list(tmp_path, schema):
    old = _old(schema)
    chat = await _upgraded(tmp_path, schema)
    try:
        for identity, answer in old["whoami"].items():
            now = await chat.say("!whoami", _nick(identity), identity=identity)
            shown = answer.split(", shown as ", 1)[1].split(" (", 1)[0].rstrip(".")
            assert f"You are {identity}, shown as {shown}" in now
            if schema >= 4:
                assert now == answer
        expected = old["person_list"] if schema >= 4 else PERSON_LIST
        assert await chat.say("!person list", "rm", identity="console:rm") == expected
    finally:
        await chat.close()


@pytest.mark.parametrize("schema", SCHEMAS)
async def test_upgrade_lets_owners_act_on_their_items(tmp_path, schema):
    chat = await _upgraded(tmp_path, schema)
    try:
        for identity, item in _old(schema)["owned"].items():
            answer = await chat.say(f"!done {item}", _nick(identity), identity=identity)
            assert "Only the owners" not in answer, answer
            assert (await chat.item(item)).state == "done", answer
    finally:
        await chat.close()


async def test_a_database_upgraded_before_the_repair_gets_its_owner_back(tmp_path):
    """Upgraded by the old steps only, then george spoke and got a person of his own
    ("george (george)", as `free_name` makes one): the repair merges it into the placeholder
    that holds his claim."""
    path = tmp_path / "todo.sqlite3"
    shutil.copy(DATA / "v3.sqlite3", path)
    async with aiosqlite.connect(path) as conn:
        await migrations.migrate(conn, target=BEFORE_REPAIR)
        cur = await conn.execute("INSERT INTO persons (name, name_key, created_at)"
                                 " VALUES ('george (george)', 'george (george)', 1e10)")
        await conn.execute("INSERT INTO identities VALUES ('console:george', ?)", (cur.lastrowid,))
        await conn.execute("INSERT INTO history (at, actor, field, before, after)"
                           " VALUES (1e10, 'console:george', 'person', NULL, 'george (george)')")
        await conn.commit()
        assert (await (await conn.execute(
            "SELECT COUNT(*) FROM persons WHERE name = 'george'")).fetchone())[0] == 1
    chat = await Chat.open(path, admins=["console:rm"], default_release="4.2")
    try:
        assert await chat.say("!person list", "rm", identity="console:rm") == PERSON_LIST
        answer = await chat.say("!done 2", "george", identity="console:george")
        assert (await chat.item(2)).state == "done", answer
    finally:
        await chat.close()


async def test_a_claim_made_for_someone_else_binds_nobody(tmp_path):
    """A release manager's `!claim 2 for jan` before schema 4 names jan, not the manager:
    the placeholder stays unbound."""
    path = tmp_path / "todo.sqlite3"
    shutil.copy(DATA / "v3.sqlite3", path)
    async with aiosqlite.connect(path) as conn:
        await conn.execute("UPDATE items SET owners = '[\"jan\"]' WHERE id = 3")
        await conn.execute("INSERT INTO history (at, actor, item_id, field, before, after)"
                           " VALUES (1, 'console:rm', 3, 'owners', '[]', '[\"jan\"]')")
        await conn.commit()
    chat = await Chat.open(path, admins=["console:rm"], default_release="4.2")
    try:
        listing = await chat.say("!person list", "rm", identity="console:rm")
        assert "jan — nobody yet" in listing
        assert "console:rm" not in listing
    finally:
        await chat.close()


async def test_a_placeholder_made_since_schema_4_is_not_given_to_a_name_s_old_user(tmp_path):
    """console:bob claimed and gave back an item as "bob" before schema 4 (so the schema 4 step
    made no "bob"); an import since made a placeholder "bob" for whoever the list means. The
    repair binds only placeholders the schema 4 step made: this one stays unbound."""
    path = tmp_path / "todo.sqlite3"
    shutil.copy(DATA / "v3.sqlite3", path)
    async with aiosqlite.connect(path) as conn:
        await conn.execute("INSERT INTO history (at, actor, item_id, field, before, after) VALUES"
                           " (1, 'console:bob', 3, 'owners', '[]', '[\"bob\"]'),"
                           " (2, 'console:bob', 3, 'owners', '[\"bob\"]', '[]')")
        await conn.commit()
        await migrations.migrate(conn, target=BEFORE_REPAIR)
        # As `_new_person` makes one: the person and its history row at the same moment.
        await conn.execute("INSERT INTO persons (name, name_key, created_at)"
                           " VALUES ('bob', 'bob', 1e10)")
        await conn.execute("INSERT INTO history (at, actor, field, before, after)"
                           " VALUES (1e10, 'cli:import', 'person', NULL, 'bob')")
        await conn.commit()
    chat = await Chat.open(path, admins=["console:rm"], default_release="4.2")
    try:
        assert "* bob — nobody yet" in await chat.say("!person list", "rm", identity="console:rm")
    finally:
        await chat.close()


async def test_an_owner_who_chose_a_name_since_keeps_it_and_gets_the_items_back(tmp_path):
    """Upgraded by the old steps, then george said `!iam George Dunlap`: his person keeps that
    name and takes the items of the placeholder "george", which goes."""
    path = tmp_path / "todo.sqlite3"
    shutil.copy(DATA / "v3.sqlite3", path)
    async with aiosqlite.connect(path) as conn:
        await migrations.migrate(conn, target=BEFORE_REPAIR)
        cur = await conn.execute("INSERT INTO persons (name, name_key, created_at)"
                                 " VALUES ('George Dunlap', 'george dunlap', 1e10)")
        await conn.execute("INSERT INTO identities VALUES ('console:george', ?)", (cur.lastrowid,))
        await conn.commit()
    chat = await Chat.open(path, admins=["console:rm"], default_release="4.2")
    try:
        listing = await chat.say("!person list", "rm", identity="console:rm")
        assert "* George Dunlap — console:george" in listing and "* george " not in listing
        assert (await chat.item(2)).owners == ["George Dunlap"]
        answer = await chat.say("!done 2", "george", identity="console:george")
        assert (await chat.item(2)).state == "done", answer
    finally:
        await chat.close()
