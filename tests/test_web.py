"""The read-only status page over HTTP: the release table, filters, item pages, the Atom feed,
conditional GET, the burndown data and chart, and the one safe-link rule. The headless
browser tests are in tests/test_web_browser.py."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import subprocess
import sys
import threading
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timezone
from email.utils import formatdate
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from multidict import CIMultiDict

from todobot.bot.web import server as web_server
from todobot.bot.config import Config
from todobot.bot.web import StatusServer, parse_listen, templates
from todobot.commands.links import message_id_url, safe_url, segments
from todobot.commands.messages import Span
from todobot.storage import Database, Milestone, Repository, digests
from todobot.storage.layouts.xen42 import parse_mail, render_mail
from tests.harness import Clock, ids, ts

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parent.parent
SEED = REPO_ROOT / "storage" / "seed" / "xen-4.2.txt"
EVIL = '<script>alert("x")</script> & <b>bold</b>'
LORE = "https://lore.kernel.org/r/{msgid}"
ATOM = "{http://www.w3.org/2005/Atom}"


async def seed(repo: Repository, clock: Clock) -> None:
    """Release 4.2 from 2 July 2012: blockers get added, fixed and moved over three weeks."""
    clock.now = ts(2012, 7, 2, 9)
    async with repo.session("console:ijc") as s:
        rel = await s.create_release("4.2", intro="Plan for a 4.2 release")
        await s.set_milestones(rel, [Milestone("2 April", "Feature Freeze"),
                                     Milestone("30 July", "First release candidate"),
                                     Milestone("Weekly", "RCN+1 until release")])
        for i in range(6):
            await s.add_item(rel, area="tools", severity="blocker", title=f"blocker {i + 1}")
        for i in range(4):
            await s.add_item(rel, area="hypervisor", severity="nice", title=f"nice {i + 1}")
        await s.add_item(rel, area="tools", severity="nice", title=EVIL,
                         owners=await ids(s, "Mallory <m@x>"), progress="<i>nope</i>",
                         links=["javascript:alert(1)", "https://bugs.example.org/7?a=1&b=2"])
        await s.add_item(rel, area="tools", severity="blocker",
                         title="see http://lists.xen.org/archives/x.html for details",
                         owners=await ids(s, "Ian Campbell"))
    for day, item, change in ((3, 1, {"state": "done"}), (4, 2, {"state": "done"}),
                              (5, 7, {"severity": "blocker"}), (9, 3, {"severity": "nice"}),
                              (10, 4, {"state": "duplicate", "duplicate_of": 5}),
                              (12, 8, {"state": "done"})):
        clock.now = ts(2012, 7, day, 12)
        async with repo.session("console:ijc") as s:
            await s.update(await s.get(item), **change)
    clock.now = ts(2012, 7, 16, 9)


async def seed_xen(repo: Repository, clock: Clock) -> None:
    """The imported Xen 4.2 list (1 August 2012), then a week of work on it: #1 claimed and
    progressing, a note on #10, #19 done. It is 8 August, 09:00 UTC."""
    clock.now = ts(2012, 8, 1, 9)
    async with repo.session("console:ijc") as s:
        await s.import_list("4.2", parse_mail(SEED.read_text(encoding="utf-8"), "4.2"))
    for at, actor, item, change in (
            (ts(2012, 8, 2, 10), "irc:freenode/ijc", 1, {"owners": ["Ian Campbell"]}),
            (ts(2012, 8, 3, 11), "irc:freenode/ijc", 1,
             {"progress": "API review in progress, see http://example.org/review"}),
            (ts(2012, 8, 3, 12), "console:ijc", 10,
             {"note": "needs a backport <i>soon</i>, see https://example.org/n"}),
            (ts(2012, 8, 6, 15), "matrix:@jbeulich:xen.org", 19, {"state": "done"})):
        clock.now = at
        async with repo.session(actor) as s:
            if "note" in change:
                await s.add_note(await s.get(item), change["note"])
            else:
                if "owners" in change:
                    change = {**change, "owners": await ids(s, *change["owners"])}
                await s.update(await s.get(item), **change)
    clock.now = ts(2012, 8, 8, 9)


async def _serve(tmp_path, seeder, **web):
    clock = Clock(0)
    db = await Database.open(tmp_path / "web.sqlite3")
    repo = Repository(db, clock=clock)
    await seeder(repo, clock)
    server = StatusServer(repo, Config(web={"listen": "127.0.0.1:0", **web}))
    await server.start()
    return server, repo, clock, db


@pytest.fixture
async def site(tmp_path):
    server, repo, _, db = await _serve(tmp_path, seed)
    try:
        yield server, repo
    finally:
        await server.stop()
        await db.close()


@pytest.fixture
async def xen(tmp_path):
    """The Xen 4.2 list behind a status page with message-ids linked to lore.kernel.org."""
    server, repo, clock, db = await _serve(tmp_path, seed_xen, archive_url=LORE)
    try:
        yield server, repo, clock
    finally:
        await server.stop()
        await db.close()


