"""Importing hand-written release mails: the shipped Xen 4.2 seed, field by field, and small cases."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from todobot.storage.layouts.xen42 import MailFormatError, parse_mail
from todobot.storage.models import ListItem, Milestone

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


def T(title: str, **kw) -> ListItem:
    """An expected tools/blocker item (most of the seed); override area/severity as needed."""
    kw.setdefault("area", "tools")
    kw.setdefault("severity", "blocker")
    return ListItem(title=title, **kw)


def N(title: str, **kw) -> ListItem:
    return T(title, severity="nice", **kw)


EXPECTED_ITEMS = [
    T("libxl stable API",
      details="we would like 4.2 to define a stable API which downstream's can start to rely on "
              "not changing. Aspects of this are:",
      children=[T("Interfaces which may need to be async:",
                  children=[T("libxl_device_pci_add (and remove).", owners=["Ian C"], state="done")])]),
    T("xl compatibility with xm:"),  # its only child is "No known issues"
    T("More formally deprecate xm/xend.", tags=["CHECK"],
      details="Manpage patches already in tree. Needs release noting and communication around "
              "-rc1 to remind people to test xl."),
    T("calling hotplug scripts from xl (Linux and NetBSD)", owners=["Roger Pau Monné"], state="done"),
    T("Block script support", owners=["Ian C"], state="done"),
    T("Confirm that migration from Xen 4.1 -> 4.2 works.", tags=["CHECK"]),
    T("libxl__devices_destroy has a race against plugging/unplugging devices to the domain which "
      "can result in over- or under-flowing the aodevs array", tags=["BUG"],
      owners=["Roger Pau Monné", "Ian Jackson"], state="done"),
    T("Bump library SONAMES as necessary.",
      details="<20502.39440.969619.824976@mariner.uk.xensource.com>",
      links=["<20502.39440.969619.824976@mariner.uk.xensource.com>"]),
    N("vMCE save/restore changes, to simplify migration 4.2->4.3 with new vMCE in 4.3.",
      area="hypervisor", owners=["Jinsong Liu", "Jan Beulich"]),
    N("xl compatibility with xm:"),  # its only child is "None"
    N("libxl stable API",
      children=[N("libxl_wait_for_free_memory/libxl_wait_for_memory_target.",
                  details="Interface needs an overhaul, related to locking/serialization over "
                          "domain create. IanJ to add note about this interface being "
                          "substandard but otherwise defer to 4.3.",
                  state="done")]),
    N("xl.cfg(5) documentation patch for qemu-upstream videoram/videomem support: "
      "http://lists.xen.org/archives/html/xen-devel/2012-05/msg00250.html qemu-upstream doesn't "
      "support specifying videomem size for the HVM guest cirrus/stdvga.",
      details="(but this works with qemu-xen-traditional).", owners=["Pasi Kärkkäinen"],
      links=["http://lists.xen.org/archives/html/xen-devel/2012-05/msg00250.html"]),
    N("long stop during the guest boot process with qcow image, reported by Intel: "
      "http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1821", tags=["BUG"],
      links=["http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1821"]),
    N("vcpu-set doesn't take effect on guest, reported by Intel: "
      "http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822", tags=["BUG"],
      links=["http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822"]),
    N("Load blktap driver from xencommons initscript if available, thread at: "
      "<db614e92faf743e20b3f.1337096977@kodo2>.",
      details="To be fixed more properly in 4.3.",
      progress="Patch posted, discussion, plan to take simple xencommons patch for 4.2 and "
               "revist for 4.3. Ping sent",
      links=["<db614e92faf743e20b3f.1337096977@kodo2>"]),
    N("xl allows same PCI device to be assigned to multiple guests.", tags=["BUG"],
      details="http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1826 "
              "(<E4558C0C96688748837EB1B05BEED75A0FD5574A@SHSMSX102.ccr.corp.intel.com>)",
      links=["http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1826",
             "<E4558C0C96688748837EB1B05BEED75A0FD5574A@SHSMSX102.ccr.corp.intel.com>"]),
]


def assert_items(got: list[ListItem], want: list[ListItem], path: str = "") -> None:
    """Field by field, so a failure names the item and the field."""
    assert [i.title for i in got] == [i.title for i in want], path
    for n, (g, w) in enumerate(zip(got, want)):
        where = f"{path}[{n}] {w.title[:40]!r}"
        for f in fields(ListItem):
            if f.name != "children":
                assert getattr(g, f.name) == getattr(w, f.name), f"{where}: {f.name}"
        assert_items(g.children, w.children, where + " > ")


@pytest.fixture(scope="module")
def seed():
    return parse_mail(SEED.read_text(encoding="utf-8"), "4.2")


def test_seed_items_field_by_field(seed):
    assert seed.release == "4.2"
    assert_items(seed.items, EXPECTED_ITEMS)


def test_seed_milestones(seed):
    assert seed.milestones == [
        Milestone("19 March", "TODO list locked down"),
        Milestone("2 April", "Feature Freeze"),
        Milestone("30 July", "First release candidate", done=True),
        Milestone("Weekly", "RCN+1 until release", current=True),
    ]


def test_seed_intro(seed):
    assert seed.intro == (
        "Plan for a 4.2 release:\n"
        "http://lists.xen.org/archives/html/xen-devel/2012-03/msg00793.html\n"
        "\n"
        "The time line is as follows:\n"
        "\n"
        "We released RC1 last week. Many of the known issues are now fixed in\n"
        "Mercurial and I expect rc2 will follow once we have a test push has\n"
        "happened (an infrastructure failure prevented this from happening over\n"
        "the weekend).\n"
        "\n"
        "The updated TODO list follows.")


def test_whole_thread_first_mail_parses_like_the_seed():
    # The lore.kernel.org page: header noise goes to intro, the footer and replies are ignored.
    thread = Path(__file__).resolve().parent / "data" / "xen-4.2-todo-thread.txt"
    lst = parse_mail(thread.read_text(encoding="utf-8"))
    assert_items(lst.items, EXPECTED_ITEMS)
    assert len(lst.milestones) == 4


# ---------------------------------------------------------------- small cases


def one(bullet: str, header: str = "tools, blockers:") -> ListItem:
    items = parse_mail(f"{header}\n\n{bullet}\n").items
    assert len(items) == 1, items
    return items[0]


@pytest.mark.parametrize("group, owners, progress, state", [
    ("(Ian C, DONE)", ["Ian C"], "", "done"),
    ("(Roger Pau Monné, Ian Jackson, DONE)", ["Roger Pau Monné", "Ian Jackson"], "", "done"),
    ("(George Dunlap / Jan Beulich)", ["George Dunlap", "Jan Beulich"], "", "open"),
    ("(Jan Beulich, patch posted)", ["Jan Beulich"], "patch posted", "open"),
    ("(Jinsong Liu, Jan Beulich)", ["Jinsong Liu", "Jan Beulich"], "", "open"),
    ("(Pasi Kärkkäinen)", ["Pasi Kärkkäinen"], "", "open"),
    ("(DONE)", [], "", "done"),
    ("(done, IanJ)", ["IanJ"], "", "done"),
    ("(Vincent van Gogh)", ["Vincent van Gogh"], "", "open"),
    ("(Patch posted, discussion, plan to take simple xencommons patch for 4.2 and revist "
     "for 4.3. Ping sent)", [],
     "Patch posted, discussion, plan to take simple xencommons patch for 4.2 and revist for "
     "4.3. Ping sent", "open"),
    ("(WIP)", [], "WIP", "open"),
    ("(Ian C, v2 posted, DEFERRED)", ["Ian C"], "v2 posted", "deferred"),
    ("(DROPPED)", [], "", "dropped"),
])
def test_trailing_group_forms(group, owners, progress, state):
    it = one(f"    * Block script support {group}")
    assert (it.title, it.owners, it.progress, it.state) == ("Block script support", owners,
                                                            progress, state)


def test_duplicate_of_reference():
    it = one("    * #9 address PoD problems (Jan Beulich, DUPLICATE of #7)")
    assert (it.id, it.state, it.duplicate_of, it.owners) == (9, "duplicate", 7, ["Jan Beulich"])


def test_message_id_group_is_a_link_not_owners():
    it = one("    * [BUG] xl allows same PCI device. (<E45@SHSMSX102.ccr.corp.intel.com>)")
    assert it.owners == [] and it.progress == ""
    assert it.details == "(<E45@SHSMSX102.ccr.corp.intel.com>)"
    assert it.links == ["<E45@SHSMSX102.ccr.corp.intel.com>"]


def test_url_group_and_mid_text_group_stay_in_text():
    it = one("    * see (http://example.org/x) now")
    assert it.title == "see (http://example.org/x) now" and it.owners == [] and it.progress == ""
    assert it.links == ["http://example.org/x"]
    assert one("    * xl.cfg(5) docs").title == "xl.cfg(5) docs"


def test_links_in_order_without_duplicates():
    it = one("    * a http://x.org/1 b <m@id> c http://x.org/1. d https://y.org/2, (Ian C)")
    assert it.links == ["http://x.org/1", "<m@id>", "https://y.org/2"]


def test_title_details_split():
    it = one("    * [CHECK] More formally deprecate xm/xend. Manpage patches. Needs more.")
    assert (it.title, it.details) == ("More formally deprecate xm/xend.",
                                      "Manpage patches. Needs more.")
    it = one("    * libxl stable API -- we would like. Really")
    assert (it.title, it.details) == ("libxl stable API", "we would like. Really")
    it = one("    * see http://x.org/a.html for details")
    assert (it.title, it.details) == ("see http://x.org/a.html for details", "")


def test_tags_and_id():
    it = one("    * #12 [BUG] [BUG(?)][CHECK] title here")
    assert (it.id, it.tags, it.title) == (12, ["BUG", "BUG(?)", "CHECK"], "title here")


@pytest.mark.parametrize("placeholder", ["None", "none.", "No known issues", "N/A", "Nothing",
                                         "NOTHING."])
def test_placeholders_are_no_item(placeholder):
    lst = parse_mail(f"tools, blockers:\n\n    * xl compat:\n\n        * {placeholder}\n")
    assert [i.title for i in lst.items] == ["xl compat:"] and lst.items[0].children == []


def test_placeholder_only_section():
    lst = parse_mail("hypervisor, blockers:\n\n    * None\n\ntools, nice to have:\n\n    * x\n")
    assert [(i.area, i.severity, i.title) for i in lst.items] == [("tools", "nice", "x")]


def test_crlf_dash_bullets_and_tabs():
    text = ("Intro line\r\n\r\nDocs, Blockers:\r\n\r\n- parent item\r\n\twrapped (Ian C)\r\n"
            "\t- child [not a tag]\r\n\t  continued\r\n- second\r\n")
    lst = parse_mail(text)
    assert lst.intro == "Intro line"
    a, b = lst.items
    assert (a.area, a.severity, a.title, a.owners) == ("Docs", "blocker", "parent item wrapped",
                                                       ["Ian C"])
    assert [c.title for c in a.children] == ["child [not a tag] continued"]
    assert b.title == "second" and b.children == []


def test_nesting_by_any_consistent_indentation():
    text = "tools, nice to have:\n* a\n  * b\n    * c\n  * d\n* e\n"
    lst = parse_mail(text)
    assert [i.title for i in lst.items] == ["a", "e"]
    assert [i.title for i in lst.items[0].children] == ["b", "d"]
    assert [i.title for i in lst.items[0].children[0].children] == ["c"]
    assert all(i.severity == "nice" for i in lst.items[0].children)


def test_lazy_continuation_at_the_margin():
    # George's reply style: the bullet and its wrapped lines all start in column 0.
    lst = parse_mail("hypervisor, nice to have:\n\n* [BUG(?)] Under certain conditions\n"
                     "the sweep stops. Rare case.\n\nI can take this one.\n")
    [it] = lst.items
    assert (it.tags, it.title, it.details) == (["BUG(?)"], "Under certain conditions the sweep "
                                               "stops.", "Rare case.")


def test_signature_footer_and_quotes_ignored():
    text = ("tools, blockers:\n\n    * real item\n> * quoted item\n\n-- \nIan.\n\n"
            "_______________________________________________\nXen-devel mailing list\n"
            "    * after the footer\n")
    assert [i.title for i in parse_mail(text).items] == ["real item"]


def test_hostile_bullet_does_not_crash():
    title = "a\x00b\u202ec\u200f d\x07\x1b[31m"
    lst = parse_mail(f"tools, blockers:\n\n    * {title}\rmore (\u202eIan C)\n")
    [it] = lst.items
    # An RTL override is not an uppercase letter: no name, no progress word, so it is title.
    assert (it.title, it.progress) == ("a\x00b\u202ec\u200f d\x07\x1b[31m more (\u202eIan C)", "")
    lst = parse_mail("tools, blockers:\n\n    * " + "((((" * 500 + "<<@" * 500 + ". " * 500 + "\n")
    assert len(lst.items) == 1


def test_huge_title():
    words = " ".join(f"w{i}" for i in range(2000))
    assert len(words) > 10_000
    it = one(f"    * {words} (Ian C)")
    assert it.title == words and it.owners == ["Ian C"]
    it = one("    * " + "x" * 10_000)
    assert it.title == "x" * 10_000


@pytest.mark.parametrize("text", ["", "   \n\n", "\x00\x01\x02garbage\xff\ufffd" * 50,
                                  "just some prose\nwithout any list\n"])
def test_not_a_list(text):
    with pytest.raises(MailFormatError) as e:
        parse_mail(text)
    assert "\n" not in str(e.value)


def test_hand_edited_mail_with_duplicate_collapsed():
    # Ian's reply: two PoD entries collapsed into one, re-posted in the section syntax.
    text = """\
