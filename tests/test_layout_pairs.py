"""Any layout's export reads back whole: a list read in one layout, exported in another and
imported again, has the same items, field by field (the section, which names a layout's own
heading, aside); and a text in no layout is refused in one line."""

from __future__ import annotations

from dataclasses import astuple, replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_layouts import DEV, SEED, dev_lists
from todobot.storage.layouts import LAYOUTS, WRITERS, MailFormatError, by_name, parse, render
from todobot.storage.layouts.devupdate import walk
from todobot.storage.models import ListItem

DATA = Path(__file__).resolve().parent / "data"
SAMPLES = {"xen-4.2": SEED.read_text(encoding="utf-8"), "xen-dev-update": DEV,
           "markdown-checklist": (DATA / "markdown-checklist.md").read_text(encoding="utf-8"),
           "regzbot": (DATA / "regzbot-report.txt").read_text(encoding="utf-8"),
           "xen-release-update": (DATA / "xen-release-update.txt").read_text(encoding="utf-8")}


def fields(items: list[ListItem]) -> list[tuple]:
    """Every field but the section, children included; in an order no layout changes (each
    groups items under its own headings)."""
    return sorted((astuple(replace(it, section="", children=[])) + (fields(it.children),)
                   for it in items), key=repr)


def test_every_layout_has_a_sample_detected_as_itself():
    assert set(SAMPLES) == set(LAYOUTS)
    for name, text in SAMPLES.items():
        lst = parse(text, "r")
        assert lst.layout == name and lst.items, name


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("reader", list(LAYOUTS))
def test_each_sample_exported_in_each_layout_reads_back_whole(reader, writer):
    lst = by_name(reader).parse(SAMPLES[reader], "r")
    mail = render(lst, layout=writer)
    again = by_name(writer).parse(mail, "r")
    assert again.warnings == [], mail
    assert sum(1 for _ in walk(again.items)) == sum(1 for _ in walk(lst.items))
    assert fields(again.items) == fields(lst.items), mail


def test_a_dev_update_exported_as_xen42_keeps_the_items_without_an_area():
    lst = by_name("xen-dev-update").parse(DEV, "4.3")
    mail = render(lst, layout="xen-4.2")
    assert "(no area), nice to have:" in mail.splitlines() and ", nice to have:" not in [
        ln for ln in mail.splitlines() if ln.startswith(",")]
    again = by_name("xen-4.2").parse(mail, "4.3")
    assert sum(1 for _ in walk(again.items)) == 10 and again.warnings == []
    assert sorted(it.area for it in again.items) == sorted(it.area for it in lst.items)


@given(lst=dev_lists(), reader=st.sampled_from(WRITERS), writer=st.sampled_from(WRITERS),
       ids=st.booleans())
def test_a_list_read_in_one_layout_exports_in_any_other_and_reads_back_whole(lst, reader, writer,
                                                                              ids):
    # Items are the point (xen-4.2 needs a date per milestone); sub-items share their parent's
    # severity, as every layout's round trip asks.
    lst = replace(lst, milestones=[], items=_shared_severity(lst.items))
    read = by_name(reader).parse(by_name(reader).render(lst), "r")
    mail = by_name(writer).render(read, ids=ids)
    again = by_name(writer).parse(mail, "r")
    assert again.warnings == [], mail
    want = read if ids else replace(read, items=_no_ids(read.items))
    assert fields(again.items) == fields(want.items), mail


def _shared_severity(items: list[ListItem], severity: str | None = None) -> list[ListItem]:
    return [replace(it, severity=severity or it.severity,
                    children=_shared_severity(it.children, severity or it.severity))
            for it in items]


def _no_ids(items: list[ListItem]) -> list[ListItem]:
    return [replace(it, id=None, duplicate_of=None, children=_no_ids(it.children)) for it in items]


@pytest.mark.parametrize("text", ["Hi all -- a quick note.\n\nThanks.\n", "", "====\n"])
def test_a_text_in_no_layout_is_refused_in_one_line_naming_the_layouts(text):
    with pytest.raises(MailFormatError) as e:
        parse(text, "r")
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith("no TODO list found in any known layout (tried "
                              + ", ".join(LAYOUTS) + ")")
    if text.strip():
        assert 'line 1: "' in message


# Lines and fragments of every layout's syntax, shuffled: each reader returns a list or
# refuses the text with MailFormatError (never another exception), and what a layout that
# writes has read renders to a fixed point.
FRAGMENTS = ["## Blockers", "## Timeline", "### area", "# T", "- [ ] ", "- [x] ", "  - [ ] ", "- ",
             "  ", "    ", "(@a, @b; p)", " — @c", "**#5** ", "[BUG] ", "\\", "\\@", "state: done",
             "severity: blocker", "status: x", "Links: http://x.org/a", "Details: ", "> n",
             "OPEN ISSUES AND BLOCKERS", "====", "----", "Information from", "Title: ", "Owners: a",
             "Friday 8th January PASSED x", "Schedule:", "x -- y", "<== WE ARE HERE", "regzbot",
             "[ *NEW* ] t", "Introduced in 0123456789abc (v1..v2)", "By A; 1 days ago.",
             "Fix incoming:", "* f", "End of report", "tools, blockers:", "== Bugs ==", "--",
             "http://x.org/b", "<m@id>", "\n", "\n\n", "\r\n", "\t"]


@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=40)
       .map("".join), st.sampled_from(list(LAYOUTS)))
def test_any_text_reads_or_is_refused_and_rerenders_to_a_fixed_point(text, name):
    try:
        lst = by_name(name).parse(text, "r")
    except MailFormatError:
        return
    if name not in WRITERS:
        return
    module = by_name(name)
    again = module.parse(module.render(lst), "r")
    assert module.render(again) == module.render(module.parse(module.render(again), "r"))