async def get(url: str, **headers: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def fetch(url: str, **headers: str) -> tuple[int, CIMultiDict, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            return resp.status, CIMultiDict(resp.headers), await resp.text()


class Dom(HTMLParser):
    """Enough of the DOM to assert on: tags, ids, hrefs, text, and the table rows (ids of the
    `<tr>`s) and texts of each section (#open, #closed, #sub-items, ...)."""

    CONTAINERS = ("section", "details")

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.imgs: list[str] = []
        self.text: list[str] = []
        self.rows: dict[str, list[str]] = {}
        self.section_text: dict[str, list[str]] = {}
        self.attrs: dict[str, dict[str, str | None]] = {}  # by id
        self.row_text: dict[str, list[str]] = {}
        self.section_hrefs: dict[str, list[str]] = {}
        self._stack: list[str] = []
        self._row: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
            self.attrs[a["id"]] = a
        if tag in self.CONTAINERS:
            self._stack.append(a.get("id") or "")
        if tag == "tr" and a.get("id"):
            self._row = a["id"]
            self.rows.setdefault(self._stack[-1] if self._stack else "", []).append(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
            for container in self._stack:
                self.section_hrefs.setdefault(container, []).append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in self.CONTAINERS and self._stack:
            self._stack.pop()
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._stack:
            self.section_text.setdefault(self._stack[-1], []).append(data)
        if self._row:
            self.row_text.setdefault(self._row, []).append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)

    def section(self, name: str) -> str:
        return "".join(self.section_text.get(name, []))

    def row(self, row_id: str) -> str:
        return " ".join("".join(self.row_text.get(row_id, [])).split())

    def ids_in(self, section: str) -> list[int]:
        return [int(r.removeprefix("item-")) for r in self.rows.get(section, []) if r.startswith("item-")]


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError):
        parse_listen("8080")


# -- one safe-link rule ----------------------------------------------------------------------


def test_one_safe_link_rule_for_every_renderer():
    from todobot.commands import render_html, render_markdown

    assert safe_url(" https://bugs.example.org/7?a=1&b=2 ") == "https://bugs.example.org/7?a=1&b=2"
    assert safe_url("HTTP://Example.org") == "HTTP://Example.org"
    for bad in ("javascript:alert(1)", "data:text/html,<b>", "https://", "http:///x", "http://a b",
                "http://a\x00b", "ftp://x.org/f", "mailto:a@b", "", None):
        assert safe_url(bad) is None, bad
    assert segments("see http://a.org/x. and javascript:alert(1)") == [
        ("see ", None), ("http://a.org/x", "http://a.org/x"), (". and javascript:alert(1)", None)]
    assert message_id_url("<a/b@c.org>", LORE) == "https://lore.kernel.org/r/a%2Fb@c.org"
    assert message_id_url("<a@c.org>", None) is None and message_id_url("a@c.org", LORE) is None
    assert segments("thread <x@y>.", LORE) == [("thread ", None), ("<x@y>", "https://lore.kernel.org/r/x@y"),
                                              (".", None)]
    # the one HTML renderer (Matrix and the digests) and the Markdown one use the same function
    assert render_html.safe_url is safe_url and render_markdown.safe_url is safe_url
    # a scheme with no host was a link for the digest's old prefix check; it is text now
    for render in (render_html.span_html, render_markdown.span_md):
        out = render(Span("x", link="https://"))
        assert "href" not in out and "](" not in out
    assert 'href="https://a.org/"' in render_html.span_html(Span("x", link="https://a.org/"))


async def test_digest_html_links_items_to_their_pages(xen):
    from todobot.commands.render_digest import render_html
    from todobot.storage.digest_data import collect

    _, repo, clock = xen
    async with repo.session("t", write=False) as s:
        data = await collect(s, await s.require_release("4.2"), since=clock.now - 7 * 86400)
    linked = Dom(render_html(data, status_url="https://todo.example.org"))
    assert "https://todo.example.org/release/4.2/item/1" in linked.hrefs
    assert "https://todo.example.org/release/4.2/item/19" in linked.hrefs  # in "Done:"
    assert not [h for h in linked.hrefs if h.startswith("#item-")]
    plain = Dom(render_html(data))
    assert "#item-1" in plain.hrefs and not [h for h in plain.hrefs if "/item/" in h]


def test_archive_url_is_checked():
    assert Config(web={"archive_url": LORE}).web.archive_url == LORE
    for bad in ("https://lore.kernel.org/r/", "javascript:{msgid}"):
        with pytest.raises(Exception, match="msgid"):
            Config(web={"archive_url": bad})


# -- templates --------------------------------------------------------------------------------


def test_templates_escape_and_are_package_data():
    env = templates()
    assert env.autoescape("release.html") and env.autoescape("feed.xml")
    names = set(env.list_templates())
    assert {"base.html", "index.html", "release.html", "item.html", "feed.xml"} <= names
    globs = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())[
        "tool"]["setuptools"]["package-data"]["todobot.bot.web"]
    on_disk = {p.name for p in (REPO_ROOT / "bot" / "web" / "templates").iterdir()}
    assert on_disk == {n for n in on_disk if any(Path(n).match(g.split("/")[-1]) for g in globs)}
    for module in (REPO_ROOT / "bot" / "web").glob("*.py"):  # no HTML assembled in Python
        source = module.read_text()
        assert "<a " not in source and "<html" not in source and "<td" not in source, module


