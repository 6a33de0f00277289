"""Names never grant rights: a name chosen before an import, invisible names, owners minting
people, links that merge — tried as a hostile member of a channel would."""

from __future__ import annotations

import pytest

from todobot.commands.claims import MAX_OWNERS
from todobot.commands.messages import Sender
from todobot.storage import ListItem, ReleaseList
from todobot.storage.names import clean, name_key, visible

IRC_MAL = dict(transport="irc:oftc", identity="irc:oftc/mal")


async def _import(chat, *owners: str, title: str = "xl shutdown hangs") -> dict[str, int]:
    async with chat.repo.session("cli:import") as s:
        return await s.import_list("4.2", ReleaseList("4.2", items=[ListItem(
            area="tools", severity="blocker", title=title, owners=list(owners))]))


async def _persons(chat) -> int:
    async with chat.repo.session("t", write=False) as s:
        return len(await s.persons())


# -- a name chosen before it is imported ---------------------------------------------------------

@pytest.mark.parametrize("who", [dict(nick="mal"), dict(nick="mal", **IRC_MAL)],
                         ids=["console", "irc"])
async def test_a_name_chosen_by_iam_before_an_import_gets_none_of_its_items(chat, who):
    assert (await chat.say("!iam George Dunlap", **who)).startswith("You are now George Dunlap")
    stats = await _import(chat, "George Dunlap")
    assert stats["to confirm"] == 1
    item = await chat.item(4)
    assert item.owners == ["George Dunlap"]
    assert (await chat.say("!done 4", **who)).startswith("Only the owners of #4")
    identity = who.get("identity", "console:mal")
    tail = identity.split(":", 1)[1]
    # mal yields the name and waits like anyone who says !iam after the import.
    assert await chat.say("!whoami", **who) == f"You are {identity}, shown as George Dunlap ({tail})."
    assert f"{identity} says they are George Dunlap" in await chat.say("!person pending")
    assert await chat.say("!whois George Dunlap") == (
        "George Dunlap is a name from an imported list, not yet bound to anyone.")


async def test_a_display_name_chosen_before_an_import_gets_none_of_its_items(chat):
    mal = Sender("matrix:@mal:example.org", "mal", display_name="George Dunlap")
    assert (await chat.say("!claim 1", sender=mal)).startswith("#1 claimed by George Dunlap")
    assert (await _import(chat, "George Dunlap"))["to confirm"] == 1
    assert (await chat.item(4)).owners == ["George Dunlap"]
    assert (await chat.item(1)).owners == ["George Dunlap (@mal:example.org)"]  # theirs stays
    assert (await chat.say("!done 4", sender=mal)).startswith("Only the owners of #4")


async def test_a_name_a_release_manager_bound_gets_the_imported_items(chat):
    await chat.say("!iam George Dunlap", "george")
    assert await chat.say('!person link "George Dunlap" console:george') == (
        "George Dunlap is now console:george.")
    assert "to confirm" not in await _import(chat, "George Dunlap")
    assert (await chat.say("!done 4", "george")).startswith("#4 done")
    # Renaming oneself drops the confirmation: the next import names a placeholder again.
    await chat.say("!iam Keir Fraser", "george")
    assert (await _import(chat, "Keir Fraser", title="another"))["to confirm"] == 1
    assert (await chat.say("!done 5", "george")).startswith("Only the owners of #5")


async def test_the_release_manager_confirms_a_yielded_name(chat):
    await chat.say("!iam George Dunlap", "george")
    await chat.say("!claim 1", "george")
    await _import(chat, "George Dunlap")
    assert await chat.say('!person link "George Dunlap" console:george confirm') == (
        "George Dunlap is now console:george; 1 item of their former name now show George Dunlap.")
    assert (await chat.say("!done 4", "george")).startswith("#4 done")
    assert await chat.say("!person pending") == "No name requests are waiting."


# -- invisible and blank-looking characters ------------------------------------------------------

@pytest.mark.parametrize("raw,seen", [
    ("Jan\u2800Beulich", "Jan Beulich"),  # braille blank
    ("Jan Beulich\u3164", "Jan Beulich"),  # Hangul filler
    ("\u115fJan\u1160 Beulich\uffa0", "Jan Beulich"),  # Hangul choseong/jungseong/halfwidth fillers
    ("Jan\u180eBeulich", "JanBeulich"),  # Mongolian vowel separator (format)
    ("Jan\u17b4\u17b5 Beulich", "Jan Beulich"),  # Khmer inherent vowels
    ("Jan\u034f Beulich\ufe0f", "Jan Beulich"),  # grapheme joiner, variation selector
    ("Jan \u0301Beulich", "Jan Beulich"),  # a mark with no base
    ("\U000e0041Jan Beulich", "Jan Beulich"),  # a tag character
    ("Jos\u00e9 Jos\u0065\u0301", "Jos\u00e9 Jos\u0065\u0301"),  # marks on a base stay
])
def test_clean_keeps_names_as_people_see_them(raw, seen):
    assert clean(raw) == seen


