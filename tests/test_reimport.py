"""A re-import carries every field of the mail, the state included."""

from __future__ import annotations

from pathlib import Path

from todobot.storage.layouts.xen42 import parse_mail

SEED = (Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt").read_text()
LINE = "      <20502.39440.969619.824976@mariner.uk.xensource.com>"  # the bullet's last line


async def _import(chat, text: str):
    async with chat.repo.session("console:ijc") as s:
        return await s.import_list("seed", parse_mail(text, "seed"))


async def _item(chat, title: str):
    async with chat.repo.session("t", write=False) as s:
        rel = await s.require_release("seed")
        return next(it for it in await s.items(rel, states=None) if it.title == title)


async def test_done_in_the_mail_closes_the_item_and_open_again_reopens_it(chat):
    assert LINE in SEED
    await _import(chat, SEED)
    assert (await _item(chat, "Bump library SONAMES as necessary.")).state == "open"
    stats = await _import(chat, SEED.replace(LINE, LINE + " (Ian Campbell, DONE)"))
    assert stats["updated"] == 1
    item = await _item(chat, "Bump library SONAMES as necessary.")
    assert (item.state, item.owners) == ("done", ["Ian Campbell"])
    await _import(chat, SEED)
    assert (await _item(chat, "Bump library SONAMES as necessary.")).state == "open"
