"""The read-only status page: releases, their lists and timelines, and a burndown chart.

    /                              the releases
    /release/NAME                  the list as HTML: timeline, sections, owners, progress;
                                   each item anchorable as #item-12
    /release/NAME.txt              the release mail format
    /release/NAME.json             the JSON export
    /release/NAME/burndown.svg     open blockers and nice-to-haves per day, from the history

Only GET (and HEAD). Every piece of item text is HTML-escaped; only http(s) links become links;
the pages load nothing from elsewhere (a Content-Security-Policy says so to the browser).
It binds to loopback unless `web.listen` says otherwise.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
from datetime import date, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from ..commands.digest import effective_milestones, reply_html, text_html
from ..commands.format import list_reply
from ..commands.timeline import summary_line, timeline_lines
from ..storage import Release, Session, digests
from ..storage.formats import to_json

from .rooms import room_settings

if TYPE_CHECKING:
    from ..storage import Repository

    from .config import Config

log = logging.getLogger(__name__)

BURNDOWN_MAX_DAYS = 366
_SCRIPT = re.compile(rb"<script\b.*?</script>", re.S)
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 60em; margin: 1.5em auto; padding: 0 1em;
       color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h3 { margin: 1.2em 0 .3em; font-size: 1.05em; }
pre { background: #f4f4f6; padding: .6em .8em; overflow-x: auto; }
ul { margin: .2em 0; padding-left: 1.4em; } li { margin: .15em 0; }
a.id { color: inherit; text-decoration: none; } li:target { background: #fff3bf; }
.summary { color: #444; } nav a { margin-right: 1em; } img.chart { max-width: 100%; }
"""


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:0` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"web.listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def _page(title: str, body: str) -> web.Response:
    doc = (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
           f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n"
           f"</body></html>\n")
    return web.Response(text=doc, content_type="text/html", charset="utf-8")


def _href(release: str, suffix: str = "") -> str:
    return f"/release/{quote(release, safe='')}{suffix}"


class StatusServer:
    def __init__(self, repo: "Repository", config: "Config", *, tz: tzinfo | None = None) -> None:
        self.repo = repo
        self.config = config
        self.listen = config.web.listen if config.web is not None else "127.0.0.1:8080"
        self.tz = tz or room_settings(config).tz  # days of the burndown and the timeline's "today"
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.host: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self.index)
        app.router.add_get("/release/{name}/burndown.svg", self.burndown)
        app.router.add_get("/release/{name}", self.release)
        return app

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.host, self.port = host, (sockets[0].getsockname()[1] if sockets else port)
        log.info("status page on http://%s:%s/", host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @web.middleware
    async def _headers(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        resp = await handler(request)
        resp.headers.setdefault("Content-Security-Policy", _CSP)
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        return resp

    # -- pages ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        async with self.repo.session("web", write=False) as s:
            rels = [(r, await summary_line(s, r)) for r in await s.releases()]
        rows = "\n".join(
            f'<li><a href="{html.escape(_href(r.name))}">{html.escape(r.name)}</a>'
            f' <span class="summary">— {html.escape(summary)}</span></li>' for r, summary in rels)
        body = ("<h1>todobot releases</h1>\n" + (f"<ul>\n{rows}\n</ul>" if rels else
                                                  "<p>No releases yet.</p>"))
        return _page("todobot releases", body)

    async def _release(self, s: Session, name: str) -> tuple[Release, str] | None:
        """The release a path names, and the form asked for ("html", "txt", "json")."""
        rel = await s.release(name)
        if rel is not None:
            return rel, "html"
        for suffix in ("txt", "json"):
            if name.endswith("." + suffix):
                rel = await s.release(name[: -len(suffix) - 1])
                if rel is not None:
                    return rel, suffix
        return None

    async def release(self, request: web.Request) -> web.Response:
        from ..storage.layouts import render

        name = request.match_info["name"]
        async with self.repo.session("web", write=False) as s:
            found = await self._release(s, name)
            if found is None:
                raise web.HTTPNotFound(text=f"No release {name}")
            rel, form = found
            if form == "json":
                return web.Response(text=to_json(await s.export_list(rel)),
                                    content_type="application/json", charset="utf-8")
            if form == "txt":
                return web.Response(text=render(await s.export_list(rel), ids=True),
                                    content_type="text/plain", charset="utf-8")
            summary = await summary_line(s, rel)
            now = s.now
            today = datetime.fromtimestamp(now, self.tz).date()
            created = datetime.fromtimestamp(rel.created_at or now, self.tz).date()
            milestones = effective_milestones(await s.milestones(rel), today, created)
            items = await s.items(rel)
            closed = [it for it in await s.items(rel, states=None) if not it.is_open]
        title = f"{rel.name} TODO"
        parts = [f"<h1>{html.escape(title)}</h1>",
                 f'<p class="summary">{html.escape(summary)}</p>',
                 f'<nav><a href="/">All releases</a><a href="{html.escape(_href(rel.name, ".txt"))}">'
                 f'mail text</a><a href="{html.escape(_href(rel.name, ".json"))}">JSON</a></nav>']
        if rel.intro.strip():
            parts.append(f"<p>{text_html(rel.intro).replace(chr(10), '<br>')}</p>")
        if milestones:
            parts.append("<h3>Timeline</h3>\n<pre class=\"timeline\">"
                         + html.escape("\n".join(timeline_lines(milestones))) + "</pre>")
        parts.append(f'<h3>Burndown</h3>\n<img class="chart" alt="open blockers and nice-to-haves '
                     f'per day" src="{html.escape(_href(rel.name, "/burndown.svg"))}">')
        parts.append('<section id="open">'
                     + reply_html(list_reply(items, heading="Open items:", empty="No open items."),
                                  anchors=True) + "</section>")
        if closed:
            parts.append('<section id="closed">'
                         + reply_html(list_reply(closed, heading="Closed items:", empty=""),
                                      anchors=True) + "</section>")
        extra = _links_section(items)
        if extra:
            parts.append(extra)
        return _page(title, "\n".join(parts))

    async def burndown(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        async with self.repo.session("web", write=False) as s:
            rel = await s.release(name)
            if rel is None:
                raise web.HTTPNotFound(text=f"No release {name}")
            days = self._days(rel, s.now)
            counts = await digests.open_counts(s, rel, [_end_of(d, self.tz, s.now) for d in days])
        svg = await asyncio.to_thread(burndown_svg, rel.name, days, counts)
        return web.Response(body=svg, content_type="image/svg+xml")

    def _days(self, rel: Release, now: float) -> list[date]:
        last = datetime.fromtimestamp(now, self.tz).date()
        first = datetime.fromtimestamp(rel.created_at or now, self.tz).date()
        first = max(first, last - timedelta(days=BURNDOWN_MAX_DAYS - 1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _end_of(d: date, tz: tzinfo, now: float) -> float:
    """The end of day `d` in `tz` (today: now)."""
    end = datetime(d.year, d.month, d.day, tzinfo=tz) + timedelta(days=1)
    return min(end.timestamp() - 0.001, now)


def _links_section(items) -> str:  # type: ignore[no-untyped-def]
    """Links the list above does not show as text (in details, or added with !link)."""
    rows = []
    for it in items:
        shown = f"{it.title} {it.progress}"
        extra = [u for u in it.links if u not in shown]
        if extra:
            links = ", ".join(text_html(u) for u in extra)
            rows.append(f'<li><a class="id" href="#item-{it.id}">#{it.id}</a>: {links}</li>')
    return "<h3>Links</h3>\n<ul>\n" + "\n".join(rows) + "\n</ul>" if rows else ""


def burndown_svg(release: str, days: list[date], counts: list[tuple[int, int]]) -> bytes:
    """Open blockers and open nice-to-haves per day, as a self-contained SVG (no scripts)."""
    import pygal
    from pygal.style import Style

    style = Style(background="white", plot_background="white", foreground="#333",
                  foreground_strong="#111", foreground_subtle="#bbb",
                  colors=("#c0392b", "#2e86c1"), font_family="sans-serif")
    chart = pygal.Line(
        title=f"{release}: open items per day", style=style, width=900, height=380,
        show_dots=len(days) <= 60, dots_size=2.5, fill=False, x_label_rotation=30,
        show_minor_x_labels=False, x_labels_major_every=max(1, len(days) // 10),
        truncate_label=-1, legend_at_bottom=True, include_x_axis=True,
        min_scale=2, max_scale=8, js=[],  # no scripts: nothing is fetched from anywhere
        disable_xml_declaration=False, print_values=False)
    chart.x_labels = [d.isoformat() for d in days]
    chart.add("open blockers", [b for b, _ in counts])
    chart.add("open nice to have", [n for _, n in counts])
    # pygal still inlines its tooltip config as a <script>: the chart is a picture, drop it.
    # (The text inside is XML-escaped, so the first closing tag is the element's own.)
    return _SCRIPT.sub(b"", chart.render())


__all__ = ["StatusServer", "burndown_svg", "parse_listen"]