@pytest.mark.slow
def test_templates_load_from_a_built_wheel(tmp_path):
    """The wheel carries the templates, and the page renders from the installed package."""
    src = tmp_path / "src"  # a copy: building in the worktree would leave build/ behind
    shutil.copytree(REPO_ROOT, src, ignore=shutil.ignore_patterns(
        ".*", "build", "*.egg-info", "test-output", "tests", "bench", "docs", "__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                    str(src)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        assert "todobot/bot/web/templates/release.html" in zf.namelist()
        zf.extractall(site)
    probe = ("import todobot.bot.web as w, sys; assert w.__file__.startswith(sys.argv[1]), w.__file__;"
             "print(w.templates().get_template('index.html').render(title='t', releases=[],"
             " generated='g', generated_iso='i'))")
    out = subprocess.run([sys.executable, "-c", probe, str(site)], check=True, capture_output=True,
                         text=True, env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert "No releases yet." in out.stdout


# -- the burndown ---------------------------------------------------------------------------


async def test_burndown_counts_replay_the_history(site):
    _, repo = site
    async with repo.session("t", write=False) as s:
        rel = await s.require_release("4.2")
        days = [ts(2012, 7, 1, 23), ts(2012, 7, 2, 23), ts(2012, 7, 3, 23), ts(2012, 7, 5, 23),
                ts(2012, 7, 9, 23), ts(2012, 7, 10, 23), ts(2012, 7, 12, 23)]
        counts = await digests.open_counts(s, rel, days)
        full = await digests.burndown_counts(s, rel, days)
    # 7 blockers and 5 nice on day one; #1 and #2 done; #7 nice→blocker; #3 blocker→nice;
    # #4 a duplicate; #8 (nice) done on the 12th
    assert counts == [(0, 0), (7, 5), (6, 5), (6, 4), (5, 5), (4, 5), (4, 4)]
    # scope: every item added so far, closed or not
    assert [sc for _, _, sc in full] == [0, 12, 12, 12, 12, 12, 12]


async def test_freshly_imported_list_is_a_line_not_a_point(xen):
    server, repo, clock = xen
    clock.now = ts(2012, 8, 1, 18)  # the day of the import
    status, _, svg = await get(server.url + "/release/4.2/burndown.svg")
    root = ET.fromstring(svg.encode())
    assert not [el for el in root.iter() if el.tag.endswith("script")]
    assert "scope (items added)" in svg and "2012-07-31" in svg and "2012-08-01" in svg
    async with repo.session("t", write=False) as s:
        rel = await s.require_release("4.2")
        days = server._days(rel, clock.now)
        counts = await digests.burndown_counts(s, rel, [ts(d.year, d.month, d.day, 23) for d in days])
    assert len(days) == 2 and counts[0] == (0, 0, 0) and counts[1][2] == 19


# -- the release page -----------------------------------------------------------------------


async def test_pages_escape_everything(site):
    server, _ = site
    status, ctype, body = await get(server.url + "/")
    assert status == 200 and ctype.startswith("text/html")
    assert '<a href="/release/4.2">4.2</a>' in body and "4 open blockers (3 unclaimed), 4 nice to have" in body
    status, _, page = await get(server.url + "/release/4.2")
    dom = Dom(page)
    assert status == 200
    assert "script" not in dom.tags  # item text is escaped, never markup
    assert EVIL in dom.all_text and "<i>nope</i>" in dom.all_text
    assert "&lt;script&gt;" in page
    assert "item-11" in dom.ids and "item-12" in dom.ids
    assert "/release/4.2/item/11" in dom.hrefs
    assert "http://lists.xen.org/archives/x.html" in dom.hrefs  # a link in the text
    assert "https://bugs.example.org/7?a=1&b=2" in dom.hrefs  # a stored link, escaped in HTML
    assert not any(h.startswith("javascript:") for h in dom.hrefs)
    assert "javascript:alert(1)" in dom.all_text  # shown, not clickable
    assert dom.imgs == ["/release/4.2/burndown.svg"]
    assert "Weekly          -- RCN+1 until release" in dom.all_text
    assert "Mallory <m@x>" in dom.row("item-11")
    # the mail's order: blockers first, areas as they first appear (#7 became a blocker, #3 not)
    assert dom.ids_in("open") == [5, 6, 12, 7, 3, 11, 9, 10]
    assert dom.ids_in("closed") == [1, 2, 4, 8]

    status, ctype, txt = await get(server.url + "/release/4.2.txt")
    assert status == 200 and ctype.startswith("text/plain")
    async with site[1].session("t", write=False) as s:
        assert txt == render_mail(await s.export_list(await s.require_release("4.2")), ids=True)
    status, ctype, js = await get(server.url + "/release/4.2.json")
    assert ctype.startswith("application/json") and json.loads(js)["release"] == "4.2"
    assert len(json.loads(js)["items"]) == 12

    status, ctype, svg = await get(server.url + "/release/4.2/burndown.svg")
    assert status == 200 and ctype == "image/svg+xml"
    root = ET.fromstring(svg.encode())
    assert root.tag.endswith("svg")
    assert "open blockers" in svg and "open nice to have" in svg and "2012-07-16" in svg
    assert not [el for el in root.iter() if el.tag.endswith("script")]

    for path in ("/release/9.9", "/release/9.9/burndown.svg", "/release/9.9/feed.atom",
                 "/release/9.9/item/1"):
        assert (await get(server.url + path))[0] == 404, path
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url + "/release/4.2") as resp:
            assert resp.status == 405  # read-only
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]
        async with http.get(server.url + "/release/4.2") as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "script-src" not in csp


async def test_release_table(xen):
    server, _, _ = xen
    status, _, page = await get(server.url + "/release/4.2")
    dom = Dom(page)
    assert status == 200
    assert "#TitleAreaSeverityOwnersProgressLast change" in dom.section("open").replace("\n", "")
    # summary, timeline and chart come before the table
    assert page.index('id="summary"') < page.index('id="timeline"') < page.index('id="open"')
    assert "6 open blockers (5 unclaimed), 7 nice to have" in dom.all_text
    # open items, blockers first, sub-items right under their parent; done ones folded away
    assert dom.ids_in("open") == [1, 2, 4, 5, 8, 10, 11, 12, 13, 15, 16, 17, 18]
    assert dom.ids_in("closed") == [3, 6, 7, 9, 14, 19]
    assert "open" not in dom.attrs["closed"]  # <details> closed
    assert "d1" in dom.attrs["item-2"]["class"]
    row1 = dom.row("item-1")
    assert "libxl stable API" in row1 and "tools" in row1 and "blockers" in row1
    assert "Ian Campbell" in row1 and "API review in progress" in row1 and "5 days ago" in row1
    assert "unclaimed" in dom.row("item-4") and "7 days ago" in dom.row("item-4")
    assert "Jinsong Liu, Jan Beulich" in dom.row("item-11")
    assert "DONE" in dom.row("item-19") and "2 days ago" in dom.row("item-19")
    assert "http://example.org/review" in dom.hrefs
    assert "https://lore.kernel.org/r/db614e92faf743e20b3f.1337096977@kodo2" in dom.hrefs
    assert "Generated 2012-08-08 09:00 UTC" in " ".join(dom.all_text.split())


# -- filters ----------------------------------------------------------------------------------


async def _ids(server, query: str) -> tuple[list[int], list[int], Dom]:
    status, _, page = await get(f"{server.url}/release/4.2?{query}")
    assert status == 200, page
    dom = Dom(page)
    return dom.ids_in("open"), dom.ids_in("closed"), dom


@pytest.mark.parametrize("query, open_ids, closed_ids", [
    ("severity=blocker", [1, 2, 4, 5, 8, 10], [3, 6, 7, 9]),
    ("area=hypervisor", [11], []),
    ("area=TOOLS&severity=nice", [12, 13, 15, 16, 17, 18], [14, 19]),
    ("owner=unclaimed&severity=blocker", [2, 4, 5, 8, 10], []),
    ("owner=ian+campbell", [1], []),
    ("owner=Ian+C", [], [3, 7]),
    ("state=done", [], [3, 6, 7, 9, 14, 19]),
    ("state=closed&area=hypervisor", [], []),
    ("state=all&owner=Ian+C", [], [3, 7]),
    ("q=xl+compatibility", [4, 12], []),
    ("q=PCI&severity=nice", [], [19]),
    ("q=bugzilla+1821", [16], []),
    ("q=%2318", [18], []),
])
async def test_filters(xen, query, open_ids, closed_ids):
    server, _, _ = xen
    got_open, got_closed, dom = await _ids(server, query)
    assert (got_open, got_closed) == (open_ids, closed_ids)
    assert "Showing" in dom.section("filters")
    if query.startswith(("state=done", "state=closed")):
        assert "open" not in dom.ids  # only closed items asked for
        if closed_ids:
            assert "open" in dom.attrs["closed"]  # asked for: unfolded


async def test_filter_links_keep_the_other_filters(xen):
    server, _, _ = xen
    _, _, dom = await _ids(server, "severity=blocker&q=xl")
    queries = [parse_qs(urlsplit(h).query) for h in dom.hrefs if h.startswith("/release/4.2?")]
    area = [q for q in queries if q.get("area") == ["tools"]]
    assert area and all(q["severity"] == ["blocker"] and q["q"] == ["xl"] for q in area)
    owner = [q for q in queries if q.get("owner") == ["unclaimed"]]
    assert owner and all(q["severity"] == ["blocker"] and q["q"] == ["xl"] for q in owner)
    # the current severity link drops it (and keeps q); "nice to have" swaps it
    assert {"q": ["xl"]} in queries and {"severity": ["nice"], "q": ["xl"]} in queries
    # item links carry the filters, and the item page's way back keeps them
    assert "/release/4.2/item/4?severity=blocker&q=xl" in dom.hrefs
    status, _, item = await get(server.url + "/release/4.2/item/4?severity=blocker&q=xl")
    assert status == 200 and "/release/4.2?severity=blocker&q=xl" in Dom(item).hrefs
    # the search box keeps the other filters as hidden fields
    assert '<input type="hidden" name="severity" value="blocker">' in (await get(
        server.url + "/release/4.2?severity=blocker&q=xl"))[2]


async def test_bad_filters_get_one_line(xen):
    server, _, _ = xen
    status, _, body = await get(server.url + "/release/4.2/burndown.svg?size=huge")
    assert status == 400 and body == "size is wide or narrow, not 'huge'"
    for query, words in (("severity=urgent", "severity is blocker or nice"),
                         ("state=finished", "state is one of"), ("q=" + "x" * 300, "longer than")):
        status, ctype, body = await get(f"{server.url}/release/4.2?{query}")
        assert status == 400 and ctype.startswith("text/plain") and words in body
        assert len(body.splitlines()) == 1
    _, _, dom = await _ids(server, "q=nothing+matches+this")
    assert "No open items match." in dom.all_text


# -- pages of a long table --------------------------------------------------------------------


async def seed_long(repo: Repository, clock: Clock) -> None:
    """Release 9 with 450 open items (every fifth a sub-item of the one before) and 30 done."""
    clock.now = ts(2012, 7, 2, 9)
    async with repo.session("console:ijc") as s:
        rel = await s.create_release("9")
        parent = None
        for i in range(480):
            it = await s.add_item(rel, area="tools", severity="nice", title=f"long {i}",
                                  state="done" if i >= 450 else "open",
                                  parent=parent if i % 5 == 4 and i < 450 else None)
            parent = it.id


@pytest.fixture
async def long_list(tmp_path):
    server, repo, _, db = await _serve(tmp_path, seed_long)
    try:
        yield server
    finally:
        await server.stop()
        await db.close()


async def test_a_long_table_comes_in_pages_of_200_rows(long_list):
    server = long_list
    status, headers, page = await fetch(server.url + "/release/9")
    dom = Dom(page)
    assert status == 200
    assert dom.ids_in("open") == list(range(1, 201)) and dom.ids_in("closed") == list(range(451, 481))
    assert "Open items (450; 1–200 shown)" in dom.all_text
    assert "Done and closed items (30)" in " ".join(dom.all_text.split())
    assert "Page 1 of 3" in dom.all_text and "/release/9?page=2" in dom.hrefs
    status, again, page = await fetch(server.url + "/release/9?page=3")
    dom = Dom(page)
    assert status == 200 and again["ETag"] != headers["ETag"]
    assert dom.ids_in("open") == list(range(401, 451)) and dom.ids_in("closed") == []
    assert "Open items (450; 401–450 shown)" in dom.all_text and "None on this page." in dom.all_text
    assert "/release/9?page=2" in dom.hrefs and "/release/9?" in dom.hrefs  # previous, page 1
    # filters are kept from page to page; choosing a filter starts again at page 1
    _, _, page = await get(server.url + "/release/9?q=long&page=2")
    dom = Dom(page)
    assert dom.ids_in("open") == list(range(201, 401))
    assert "/release/9?q=long&page=3" in dom.hrefs and "/release/9?severity=nice&q=long" in dom.hrefs
    for query, status_code, text in (("page=4", 404, "No such page: there are 3 pages, not 4."),
                                     ("page=0", 400, "Bad page: page is a number from 1, not '0'."),
                                     ("page=x", 400, "Bad page: page is a number from 1, not 'x'.")):
        assert (await get(f"{server.url}/release/9?{query}"))[::2] == (status_code, text)


async def test_a_release_table_is_rendered_once_until_it_changes(long_list, monkeypatch):
    server = long_list
    renders = []
    html = server._html

    def counting(template, now, **context):
        renders.append(template)
        return html(template, now, **context)
    monkeypatch.setattr(server, "_html", counting)
    _, first, body = await fetch(server.url + "/release/9")
    _, again, body_again = await fetch(server.url + "/release/9")
    assert (again["ETag"], body_again) == (first["ETag"], body) and renders == ["release.html"]
    await fetch(server.url + "/release/9?page=2")
    assert len(renders) == 2  # another page, another copy
    async with server.repo.session("console:ijc") as s:
        await s.update(await s.get(1), title="renamed")
    status, headers, body = await fetch(server.url + "/release/9")
    assert status == 200 and "renamed" in body and headers["ETag"] != first["ETag"]
    assert len(renders) == 3


# -- rendering: in a worker thread, once per page ------------------------------------------------


def counting_chart(monkeypatch, calls: list[int], go: threading.Event | None = None) -> None:
    """burndown_svg, recording the thread of each call (and, with `go`, waiting for it)."""
    chart = web_server.burndown_svg

    def counted(*args, **kwargs):
        calls.append(threading.get_ident())
        if go is not None:
            assert go.wait(60)
        return chart(*args, **kwargs)
    monkeypatch.setattr(web_server, "burndown_svg", counted)


def counting_pages(monkeypatch, server, calls: list[tuple[str, int]]) -> None:
    html = server._html

    def counted(template, now, **context):
        calls.append((template, threading.get_ident()))
        return html(template, now, **context)
    monkeypatch.setattr(server, "_html", counted)


async def test_cache_busting_queries_render_nothing_new(xen, monkeypatch):
    server, repo, _ = xen
    charts: list[int] = []
    pages: list[tuple[str, int]] = []
    counting_chart(monkeypatch, charts)
    counting_pages(monkeypatch, server, pages)
    etags = set()
    for n in range(10):
        status, headers, _ = await fetch(f"{server.url}/release/4.2/burndown.svg?x={n}&_={n}")
        assert status == 200
        etags.add(headers["ETag"])
    assert len(charts) == 1 and len(etags) == 1
    for query in ("", "?x=1", "?page=1&utm_source=irc", "?x=2&severity=", "?q=+"):
        assert (await get(f"{server.url}/release/4.2{query}"))[0] == 200
    assert [t for t, _ in pages] == ["release.html"]
    # the parameters the page reads count, in any order: one more page
    for query in ("?severity=blocker&q=xl", "?q=xl&x=3&severity=blocker", "?severity=blocker&q=%20xl"):
        assert (await get(f"{server.url}/release/4.2{query}"))[0] == 200
    assert [t for t, _ in pages] == ["release.html"] * 2
    for path in ("/release/4.2/item/1?x=1", "/release/4.2/item/1?x=2", "/release/4.2/feed.atom?x=1",
                 "/release/4.2/feed.atom?x=2", "/?x=1", "/?x=2"):
        assert (await get(server.url + path))[0] == 200
    assert [t for t, _ in pages] == ["release.html"] * 2 + ["item.html", "index.html"]
    # a change renders the page again, once
    async with repo.session("console:ijc") as s:
        await s.update(await s.get(1), title="renamed")
    for n in range(3):
        assert "renamed" in (await get(f"{server.url}/release/4.2?x={n}"))[2]
    assert [t for t, _ in pages][-1:] == ["release.html"] and len(pages) == 5


async def test_concurrent_requests_for_a_page_render_it_once(xen, monkeypatch):
    server, _, _ = xen
    charts: list[int] = []
    go = threading.Event()  # the chart is held until every request has arrived
    counting_chart(monkeypatch, charts, go)
    arrived, everyone = [], asyncio.Event()
    cache_get = server.cache.get

    async def arriving(*args, **kwargs):
        arrived.append(1)
        if len(arrived) == 20:
            everyone.set()
        return await cache_get(*args, **kwargs)
    monkeypatch.setattr(server.cache, "get", arriving)
    requests = [asyncio.create_task(get(f"{server.url}/release/4.2/burndown.svg?x={n}"))
                for n in range(20)]
    try:
        await asyncio.wait_for(everyone.wait(), 60)
    finally:
        go.set()
    answers = await asyncio.gather(*requests)
    assert {status for status, _, _ in answers} == {200} and len({body for _, _, body in answers}) == 1
    assert len(charts) == 1


class Gate:
    """Counts the callers of a wrapped coroutine function at once (`most`), holding each until
    `expected` requests have arrived: whatever may run at once then does."""

    def __init__(self, expected: int) -> None:
        self.expected, self.arrived, self.everyone = expected, 0, asyncio.Event()
        self.now = self.most = 0

    def arrive(self) -> None:
        self.arrived += 1
        if self.arrived == self.expected:
            self.everyone.set()

    async def hold(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.wait_for(self.everyone.wait(), 60)

    def done(self) -> None:
        self.now -= 1


async def test_requests_share_their_database_reads(xen, monkeypatch):
    """A hundred parallel requests must not queue a hundred reads before a chat command's:
    those asking while a read runs share the next one, and one read runs at a time."""
    server, repo, _ = xen
    for n in range(1, 6):  # kept from now on: only the first reads remain
        assert (await get(f"{server.url}/release/4.2/item/{n}"))[0] == 200
    read, run = server.reads.read, repo.run
    gate, reads = Gate(0), []

    async def asking(*args, **kwargs):  # every request asks here, before its database read
        gate.arrive()
        return await read(*args, **kwargs)

    async def reading(*args, **kwargs):
        reads.append(1)
        await gate.hold()
        try:
            return await run(*args, **kwargs)
        finally:
            gate.done()
    monkeypatch.setattr(server.reads, "read", asking)
    monkeypatch.setattr(repo, "run", reading)
    async def ask(paths: list[str]) -> None:
        nonlocal gate
        gate = Gate(len(paths))
        reads.clear()
        answers = await asyncio.gather(*(get(server.url + path) for path in paths))
        assert {status for status, _, _ in answers} == {200}

    # twenty times the same question: the first read (held until all had asked), maybe one
    # more for those who asked once it had begun
    await ask([f"/release/4.2/item/1?x={n}" for n in range(20)])
    assert 1 <= len(reads) <= 2 and gate.most == 1
    # five questions: five reads, one at a time
    await ask([f"/release/4.2/item/{n}" for n in range(1, 6)])
    assert len(reads) == 5 and gate.most == 1
    # a read begun before a change is not the answer to a request made after it
    monkeypatch.undo()
    async with repo.session("console:ijc") as s:
        await s.update(await s.get(1), title="renamed")
    status, _, page = await get(server.url + "/release/4.2/item/1?x=new")
    assert status == 200 and "renamed" in page


async def test_requests_begin_one_per_turn_of_the_loop(xen, monkeypatch):
    """Kept pages are served without a pause: requests begun together would run back to back
    while a chat message waits. They begin one per turn of the event loop, in order."""
    server, _, _ = xen
    assert (await get(server.url + "/release/4.2/burndown.svg"))[0] == 200  # kept from now on
    loop, turns, begun = asyncio.get_running_loop(), [0], []

    def tick() -> None:  # counts the turns of the loop: runs once in each
        turns[0] += 1
        ticking[0] = loop.call_soon(tick)
    ticking = [loop.call_soon(tick)]
    look_up = server._look_up

    async def beginning(*args, **kwargs):  # where every page request begins its work
        begun.append(turns[0])
        return await look_up(*args, **kwargs)
    monkeypatch.setattr(server, "_look_up", beginning)
    conns = [await asyncio.open_connection(server.host, server.port) for _ in range(20)]
    try:
        for n, (_, writer) in enumerate(conns):  # all twenty sent in one turn
            writer.write(f"GET /release/4.2/burndown.svg?x={n} HTTP/1.1\r\nHost: t\r\n"
                         "Connection: close\r\n\r\n".encode())
        statuses = [(await reader.readline()).split()[1] for reader, _ in conns]
    finally:
        ticking[0].cancel()
        for _, writer in conns:
            writer.close()
    assert statuses == [b"200"] * 20
    assert len(set(begun)) == 20, begun


async def test_pages_are_built_two_at_a_time(xen, monkeypatch):
    """Distinct filters are distinct pages; building them holds the database, so only two
    are built at once and the others wait their turn."""
    server, repo, _ = xen
    gate = Gate(8)
    cache_get = server.cache.get

    async def arriving(*args, **kwargs):
        gate.arrive()
        return await cache_get(*args, **kwargs)
    monkeypatch.setattr(server.cache, "get", arriving)
    read = server._read

    async def building(*args, **kwargs):  # a page's reads, the first step of building it
        await gate.hold()
        try:
            return await read(*args, **kwargs)
        finally:
            gate.done()
    monkeypatch.setattr(server, "_read", building)
    answers = await asyncio.gather(*(get(f"{server.url}/release/4.2?q=x{n}") for n in range(8)))
    assert {status for status, _, _ in answers} == {200} and gate.most == 2


async def test_kept_pages_are_few_per_release_newest_state_least_recently_used_out():
    from todobot.bot.web.cache import RenderCache

    cache, built = RenderCache(per_release=3, entries=5), []

    async def page(release: str, stamp: tuple[int, str], query: str) -> str:
        async def build() -> str:
            built.append((release, stamp, query))
            return f"{release} {stamp} {query}"
        return await cache.get(release, stamp, query, build)

    s1, s2 = (1, "2012-08-08"), (2, "2012-08-08")
    for q in ("a", "b", "c", "a", "d"):  # "a" used again before "d" comes: "b" goes
        await page("4.2", s1, q)
    assert len(built) == 4
    await page("4.2", s1, "a")
    await page("4.2", s1, "c")
    assert len(built) == 4
    await page("4.2", s1, "b")
    assert len(built) == 5  # built again
    for q in ("x", "y", "z"):  # another release: its own three, and five in all
        await page("4.3", s1, q)
    assert sum(k[0] == "4.2" for k in cache._done) == 2 and len(cache._done) == 5
    # a newer state of a release drops its older pages; an older one is not kept over it
    await page("4.2", s2, "a")
    assert [k for k in cache._done if k[0] == "4.2"] == [("4.2", s2, "a")]
    await page("4.2", s1, "q")
    assert ("4.2", s1, "q") not in cache._done
    cache.close()


async def test_pages_render_off_the_event_loop(xen, monkeypatch):
    server, _, _ = xen
    charts: list[int] = []
    pages: list[tuple[str, int]] = []
    counting_chart(monkeypatch, charts)
    counting_pages(monkeypatch, server, pages)
    for path in ("/", "/release/4.2", "/release/4.2/item/1", "/release/4.2/burndown.svg"):
        assert (await get(server.url + path))[0] == 200, path
    loop_thread = threading.get_ident()
    assert len(pages) == 3 and len(charts) == 1
    assert loop_thread not in {t for _, t in pages} | set(charts)


async def test_item_ids_are_ascii_digits_without_leading_zeros(xen):
    server, _, _ = xen
    assert (await get(server.url + "/release/4.2/item/2"))[0] == 200
    # Arabic-Indic and fullwidth 2, leading zeros, a sign, a "#", spaces: not the URL of #2
    for raw in ("%D9%A2", "%EF%BC%92", "02", "0002", "+2", "%232", "2%20", "%202", "0"):
        status, _, body = await get(f"{server.url}/release/4.2/item/{raw}")
        assert status == 404 and len(body.splitlines()) == 1, raw
    status, _, body = await get(server.url + "/release/4.2?page=%D9%A2")
    assert status == 400 and body.startswith("Bad page"), body


async def test_an_overlong_url_is_one_warning_line(xen, caplog):
    server, _, _ = xen
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"GET /release/4.2?q=" + b"x" * 8200 + b" HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await writer.drain()
    status_line = await reader.readline()
    await reader.read()  # aiohttp closes the connection after an error
    writer.close()
    assert status_line.split()[1] in (b"400", b"414"), status_line
    logged = [r for r in caplog.records if r.name.startswith(("aiohttp", "todobot"))
              and r.levelno >= logging.INFO and "status page on" not in r.getMessage()]
    assert len(logged) == 1, [r.getMessage()[:200] for r in logged]
    record = logged[0]
    assert record.levelno == logging.WARNING and record.exc_info is None and not record.exc_text
    assert "bad HTTP request" in record.getMessage() and len(record.getMessage()) < 250
    assert (await get(server.url + "/release/4.2"))[0] == 200  # and the site goes on


async def test_parallel_requests_past_the_last_page_each_get_their_404(long_list):
    server = long_list
    answers = await asyncio.gather(*(get(f"{server.url}/release/9?page=7&x={n}") for n in range(8)))
    assert {(status, body) for status, _, body in answers} == {
        (404, "No such page: there are 3 pages, not 7.")}


# -- item pages -------------------------------------------------------------------------------


async def test_item_page_shows_everything(xen):
    server, repo, _ = xen
    status, _, page = await get(server.url + "/release/4.2/item/1")
    dom = Dom(page)
    assert status == 200
    text = " ".join(" ".join(dom.text).split())
    assert "#1 libxl stable API" in text and "we would like 4.2 to define a stable API" in text
    assert "Owners Ian Campbell" in text and "Progress API review in progress" in text
    assert "http://example.org/review" in dom.hrefs
    assert dom.ids_in("sub-items") == [2]
    history = dom.section("history")
    assert "added: libxl stable API" in history and "owners: Ian Campbell" in history
    assert "irc:freenode/ijc" in history and "progress: API review" in history
    # message-ids through web.archive_url; other links as they are
    status, _, page = await get(server.url + "/release/4.2/item/10")
    dom = Dom(page)
    assert "https://lore.kernel.org/r/20502.39440.969619.824976@mariner.uk.xensource.com" \
        in dom.section_hrefs["links"]
    notes = " ".join(dom.section("notes").split())
    assert "needs a backport <i>soon</i>" in notes and "console:ijc" in notes and "5 days ago" in notes
    assert "<i>soon" not in page and "https://example.org/n" in dom.hrefs
    # a sub-item names its parent; a done item says so
    dom = Dom((await get(server.url + "/release/4.2/item/3"))[2])
    assert "/release/4.2/item/2" in dom.hrefs and "done" in dom.all_text
    dom = Dom((await get(server.url + "/release/4.2/item/19"))[2])
    assert "done (was open)" in dom.section("history")
    assert dom.section_hrefs["links"] == [
        "http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1826",
        "https://lore.kernel.org/r/E4558C0C96688748837EB1B05BEED75A0FD5574A@SHSMSX102.ccr.corp.intel.com"]


async def test_item_pages_of_other_releases_are_404(xen):
    server, repo, _ = xen
    async with repo.session("console:ijc") as s:
        other = await s.create_release("4.3")
        moved = await s.add_item(other, area="tools", severity="nice", title="for later")
    assert (await get(f"{server.url}/release/4.3/item/{moved.id}"))[0] == 200
    for path in (f"/release/4.2/item/{moved.id}", "/release/4.3/item/1", "/release/4.2/item/999",
                 "/release/4.2/item/abc", "/release/4.2/item/-1", "/release/4.2/item/" + "9" * 40):
        status, _, body = await get(server.url + path)
        assert status == 404 and len(body.splitlines()) == 1, path


async def test_message_ids_stay_text_without_an_archive(tmp_path):
    server, _, _, db = await _serve(tmp_path, seed_xen)
    try:
        status, _, page = await get(server.url + "/release/4.2/item/10")
        dom = Dom(page)
        assert "<20502.39440.969619.824976@mariner.uk.xensource.com>" in dom.section("links")
        assert not [h for h in dom.hrefs if "20502.39440" in h]
    finally:
        await server.stop()
        await db.close()


# -- the Atom feed -----------------------------------------------------------------------------


async def test_atom_feed(xen):
    server, repo, _ = xen
    status, headers, body = await fetch(server.url + "/release/4.2/feed.atom")
    assert status == 200 and headers["Content-Type"].startswith("application/atom+xml")
    root = ET.fromstring(body.encode())
    assert root.tag == ATOM + "feed"
    for name in ("id", "title", "updated", "author"):
        assert root.find(ATOM + name) is not None, name
    assert root.find(ATOM + "author/" + ATOM + "name").text == "todobot"
    self_link = [ln for ln in root.findall(ATOM + "link") if ln.get("rel") == "self"]
    assert self_link and self_link[0].get("href") == server.url + "/release/4.2/feed.atom"
    entries = root.findall(ATOM + "entry")
    async with repo.session("t", write=False) as s:
        rows = await s.recent_changes(await s.require_release("4.2"), 1000)
    assert len(entries) == len(rows)  # one entry per change
    ids = []
    for e in entries:
        for name in ("id", "title", "updated", "author/" + ATOM + "name", "link"):
            el = e.find(ATOM + name)
            assert el is not None and (el.text or el.get("href")), name
        datetime.fromisoformat(e.find(ATOM + "updated").text)  # RFC 3339
        ids.append(e.find(ATOM + "id").text)
    assert len(set(ids)) == len(ids)
    newest = entries[0]
    assert newest.find(ATOM + "title").text == "#19 done (was open)"
    assert newest.find(ATOM + "link").get("href") == server.url + "/release/4.2/item/19"
    assert newest.find(ATOM + "author/" + ATOM + "name").text == "matrix:@jbeulich:xen.org"
    assert newest.find(ATOM + "updated").text == "2012-08-06T15:00:00+00:00"
    assert root.find(ATOM + "updated").text == "2012-08-06T15:00:00+00:00"


async def test_feed_escapes_and_uses_the_public_url(tmp_path):
    server, repo, _, db = await _serve(tmp_path, seed, public_url="https://todo.example.org/")
    try:
        async with repo.session("console:ijc") as s:
            await s.add_note(await s.get(11), "bell \x07 and <b>tags</b> & more")
        status, _, body = await get(server.url + "/release/4.2/feed.atom")
        root = ET.fromstring(body.encode())  # well-formed despite the item text
        titles = [e.find(ATOM + "title").text for e in root.findall(ATOM + "entry")]
        assert "#11 note: bell \ufffd and <b>tags</b> & more" in titles
        assert f"#11 added: {EVIL}" in titles
        links = {e.find(ATOM + "link").get("href") for e in root.findall(ATOM + "entry")}
        assert "https://todo.example.org/release/4.2/item/11" in links
    finally:
        await server.stop()
        await db.close()


def test_relative_days_are_calendar_days():
    from zoneinfo import ZoneInfo

    from todobot.bot.web.pages import relative_day
    now = ts(2012, 8, 8, 9)
    assert relative_day(ts(2012, 8, 8, 0, 30), now, UTC) == "today"
    assert relative_day(ts(2012, 8, 7, 23, 59), now, UTC) == "yesterday"
    assert relative_day(ts(2012, 8, 5, 12), now, UTC) == "3 days ago"
    assert relative_day(ts(2012, 7, 20), now, UTC) == "2 weeks ago"
    assert relative_day(ts(2012, 3, 19), now, UTC) == "19 Mar 2012"
    # 23:30 UTC on the 7th is already the 8th in Berlin
    assert relative_day(ts(2012, 8, 7, 23, 30), now, ZoneInfo("Europe/Berlin")) == "today"


# -- conditional GET ---------------------------------------------------------------------------

PAGES = ("/", "/release/4.2", "/release/4.2?severity=blocker", "/release/4.2/item/1",
         "/release/4.2/feed.atom", "/release/4.2/burndown.svg", "/release/4.2/burndown.svg?size=narrow",
         "/release/4.2.txt", "/release/4.2.json")


async def test_etag_and_last_modified_revalidate(xen):
    server, repo, clock = xen
    first: dict[str, str] = {}
    for path in PAGES:
        status, headers, _ = await fetch(server.url + path)
        assert status == 200 and headers["ETag"].startswith('W/"') and "Last-Modified" in headers, path
        first[path] = headers["ETag"]
        status, again, body = await fetch(server.url + path, **{"If-None-Match": headers["ETag"]})
        assert status == 304 and body == "" and again["ETag"] == headers["ETag"], path
        status, _, _ = await fetch(server.url + path, **{"If-Modified-Since": headers["Last-Modified"]})
        assert status == 304, path
        status, _, _ = await fetch(server.url + path, **{"If-None-Match": 'W/"other"',
                                                         "If-Modified-Since": headers["Last-Modified"]})
        assert status == 200, path  # the ETag decides when both are sent
        status, _, _ = await fetch(server.url + path, **{"If-Modified-Since": formatdate(ts(2012, 8, 1), usegmt=True)})
        assert status == 200, path
    assert len(set(first.values())) == len(PAGES)  # filters and forms have their own
    # today's Last-Modified: the relative times were computed this morning
    assert (await fetch(server.url + "/release/4.2"))[1]["Last-Modified"] == "Wed, 08 Aug 2012 00:00:00 GMT"

    clock.now += 3600
    async with repo.session("console:ijc") as s:
        await s.update(await s.get(5), owners=await ids(s, "Ian Jackson"))
    for path in PAGES:
        status, headers, _ = await fetch(server.url + path, **{"If-None-Match": first[path]})
        assert status == 200 and headers["ETag"] != first[path], path
        assert headers["Last-Modified"] == "Wed, 08 Aug 2012 10:00:00 GMT", path
    _, headers, _ = await fetch(server.url + "/release/4.2")
    async with aiohttp.ClientSession() as http:
        async with http.head(server.url + "/release/4.2", headers={"If-None-Match": headers["ETag"]}) as resp:
            assert resp.status == 304
        async with http.head(server.url + "/release/4.2/item/5") as resp:
            assert resp.status == 200 and resp.headers["ETag"] and resp.headers["Last-Modified"]
    clock.now += 86400  # nothing changed, but "yesterday" is "2 days ago" now
    status, later, _ = await fetch(server.url + "/release/4.2", **{"If-None-Match": headers["ETag"]})
    assert status == 200 and later["ETag"] != headers["ETag"]


async def test_mail_text_of_a_development_update_release_is_in_its_layout(xen):
    from todobot.storage.layouts import devupdate
    server, repo, _ = xen
    text = (REPO_ROOT / "tests" / "data" / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    async with repo.session("console:ijc") as s:
        await s.import_list("4.3", devupdate.parse(text, "4.3"))
    status, _, txt = await fetch(server.url + "/release/4.3.txt")
    assert status == 200 and "= Timeline =" in txt and "== Bugs ==" in txt
    async with repo.session("t", write=False) as s:
        assert txt == devupdate.render(await s.export_list(await s.require_release("4.3")))


async def test_healthz_says_what_is_failing(tmp_path):
    """200 while the app says all is well, 503 with its reasons otherwise; never cached."""
    state = {"ok": True}

    async def health():
        if state["ok"]:
            return True, {"status": "ok", "database": "ok", "transports": {"irc:oftc": "ok"}}
        return False, {"status": "failing", "database": "ok",
                       "transports": {"irc:oftc": "connected but not logged in to its account"}}

    db = await Database.open(tmp_path / "h.sqlite3")
    server = StatusServer(Repository(db), Config(web={"listen": "127.0.0.1:0"}), health=health)
    await server.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
                assert (await resp.json())["status"] == "ok"
            state["ok"] = False
            async with http.get(f"{server.url}/healthz") as resp:
                assert resp.status == 503
                assert (await resp.json())["transports"]["irc:oftc"].startswith("connected but not")
    finally:
        await server.stop()
        await db.close()
