"""The Xen release update layout (2020-2021 xen-devel status mails): field by field, the
schedule, and its round trips."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.test_layouts import (  # noqa: F401  (fresh_dbs: the shared-database fixture)
    _db_round_trip, _no_ids, _shared_fixture, dev_lists, fresh_dbs)
from todobot.storage.layouts import detect, xenrelease
from todobot.storage.models import ListItem, Milestone, ReleaseList

MAIL = (Path(__file__).resolve().parent / "data" / "xen-release-update.txt").read_text(encoding="utf-8")
BLOCKERS = "OPEN ISSUES AND BLOCKERS"


def X(title: str, section: str, area: str = "", **kw) -> ListItem:
    state, severity = {BLOCKERS: ("open", "blocker"), "OPEN ISSUES": ("open", "nice"),
                       "COMPLETED": ("done", "nice")}[section]
    return ListItem(area=area, severity=severity, state=state, title=title, section=section, **kw)


EXPECTED = [
    X("Guests hang on resume with the new timer code", BLOCKERS, "Hypervisor",
      details="Seen on two AMD hosts after a suspend and resume cycle; reverting the timer "
              "rework makes it go away.",
      links=["https://lists.xenproject.org/archives/html/xen-devel/2099-01/msg00123.html",
             "<20990115.1234.abc@example.org>"],
      notes=["Information from Erika Example <erika@example.org>",
             "Information from Max Sample <max@example.com>"]),
    X("xl create fails when the config has no vif entry", BLOCKERS, "Tools",
      details="Regression since 9.8.", links=["<20990118.2222.def@example.com>"],
      notes=["Information from Jane Tester"]),
    X("Documentation of the new scheduler options is missing", "OPEN ISSUES",
      notes=["Information from Pat Writer"]),
    X("Build failure with the newest compiler", "COMPLETED",
      details="Fixed by the patch to the assembler macros."),
]


def test_release_update_issues_field_by_field():
    lst = xenrelease.parse(MAIL, "9.9")
    assert lst.layout == "xen-release-update" and lst.warnings == []
    assert lst.items == EXPECTED


def test_release_update_schedule_and_intro():
    lst = xenrelease.parse(MAIL, "9.9")
    assert lst.milestones == [
        Milestone("Friday 8th January", "Last posting date", done=True),
        Milestone("Friday 22nd January", "Feature freeze", done=True),
        Milestone("Friday 5th February", "**tentative** Code freeze", current=True),
        Milestone("Week of 8th March", "**tentative** Release")]
    assert lst.intro.startswith("This is the weekly status of the Xen 9.9 release.")
    assert lst.intro.endswith("Patches adding new features should be posted by this date.")


def test_release_update_detected_and_exported_to_a_fixed_point():
    assert detect(MAIL) is xenrelease
    once = xenrelease.render(xenrelease.parse(MAIL, "9.9"))
    assert xenrelease.parse(once, "9.9") == xenrelease.parse(MAIL, "9.9")
    assert xenrelease.render(xenrelease.parse(once, "9.9")) == once
    for line in [BLOCKERS, "=" * len(BLOCKERS), "Tools", "-----", "  Information from",
                 "    Jane Tester", "Friday 8th January PASSED Last posting date",
                 "Friday 5th February **tentative** Code freeze  <== WE ARE HERE"]:
        assert line in once.splitlines(), line


def test_release_update_explicit_lines():
    it = ListItem(area="", severity="blocker", title="[X] looks like a tag", state="deferred",
                  owners=["Ian J"], progress="v2", details="- not a child", section="Issues",
                  notes=["plain note", "Information from Someone"],
                  children=[ListItem(area="", severity="blocker", title="", section="Issues")])
    lst = ReleaseList(release=None, milestones=[Milestone("Weekly", "RC", done=True)], items=[it])
    out = xenrelease.render(lst)
    assert "Title: [X] looks like a tag\n  Owners: Ian J\n  Progress: v2\n  State: deferred\n" \
           "  Severity: blocker\n  Details: - not a child\n  Note: plain note\n" \
           "  Information from\n    Someone\n  - Title:\n" in out
    assert "Weekly -- PASSED RC" in out
    assert xenrelease.parse(out) == replace(lst, layout="xen-release-update")


@given(dev_lists(), st.integers(30, 100))
def test_release_update_parse_render_roundtrip(lst, width):
    lst = replace(lst, layout=xenrelease.NAME)
    mail = xenrelease.render(lst, width=width)
    assert xenrelease.parse(mail, "r") == lst, mail
    mail = xenrelease.render(lst, ids=False)
    assert xenrelease.parse(mail, "r") == replace(lst, items=_no_ids(lst.items)), mail


@_shared_fixture
@given(lst=dev_lists(), ids=st.booleans())
def test_release_update_export_import_export_is_byte_identical(fresh_dbs, lst, ids):  # noqa: F811
    _db_round_trip(fresh_dbs, replace(lst, layout=xenrelease.NAME), ids)
