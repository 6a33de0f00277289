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


# ---------------------------------------------------------------- matching without ids


async def _owners(chat, release: str) -> list[tuple[int, str, list[str]]]:
    lst = await _export(chat, release)
    return [(it.id, it.area, it.owners) for it in lst.items]


async def test_reordering_two_items_with_one_title_keeps_their_owners(chat):
    await _import(chat, "tools, blockers:\n\n    * Fix the build (Ian C)\n\n"
                        "    * Fix the build (Jan Beulich)\n", release="r")
    before = await _owners(chat, "r")
    stats = await _import(chat, "tools, blockers:\n\n    * Fix the build (Jan Beulich)\n\n"
                                "    * Fix the build (Ian C)\n", release="r")
    assert stats == {"added": 0, "updated": 0, "unchanged": 2, "dropped": 0}
    assert await _owners(chat, "r") == before


async def test_equal_titles_match_by_section_then_by_position(chat):
    await _import(chat, "tools, blockers:\n\n    * Docs\n\n    * Docs\n\n"
                        "hypervisor, blockers:\n\n    * Docs\n", release="r")
    [(t1, _, _), (t2, _, _), (h, _, _)] = await _owners(chat, "r")
    stats = await _import(chat, "hypervisor, blockers:\n\n    * Docs (Jan Beulich)\n\n"
                                "tools, blockers:\n\n    * Docs\n\n    * Docs (Ian C)\n", release="r")
    assert stats == {"added": 0, "updated": 2, "unchanged": 1, "dropped": 0}
    assert await _owners(chat, "r") == [(t1, "tools", []), (t2, "tools", ["Ian C"]),
                                        (h, "hypervisor", ["Jan Beulich"])]


async def test_an_item_moved_to_completed_is_the_same_item(chat):
    from todobot.storage.layouts import devupdate
    text = "== Open ==\n\n* Race in claim hypercall\n  owner: Konrad Wilk\n\n* Other\n"
    async with chat.repo.session("t") as s:
        await s.import_list("4.3", devupdate.parse(text, "4.3"))
    moved = "== Completed ==\n\n* Race in claim hypercall\n  owner: Konrad Wilk\n\n== Open ==\n\n* Other\n"
    async with chat.repo.session("t") as s:
        stats = await s.import_list("4.3", devupdate.parse(moved, "4.3"))
        rel = await s.require_release("4.3")
        assert rel.layout == "xen-dev-update"
    assert stats == {"added": 0, "updated": 1, "unchanged": 1, "dropped": 0}
    lst = await _export(chat, "4.3")
    assert [(it.title, it.section, it.state) for it in lst.items] == [
        ("Race in claim hypercall", "Completed", "done"), ("Other", "Open", "open")]
