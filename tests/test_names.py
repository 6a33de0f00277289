"""Names compare as people see them (invisible and blank-looking characters in names and
titles); owners do not mint people."""

from __future__ import annotations

import pytest

from todobot.commands.claims import MAX_OWNERS
from todobot.commands.messages import Sender
from todobot.storage.names import clean, name_key, visible


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


async def _persons(chat) -> int:
    async with chat.repo.session("t", write=False) as s:
        return len(await s.persons())


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
