"""render_mail / parse_mail round trip: every list the bot can hold survives export and import.

Strings are generated already normalised (`normalise(s) == s`), as the bot stores them; see the
`storage.layouts.xen42` docstring for the other constraints. Set HYPOTHESIS_PROFILE=nightly for a
long run (100,000 examples per property).
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from todobot.storage.layouts.xen42 import MailFormatError, find_links, normalise, parse_mail, render_mail
from todobot.storage.models import STATES, ListItem, Milestone, ReleaseList

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


# Fragments the mail syntax gives a meaning to: each one must be escaped where it would be misread.
TRICKY = [
    "None", "No known issues", "n/a", "Nothing.", "(Ian C)", "(Ian C, DONE)", "(x)", ")", "(",
    "a. b", "end.", ".", "x -- y", "--", "-", "*", "[X]", "[BUG(?)]", "#5", "#12", "DONE",
    "DUPLICATE of #7", "deferred", "Ian C", "Roger Pau Monné", "IanJ", ",", "/", "a / b", ", ",
    "http://x.org/a.", "https://e.com/(p)", "<a@b>", "(<m@id>)", "(http://x.org)",
    "Title:", "Details:", "Owners:", "Progress:", "State:", "Links:", "Note:", "tools, blockers:",
    "19 March -- x", "<< DONE", ">", "> quoted", "\u202e", "\u200f", "\x00", "é", "漢字",
]
# Every strategy is built once, here: one built inside a draw would be validated again for
# every example, and each `.map` or composite is one more span Hypothesis records per draw.
# (The nightly profile runs 100,000 examples; `bench/nightly_fuzz.py` samples the rate.)
text = st.lists(st.one_of(st.text(max_size=8), st.sampled_from(TRICKY)), max_size=3).map(
    lambda words: normalise(" ".join(words)))
name = st.one_of(
    st.sampled_from(["Ian C", "IanJ", "Roger Pau Monné", "Jan Beulich", "van Gogh", "lower case",
                     "WIP", "DONE", "Ian C DONE", "#5", "x -- y", "Note:", "*"]),
    st.text(st.characters(blacklist_characters=",/()", blacklist_categories=("Cs",)),
            min_size=1, max_size=12).map(normalise),
).filter(bool)
tag = st.one_of(st.sampled_from(["BUG", "BUG(?)", "CHECK"]),
                st.text("ABCXYZ019_()?", max_size=5).map(lambda s: "T" + s))
_chars = "abcz019./?=_()-"
link = st.one_of(st.builds("http://{}".format, st.text(_chars, min_size=1, max_size=12)),
                 st.builds("<{}@{}>".format, st.text("ab.19", min_size=1, max_size=6),
                           st.text("xy.z", min_size=1, max_size=6)))
ident = st.none() | st.integers(0, 10**6)
area = st.one_of(st.sampled_from(["tools", "hypervisor", "docs", "build system", "x86"]),
                 st.text("abzé_0.+-", min_size=1, max_size=10))
_tags, _owners, _notes = st.lists(tag, max_size=2), st.lists(name, max_size=2), st.lists(text, max_size=1)
_state = st.sampled_from(STATES)
_explicit_links = st.none() | st.lists(link, max_size=2)  # None: the links found in the text


@st.composite
def _item(draw, children: st.SearchStrategy | None) -> ListItem:
    it = ListItem(area="", severity="", title=draw(text), tags=draw(_tags), details=draw(text),
                  owners=draw(_owners), progress=draw(text), state=draw(_state), notes=draw(_notes),
                  id=draw(ident))
    if draw(st.booleans()):  # mostly the bot's duplicates; any state must survive anyway
        it.duplicate_of = draw(ident)
    explicit = draw(_explicit_links)  # e.g. added with !link
    it.links = find_links(it.title, it.details, it.progress) if explicit is None else explicit
    if children is not None:
        it.children = draw(children)
    return it


# An item at depth 1 has up to 2 children, each of which has up to 1 (depth 3 has none).
_depth3 = _item(None)
_depth2 = _item(st.lists(_depth3, max_size=1))
_depth1 = _item(st.lists(_depth2, max_size=2))


def _placed(it: ListItem, area: str, severity: str) -> ListItem:
    """The item and its sub-items in the section (area, severity)."""
    it.area, it.severity = area, severity
    for child in it.children:
        _placed(child, area, severity)
    return it


milestone = st.builds(
    Milestone, when=st.text("aZ09 ", min_size=1, max_size=19).map(normalise).filter(bool),
    name=text.filter(lambda s: "<<" not in s), done=st.booleans(), current=st.booleans())
intro_line = st.one_of(
    st.sampled_from(["Plan for a 4.2 release:", "The time line is as follows:",
                     "http://lists.xen.org/archives/html/xen-devel/2012-03/msg00793.html"]),
    st.text("abcXYZ019 .:;!?'()éß", min_size=1, max_size=30).map(normalise).filter(bool))
intro = st.lists(st.lists(intro_line, min_size=1, max_size=3).map("\n".join),
                 max_size=3).map("\n\n".join)
_sections = st.lists(st.tuples(area, st.sampled_from(["blocker", "nice"])), max_size=3, unique=True)
_section_items = st.lists(_depth1, max_size=3)
_release, _milestones = st.none() | st.just("4.2"), st.lists(milestone, max_size=3)


@st.composite
def release_lists(draw) -> ReleaseList:
    sections = draw(_sections)
    top = [_placed(it, a, s) for a, s in sections for it in draw(_section_items)]
    return ReleaseList(release=draw(_release), milestones=draw(_milestones), items=top,
                       intro=draw(intro))


def without_ids(items: list[ListItem]) -> list[ListItem]:
    return [replace(it, id=None, duplicate_of=None, children=without_ids(it.children))
            for it in items]


@given(release_lists(), st.integers(30, 100))
def test_roundtrip(lst, width):
    mail = render_mail(lst)
    assert parse_mail(mail, lst.release) == lst, mail
    # The mailing-list form (and any width): equal once the ids are gone.
    mail = render_mail(lst, ids=False, width=width)
    assert not re.search(r"^ *\* #\d", mail, re.M)
    assert parse_mail(mail, lst.release) == replace(lst, items=without_ids(lst.items)), mail


def test_empty_list_roundtrips():
    for lst in (ReleaseList(release=None), ReleaseList(release=None, intro="Hello.")):
        assert parse_mail(render_mail(lst)) == lst


# ---------------------------------------------------------------- the seed


def test_seed_roundtrip_and_looks_like_the_original():
    original = SEED.read_text(encoding="utf-8")
    lst = parse_mail(original, "4.2")
    mail = render_mail(lst)
    assert parse_mail(mail, "4.2") == lst
    assert render_mail(parse_mail(mail, "4.2")) == mail  # a fixed point
    lines = mail.splitlines()
    for line in [
        "19 March        -- TODO list locked down",
        "30 July         -- First release candidate      << DONE",
        "Weekly          -- RCN+1 until release          << WE ARE HERE",
        "tools, blockers:",
        "hypervisor, nice to have:",
        "    * [CHECK] Confirm that migration from Xen 4.1 -> 4.2 works.",
        "    * Block script support (Ian C, DONE)",
        "            * libxl_device_pci_add (and remove). (Ian C, DONE)",
        "    * [BUG] vcpu-set doesn't take effect on guest, reported by Intel:",
        "      http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822",
        "      (<E4558C0C96688748837EB1B05BEED75A0FD5574A@SHSMSX102.ccr.corp.intel.com>)",
    ]:
        assert line in lines, line
        assert line in original.splitlines(), line
    # The intro and timeline come out exactly as written; no escape syntax in a hand-written list.
    assert mail.startswith(original[: original.index("hypervisor, blockers:")])
    assert not re.search(r"\b(Title|Details|Owners|Progress|State|Links|Note):", mail)
    assert "hypervisor, blockers:" not in mail  # it only held "None"
    assert all(len(line) <= 72 or " " not in line.strip() for line in lines)


def test_ids_and_escapes_only_where_needed():
    def item(**kw) -> ListItem:
        kw.setdefault("title", "t")
        return ListItem(area="tools", severity="blocker", **kw)

    lst = ReleaseList(release=None, items=[
        item(id=12, tags=["BUG"], title="plain", owners=["Ian C"], progress="patch posted"),
        item(id=13, title="two. sentences", owners=["lower case"], state="duplicate",
             duplicate_of=12),
        item(title="None"),
        item(title="x", progress="Ian C"),
        item(title="y", notes=["check with Jan"], links=["http://extra.org"]),
    ])
    body = render_mail(lst).split("tools, blockers:\n\n", 1)[1]
    assert body == """\
    * #12 [BUG] plain (Ian C, patch posted)

    * #13 Title: two. sentences
      Owners: lower case
      State: duplicate of #12

    * Title: None

    * Title: x
      Progress: Ian C

    * y
      Links: http://extra.org
      Note: check with Jan
