"""Importing into an existing release updates it: match by id, else by title; --replace drops."""

from __future__ import annotations

from pathlib import Path

from todobot.storage.formats import from_json, to_json
from todobot.storage.layouts.xen42 import parse_mail, render_mail

SEED = (Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt").read_text()


async def _import(chat, text: str, *, replace: bool = False, release: str = "4.2"):
    async with chat.repo.session("console:ijc") as s:
        return await s.import_list(release, parse_mail(text, release), replace=replace)


async def _export(chat, release: str = "4.2"):
    async with chat.repo.session("t", write=False) as s:
        return await s.export_list(await s.require_release(release))


async def test_hand_edited_mail_without_ids_updates_by_title(chat):
    stats = await _import(chat, SEED, release="4.2-seed")
    assert stats == {"added": 19, "updated": 0, "unchanged": 0, "dropped": 0}
    edited = SEED.replace("    * [CHECK] Confirm that migration from Xen 4.1 -> 4.2 works.",
                          "    * [CHECK] Confirm that migration from Xen 4.1 -> 4.2 works.\n"
                          "      (Ian Jackson, in progress)")
    edited = edited.replace("hypervisor, nice to have:", "hypervisor, nice to have:\n\n"
                            "    * fix S3 regression(s?) reported by Ben Guthro\n")
    stats = await _import(chat, edited, release="4.2-seed")
    assert stats == {"added": 1, "updated": 1, "unchanged": 18, "dropped": 0}
    lst = await _export(chat, "4.2-seed")
    check = next(it for it in lst.items if it.title.startswith("Confirm that migration"))
    assert (check.owners, check.progress, check.id) == (["Ian Jackson"], "in progress", 11)
    assert any(it.title == "fix S3 regression(s?) reported by Ben Guthro" for it in lst.items)


async def test_exported_mail_with_ids_matches_by_id_even_when_retitled(chat):
    await _import(chat, SEED, release="4.2-seed")
    mail = render_mail(await _export(chat, "4.2-seed"))
    mail = mail.replace("Bump library SONAMES as necessary.", "Bump library SONAMES for 4.2.")
    stats = await _import(chat, mail, release="4.2-seed")
    assert stats["added"] == 0 and stats["updated"] == 1
    async with chat.repo.session("t", write=False) as s:
        assert (await s.get(13)).title == "Bump library SONAMES for 4.2."
        assert [c.field for c in await s.history(13)] == ["created", "title"]


async def test_replace_drops_what_the_mail_no_longer_names(chat):
    await _import(chat, SEED, release="4.2-seed")
    shorter = SEED.replace("    * Block script support (Ian C, DONE)\n", "")
    assert (await _import(chat, shorter, release="4.2-seed"))["dropped"] == 0
    stats = await _import(chat, shorter, release="4.2-seed", replace=True)
    assert stats["dropped"] == 1
    async with chat.repo.session("t", write=False) as s:
        assert (await s.get(10)).state == "dropped"
        assert (await s.get(10)).title == "Block script support"


def _without_ids(items):
    for it in items:
        it.id = None
        _without_ids(it.children)
    return items


async def test_json_round_trip_through_the_database(chat):
    await _import(chat, SEED, release="4.2-seed")
    await chat.say("!note 4 a note")
    await chat.say("!dup 5 4")
    original = await _export(chat, "4.2-seed")
    async with chat.repo.session("t") as s:
        await s.import_list("copy", from_json(to_json(original)))
    copy = await _export(chat, "copy")
    assert copy.milestones == original.milestones
    # The ids in the file belong to 4.2-seed already, so the copy gets new ones.
    assert copy.items[0].children[0].duplicate_of == copy.items[0].id
    for it in (copy.items[0].children[0], original.items[0].children[0]):
        it.duplicate_of = None
    assert _without_ids(copy.items) == _without_ids(original.items)
    assert original.items[0].notes == ["a note"]
