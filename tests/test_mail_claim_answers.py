"""What a mail that claims without an id is answered when the bot cannot tell which item is
meant: a quoted bullet that is no item, an answered mail that names none, too many items of
one title, a new bullet that could not be added. Each answer says what to do instead, and
nothing is claimed."""

from __future__ import annotations

from . import test_mail_transport
from .test_mail_transport import mail

rig = test_mail_transport.rig  # the fixture


async def answer(rig, body: str, n: int) -> str:
    await rig.deliver(mail("dev@example.org", body, message_id=f"<c{n}@x>"))
    return " ".join(rig.smtp.to("dev@example.org")[-1].get_content().split())


async def owners(rig) -> list[list[str]]:
    async with rig.chat.repo.session("test", write=False) as s:
        return [it.owners for it in await s.items(await s.require_release("4.2"))]


async def test_a_quoted_bullet_that_is_no_item_is_asked_about(rig):
    said = await answer(rig, "> * something nobody wrote down\n\nI can take this one.\n", 1)
    assert "I could not tell which item the quoted text is; say !claim ID." in said
    assert all(o == [] for o in await owners(rig))


async def test_a_top_post_on_a_mail_naming_no_item_is_asked_about(rig):
    said = await answer(rig, "I can take this one\n\nOn Mon, Aug 6, 2012 at 9:58 AM, Ian "
                             "<ian@example.org> wrote:\n> Is anybody looking at the weather?\n", 2)
    assert "the mail you answered names no open item I could find; say !claim ID." in said
    assert all(o == [] for o in await owners(rig))


async def test_a_quoted_title_many_items_share_is_asked_about_without_a_list(rig):
    async with rig.chat.repo.session("test") as s:
        rel = await s.require_release("4.2")
        for _ in range(6):
            await s.add_item(rel, area="tools", severity="nice", title="flaky test")
    said = await answer(rig, "> * flaky test\n\nI can take this one.\n", 3)
    assert "6 items could be meant; which one did you mean? Say !claim ID." in said
    assert "#4" not in said  # not six ids: the answer stays short
    assert all(o == [] for o in await owners(rig))


async def test_a_claim_of_a_new_bullet_that_could_not_be_added_claims_nothing(rig):
    rig.transport.cfg = rig.transport.cfg.model_copy(update={"acks_per_hour": 10})
    for n in range(5):  # this hour's adds used up
        await rig.deliver(mail("dev@example.org", f"!add tools nice thing {n}\n",
                               message_id=f"<add{n}@x>"))
    said = await answer(rig, "> tools, nice to have:\n\n* one more thing\n\nI can take this one.\n", 4)
    assert "the limit is 5" in said and "claimed" not in said
    async with rig.chat.repo.session("test", write=False) as s:
        titles = [it.title for it in await s.items(await s.require_release("4.2"))]
    assert "one more thing" not in titles
