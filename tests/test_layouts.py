"""Mail layouts: the registry, the development-update layout field by field, and for every
layout the round trip export -> import into a fresh database -> export, byte for byte."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_mail_roundtrip import release_lists
from todobot.storage import Database, Repository
from todobot.storage.layouts import (LAYOUTS, MailFormatError, by_name, detect, devupdate, normalise,
                                      render, writer)
from todobot.storage.layouts.common import LINK_ONLY
from todobot.storage.models import STATES, ListItem, Milestone, ReleaseList

DATA = Path(__file__).resolve().parent / "data"
SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"
DEV = (DATA / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")


# ---------------------------------------------------------------- the registry


def test_registry_names_and_detection():
    assert set(LAYOUTS) == {"xen-4.2", "xen-dev-update", "markdown-checklist", "regzbot",
                            "xen-release-update"}
    assert by_name("xen-dev-update") is devupdate
    with pytest.raises(ValueError, match="unknown layout .nope.; known: xen-4.2, xen-dev-update, markdown-checklist, "
                       "regzbot, xen-release-update"):
        by_name("nope")
    assert detect(SEED.read_text(encoding="utf-8")).NAME == "xen-4.2"
    assert detect(DEV).NAME == "xen-dev-update"
    assert detect("just prose") is None  # refused by parse, naming the layouts tried
    for module in LAYOUTS.values():  # each one a reader, a writer (or one named) and a detector
        assert callable(module.parse) and callable(writer(module.NAME).render)
        assert callable(module.detect)


# ---------------------------------------------------------------- the 4.3 mail, field by field


def D(title: str, section: str, **kw) -> ListItem:
    state, severity = devupdate.SECTIONS[section.casefold()]
    kw.setdefault("area", "")
    return ListItem(title=title, section=section, state=kw.pop("state", state), severity=severity, **kw)


EXPECTED = [
    D("Serial console improvements", "Completed", owners=["Ian Campbell"],
      children=[D("EHCI debug port (external)", "Completed")]),
    D("Default to QEMU upstream (partial)", "Completed",
      owners=["Stefano Stabellini", "Anthony Perard"],
      children=[D("pci pass-thru (external)", "Completed"),
                D("enable dirtybit tracking during migration (external)", "Completed")]),
    D("xl, compat mode, and older kernels", "Bugs", progress="patches posted",
      details="Many older 32-bit PV kernels that can run on a 64-bit hypervisor with xend do "
              "not work when started with xl.",
      links=["http://marc.info/?l=xen-devel&m=136001232423525"]),
    D("qemu-upstream: cd-insert and cd-eject not working", "Bugs", owners=["George Dunlap"],
      progress="Fixed in qemu-xen-unstable",
      links=["http://www.xen.org/bugzilla/show_bug.cgi?id=1871"],
      notes=["Reported on xen-users by a Fedora user"]),
    D("Race condition in claim hypercall (Linux)", "Open", owners=["Konrad Wilk", "Dan Magenheimer"],
      progress="v9 posted"),
    D("Test migration with the upstream qemu", "Open", area="Testing coverage",
      notes=["@IanJ to ask the test system to grow a case"]),
    D("ARM v7 server port (>10 individuals)", "Backlog", area="Xen ARM"),
]


def test_dev_update_items_field_by_field():
    from tests.test_mail_import import assert_items
    lst = devupdate.parse(DEV, "4.3")
    assert lst.layout == "xen-dev-update" and lst.warnings == []
    assert_items(lst.items, EXPECTED)
    severities = {it.section: (it.state, it.severity) for it in lst.items}
    assert severities == {"Completed": ("done", "nice"), "Bugs": ("open", "blocker"),
                          "Open": ("open", "nice"), "Backlog": ("open", "nice")}


def test_dev_update_timeline_and_intro():
    lst = devupdate.parse(DEV, "4.3")
    assert lst.milestones == [
        Milestone("25 March 2013", "Feature freeze"),
        Milestone("15 April 2013", "Code freezing point"),
        Milestone("6 May 2013", "First RC", current=True),
        Milestone("17 June 2013", "Release"),
    ]
    assert lst.intro.startswith("This information will be mirrored on the Xen 4.3 Roadmap")
    assert lst.intro.endswith("\n\nLast updated: 13 May 2013")


def test_dev_update_exports_in_its_layout_and_reaches_a_fixed_point():
    once = devupdate.render(devupdate.parse(DEV, "4.3"))
    assert devupdate.render(devupdate.parse(once, "4.3")) == once
    assert devupdate.parse(once, "4.3") == devupdate.parse(DEV, "4.3")
    for line in ["= Timeline =", "* First RC: 6 May 2013  <== WE ARE HERE", "== Completed ==",
                 "  - pci pass-thru (external)", "=== Testing coverage ===",
                 "  @IanJ to ask the test system to grow a case",
                 "  > http://www.xen.org/bugzilla/show_bug.cgi?id=1871", "  status: v9 posted"]:
        assert line in once.splitlines(), line
    # Every line of the original is there (sub-lines in the writer's order: owner, status,
    # details, links, notes), but the unclaimed "owner: ???" ones, which are not written.
    unclaimed = {"owner: ???", "owner: none", "owner: ?"}
    assert set(once.splitlines()) == {ln for ln in DEV.splitlines() if ln.strip() not in unclaimed}


def test_dev_update_done_item_moves_to_completed_and_blocker_to_bugs():
    lst = devupdate.parse(DEV, "4.3")
    race = lst.items[4]
    race.state = "done"
    bug = lst.items[5]
    bug.severity = "blocker"
    out = devupdate.render(lst)
    again = devupdate.parse(out, "4.3")
    moved = {it.title: (it.section, it.state, it.severity) for it in again.items}
    assert moved["Race condition in claim hypercall (Linux)"] == ("Completed", "done", "nice")
    assert moved["Test migration with the upstream qemu"] == ("Bugs", "open", "blocker")
    # A blocker marked done moves to Completed and stays a blocker.
    lst.items[2].state = "done"
    out = devupdate.render(lst)
    assert "* xl, compat mode, and older kernels\n  status: patches posted\n  severity: blocker\n" in out
    assert out.index("xl, compat mode") < out.index("== Bugs ==")
    fixed = next(it for it in devupdate.parse(out, "4.3").items if it.title.startswith("xl, compat"))
    assert (fixed.section, fixed.state, fixed.severity) == ("Completed", "done", "blocker")


def test_dev_update_sub_line_forms():
    lst = devupdate.parse("== Open ==\n\n* #7 [BUG] t\n  owner: A, ?, none, B\n  owner: C\n"
                          "  state: duplicate of #3\n  > <m@id>\n  >  a note  \n"
                          "  plain text\n  more\n    - child\n      owner: D\n  tail\n", "r")
    [it] = lst.items
    assert (it.id, it.tags, it.title, it.owners) == (7, ["BUG"], "t", ["A", "B", "C"])
    assert (it.state, it.duplicate_of, it.links, it.notes) == ("duplicate", 3, ["<m@id>"], ["a note"])
    assert it.details == "plain text more tail"
    assert [(c.title, c.owners, c.area, c.severity) for c in it.children] == [("child", ["D"], "", "nice")]


def test_dev_update_keeps_every_status_line():
    """Several `status:` lines are one progress, in order: none is dropped for the last."""
    [it] = devupdate.parse("== Open ==\n\n* t\n  status: v1 posted\n  status: acked by Jan\n", "r").items
    assert it.progress == "v1 posted; acked by Jan"


def test_dev_update_warnings_name_their_lines():
    text = "== Open ==\n\n* a\n\nSome prose at the margin\n\n== Wishlist ==\n\n* b\n"
    lst = devupdate.parse(text, "r")
    assert [it.title for it in lst.items] == ["a", "b"]
    assert lst.warnings == ['line 5: not understood: "Some prose at the margin"',
                            'line 7: unknown section "Wishlist": its items read as open, nice to have']


def test_dev_update_quoted_reply_and_signature_skipped():
    text = ("== Open ==\n\n* real\n  > http://x.org/1\n\n> == Bugs ==\n> * quoted\n>   owner: X\n\n"
            "I had a look.\n\n-- \nGeorge\n* after\n")
    lst = devupdate.parse(text, "r")
    assert [(it.title, it.links, it.owners) for it in lst.items] == [("real", ["http://x.org/1"], [])]
    assert lst.warnings == ['line 10: not understood: "I had a look."']


def test_dev_update_refuses_prose():
    with pytest.raises(MailFormatError, match="no TODO list found"):
        devupdate.parse("Hello -- this is\njust prose\n", "r")


# ---------------------------------------------------------------- generated valid lists

# Built once, here (a strategy built inside a draw is validated again for every example), and
# drawn without filter() rejections where a third of the draws used to be thrown away: the
# nightly profile runs 100,000 examples; `bench/nightly_fuzz.py` samples the rate.
_SAFE = "abcxyzABC019 .,;!?'()/éß漢"
_safe = st.text(_SAFE, min_size=1, max_size=10).map(normalise).filter(bool)
_MARKUP = ["(external)", "(Linux)", "owner:", "status:", "state:", "> q", "@Ian", "- x", "* y",
           "-", "*", "== h ==", "<== WE ARE HERE", "#5", "[BUG]", "http://x.org/a", "<m@id>", "--",
           "(@Ian)", "—", "**#5**", "- [ ]", "Title:", "Information from", "====", "Friday 1st May"]
_word = st.one_of(_safe, st.sampled_from(_MARKUP))
_text = st.lists(_word, min_size=1, max_size=4).map(lambda words: normalise(" ".join(words)))


def _leads_ok(s: str) -> bool:
    """Not read as a sub-line, an #id or [TAGS] when it starts an item or a line."""
    return not devupdate._GLUE.fullmatch(s.split(" ")[0]) and not s.startswith(("#", "["))


