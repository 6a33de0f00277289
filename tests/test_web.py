"""The read-only status page: HTTP, the burndown data and chart, and a real headless browser."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import xml.etree.ElementTree as ET
from datetime import timezone
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest

from todobot.bot.config import Config
from todobot.bot.web import StatusServer, parse_listen
from todobot.storage import Database, Milestone, Repository, digests
from todobot.storage.layouts.xen42 import render_mail
from tests.harness import Clock, ts

UTC = timezone.utc
REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "test-output"
EVIL = '<script>alert("x")</script> & <b>bold</b>'


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
                         owners=["Mallory <m@x>"], progress="<i>nope</i>",
                         links=["javascript:alert(1)", "https://bugs.example.org/7?a=1&b=2"])
        await s.add_item(rel, area="tools", severity="blocker",
                         title="see http://lists.xen.org/archives/x.html for details",
                         owners=["Ian Campbell"])
    for day, item, change in ((3, 1, {"state": "done"}), (4, 2, {"state": "done"}),
                              (5, 7, {"severity": "blocker"}), (9, 3, {"severity": "nice"}),
                              (10, 4, {"state": "duplicate", "duplicate_of": 5}),
                              (12, 8, {"state": "done"})):
        clock.now = ts(2012, 7, day, 12)
        async with repo.session("console:ijc") as s:
            await s.update(await s.get(item), **change)
    clock.now = ts(2012, 7, 16, 9)


@pytest.fixture
async def site(tmp_path):
    clock = Clock(0)
    db = await Database.open(tmp_path / "web.sqlite3")
    repo = Repository(db, clock=clock)
    await seed(repo, clock)
    server = StatusServer(repo, Config(web={"listen": "127.0.0.1:0"}))
    await server.start()
    try:
        yield server, repo
    finally:
        await server.stop()
        await db.close()


async def get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


class Dom(HTMLParser):
    """Enough of the DOM to assert on: tags, ids, hrefs, and text."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.imgs: list[str] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))

    def handle_data(self, data):
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return "".join(self.text)


def test_listen_addresses():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    with pytest.raises(ValueError):
        parse_listen("8080")


async def test_burndown_counts_replay_the_history(site):
    _, repo = site
    async with repo.session("t", write=False) as s:
        rel = await s.require_release("4.2")
        days = [ts(2012, 7, 1, 23), ts(2012, 7, 2, 23), ts(2012, 7, 3, 23), ts(2012, 7, 5, 23),
                ts(2012, 7, 9, 23), ts(2012, 7, 10, 23), ts(2012, 7, 12, 23)]
        counts = await digests.open_counts(s, rel, days)
    # 7 blockers and 5 nice on day one; #1 and #2 done; #7 nice→blocker; #3 blocker→nice;
    # #4 a duplicate; #8 (nice) done on the 12th
    assert counts == [(0, 0), (7, 5), (6, 5), (6, 4), (5, 5), (4, 5), (4, 4)]


async def test_pages(site):
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
    assert "#item-11" in dom.hrefs
    assert "http://lists.xen.org/archives/x.html" in dom.hrefs  # a link in the text
    assert "https://bugs.example.org/7?a=1&b=2" in dom.hrefs  # a stored link, escaped in HTML
    assert not any(h.startswith("javascript:") for h in dom.hrefs)
    assert "javascript:alert(1)" in dom.all_text  # shown, not clickable
    assert dom.imgs == ["/release/4.2/burndown.svg"]
    assert "Weekly          -- RCN+1 until release" in dom.all_text
    assert "Closed items:" in dom.all_text

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

    assert (await get(server.url + "/release/9.9"))[0] == 404
    assert (await get(server.url + "/release/9.9/burndown.svg"))[0] == 404
    async with aiohttp.ClientSession() as http:
        async with http.post(server.url + "/release/4.2") as resp:
            assert resp.status == 405  # read-only
        async with http.get(server.url + "/release/4.2") as resp:
            assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


# -- a real browser --------------------------------------------------------------------------


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("TODOBOT_REQUIRE_SERVERS") == "1":
        pytest.fail("chromium is not installed: run scripts/install-chromium.sh (make servers)")
    pytest.skip("chromium is not installed (scripts/install-chromium.sh)")


# Everything that would make Chromium talk to anything but the page under test is off, and no
# host name resolves except 127.0.0.1.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
    "--disable-extensions", "--no-default-browser-check", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--disable-breakpad", "--metrics-recording-only",
    "--no-pings", "--no-proxy-server", "--hide-scrollbars", "--mute-audio",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]


async def run_chromium(binary: str, profile: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode()


@pytest.mark.integration
async def test_status_page_in_headless_chromium(site, tmp_path):
    binary = chromium()
    server, _ = site
    url = f"{server.url}/release/4.2"
    assert server.url.startswith("http://127.0.0.1:")
    dom = Dom(await run_chromium(binary, tmp_path / "profile", "--dump-dom", url))
    assert "script" not in dom.tags
    assert EVIL in dom.all_text
    assert {"item-1", "item-11", "item-12"} <= set(dom.ids)
    assert "http://lists.xen.org/archives/x.html" in dom.hrefs
    assert not any(h.startswith("javascript:") for h in dom.hrefs)
    assert "4 open blockers (3 unclaimed), 4 nice to have" in dom.all_text
    # the chart as the browser parses it: an SVG document with both series
    svg_dom = await run_chromium(binary, tmp_path / "profile", "--dump-dom",
                                 f"{server.url}/release/4.2/burndown.svg")
    assert "<svg" in svg_dom and "open blockers" in svg_dom
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "status-page.png"
    shot.unlink(missing_ok=True)
    await run_chromium(binary, tmp_path / "profile", f"--screenshot={shot}",
                       "--window-size=1100,1500", "--virtual-time-budget=5000", url + "#item-11")
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


async def test_mail_text_of_a_development_update_release_is_in_its_layout(site):
    from todobot.storage.layouts import devupdate
    server, repo = site
    text = (REPO_ROOT / "tests" / "data" / "xen-4.3-dev-update.txt").read_text(encoding="utf-8")
    async with repo.session("console:ijc") as s:
        await s.import_list("4.3", devupdate.parse(text, "4.3"))
    status, _, txt = await get(server.url + "/release/4.3.txt")
    assert status == 200 and "= Timeline =" in txt and "== Bugs ==" in txt
    async with repo.session("t", write=False) as s:
        assert txt == devupdate.render(await s.export_list(await s.require_release("4.3")))
