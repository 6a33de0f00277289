"""An owner is a person known by an identity: a display name or nick that equals an owner's
name proves nothing, however authenticated the sender is."""

from __future__ import annotations

import pytest

from todobot.commands.messages import Sender
from todobot.storage import ListItem, ReleaseList


async def _history(chat) -> list[tuple]:
    async with chat.repo.session("t", write=False) as s:
        return [tuple(r) for r in await s._all("SELECT * FROM history ORDER BY id")]


@pytest.fixture
async def owned(chat):
    """#4 owned by the placeholder "Jan Beulich" (an imported name), #5 by Bob (console:bob)."""
    async with chat.repo.session("cli:import") as s:
        await s.import_list("4.2", ReleaseList("4.2", items=[ListItem(
            area="hypervisor", severity="nice", title="PoD problems", owners=["Jan Beulich"])]))
    assert (await chat.say("!add tools nice a thing of Bob's", "bob")).startswith("Added #5")
    assert (await chat.say("!claim 5", "bob")).startswith("#5 claimed by bob")
    return chat


# Logged in, each as someone else, each showing an owner's name as their nick or display name.
NAMESAKES = {
    "Matrix display name of a placeholder": (4, Sender(
        "matrix:@mal:example.org", "mal", display_name="Jan Beulich")),
    "IRC account whose nick is a placeholder's name": (4, Sender("irc:net/mal", "Jan Beulich")),
    "Matrix display name of a person": (5, Sender(
        "matrix:@eve:example.org", "eve", display_name="bob")),
    "IRC account whose nick is a person's name": (5, Sender("irc:net/mallory", "bob")),
}


@pytest.mark.parametrize("who", list(NAMESAKES))
@pytest.mark.parametrize("command", ["!done {id}", "!unclaim {id}", "!assign {id} mal",
                                     "!reopen {id}"])
async def test_a_namesake_never_acts_as_the_owner(owned, who, command):
    item_id, sender = NAMESAKES[who]
    before = await _history(owned)
    reply = await owned.reply(command.format(id=item_id), sender=sender)
    assert reply is not None and reply.outcome == "refused", (who, reply and reply.plain)
    assert reply.plain.startswith(f"Only the owners of #{item_id}"), reply.plain
    assert await _history(owned) == before