# A text that may start a title or a sub-line: its first word is one of those (a _safe word
# never starts with markup), the other words anything. Valid by construction, so no filter
# (one more span per draw); test_lead_texts_start_right checks it.
_lead_word = st.one_of(_safe, st.sampled_from([w for w in _MARKUP if _leads_ok(w)]))
_lead_ok = st.tuples(_lead_word, st.lists(_word, max_size=3)).map(
    lambda t: normalise(" ".join([t[0], *t[1]])))


@given(_lead_ok)
def test_lead_texts_start_right(s):
    assert _leads_ok(s), s
_owner = st.one_of(st.sampled_from(["Ian Campbell", "George Dunlap", "IanJ", "Roger Pau Monné"]),
                   st.text(_SAFE.replace(",", ""), min_size=1, max_size=10).map(normalise).filter(
                       lambda s: s and s.casefold() not in devupdate._UNCLAIMED
                       and not s.startswith(("(", ")"))))
_link = st.one_of(st.builds("http://x.org/{}".format, st.text("abz019", max_size=6)),
                  st.builds("<{}@id>".format, st.text("ab19", min_size=1, max_size=4)))
_tag = st.text("ABCXYZ019_?", min_size=1, max_size=5)
_ident = st.none() | st.integers(1, 10**6)
HEADINGS = ["Completed", "Finished", "Bugs", "Blockers", "Open", "Backlog", "Nice to have"]
_tags, _owners, _links = (st.lists(x, max_size=2) for x in (_tag, _owner, _link))
_title, _maybe_text = _lead_ok | st.just(""), st.just("") | _lead_ok
_notes = st.lists(_lead_ok.filter(lambda s: not LINK_ONLY.fullmatch(s)) | st.builds("@{}".format, _safe),
                  max_size=2)
