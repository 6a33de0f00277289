"""'I can take this one': claims from plain language, and never from ordinary talk."""

from __future__ import annotations

import pytest

from todobot.commands.natural import claim_intent


@pytest.mark.parametrize("text,item", [
    ("I can take this one.", None), ("I can take this one", None), ("i'll take this", None),
    ("I'll take it!", None), ("I will take that one", None), ("mine", None), ("Mine!", None),
    ("I can take #12", 12), ("ok, I'll take #7", 7), ("sure, I can do this one :)", None),
    ("todobot: I can take this one", None), ("I'm on it", None), ("mine #4", 4),
    ("I can take item 9", 9), ("I  can   take this one 👍", None),
    ("I can take this one. We have a couple of boxes to test it on.", None),
    ("I'll take #4. Patch coming tomorrow.", 4), ("I can take this one. No problem.", None),
])
def test_claim_phrases(text, item):
    intent = claim_intent(text)
    assert intent is not None, text
    assert intent.item_id == item


@pytest.mark.parametrize("text", [
    "I'll take a look at the logs", "can you take this one?", "take this one", "I can take it or leave it",
    "who will take this?", "this is mine to worry about", "I can't take this one", "not mine",
    "It will take a while", "we should take the simple xencommons patch",
    "I can take this one, but only next week after the release of the thing we talked about",
    "I can take this one. But not before May.", "I'll take it. Or should Jan?",
    "I can take this one. Just kidding.", "I'll take it. No, Jan should.", "I'll take a look. We have boxes to test it on.",
])
def test_ordinary_conversation_is_not_a_claim(text):
    assert claim_intent(text) is None


@pytest.mark.parametrize("text,ids", [
    ("I'll take #4 and #7", (4, 7)), ("I can take #4, #7 and #9.", (4, 7, 9)),
    ("mine #3", (3,)), ("I'll take items #2 & #5", (2, 5)), ("I can take this one", ()),
])
def test_every_item_named_is_claimed(text, ids):
    assert claim_intent(text).item_ids == ids


async def test_claims_two_named_items_in_chat(chat):
    out = await chat.say("I'll take #1 and #2", "george")
    assert out.splitlines()[0].startswith("#1 claimed by george")
    assert out.splitlines()[1].startswith("#2 claimed by george")
    assert (await chat.item(1)).owners == ["george"] and (await chat.item(2)).owners == ["george"]


async def test_claims_the_item_just_added(chat):
    await chat.say("!add tools nice [BUG] vcpu-set doesn't take effect on guest")
    assert await chat.say("I can take this one.", "george") == (
        "#4 claimed by george (was unclaimed): [BUG] vcpu-set doesn't take effect on guest")
    assert (await chat.item(4)).owners == ["george"]


async def test_named_item_wins(chat):
    await chat.say("!show 1")
    assert (await chat.say("I can take #2", "george")).startswith("#2 claimed by george")


async def test_ambiguous_asks_instead_of_guessing(chat):
    await chat.say("!blockers")  # names #1 and #2
    assert await chat.say("I can take this one", "george") == "Which one: #1 or #2? Say !claim ID."
    assert (await chat.item(1)).owners == [] and (await chat.item(2)).owners == []


async def test_too_many_candidates(chat):
    for i in range(6):
        await chat.say(f"!add tools nice item {i}")
    await chat.say("!todo")
    assert await chat.say("mine", "george") == "Which one? Say !claim ID."


async def test_stale_context_and_other_rooms_are_ignored(chat):
    await chat.say("!add tools nice thing")
    assert await chat.say("I can take this one", "george", room="other") is None
    chat.clock.now += 601
    assert await chat.say("I can take this one", "george") is None
    assert (await chat.item(4)).owners == []


async def test_no_context_stays_quiet(chat):
    assert await chat.say("I can take this one", "george") is None


async def test_casual_claim_does_not_join_someone_elses_item(chat):
    await chat.say("!show 3")
    assert await chat.say("I'll take it", "george") == (
        "#3 is already claimed by Jinsong Liu; say !claim 3 to join as co-owner.")
    assert (await chat.item(3)).owners == ["Jinsong Liu"]


async def test_reply_to_a_bot_message_names_the_item(chat):
    await chat.say("!blockers")
    out = await chat.say("I can take this one", "george", refers_to=(2,))
    assert out.startswith("#2 claimed by george")


async def test_unknown_named_item(chat):
    assert (await chat.say("I can take #99", "george")).startswith("No item #99: ")
