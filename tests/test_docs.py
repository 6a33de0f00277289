"""The documentation as a whole: README.md is the front door, docs/ the book behind it. Every
relative link points to a file (and heading) that exists, every page is in the index, and every
chat session shown in the docs is what the demo answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.test_readme import demo_answers

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code, where a link is a link."""
    return re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page.read_text(encoding="utf-8")))
            if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lowercased, punctuation but `-` and `_` dropped, spaces as `-`."""
    heads = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def sessions(text: str) -> list[str]:
    """Fenced blocks that show the bot answering: `<todobot> ...` lines."""
    return [b for b in FENCE.findall(text) if re.search(r"^<todobot> ", b, re.M)]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_existing_files(page):
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.relative_to(ROOT)}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{page.relative_to(ROOT)}: {target}: no such heading"


def test_the_link_checker_sees_links_and_headings():
    readme = ROOT / "README.md"
    assert "docs/trust.md" in relative_links(readme) and "docs/README.md" in relative_links(readme)
    assert {"an-example-session", "whom-it-trusts", "dependencies-and-why"} <= anchors(readme)


def test_every_page_is_in_the_index_and_the_index_in_the_readme():
    index = {t.partition("#")[0] for t in relative_links(DOCS / "README.md")}
    pages = {p.name for p in DOCS.iterdir() if p.suffix in (".md", ".txt")} - {"README.md"}
    assert pages <= index, pages - index
    assert "docs/README.md" in relative_links(ROOT / "README.md")


def test_the_readme_trust_summary_points_to_the_trust_page():
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("## Whom it trusts")[1]
    assert "(docs/trust.md)" in section.split("\n## ")[0]


def test_every_chat_session_in_the_docs_is_what_the_demo_answers(tmp_path):
    """The README's session is run by test_readme; any page of the book that shows one is run
    here the same way. The mail examples (docs/mail.md: George Dunlap's reply and its
    acknowledgement) are mail, not chat: the real reply is read and acknowledged in
    tests/integration/mail/test_replies.py."""
    assert len(sessions((ROOT / "README.md").read_text(encoding="utf-8"))) == 1
    run = 0
    for page in sorted(DOCS.glob("*.md")):
        for block in sessions(page.read_text(encoding="utf-8")):
            run += 1
            (cwd := tmp_path / str(run)).mkdir()
            expected, answered = demo_answers(block, cwd)
            assert answered == expected, page.name
    assert run >= 1  # docs/commands.md's !find