hypervisor, nice to have:

    * [BUG(?)] Under certain conditions, the p2m_pod_sweep code will
      stop halfway through searching, causing a guest to crash even if
      there was zeroed memory available.  This is NOT a regression
      from 4.1, and is a very rare case, so probably shouldn't be a
      blocker.  (In fact, I'd be open to the idea that it should wait
      until after the release to get more testing.)
      \t    (George Dunlap)

    * fix S3 regression(s?) reported by Ben Guthro

tools, nice to have:

    * address PoD problems with early host side accesses to guest
      address space (Jan Beulich, patch posted)
"""
    a, b, c = parse_mail(text).items
    assert a.tags == ["BUG(?)"] and a.owners == ["George Dunlap"] and a.progress == ""
    assert a.title == ("Under certain conditions, the p2m_pod_sweep code will stop halfway "
                       "through searching, causing a guest to crash even if there was zeroed "
                       "memory available.")
    assert a.details.startswith("This is NOT a regression from 4.1,")
    assert a.details.endswith("(In fact, I'd be open to the idea that it should wait until "
                              "after the release to get more testing.)")
    assert (b.title, b.owners, b.area) == ("fix S3 regression(s?) reported by Ben Guthro", [],
                                           "hypervisor")
    assert (c.area, c.severity, c.owners, c.progress) == ("tools", "nice", ["Jan Beulich"],
                                                          "patch posted")
    assert c.title == "address PoD problems with early host side accesses to guest address space"


def test_reply_style_headers_are_not_sections():
    # Ian's reply quoted entries under "Hypervisor:" / "Tools:": not the section syntax.
    with pytest.raises(MailFormatError):
        parse_mail("Hypervisor:\n    * [BUG(?)] p2m_pod_sweep stops\n      (George Dunlap)\n\n"
                   "Tools:\n    * [BUG(?)] dom0 access (George Dunlap / Jan Beulich)\n")


def test_explicit_fields_and_notes():
    text = """\
