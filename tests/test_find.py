"""!find: the full-text index, what it finds, how it ranks, and user text kept out of FTS5's
query syntax."""

from __future__ import annotations

from pathlib import Path

import aiosqlite
import pytest

from todobot.storage import Database, Repository
from todobot.storage.layouts import xen42
from todobot.storage.migrations import LATEST, migrate
from todobot.storage.search import BadQuery, fts_query

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


def ids_in(reply) -> list[int]:
    return list(reply.items)


async def test_the_seed_list_finds_sonames(tmp_path):
    from tests.harness import Chat
    c = await Chat.open(tmp_path / "seed.sqlite3", default_release="4.2")
    try:
        async with c.repo.session("test") as s:
            await s.import_list("4.2", xen42.parse(SEED.read_text(), "4.2"))
        reply = await c.reply("!find SONAMES")
        assert ids_in(reply) == [10], reply.plain
        assert "#10 Bump library SONAMES as necessary." in reply.plain
    finally:
        await c.close()


async def test_each_field_is_searched(chat):
    assert await chat.say("!note 3 waiting on Jinsong for the hvm pieces")
    assert await chat.say("!link 1 https://bugs.xenproject.org/xen/bug/4242")
    async with chat.repo.session("test") as s:
        await s.update(await s.get(2), details="libxl_event_wait and friends")
    assert ids_in(await chat.reply("!find stable")) == [1]  # title
    assert ids_in(await chat.reply("!find friends")) == [2]  # details
    assert ids_in(await chat.reply("!find hvm pieces")) == [3]  # note
    assert ids_in(await chat.reply("!find 4242")) == [1]  # link
    assert ids_in(await chat.reply("!find save restore")) == [3]  # "save/restore" splits into words
    nothing = await chat.say("!find quux")
    assert nothing == 'Nothing in 4.2 matches "quux".'


async def test_a_title_hit_ranks_above_a_note_hit(chat):
    assert await chat.say("!add tools nice qemu upstream")
    assert await chat.say("!add tools nice tidy the build")
    assert await chat.say("!note 5 the build needs qemu upstream too, see the list")
    reply = await chat.reply("!find qemu upstream")
    assert reply.items == (4, 5), reply.plain
    # Same ranking whatever the ids: the title wins over an earlier note.
    assert await chat.say("!note 1 qemu upstream")
    async with chat.repo.session("test", write=False) as s:
        found, total = await s.search("qemu upstream", await s.release("4.2"), limit=10)
    assert [it.id for it in found][0] == 4 and total == 3


async def test_all_searches_every_release(chat):
    async with chat.repo.session("test") as s:
        other = await s.create_release("4.3")
        await s.add_item(other, area="tools", severity="nice", title="libxl stable API, part two")
    assert ids_in(await chat.reply("!find stable")) == [1]
    assert sorted(ids_in(await chat.reply("!find --all stable"))) == [1, 4]
    assert "in all releases" in await chat.say("!find --all stable")


@pytest.mark.parametrize("text", ['"', '"libxl', 'libxl"', '*', 'libxl*', '-libxl', 'NEAR(libxl api)',
                                  'libxl NEAR api', 'libxl OR', 'title:libxl', '(libxl', 'libxl ^',
                                  'AND', '- * "', 'a"b"c', "libxl + api"])
async def test_user_text_is_never_fts_syntax(chat, text):
    reply = await chat.reply(f"!find {text}")
    assert reply is not None and len(reply.lines) >= 1
    plain = reply.plain
    assert "Traceback" not in plain and "fts5" not in plain.lower() and "error" not in plain.lower()
    assert plain.startswith(("Items matching", "Nothing in", "Usage: !find")), plain


async def test_bad_input_gets_one_line(chat):
    for text in ('!find', '!find "', '!find * - "', '!find AND OR NOT NEAR'):
        answer = await chat.say(text)
        assert answer is not None and "\n" not in answer and answer.startswith("Usage: !find"), answer
    assert "at most 12" in await chat.say("!find " + " ".join(f"w{n}" for n in range(13)))


def test_words_become_quoted_phrases():
    assert fts_query('libxl "stable') == '"libxl" "stable"'
    assert fts_query('NEAR(a b)') == '"NEAR a" "b"'  # NEAR( is text, not the operator
    assert fts_query('x-y* OR z') == '"x y" "z"'
    assert fts_query('title:libxl') == '"title libxl"'  # no column filter
    with pytest.raises(BadQuery):
        fts_query('" * - ^ ( )')


async def test_names_are_compared_as_people_see_them(chat):
    assert await chat.say("!note 3 Jan Beulich reviewed it")
    # A zero-width space inside the word and a braille blank for the space: same words.
    assert ids_in(await chat.reply("!find Beu\u200blich")) == [3]
    assert ids_in(await chat.reply("!find Jan\u2800Beulich")) == [3]
    # Below the command's own argument cleaning too: the search cleans what it is given.
    async with chat.repo.session("test", write=False) as s:
        found, _ = await s.search("Beu\u200blich", await s.release("4.2"), limit=10)
        assert [it.id for it in found] == [3]


