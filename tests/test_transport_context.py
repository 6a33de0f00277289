"""What transports tell the dispatcher about context: replies that name nothing, threads,
actions such as !leave, and the cooldown that counts every command (no network)."""

from __future__ import annotations

from dataclasses import replace

from todobot.commands.messages import Message, Sender


async def test_a_reply_naming_no_item_asks_instead_of_guessing(chat):
    await chat.say("!show 3")  # the room's last named item
    assert await chat.say("I can take this one", "george", refers_to=()) == (
        "Which one? Say !claim ID.")
    assert await chat.say("I can take this one", "george", refers_to=(1, 3)) == (
        "Which one: #1 or #3? Say !claim ID.")
    assert (await chat.item(3)).owners == ["Jinsong Liu"]
    assert (await chat.item(1)).owners == []


async def test_items_named_in_a_thread_are_not_the_rooms(chat):
    await chat.say("!show 3")
    sender = Sender(identity="matrix:@ijc:x", nick="ijc")
    in_thread = Message(transport="matrix", room="!r:x", sender=sender, text="!show 1",
                        thread="$root")
    await chat.dispatcher.handle(replace(in_thread, room="console", transport="console"))
    # The thread's #1 did not replace the room's #3.
    assert chat.dispatcher.recent_items("console", "console") == (3,)


async def test_leave_is_for_release_managers_where_the_transport_can(chat):
    leave = frozenset({"leave"})
    refused = await chat.reply("!leave", "bob", actions=leave)
    assert refused.plain == "Only release managers may use !leave."
    assert refused.action is None
    done = await chat.reply("!leave", "ijc", actions=leave)
    assert (done.plain, done.action) == ("Leaving this room.", "leave")
    cannot = await chat.reply("!leave", "ijc")
    assert cannot.action is None and cannot.plain.startswith("I cannot leave rooms here")


async def test_refused_commands_count_and_the_warning_comes_once_per_quiet_period(chat):
    answers = []
    for _ in range(30):  # one a second: the bucket refills a token between each
        answers.append(await chat.say("!leave", "mallory", transport="matrix"))
        chat.clock.now += 0.6
    said = [a for a in answers if a is not None]
    warnings = [a for a in said if "too many commands" in a]
    assert len(warnings) == 1, said
    assert len(said) < 30
    # Quiet until the bucket is full again: a new flood is warned about once more.
    chat.clock.now += 60
    more = [await chat.say("!leave", "mallory", transport="matrix") for _ in range(30)]
    assert sum("too many commands" in (a or "") for a in more) == 1


async def test_iam_refuses_a_matrix_user_id(chat):
    assert await chat.say("!iam @alice:localhost", "mallory") == (
        "That is a Matrix user id, not a name: say a name, like !iam Ada Lovelace.")