tools, blockers:

    * #4 [BUG] Title: a. b (not owners)
      Details: more
      text
      Owners: ian c, Jan
      Progress: Ian C
      State: duplicate of #3
      Links: http://a.org <x@y>
      Note: first
      Note: second
"""
    it = one(text.split("\n\n", 1)[1])
    assert (it.id, it.tags, it.title, it.details) == (4, ["BUG"], "a. b (not owners)", "more text")
    assert (it.owners, it.progress, it.state, it.duplicate_of) == (["ian c", "Jan"], "Ian C",
                                                                   "duplicate", 3)
    assert (it.links, it.notes) == (["http://a.org", "<x@y>"], ["first", "second"])


# ---------------------------------------------------------------- the 4.2 layout as really written


def test_we_are_here_on_a_line_of_its_own_marks_the_milestone_before_it():
    text = ("The time line is as follows:\n\n19 March        -- TODO list locked down\n"
            "30 July         -- First release candidate\n"
            "                                              << WE ARE HERE\n"
            "Weekly          -- RCN+1 until release\n                       << DONE\n\n"
            "tools, blockers:\n\n    * x\n")
    lst = parse_mail(text)
    assert lst.milestones == [Milestone("19 March", "TODO list locked down"),
                              Milestone("30 July", "First release candidate", current=True),
                              Milestone("Weekly", "RCN+1 until release", done=True)]
    assert "<<" not in lst.intro and lst.warnings == []


def test_non_bullet_lines_under_a_section_are_warned_about_with_line_numbers():
    text = ("tools, blockers:\n\n  A note about tools before any bullet\n\n    * real item\n\n"
            "#368544, #368667\n    xl does something odd\n\n    * another\n")
    lst = parse_mail(text)
    assert [it.title for it in lst.items] == ["real item"]
    assert lst.warnings == [
        'line 3: not understood: "A note about tools before any bullet"',
        'line 7: not understood: "#368544, #368667"',
        'line 8: not understood: "xl does something odd"',
        'line 10: not understood: "* another"',
    ]


def test_signature_and_list_footer_end_the_mail_without_warnings():
    text = "tools, blockers:\n\n    * x\n\n-- \nIan.\n\n____________\nXen-devel\n"
    lst = parse_mail(text)
    assert [it.title for it in lst.items] == ["x"] and lst.warnings == []


def test_prose_with_a_double_dash_is_not_a_milestone():
    lst = parse_mail("Hi all -- here is this week's update.\n\ntools, blockers:\n\n    * x\n")
    assert lst.milestones == [] and lst.intro == "Hi all -- here is this week's update."
    with pytest.raises(MailFormatError, match="no TODO list found") as e:
        parse_mail("I think we should wait -- the release is close.\nAnyway, thanks.\n")
    assert e.value.unread == [(1, "I think we should wait -- the release is close."),
                              (2, "Anyway, thanks.")]


def test_timeline_lines_count_in_a_block_only():
    # Two in a row, without a heading:
    lst = parse_mail("19 March -- lock down\n2 April -- Feature Freeze\n")
    assert [m.name for m in lst.milestones] == ["lock down", "Feature Freeze"]
    # One, under a heading naming the time line:
    lst = parse_mail("Timeline:\n\n2 April -- Feature Freeze\n")
    assert [m.name for m in lst.milestones] == ["Feature Freeze"] and lst.intro == ""
    # One, alone: prose.
    with pytest.raises(MailFormatError):
        parse_mail("2 April -- Feature Freeze\n")


@pytest.mark.parametrize("group", ["(qemu)", "(external)", "(>10 individuals)", "(Linux)",
                                   "(partial)", "(<m@id>)"])
def test_trailing_group_that_is_no_names_nor_progress_stays_in_the_title(group):
    it = one(f"    * Default to QEMU upstream {group}")
    assert (it.title, it.owners, it.progress, it.state) == (f"Default to QEMU upstream {group}",
                                                            [], "", "open")


# ---------------------------------------------------------------- mail files


def test_mail_file_kinds():
    from todobot.storage.mailfile import read_mail_file
    plain = "From the release manager: tools, blockers:\n\n    * x\n"
    got = read_mail_file(plain.encode())
    assert (got.text, got.source, got.message_id) == (plain, None, None)
    eml = (b"From: Ian <i@x>\r\nSubject: 4.2 TODO\r\nMessage-ID: <a@b>\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n"
           b"\r\ntools, blockers:\r\n\r\n    * x (Roger Pau Monn=E9, DONE)\r\n")
    got = read_mail_file(eml)
    assert got.text == "tools, blockers:\n\n    * x (Roger Pau Monn\u00e9, DONE)\n"
    assert (got.source, got.message_id) == ("Message-ID <a@b>", "<a@b>")
    with pytest.raises(LookupError, match="no message <c@d> in the file"):
        read_mail_file(eml, "<c@d>")
    with pytest.raises(LookupError, match="needs a .eml or mbox"):
        read_mail_file(plain.encode(), "<a@b>")
