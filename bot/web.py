"""The read-only status page: releases, their lists and timelines, item pages, a feed, a chart.

    /                              the releases
    /release/NAME                  the dashboard: summary, timeline, burndown, the items as a
                                   table (filters: ?area= ?owner= ?severity= ?state= ?q=,
                                   200 rows per page: ?page=)
    /release/NAME/item/ID          one item: everything `!show` knows, notes and history
    /release/NAME/feed.atom        the release's changes as an Atom feed
    /release/NAME.txt              the release mail format
    /release/NAME.json             the JSON export
    /release/NAME/burndown.svg     open blockers, nice-to-haves and scope per day

Only GET (and HEAD). Pages come from jinja2 templates (bot/templates/) with autoescaping, so
item text is always text; links follow commands/links.py. The pages load nothing from
elsewhere and run no script (the Content-Security-Policy says so to the browser). Every
response carries a weak ETag and Last-Modified derived from the newest history row, the
filters and the day (relative times change at midnight), and revalidation answers 304;
the last few release tables rendered are kept by ETag and served again until it changes.
It binds to loopback unless `web.listen` says otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections import OrderedDict
from datetime import date, datetime, timedelta, tzinfo
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from ..commands.format import SEVERITY_TITLE, STATE_MARK
from ..commands.links import message_id_url, safe_url, segments
from ..commands.timeline import summary_line, timeline_lines
from ..storage import NotFound, Release, Session, digests
from ..storage.timeline import release_timeline
from ..storage.formats import to_json

from . import web_views as views
from .rooms import room_settings
from .web_chart import SIZES, burndown_svg

if TYPE_CHECKING:
    from ..storage import Repository

    from .config import Config

log = logging.getLogger(__name__)

BURNDOWN_MAX_DAYS = 366
FEED_ENTRIES = 100
HISTORY_ROWS = 500  # of one item, on its page
RENDERED_PAGES = 16  # release tables kept as rendered (a 200-row page is ~300 KB)
# form-action 'self': the search box is a GET form to the page itself; nothing else is allowed.
_CSP = ("default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


def parse_listen(listen: str) -> tuple[str, int]:
    """`127.0.0.1:8080`, `[::1]:8080`, `localhost:0` → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"web.listen: expected HOST:PORT, got {listen!r}")
    return host.strip("[]"), int(port)


def release_path(name: str) -> str:
    return f"/release/{quote(name, safe='')}"