"""
    assert parse_mail(render_mail(lst)) == lst
    plain = render_mail(lst, ids=False)
    assert "#12" not in plain and "#13" not in plain
    assert "    * [BUG] plain (Ian C, patch posted)" in plain


def test_wrapping_never_breaks_links_or_starts_a_line_with_a_keyword():
    url = "http://example.org/" + "x" * 100
    it = ListItem(area="tools", severity="nice", title=f"see {url} and also a word Note: * -",
                  details="a " * 40 + "Details: b", links=[url])
    mail = render_mail(ReleaseList(release=None, items=[it]), width=40)
    assert f"      {url}" in mail.splitlines()
    assert not re.search(r"^ +(Note:|Details:|\*(?: |$)|-(?: |$))", mail.split("* see", 1)[1], re.M)
    assert parse_mail(mail).items == [it]


# Lines and fragments of the syntax, shuffled: parsing never fails on them (other than "not a
# list"), and once rendered (which groups a section repeated further down) the list is stable.
FRAGMENTS = ["tools, blockers:", "hyp, nice to have:", "    * ", "* ", "- ", "      ", "        * ",
             "19 March -- x << DONE", "(Ian C, DONE)", "Note: ", "Details: ", "Title: ", "None",
             "> q", "\t", "#5 ", "[BUG] ", "a. b", " -- ", "http://x.org/a.", "<m@id>", "\r\n",
             "\n", "\n\n", "\r", "(", ")", "Owners: a, b", "State: duplicate of #3", "Links: x"]


@given(st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=40)
       .map("".join))
def test_any_text_parses_and_rerenders(mail):
    try:
        lst = parse_mail(mail)
    except MailFormatError:
        return
    lst = parse_mail(render_mail(lst))
    assert parse_mail(render_mail(lst)) == lst