@pytest.mark.parametrize("blank", ["\u2800", "\u3164", "\u115f\u1160", "\uffa0", "\u0301",
                                   "\u0301\u0302", "\u180e", "\u17b4", "\u2800 \u0301"])
def test_nothing_visible_is_not_visible(blank):
    assert not visible(blank)
    assert visible(f"a{blank}")


def test_name_keys_see_blanks_as_spaces():
    assert name_key("Jan\u2800Beulich") == name_key("jan beulich\u3164") == "jan beulich"


async def test_invisible_names_are_someone_else_s_name(chat):
    await chat.say("!iam Jan Beulich", "jan")
    for sneaky in ("Jan\u2800Beulich", "Jan Beulich\u3164", "\u0301Jan\u3164Beulich"):
        assert await chat.say(f"!iam {sneaky}", "mal") == "Jan Beulich is taken by console:jan."
    for blank in ("\u2800", "\u3164", "\u0301", "\u2800\u3164 \u0301"):
        assert (await chat.say(f"!iam {blank}", "mal")).startswith("Usage: !iam NAME")
    # A display name goes through the same rule.
    twin = Sender("matrix:@x:example.org", "x", display_name="Jan\u2800Beulich")
    assert (await chat.say("!claim 1", sender=twin)).startswith(
        "#1 claimed by Jan Beulich (@x:example.org)")


async def test_titles_of_nothing_visible_are_refused(chat):
    for blank in ("\u2800", "\u3164\u3164", "\u0301", "\u115f \u0302"):
        assert await chat.say(f"!add tools nice {blank}") == "Usage: !add AREA blocker|nice TITLE"
    assert (await chat.say("!add tools nice fix\u2800it")).startswith(
        "Added #4 (tools, nice to have): fix it")


async def test_an_imported_owner_s_invisible_characters_go(chat):
    await _import(chat, "Jan\u2800Beulich\u3164")
    assert (await chat.item(4)).owners == ["Jan Beulich"]
    assert await chat.say("!iam Jan Beulich", "mal") == (
        'Jan Beulich is a name from the imported list; a release manager must confirm that it '
        'is you (!person link "Jan Beulich" console:mal). Asked.')


# -- owners do not mint people --------------------------------------------------------------------

async def test_an_owner_assigns_only_people_the_bot_knows(chat):
    await chat.say("!claim 1", "zed")
    before = await _persons(chat)
    names = ", ".join(["zed", "George Dunlap", "Keir Fraser"] + [f"Person {n}" for n in range(60)])
    assert await chat.say(f"!assign 1 {names}", "zed") == (
        f"An item has at most {MAX_OWNERS} owners; #1 would have 63.")
    assert await chat.say("!assign 1 zed, George Dunlap", "zed") == (
        "Nobody is called George Dunlap yet: they must say !iam George Dunlap first, or a "
        "release manager can assign them.")
    assert await chat.say("!claim 1 for Keir Fraser", "zed") == (
        "Nobody is called Keir Fraser yet: they must say !iam Keir Fraser first, or a release "
        "manager can assign them.")
    assert await _persons(chat) == before
    # George's own name is his at once: no placeholder stands in the way.
    assert await chat.say("!iam George Dunlap", "george") == "You are now George Dunlap (was george)."
    assert await chat.say("!assign 1 zed, George Dunlap, Jinsong Liu", "zed") == (
        "#1 assigned to zed, George Dunlap, Jinsong Liu (was zed).")


async def test_a_release_manager_names_new_people_up_to_the_limit(chat):
    many = ", ".join(f"Person {n}" for n in range(MAX_OWNERS))
    assert (await chat.say(f"!assign 1 {many}")).startswith("#1 assigned to Person 0, ")
    assert len((await chat.item(1)).owners) == MAX_OWNERS
    assert await chat.say("!claim 1 for Jinsong Liu") == (
        f"An item has at most {MAX_OWNERS} owners; #1 would have {MAX_OWNERS + 1}.")


# -- linking, unlinking, whoami -------------------------------------------------------------------

async def test_a_link_that_merges_a_person_asks_first(chat):
    await chat.say("!iam Mal", **IRC_MAL, nick="mal")
    async with chat.repo.session("t") as s:  # mal's person has a second identity
        await s.link_identity(await s.person_named("Mal"), "console:mal")
    reply = await chat.say('!person link "Jinsong Liu" irc:oftc/mal')
    assert reply == ("irc:oftc/mal is Mal; linking merges Mal (identity console:mal) into Jinsong "
                     'Liu. To do it, say !person link "Jinsong Liu" irc:oftc/mal confirm')
    assert await chat.say("!whois irc:oftc/mal") == "Mal is console:mal, irc:oftc/mal."


