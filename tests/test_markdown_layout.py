"""The Markdown checklist layout: a release-tracking issue field by field, the forms people
write, the export being this layout, and its round trips (render/parse and through a database)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_layouts import (  # noqa: F401  (fresh_dbs: the shared-database fixture)
    DEV, _db_round_trip, _no_ids, _shared_fixture, dev_lists, fresh_dbs)
from tests.test_mail_import import assert_items
from todobot.storage.layouts import MailFormatError, detect, devupdate, markdown, render
from todobot.storage.models import ListItem, Milestone, ReleaseList

DATA = Path(__file__).resolve().parent / "data"
SAMPLE = (DATA / "markdown-checklist.md").read_text(encoding="utf-8")


def M(title: str, section: str, **kw) -> ListItem:
    state, severity = devupdate.SECTIONS[section.casefold()]
    kw.setdefault("area", "")
    return ListItem(title=title, section=section, state=kw.pop("state", state),
                    severity=kw.pop("severity", severity), **kw)


EXPECTED = [
    M("Crash when the config file is empty https://git.example.org/frob/issues/41", "Blockers",
      owners=["alice", "bob"], progress="patch posted", details="Reproduced on both arm64 and x86.",
      links=["https://git.example.org/frob/issues/41", "<20260301.1234.abc@mail.example.org>"]),
    M("Migration loses the frob_level setting", "Blockers", owners=["carol"],
      children=[M("Document the manual workaround", "Blockers"),
                M("Add a regression test", "Blockers", state="done")]),
    M("Debian packaging fails to build", "Blockers", area="Packaging",
      notes=["Ask the packagers whether this blocks them"]),
    M("Rewrite the quick start guide", "Nice to have", tags=["DOCS"]),
    M("Drop the Python 3.9 shim", "Nice to have", state="done"),
    M("Switch CI to the new runners", "Done", owners=["dave"]),
]


def test_checklist_items_field_by_field():
    lst = markdown.parse(SAMPLE, "2.0")
    assert lst.layout == "markdown-checklist" and lst.warnings == []
    assert_items(lst.items, EXPECTED)
    assert lst.milestones == [Milestone("2 March", "Feature freeze", done=True),
                              Milestone("16 March", "First RC", current=True),
                              Milestone("", "Final release")]
    assert lst.intro == ("This issue tracks what must land before 2.0 ships. Comment here if\n"
                         "something is missing.")


def test_checklist_is_detected_as_itself_and_the_others_as_before():
    assert detect(SAMPLE) is markdown
    assert detect(DEV) is devupdate
    seed = (Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt").read_text()
    assert detect(seed).NAME == "xen-4.2"


def test_checklist_export_is_a_byte_fixed_point_and_moves_checked_items_to_done():
    once = markdown.render(markdown.parse(SAMPLE, "2.0"))
    assert markdown.render(markdown.parse(once, "2.0")) == once
    # A checked item under a heading that says open moves to the list's done heading.
    assert once.index("Drop the Python 3.9 shim") > once.index("## Done")
    assert "- [ ] Migration loses the frob\\_level setting (@carol)" in once.splitlines()


def test_owner_and_progress_forms():
    text = ("## Open\n\n- [ ] a (@x, @Ian Campbell; v2 posted)\n- [ ] b — @y\n"
            "- [ ] c (external)\n- [ ] d (@z)\n  status: acked\n- [ ] #123 issue reference\n"
            "- [ ] **#7** [BUG] [X] own id\n  state: duplicate of #3\n  severity: blocker\n"
            "- plain bullet\n")
    items = markdown.parse(text, "r").items
    assert [(i.title, i.owners, i.progress) for i in items] == [
        ("a", ["x", "Ian Campbell"], "v2 posted"), ("b", ["y"], ""), ("c (external)", [], ""),
        ("d", ["z"], "acked"), ("#123 issue reference", [], ""), ("own id", [], ""),
        ("plain bullet", [], "")]
    own = items[5]
    assert (own.id, own.tags, own.state, own.duplicate_of, own.severity) == (
        7, ["BUG", "X"], "duplicate", 3, "blocker")


def test_unknown_heading_warns_and_reads_as_open_nice():
    lst = markdown.parse("## Wishlist\n\n- [ ] a\n\nsome prose\n", "r")
    [it] = lst.items
    assert (it.state, it.severity, it.section) == ("open", "nice", "Wishlist")
    assert lst.warnings == ['line 1: unknown section "Wishlist": its items read as open, nice to have',
                            'line 5: not understood: "some prose"']


def test_a_checklist_without_headings_is_a_list_and_prose_is_refused():
    [a, b] = markdown.parse("Some intro.\n\n- [ ] a\n- [x] b\n", "r").items
    assert (a.state, a.severity, b.state) == ("open", "nice", "done")
    with pytest.raises(MailFormatError, match="no TODO list found"):
        markdown.parse("Just prose\n- a bullet\n", "r")


def test_escapes_keep_text_as_text():
    it = ListItem(area="", severity="nice", title="[X] *not bold* (@not an owner) #5 a_b",
                  details="- not a sub-item", notes=["@Ian to ask"], progress="v2; acked",
                  owners=["Jan; Beulich"], section="Open")
    lst = ReleaseList(release=None, items=[it], layout=markdown.NAME)
    out = markdown.render(lst)
    assert "\\[X\\] \\*not bold\\* (\\@not an owner) \\#5 a\\_b" in out
    assert markdown.parse(out).items == [it]


@given(dev_lists())
def test_markdown_parse_render_roundtrip(lst):
    lst = replace(lst, layout=markdown.NAME)
    mail = markdown.render(lst)
    assert markdown.parse(mail, "r") == lst, mail
    mail = markdown.render(lst, ids=False)
    assert markdown.parse(mail, "r") == replace(lst, items=_no_ids(lst.items)), mail


@_shared_fixture
@given(lst=dev_lists(), ids=st.booleans())
def test_markdown_export_import_export_is_byte_identical(fresh_dbs, lst, ids):  # noqa: F811
    _db_round_trip(fresh_dbs, replace(lst, layout=markdown.NAME), ids)


def test_format_markdown_is_this_layout():
    lst = devupdate.parse(DEV, "4.3")
    assert render(lst, layout="markdown-checklist") == markdown.render(lst)
    assert not hasattr(__import__("todobot.storage.formats", fromlist=["x"]), "to_markdown")


def test_the_documented_checklist_example_reads_without_warnings():
    readme = (Path(__file__).resolve().parent.parent / "docs" / "mail-layouts.md").read_text(encoding="utf-8")
    section = readme.split("## The mail formats")[1].split("\n## The JSON format")[0]
    example = section.split("```")[5]
    lst = detect(example).parse(example, "r")
    assert lst.layout == "markdown-checklist" and lst.warnings == []
    [crash, debian] = lst.items
    assert (crash.owners, crash.progress, crash.severity) == (["alice", "bob"], "patch posted", "blocker")
    assert [(c.title, c.state) for c in crash.children] == [("Add a regression test", "done")]
    assert (debian.area, debian.owners, debian.notes) == (
        "Packaging", ["carol"], ["Ask the packagers whether this blocks them"])