async def test_the_index_follows_every_write(chat):
    assert ids_in(await chat.reply("!find frobnicate")) == []
    assert await chat.say("!add tools nice frobnicate the widgets")  # add → #4
    assert ids_in(await chat.reply("!find frobnicate")) == [4]
    assert await chat.say("!edit 4 polish the widgets")  # edit: the old words go
    assert ids_in(await chat.reply("!find frobnicate")) == []
    assert ids_in(await chat.reply("!find polish")) == [4]
    assert await chat.say("!note 4 blocked on grommets")  # note
    assert ids_in(await chat.reply("!find grommets")) == [4]
    assert await chat.say("!link 4 https://lists.example.org/archives/html/sprocket")  # link
    assert ids_in(await chat.reply("!find sprocket")) == [4]
    assert await chat.say("!done 4 shipped with gizmos")  # done, with a note; still found
    assert ids_in(await chat.reply("!find gizmos")) == [4]
    assert "DONE" in await chat.say("!find polish")
    assert await chat.say("!add tools nice widgets again")  # #5
    assert await chat.say("!dup 4 5")  # notes and links move to #5
    assert 5 in ids_in(await chat.reply("!find grommets"))
    assert ids_in(await chat.reply("!find sprocket")) == [5]


async def test_the_migration_indexes_existing_items(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = await aiosqlite.connect(path, isolation_level=None)
    assert await migrate(conn, target=LATEST - 1) == LATEST - 1
    await conn.execute("INSERT INTO releases (name, created_by, created_at) VALUES ('4.1', 'x', 0)")
    await conn.execute(
        "INSERT INTO items (release_id, area, severity, title, details, links, created_by, created_at,"
        " updated_by, updated_at) VALUES (1, 'tools', 'blocker', 'old item', 'some detail',"
        " '[\"https://example.org/oldlink\"]', 'x', 0, 'x', 0)")
    await conn.execute("INSERT INTO notes (item_id, author, at, text) VALUES (1, 'x', 0, 'first remark')")
    await conn.execute("INSERT INTO notes (item_id, author, at, text) VALUES (1, 'x', 0, 'second remark')")
    await conn.close()
    db = await Database.open(path)
    try:
        async with Repository(db).session("t", write=False) as s:
            rel = await s.release("4.1")
            for word in ("old", "detail", "oldlink", "first", "second"):
                found, total = await s.search(word, rel, limit=10)
                assert [it.id for it in found] == [1] and total == 1, word
        async with Repository(db).session("t") as s:  # the same step's watch tables
            person = await s.ensure_person("console:alice", "alice")
            await s.set_watch(person.id, 1, True)
            assert await s.watched(person.id) == [1]
    finally:
        await db.close()


async def test_a_full_page_counts_all_matches(chat):
    async with chat.repo.session("test") as s:
        rel = await s.release("4.2")
        for n in range(60):
            await s.add_item(rel, area="docs", severity="nice", title=f"manpage {n}")
    reply = await chat.reply("!find manpage")
    assert len(reply.items) == 50 and "… and 10 more (add a word to narrow it down)." in reply.plain
    assert 'Items matching "manpage" in 4.2: 60' in reply.plain


async def test_past_the_counting_bound_it_says_more_than(chat, monkeypatch):
    import todobot.commands.search as find
    import todobot.storage.search as search
    monkeypatch.setattr(search, "COUNT_MAX", 40)
    monkeypatch.setattr(find, "COUNT_MAX", 40)
    async with chat.repo.session("test") as s:
        rel = await s.release("4.2")
        for n in range(60):
            await s.add_item(rel, area="docs", severity="nice", title=f"manpage {n}")
        found, total = await s.search("manpage", rel, limit=10)
        assert len(found) == 10 and total == 41
    reply = await chat.reply("!find --all manpage")
    assert 'Items matching "manpage" in all releases: more than 40' in reply.plain
    assert len(reply.items) == 50 and reply.plain.endswith(
        "… and more (add a word to narrow it down).")


async def test_past_the_ranking_bound_title_matches_still_come_first(chat, monkeypatch):
    import todobot.storage.search as search
    monkeypatch.setattr(search, "RANK_ALL", 1)
    assert await chat.say("!add tools nice tidy the build")  # #4: the word in a note only
    assert await chat.say("!note 4 qemu upstream breaks it")
    assert await chat.say("!add tools nice qemu upstream")  # #5: in the title
    async with chat.repo.session("test", write=False) as s:
        found, total = await s.search("qemu", await s.release("4.2"), limit=10)
        assert [it.id for it in found] == [5, 4] and total == 2
        found, total = await s.search("qemu", await s.release("4.2"), limit=1)
        assert [it.id for it in found] == [5] and total == 2