def templates(archive_url: str | None = None) -> jinja2.Environment:
    """The page templates, loaded from the installed package (package data of todobot.bot)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("todobot.bot", "templates"),
        autoescape=jinja2.select_autoescape(("html", "xml")),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["safe_url"] = safe_url
    env.filters["segments"] = lambda text: segments(text, archive_url)
    env.filters["archive_link"] = lambda link: message_id_url(link, archive_url)
    env.filters["release_path"] = release_path
    return env


def _secure(headers) -> None:  # type: ignore[no-untyped-def]
    headers.setdefault("Content-Security-Policy", _CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")


class StatusServer:
    def __init__(self, repo: "Repository", config: "Config", *, tz: tzinfo | None = None) -> None:
        self.repo = repo
        self.config = config
        self.listen = config.web.listen if config.web is not None else "127.0.0.1:8080"
        self.public_url = (config.web.public_url or "").rstrip("/") if config.web else ""
        self.archive_url = config.web.archive_url if config.web is not None else None
        self.tz = tz or room_settings(config).tz  # days of the burndown and the timeline's "today"
        self.env = templates(self.archive_url)
        # part of every ETag: a new version or another archive URL renders differently
        from .. import __version__
        self._salt = f"{__version__}|{self.archive_url}"
        # Release tables as last rendered, by ETag: the ETag changes with every change to what
        # the page shows, so a copy under it is as current as a client's copy answered by 304.
        # Under many readers a long table is then rendered once, not once per request.
        self._rendered: OrderedDict[str, str] = OrderedDict()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.host: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._headers])
        app.router.add_get("/", self.index)
        app.router.add_get("/release/{name}/burndown.svg", self.burndown)
        app.router.add_get("/release/{name}/feed.atom", self.feed)
        app.router.add_get("/release/{name}/item/{id}", self.item)
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
        try:
            resp = await handler(request)
        except web.HTTPException as e:  # 404, 400, 405: the same headers
            _secure(e.headers)
            raise
        _secure(resp.headers)
        return resp


    # -- conditional GET -----------------------------------------------------------------------
    def _validators(self, request: web.Request, last: tuple[int, float], now: float,
                    *extra: str) -> tuple[str, float]:
        """(weak ETag, Last-Modified) of a page: it changes with the history, the day, the
        query and the form asked for."""
        today = datetime.fromtimestamp(now, self.tz).date().isoformat()
        key = "|".join([self._salt, request.path, *extra, str(last[0]), today, self._base(request)])
        etag = 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:24] + '"'
        return etag, max(last[1], views.start_of_day(now, self.tz))

    @staticmethod
    def _fresh(request: web.Request, etag: str, modified: float) -> bool:
        """Whether the client's copy is current (If-None-Match wins over If-Modified-Since)."""
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or etag.removeprefix("W/") in tags
        since = request.if_modified_since
        return since is not None and int(modified) <= since.timestamp()

    def _respond(self, request: web.Request, etag: str, modified: float, *,
                 body: str | bytes = b"", content_type: str = "text/html") -> web.Response:
        """The response, or 304 Not Modified when the client's copy is current."""
        headers = {"ETag": etag, "Last-Modified": formatdate(int(modified), usegmt=True),
                   "Cache-Control": "no-cache"}  # may be kept, but revalidated each time
        if self._fresh(request, etag, modified):
            return web.Response(status=304, headers=headers)
        if isinstance(body, str):
            return web.Response(text=body, headers=headers, content_type=content_type, charset="utf-8")
        return web.Response(body=body, headers=headers, content_type=content_type)

    async def _page(self, template: str, **context: Any) -> str:
        """A rendered template. In a worker thread: a long table takes a while to render, and
        the chat transports share this event loop."""
        now = context.pop("now")
        return await asyncio.to_thread(
            self.env.get_template(template).render,
            generated=views.stamp(now, self.tz), generated_iso=views.iso(now, self.tz), **context)

    def _base(self, request: web.Request) -> str:
        """The page's absolute origin (the feed's links): web.public_url, else the request's."""
        return self.public_url or f"{request.scheme}://{request.host}"

    @staticmethod
    def _page_number(request: web.Request) -> int:
        try:
            return views.Paging.number_of(request.query.get("page"))
        except views.BadFilter as e:
            raise web.HTTPBadRequest(text=f"Bad page: {e}.") from None

    @staticmethod
    def _filters(request: web.Request) -> views.Filters:
        try:
            return views.Filters.parse(request.query)
        except views.BadFilter as e:
            raise web.HTTPBadRequest(text=f"Bad filter: {e}.") from None

    # -- pages ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        async with self.repo.session("web", write=False) as s:
            etag, modified = self._validators(request, await s.last_change(), s.now)
            if self._fresh(request, etag, modified):
                return self._respond(request, etag, modified)
            rels = [(r, await summary_line(s, r)) for r in await s.releases()]
            now = s.now
        text = await self._page("index.html", title=f"{self.config.project or 'todobot'} releases", releases=rels, now=now)
        return self._respond(request, etag, modified, body=text, content_type="text/html")

    async def _release(self, s: Session, name: str) -> tuple[Release, str]:
        """The release a path names, and the form asked for ("html", "txt", "json")."""
        rel = await s.release(name)
        if rel is not None:
            return rel, "html"
        for suffix in ("txt", "json"):
            if name.endswith("." + suffix):
                rel = await s.release(name[: -len(suffix) - 1])
                if rel is not None:
                    return rel, suffix
        raise web.HTTPNotFound(text=f"No release {name}")

    async def _named_release(self, s: Session, request: web.Request) -> Release:
        rel = await s.release(request.match_info["name"])
        if rel is None:
            raise web.HTTPNotFound(text=f"No release {request.match_info['name']}")
        return rel

    async def release(self, request: web.Request) -> web.Response:
        from ..storage.layouts import render

        async with self.repo.session("web", write=False) as s:
            rel, form = await self._release(s, request.match_info["name"])
            f = self._filters(request) if form == "html" else views.Filters()
            page = self._page_number(request) if form == "html" else 1
            etag, modified = self._validators(request, await s.last_change(rel), s.now, form, f.key,
                                              str(page))
            if self._fresh(request, etag, modified):
                return self._respond(request, etag, modified)
            if form == "html" and etag in self._rendered:
                self._rendered.move_to_end(etag)
                return self._respond(request, etag, modified, body=self._rendered[etag])
            if form == "json":
                return self._respond(request, etag, modified, body=to_json(await s.export_list(rel)),
                                     content_type="application/json")
            if form == "txt":
                return self._respond(request, etag, modified,
                                     body=render(await s.export_list(rel), ids=True),
                                     content_type="text/plain")
            summary = await summary_line(s, rel)
            now = s.now
            milestones = await release_timeline(s, rel, self.tz)
            everything = await s.items(rel, states=None)
        shown = [it for it in everything if f.matches(it)]
        show_open = f.state in (None, "open", "all")
        open_items = [it for it in shown if it.is_open] if show_open else []
        closed_items = [it for it in shown if not it.is_open]
        try:
            paging = views.Paging.of(page, len(open_items), len(closed_items))
        except views.BadFilter as e:
            raise web.HTTPNotFound(text=f"No such page: {e}.") from None
        text = await self._page(
            "release.html", title=f"{self.config.project or ''} {rel.name} TODO".lstrip(), release=rel, base=release_path(rel.name),
            summary=summary, timeline=timeline_lines(milestones), f=f,
            choices=views.Choices.of(everything), total=len(everything), shown=len(shown),
            show_open=show_open, paging=paging,
            open_total=len(open_items), closed_total=len(closed_items),
            open_rows=views.rows(open_items, now, self.tz, paging.part),
            closed_rows=views.rows(closed_items, now, self.tz, paging.part), now=now)
        self._rendered[etag] = text
        while len(self._rendered) > RENDERED_PAGES:
            self._rendered.popitem(last=False)
        return self._respond(request, etag, modified, body=text, content_type="text/html")

    async def item(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["id"].removeprefix("#")
        async with self.repo.session("web", write=False) as s:
            rel = await self._named_release(s, request)
            if not raw_id.isdigit() or len(raw_id) > 18:
                raise web.HTTPNotFound(text=f"No item {raw_id} in {rel.name}")
            try:
                it = await s.get(int(raw_id))
            except NotFound:
                it = None
            if it is None or it.release != rel.name:
                raise web.HTTPNotFound(text=f"No item #{raw_id} in {rel.name}")
            f = self._filters(request)
            etag, modified = self._validators(request, await s.last_change(rel), s.now, f.key)
            if self._fresh(request, etag, modified):
                return self._respond(request, etag, modified)
            parent = await s.get(it.parent) if it.parent is not None else None
            children = await s.children(it.id)
            notes = await s.notes(it.id)
            history = await s.history(it.id, limit=HISTORY_ROWS)
            now = s.now
        tz = self.tz

        def when(at: float) -> dict[str, str]:
            return {"when": views.relative_day(at, now, tz), "at": views.stamp(at, tz),
                    "iso": views.iso(at, tz)}

        text = await self._page(
            "item.html", title=f"#{it.id} {it.title} — {rel.name} TODO", release=rel,
            base=release_path(rel.name), it=it, f=f, parent=parent,
            state_label=STATE_MARK.get(it.state, it.state).lower(),
            severity_title=SEVERITY_TITLE[it.severity],
            created=when(it.created_at), updated=when(it.updated_at),
            children=views.rows(children, now, tz),
            notes=[{"text": n["text"], "author": n["author"], **when(n["at"])} for n in notes],
            history=list(reversed(views.events(history, now, tz))), now=now)
        return self._respond(request, etag, modified, body=text, content_type="text/html")

    async def feed(self, request: web.Request) -> web.Response:
        async with self.repo.session("web", write=False) as s:
            rel = await self._named_release(s, request)
            last = await s.last_change(rel)
            etag, modified = self._validators(request, last, s.now)
            if self._fresh(request, etag, modified):
                return self._respond(request, etag, modified)
            changes = await s.recent_changes(rel, FEED_ENTRIES)
            items = await s.get_many({ch.item_id for ch in changes if ch.item_id is not None})
            summary = await summary_line(s, rel)
            now = s.now
        page_url = self._base(request) + release_path(rel.name)
        entries = []
        for ev in views.events(changes, now, self.tz):
            it = items.get(ev.item_id) if ev.item_id is not None else None
            if it is not None and it.release == rel.name:
                link = f"{page_url}/item/{it.id}"
                title = f"#{it.id} {ev.what}"
                content = (f"#{it.id} {views.clean(it.title)} ({it.area}, {SEVERITY_TITLE[it.severity]},"
                           f" {STATE_MARK.get(it.state, it.state).lower()}) — {ev.actor}: {ev.what}")
            else:
                link, title, content = page_url, ev.what, ev.what
            entries.append({"event": ev, "link": link, "title": title, "content": content})
        updated = views.iso(last[1] or rel.created_at or now, self.tz)
        text = await asyncio.to_thread(
            self.env.get_template("feed.xml").render, release=rel, project=self.config.project, summary=summary, feed_url=f"{page_url}/feed.atom", page_url=page_url,
            updated=updated, entries=entries)
        return self._respond(request, etag, modified, body=text, content_type="application/atom+xml")

    async def burndown(self, request: web.Request) -> web.Response:
        async with self.repo.session("web", write=False) as s:
            rel = await self._named_release(s, request)
            size = request.query.get("size", "wide")
            if size not in SIZES:
                raise web.HTTPBadRequest(text=f"size is {' or '.join(SIZES)}, not {size[:40]!r}")
            etag, modified = self._validators(request, await s.last_change(rel), s.now, size)
            if self._fresh(request, etag, modified):
                return self._respond(request, etag, modified)
            days = self._days(rel, s.now)
            ends = [views.end_of_day(d, self.tz, s.now) for d in days]
            counts = await digests.burndown_counts(s, rel, ends)
        svg = await asyncio.to_thread(burndown_svg, rel.name, days, counts, size)
        return self._respond(request, etag, modified, body=svg, content_type="image/svg+xml")

    def _days(self, rel: Release, now: float) -> list[date]:
        """From the day before the release began (nothing yet: a list imported today is a rise
        from 0, not a single point) to today."""
        last = datetime.fromtimestamp(now, self.tz).date()
        first = datetime.fromtimestamp(rel.created_at or now, self.tz).date() - timedelta(days=1)
        first = max(first, last - timedelta(days=BURNDOWN_MAX_DAYS - 1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


__all__ = ["StatusServer", "burndown_svg", "parse_listen", "release_path", "templates"]