_any_state = st.sampled_from(STATES)
_top_state = {implied: st.sampled_from([implied] * 3 + ["deferred", "dropped", "duplicate"])
              for implied, _ in devupdate.SECTIONS.values()}
_done_severity = st.sampled_from(["nice", "blocker"])


@functools.cache  # one strategy per (heading, area, depth): a few dozen in all
def dev_items(heading: str, area: str, depth: int = 0) -> st.SearchStrategy[ListItem]:
    implied, severity = devupdate.SECTIONS[heading.casefold()]
    children = st.lists(dev_items(heading, area, depth + 1), max_size=2 - depth) if depth < 2 else None

    @st.composite
    def draw_item(draw) -> ListItem:
        # a done blocker is written with `severity: blocker`
        sev = draw(_done_severity) if implied == "done" and depth == 0 else severity
        state = draw(_top_state[implied] if depth == 0 else _any_state)
        it = ListItem(area=area, severity=sev, title=draw(_title), state=state,
                      section=heading, tags=draw(_tags), details=draw(_maybe_text),
                      owners=draw(_owners), progress=draw(_maybe_text), links=draw(_links),
                      notes=draw(_notes), id=draw(_ident))
        if it.state == "duplicate" and draw(st.booleans()):
            it.duplicate_of = draw(st.integers(1, 10**6))
        if children is not None:
            it.children = [replace(c, severity=sev) for c in draw(children)]
        return it
    return draw_item()


@functools.cache
def _dev_items_under(heading: str, area: str) -> st.SearchStrategy[list[ListItem]]:
    return st.lists(dev_items(heading, area), min_size=0 if area == "" else 1, max_size=2)


_headings = st.lists(st.sampled_from(HEADINGS), unique=True, max_size=3)
_areas = st.lists(st.sampled_from(["Testing coverage", "Xen ARM", "tools"]), unique=True, max_size=2)
_name = _safe.filter(lambda s: ":" not in s and "<" not in s)
_milestones = st.lists(st.builds(Milestone, when=st.just("") | _name, name=_name,
                                 done=st.booleans(), current=st.booleans()), max_size=3)
_intro = st.lists(_safe.filter(lambda s: not s.startswith(("-", "(", "'"))),
                  max_size=2).map("\n\n".join)


