"""The status page in a real headless Chromium, driven over the DevTools protocol: the Xen 4.2
list at desktop and phone widths, in light and dark mode, with assertions on the DOM and the
computed layout, and a screenshot of each (test-output/; the ones in docs/ come from here)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.cdp import Browser
from tests.test_web import LORE, _serve, seed_xen

REPO_ROOT = Path(__file__).resolve().parent.parent
OUTPUT = REPO_ROOT / "test-output"
PHONE = dict(width=390, height=844, mobile=True)
DESKTOP = dict(width=1100, height=900)

pytestmark = pytest.mark.integration


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

# What the tests read from the page, evaluated by DevTools (not by the page: it runs no script).
LAYOUT = """((W) => {
  const q = s => document.querySelector(s), all = s => [...document.querySelectorAll(s)];
  const css = (el, p) => el ? getComputedStyle(el)[p] : null;
  const img = q('img.chart');
  const wide = all('body *').filter(e => { const r = e.getBoundingClientRect();
                                          return r.width > 0 && r.right > W + 0.5; });
  return {
    viewport: innerWidth, width: W, scrollWidth: document.documentElement.scrollWidth,
    overflowing: wide.map(e => e.tagName + (e.id ? '#' + e.id : '') + '.' + e.className).slice(0, 5),
    scripts: document.scripts.length,
    openRows: all('#open tbody tr').map(tr => tr.id),
    closedRows: all('#closed tbody tr').map(tr => tr.id),
    closedOpen: q('#closed') ? q('#closed').open : null,
    rowDisplay: css(q('#open tbody tr'), 'display'),
    headDisplay: css(q('#open thead'), 'display'),
    chart: img ? {complete: img.complete, natural: img.naturalWidth, width: img.getBoundingClientRect().width,
             src: img.currentSrc}
               : null,
    background: css(document.body, 'backgroundColor'), color: css(document.body, 'color'),
    summary: q('#summary') ? q('#summary').textContent : null,
    generated: q('footer') ? q('footer').textContent : null,
    label: css(q('#open tbody td[data-label]'), 'display') && getComputedStyle(
      q('#open tbody td[data-label]'), '::before').content,
  };
})"""


async def layout(browser: Browser, width: int) -> dict:
    """The page as the tests check it, against the width asked for (a mobile viewport grows
    to fit content that sticks out, so innerWidth alone would hide the overflow)."""
    return await browser.eval(f"{LAYOUT}({width})")


@pytest.fixture
async def browser(tmp_path):
    b = await Browser.launch(chromium(), CHROMIUM_FLAGS, tmp_path / "profile")
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
async def xen_site(tmp_path):
    server, repo, clock, db = await _serve(tmp_path, seed_xen, archive_url=LORE)
    try:
        yield server
    finally:
        await server.stop()
        await db.close()


OPEN = [f"item-{i}" for i in (1, 2, 4, 5, 8, 10, 11, 12, 13, 15, 16, 17, 18)]
CLOSED = [f"item-{i}" for i in (3, 6, 7, 9, 14, 19)]


async def test_desktop(browser, xen_site):
    url = f"{xen_site.url}/release/4.2"
    assert xen_site.url.startswith("http://127.0.0.1:")
    await browser.open(url, **DESKTOP)
    page = await layout(browser, 1100)
    assert page["scripts"] == 0
    assert page["openRows"] == OPEN and page["closedRows"] == CLOSED and page["closedOpen"] is False
    assert page["rowDisplay"] == "table-row" and page["headDisplay"] != "none"  # a real table
    assert page["chart"]["complete"] and page["chart"]["natural"] > 0  # the SVG loads under the CSP
    assert page["chart"]["src"].endswith("/release/4.2/burndown.svg")
    assert page["scrollWidth"] <= page["viewport"] and not page["overflowing"]
    assert page["summary"] == "6 open blockers (5 unclaimed), 7 nice to have"
    assert "Generated 2012-08-08 09:00 UTC" in page["generated"]
    assert page["background"] == "rgb(255, 255, 255)"
    OUTPUT.mkdir(exist_ok=True)
    shot = await browser.screenshot(OUTPUT / "status-page.png")
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    # a filter link, then the search box: the CSP lets the form go to the page itself, and
    # the filter already chosen stays
    await browser.open(f"{url}?severity=nice", **DESKTOP)
    browser.events.clear()
    await browser.click("input[name=q]")
    await browser.type("bugzilla")
    await browser.click("form[role=search] button")
    await browser.wait_event("Page.loadEventFired", timeout=20)
    assert await browser.eval("location.search") == "?severity=nice&q=bugzilla"
    page = await layout(browser, 1100)
    assert page["openRows"] == ["item-16", "item-17"] and page["closedRows"] == ["item-19"]


async def test_phone(browser, xen_site):
    url = f"{xen_site.url}/release/4.2"
    await browser.open(url, **PHONE)
    page = await layout(browser, 390)
    assert page["viewport"] == 390
    # no horizontal scrolling: nothing sticks out to the right
    assert page["scrollWidth"] <= 390 and not page["overflowing"], page["overflowing"]
    # the table reflows into cards with labelled fields
    assert page["rowDisplay"] == "block" and page["headDisplay"] == "none"
    assert page["label"] == '"Area" ": "' or page["label"].startswith('"Area')
    assert page["openRows"] == OPEN
    # the chart scales down to the column, and a narrower drawing with larger text is used
    assert page["chart"]["natural"] > 0 and 300 < page["chart"]["width"] <= 390
    assert page["chart"]["src"].endswith("/release/4.2/burndown.svg?size=narrow")
    OUTPUT.mkdir(exist_ok=True)
    shot = await browser.screenshot(OUTPUT / "status-page-phone.png")
    assert shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10_000
    # an item page and a filtered page fit too
    for path in ("/release/4.2/item/19", "/release/4.2/item/1",
                 "/release/4.2?owner=unclaimed&severity=blocker&state=all"):
        await browser.open(xen_site.url + path, **PHONE)
        page = await layout(browser, 390)
        assert page["scrollWidth"] <= 390 and not page["overflowing"], (path, page["overflowing"])
    assert page["openRows"] == ["item-2", "item-4", "item-5", "item-8", "item-10"]


async def test_dark_mode(browser, xen_site):
    await browser.open(f"{xen_site.url}/release/4.2", **PHONE, dark=True)
    page = await layout(browser, 390)
    assert page["background"] == "rgb(20, 20, 24)" and page["color"] == "rgb(228, 228, 233)"
    await browser.open(f"{xen_site.url}/release/4.2/item/1", **DESKTOP, dark=True)
    assert (await layout(browser, 1100))["background"] == "rgb(20, 20, 24)"