async def test_unlink_takes_an_identity_back_and_records_it(chat):
    await chat.say('!person link "Jinsong Liu" console:jinsong')
    assert (await chat.say("!done 3", "jinsong")).startswith("#3 done")
    await chat.say("!reopen 3")
    assert await chat.say('!person unlink "Jinsong Liu" console:jinsong') == (
        "console:jinsong is no longer Jinsong Liu; Jinsong Liu is a placeholder now, its items kept.")
    assert (await chat.say("!done 3", "jinsong")).startswith("Only the owners of #3")
    assert (await chat.item(3)).owners == ["Jinsong Liu"]
    async with chat.repo.session("t", write=False) as s:
        row = await s._one("SELECT actor, before, after FROM history WHERE field ="
                           " 'identity console:jinsong' ORDER BY id DESC")
    assert tuple(row) == ("console:ijc", "Jinsong Liu", None)
    assert await chat.say('!person unlink "Jinsong Liu" console:jinsong') == (
        "console:jinsong is not Jinsong Liu's (Jinsong Liu is nobody yet (from an imported list)).")
    assert (await chat.say('!person unlink "Jinsong Liu" console:x', "mal")).startswith(
        "Only release managers may use !person")


async def test_whoami_shows_the_name_the_sender_gets(chat):
    twin = Sender("matrix:@x:example.org", "x", display_name="Jinsong Liu")
    assert await chat.say("!whoami", sender=twin) == (
        "You are matrix:@x:example.org, shown as Jinsong Liu (@x:example.org) (set a name with "
        "!iam NAME).")
    assert (await chat.say("!claim 1", sender=twin)).startswith(
        "#1 claimed by Jinsong Liu (@x:example.org)")


def test_console_replay_an_import_after_iam_gives_the_name_nothing(tmp_path):
    """The console and `todobot import` as a user runs them, one process each."""
    from tests.test_cli import SEED, todobot
    db = ("--db", "t.sqlite3")
    todobot("import", str(SEED), "--release", "4.2", *db, cwd=tmp_path)
    mal = ("console", *db, "--as", "mal", "--release", "4.2")
    assert todobot(*mal, stdin="!iam George Dunlap\n", cwd=tmp_path).stdout == (
        "<todobot> You are now George Dunlap (was mal).\n")
    (tmp_path / "more.txt").write_text("tools, blockers:\n\n    * xl shutdown hangs (George Dunlap)\n\n")
    out = todobot("import", "more.txt", "--release", "4.2", *db, cwd=tmp_path).stdout
    assert out.splitlines()[0] == "Imported into 4.2: 1 added, 0 updated, 0 unchanged, 0 dropped"
    assert out.splitlines()[-1] == "1 owner needs confirming: !person pending"
    lines = todobot(*mal, stdin="!done 20\n!whoami\n", cwd=tmp_path).stdout.splitlines()
    assert lines == ["<todobot> Only the owners of #20 or a release manager may mark it done; it "
                     "is owned by George Dunlap.",
                     "<todobot> You are console:mal, shown as George Dunlap (mal)."]


async def test_schema_7_confirms_earlier_links_and_keys_names_again(tmp_path):
    import aiosqlite

    from todobot.storage import Database, Repository
    from todobot.storage.migrations import migrate
    path = tmp_path / "six.sqlite3"
    conn = await aiosqlite.connect(path, isolation_level=None)
    assert await migrate(conn, target=6) == 6
    for pid, name, key in [(1, "Jan Beulich", "jan beulich"), (2, "mal", "mal"),
                           (3, "Keir\u3164", "keir\u3164"), (4, "Jan\u2800Beulich", "jan\u2800beulich")]:
        await conn.execute("INSERT INTO persons (id, name, name_key, created_at) VALUES (?, ?, ?, 0)",
                           (pid, name, key))
    for identity, pid, actor in [("irc:oftc/jan", 1, "console:ijc"), ("console:mal", 2, "console:mal")]:
        await conn.execute("INSERT INTO identities (identity, person_id) VALUES (?, ?)", (identity, pid))
        await conn.execute("INSERT INTO history (at, actor, field, before, after) VALUES (0, ?, ?, NULL, ?)",
                           (actor, f"identity {identity}", "x"))
    await conn.close()
    db = await Database.open(path)
    try:
        async with Repository(db).session("t") as s:
            assert (await s.person(1)).confirmed  # linked by a release manager
            assert not (await s.person(2)).confirmed  # created by itself
            assert (await s.person_named("Keir")).id == 3  # keyed as people see it
            assert (await s.person_named("Jan Beulich")).id == 1  # a clash keeps the old key
            assert (await s.import_owner("Jan Beulich")) == (await s.person(1), False)
    finally:
        await db.close()


async def test_an_imported_title_is_cleaned_and_still_matches_an_old_one(chat):
    async with chat.repo.session("t") as s:  # stored before titles were cleaned on import
        await s.execute("UPDATE items SET title = ? WHERE id = 1", ("libxl\u2800stable\u200b API",))
    stats = await _import(chat, title="libxl stable\u3164API")
    assert (stats["added"], stats["updated"]) == (0, 1)
    assert (await chat.item(1)).title == "libxl stable API"
    await _import(chat, title="new\u2800one\u0301 \u0301")
    assert (await chat.item(4)).title == "new one\u0301"
