"""!whois and the release manager's !person, as text in and reply out: every answer, each
refusal and each malformed argument gets its one line."""

from __future__ import annotations

import pytest


async def test_whois_by_name_identity_placeholder_and_nobody(chat):
    await chat.say("!iam George Dunlap", "george")
    assert await chat.say("!whois George Dunlap") == "George Dunlap is console:george."
    assert await chat.say("!whois console:george") == "George Dunlap is console:george."
    assert await chat.say("!whois Jinsong Liu") == (
        "Jinsong Liu is a name from an imported list, not yet bound to anyone.")
    assert await chat.say("!whois Nobody Here") == "Nobody is called Nobody Here."
    assert await chat.say("!whois matrix:@ghost:example.org") == (
        "Nobody is called matrix:@ghost:example.org.")


async def test_iam_twice_and_renaming_oneself(chat):
    assert await chat.say("!iam George", "george") == "You are now George (was george)."
    assert await chat.say("!iam George", "george") == "You are already George."
    assert await chat.say("!iam George Dunlap", "george") == (
        "You are now George Dunlap (was George).")
    assert (await chat.say("!iam George Dunlap", "mal")).startswith(
        "George Dunlap is taken by console:george")


async def test_person_list_show_and_pending(chat):
    await chat.say("!iam George Dunlap", "george")
    await chat.say("!claim 1", "george")
    listing = await chat.say("!person list")
    assert listing.startswith("People: ")
    assert "George Dunlap — console:george" in listing
    assert "Jinsong Liu — nobody yet (from an imported list)" in listing
    assert await chat.say("!person show George Dunlap") == (
        "George Dunlap — console:george; owns 1 open item.")
    assert await chat.say("!person show Jinsong Liu") == (
        "Jinsong Liu — nobody yet (from an imported list); owns 1 open item.")
    assert await chat.say("!person show Nobody") == "Nobody is called Nobody."
    assert await chat.say("!person pending") == "No name requests are waiting."
    assert (await chat.say("!iam Jinsong Liu", "jinsong")).endswith("Asked.")
    pending = await chat.say("!person pending")
    assert pending.startswith("Waiting for a release manager:")
    assert 'console:jinsong says they are Jinsong Liu: !person link "Jinsong Liu" console:jinsong' \
        in pending


@pytest.mark.parametrize("rest", ['"Jinsong Liu" "Jinsong L"', "Jinsong Liu -> Jinsong L"])
async def test_person_rename_by_quotes_or_arrow(chat, rest):
    assert await chat.say(f"!person rename {rest}") == "Jinsong Liu is now called Jinsong L."
    assert (await chat.item(3)).owners == ["Jinsong L"]


async def test_person_rename_onto_a_taken_name_points_to_merge(chat):
    await chat.say("!iam George Dunlap", "george")
    assert await chat.say("!person rename Jinsong Liu -> George Dunlap") == (
        "George Dunlap is taken by console:george; !person merge them instead.")
    assert (await chat.item(3)).owners == ["Jinsong Liu"]


async def test_person_merge_moves_items_and_refuses_one_person_twice(chat):
    await chat.say("!iam Jinsong", "jinsong")
    assert await chat.say("!person merge Jinsong Liu -> Jinsong") == (
        "Jinsong Liu merged into Jinsong (1 item changed).")
    assert (await chat.item(3)).owners == ["Jinsong"]
    assert (await chat.say("!done 3", "jinsong")).startswith("#3 done")
    assert await chat.say("!person merge Jinsong -> Jinsong") == "That is the same person."


@pytest.mark.parametrize(("line", "answer"), [
    ('!person rename "Jinsong Liu', "unbalanced quotes"),
    ("!person rename Jinsong Liu Jinsong L", 'put names in quotes: "NAME" "NEW NAME", or use ->'),
    ("!person rename Jinsong Liu ->", ""),
    ("!person link Jinsong Liu jinsong", "link NAME IDENTITY, the identity like irc:oftc/jbeulich"),
    ("!person unlink Jinsong Liu", "unlink NAME IDENTITY, the identity like irc:oftc/jbeulich"),
])
async def test_malformed_person_arguments_answer_with_the_usage(chat, line, answer):
    reply = await chat.say(line)
    assert reply.startswith("Usage: !person ") and answer in reply, reply
    assert len(reply.splitlines()) == 1


async def test_person_link_of_a_new_name_mints_a_person_for_the_identity(chat):
    assert await chat.say('!person link "Keir Fraser" console:keir') == (
        "Keir Fraser is now console:keir.")
    assert await chat.say("!whois console:keir") == "Keir Fraser is console:keir."
    assert await chat.say('!person link "unclaimed" console:bad') == (
        "'unclaimed' is a word the list uses (unclaimed, DONE, none, ?), not a name.")
    assert await chat.say("!whois console:bad") == "Nobody is called console:bad."
