"""The regzbot layout (read only): each regression of a weekly report, field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from todobot.storage.layouts import MailFormatError, detect, regzbot, render, writer
from todobot.storage.models import ListItem

REPORT = (Path(__file__).resolve().parent / "data" / "regzbot-report.txt").read_text(encoding="utf-8")
CURRENT = "current cycle (v7.1.. aka v7.2-rc), culprit identified"
TRACKER = "https://linux-regtracking.leemhuis.info/regzbot/regression/"


def R(title: str, area: str, details: str, links: list[str], progress: str = "") -> ListItem:
    return ListItem(area=area, severity="blocker", title=title, details=details, links=links,
                    progress=progress)


EXPECTED = [
    R("frobnet: link stays down after resume from suspend", CURRENT,
      "Reported by Jane Tester; Introduced in 0123456789ab (v7.1..v7.2-rc1); Fix incoming: "
      "frobnet: restore the link state on resume.",
      [TRACKER + "lore/20270110.4711.aaa@example.org/",
       "https://lore.kernel.org/regressions/20270110.4711.aaa@example.org/",
       "https://lore.kernel.org/netdev/20270114.0815.bbb@example.org/",
       "https://git.kernel.org/torvalds/c/0123456789ab"], progress="fix incoming"),
    R("widgetfs: mount hangs with the new quota option", CURRENT,
      "Reported by Max Sample and Erika Muster; Introduced in fedcba987654 (v7.1..v7.2-rc1).",
      [TRACKER + "lore/20270103.1111.ccc@example.org/",
       "https://lore.kernel.org/linux-fsdevel/20270103.1111.ccc@example.org/",
       "https://lore.kernel.org/linux-fsdevel/20270112.2222.ddd@example.org/",
       "https://git.kernel.org/torvalds/c/fedcba987654"]),
    R("sound: crackling on the example codec since rc1",
      "current cycle (v7.1.. aka v7.2-rc), unknown culprit",
      "Reported by Pat Listener; Introduced in v7.1..v7.2-rc1.",
      [TRACKER + "lore/20270111.3333.eee@example.org/",
       "https://lore.kernel.org/alsa-devel/20270111.3333.eee@example.org/",
       "https://lore.kernel.org/alsa-devel/20270112.4444.fff@example.org/"]),
    R("gpio: example expander no longer probes",
      "previous cycle (v7.0..v7.1), culprit identified, with activity in the past three months",
      "Reported by Ola Nordmann; Introduced in 00aa11bb22cc (v7.0..v7.1-rc1).",
      [TRACKER + "bugzilla/212345/", "https://bugzilla.kernel.org/show_bug.cgi?id=212345",
       "https://git.kernel.org/torvalds/c/00aa11bb22cc"]),
]


def test_report_regressions_field_by_field():
    lst = regzbot.parse(REPORT, "7.2")
    assert lst.layout == "regzbot" and lst.warnings == []
    assert lst.items == EXPECTED  # open blockers, "[ *NEW* ]" and the day counts not kept
    assert lst.milestones == [] and lst.intro == ""


def test_report_detected_as_regzbot_and_exported_as_a_checklist():
    assert detect(REPORT) is regzbot
    assert writer("regzbot").NAME == "markdown-checklist"
    lst = regzbot.parse(REPORT, "7.2")
    out = render(lst)  # the release's own layout: regzbot, written as the checklist
    assert out.startswith("# 7.2 TODO\n") and f"### {CURRENT}" in out


def test_older_report_lines_and_stray_text():
    text = ("regzbot report\n\n=====\nmainline, culprit unknown\n=====\n\nstray words\n\n"
            "Oops on boot\n------------\nReported-by: A Person\nBisected to: 1234567890abcdef\n")
    lst = regzbot.parse(text, "r")
    [it] = lst.items
    assert (it.area, it.title) == ("mainline, culprit unknown", "Oops on boot")
    assert it.details == "Reported by A Person; Bisected to 1234567890abcdef."
    assert it.links == ["https://git.kernel.org/torvalds/c/1234567890abcdef"]
    assert lst.warnings == ['line 7: not understood: "stray words"']


def test_a_report_without_sections_is_refused():
    with pytest.raises(MailFormatError, match="no TODO list found"):
        regzbot.parse("Hi, this is regzbot.\nNothing to report.\n", "r")


def test_an_mbox_with_the_report_picks_it():
    from todobot.storage.mailfile import read_mail_file

    def message(subject: str, body: str, mid: str) -> bytes:
        return (f"From bot@example.org Sun Jan 17 18:00:00 2027\nFrom: bot@example.org\n"
                f"Subject: {subject}\nMessage-ID: <{mid}>\nDate: Sun, 17 Jan 2027 18:00:00 +0000\n"
                f"Content-Type: text/plain; charset=utf-8\n\n{body}\n").encode()
    mbox = (message("Re: frobnet patch", "Looks fine to me.", "a@example.org")
            + message("[regzbot] Linux regressions report for mainline [2027-01-17]", REPORT,
                      "b@example.org"))
    mail = read_mail_file(mbox)
    assert mail.message_id == "<b@example.org>"
    assert len(regzbot.parse(mail.text, "7.2").items) == 4