@st.composite
def dev_lists(draw) -> ReleaseList:
    items = []
    for heading in draw(_headings):
        for area in [""] + draw(_areas):
            items += draw(_dev_items_under(heading, area))
    return ReleaseList(release="r", milestones=draw(_milestones), items=items,
                       intro=draw(_intro), layout=devupdate.NAME)


def _no_ids(items: list[ListItem]) -> list[ListItem]:
    return [replace(it, id=None, duplicate_of=None, children=_no_ids(it.children)) for it in items]


@given(dev_lists(), st.integers(30, 100))
def test_dev_update_parse_render_roundtrip(lst, width):
    mail = devupdate.render(lst, width=width)
    assert devupdate.parse(mail, "r") == lst, mail
    mail = devupdate.render(lst, ids=False)
    assert devupdate.parse(mail, "r") == replace(lst, items=_no_ids(lst.items)), mail


class FreshDatabases:
    """A fresh, migrated database for each import, without paying for one each time: one
    in-memory database and one event loop serve a whole property, and the database is put
    back to its state just after the migrations (a copy taken then, restored with SQLite's
    backup API: every table, the AUTOINCREMENT counters and the schema version) before each
    import. Opening and migrating a database, its aiosqlite thread and an event loop per
    example made these properties run a few examples a second."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.db = self.runner.run(Database.open(":memory:"))
        self.blank = sqlite3.connect(":memory:", check_same_thread=False)
        self.runner.run(self.db.conn.backup(self.blank))
        self.repo = Repository(self.db)

    def import_export(self, lst: ReleaseList, ids: bool) -> str:
        """Import into a fresh database, export in the release's own layout."""
        async def work() -> str:
            await self.db.run(self.blank.backup)  # the freshly migrated database again
            # as `todobot import` does: the whole import in one hand-off to the database thread
            await self.repo.run("test", lambda s: s.import_list("r", lst))
            return render(await self.repo.run(
                "test", _export, write=False), ids=ids)
        return self.runner.run(work())

    def close(self) -> None:
        self.runner.run(self.db.close())
        self.runner.close()
        self.blank.close()


async def _export(s) -> ReleaseList:
    return await s.export_list(await s.require_release("r"))


@pytest.fixture
def fresh_dbs():
    """One per test, shared by its examples (so the function_scoped_fixture health check is
    off for the properties that use it: sharing is the point)."""
    dbs = FreshDatabases()
    yield dbs
    dbs.close()


def test_each_import_starts_from_a_fresh_database(fresh_dbs):
    lst = ReleaseList(release="r", items=[ListItem(area="tools", severity="nice", title="a")],
                      layout="xen-4.2")
    first = fresh_dbs.import_export(lst, ids=True)
    assert "* #1 a" in first
    # Neither the item of the first import nor its id (AUTOINCREMENT) is left for the second.
    assert fresh_dbs.import_export(replace(lst, items=[replace(lst.items[0], title="b")]),
                                   ids=True) == first.replace("#1 a", "#1 b")


def _db_round_trip(dbs: FreshDatabases, lst: ReleaseList, ids: bool) -> None:
    first = dbs.import_export(lst, ids)
    again = by_name(lst.layout).parse(first, "r")
    assert again.warnings == [], first
    assert dbs.import_export(again, ids) == first


_shared_fixture = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


@_shared_fixture
@given(lst=dev_lists(), ids=st.booleans())
def test_dev_update_export_import_export_is_byte_identical(fresh_dbs, lst, ids):
    _db_round_trip(fresh_dbs, lst, ids)


@_shared_fixture
@given(lst=release_lists(), ids=st.booleans())
def test_xen42_export_import_export_is_byte_identical(fresh_dbs, lst, ids):
    _db_round_trip(fresh_dbs, replace(lst, layout="xen-4.2"), ids)


def test_the_documented_examples_read_as_their_layouts():
    readme = (Path(__file__).resolve().parent.parent / "docs" / "mail-layouts.md").read_text(encoding="utf-8")
    section = readme.split("## The mail formats")[1].split("\n## ")[0]
    old, new = section.split("```")[1::2][:2]
    assert detect(old).NAME == "xen-4.2" and detect(new).NAME == "xen-dev-update"
    a, b = (detect(text).parse(text, "r") for text in (old, new))
    assert a.warnings == [] and b.warnings == []
    assert [m.current for m in b.milestones] == [False, True]
    [bug, test] = b.items
    assert (bug.severity, bug.owners, bug.progress, bug.links) == (
        "blocker", [], "patches posted", ["http://marc.info/?l=xen-devel&m=136001232423525"])
    assert (test.section, test.area, test.notes, [c.title for c in test.children]) == (
        "Backlog", "Testing coverage", ["@IanJ to ask the test system to grow a case"],
        ["on ARM too (external)"])
