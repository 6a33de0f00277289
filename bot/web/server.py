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
    /healthz                       the database and every transport (off: web.healthz: false)
    /metrics                       counters for Prometheus (off: web.metrics: false)

Only GET (and HEAD). Pages come from jinja2 templates (bot/web/templates/) with autoescaping, so
item text is always text; links follow commands/links.py. The pages load nothing from
elsewhere and run no script (the Content-Security-Policy says so to the browser). Every
response carries a weak ETag and Last-Modified derived from the newest history row, the
filters and the day (relative times change at midnight), and revalidation answers 304.
Pages are rendered in a worker thread, once per release, newest change, day and the query
parameters the page reads (others, like a cache-busting `?x=1`, change nothing); a few of
each release are kept (cache.py). Requests begin one at a time, at most one a
millisecond, so a flood of them leaves the event loop to the chat. An item's URL has its number in ASCII digits with
no leading zero; any other spelling is 404. A request aiohttp cannot parse (an 8 KB URL) is
answered 400 and logged as one warning line.
It binds to loopback unless `web.listen` says otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import jinja2
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from ...commands.format import SEVERITY_TITLE, STATE_MARK
from ...commands.links import message_id_url, safe_url, segments
from ...commands.timeline import summary_line, timeline_lines
from ...storage import NotFound, Release, Session, digests
from ...storage.timeline import release_timeline
from ...storage.formats import to_json

from . import pages as views
from ..rooms import room_settings
from .cache import RenderCache, SharedReads
from .chart import SIZES, burndown_svg

if TYPE_CHECKING:
    from ...storage import Repository

    from ..config import Config
    from ..metrics import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")

BURNDOWN_MAX_DAYS = 366
FEED_ENTRIES = 100
# ADMIT: requests begin one at a time, in the order they came, at most one per ADMIT_GAP
# seconds (1,000 a second, far more than a status page is asked for). A kept page is served
# without a pause, so a hundred requests begun together would run back to back, and a chat
# message arriving then would wait for all of them; a loop kept busy with pages also keeps the
# database thread waiting for the interpreter lock. Paced, the rest of the time is the chat's.
ADMIT_GAP = 0.001
HISTORY_ROWS = 500  # of one item, on its page
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
    """The page templates, loaded from the installed package (package data of todobot.bot.web)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("todobot.bot.web", "templates"),
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


class _HttpLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server log for our site. A request aiohttp cannot parse (a line longer than
    it reads, a broken header) is the client's mistake, answered 400 by aiohttp: one warning
    line saying so, not an error with aiohttp's traceback. Everything else as aiohttp logs it."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.warning("bad HTTP request from %s: %s %s", args[0] if args else "?",
                         exc_info.code, _short(exc_info.message))
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)


def _short(text: object, limit: int = 120) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit] + "…"


def _item_id(raw: str) -> int | None:
    """An item's number as its URL writes it: ASCII digits, no leading zero (`/item/0002`,
    `/item/٢` and `/item/%232` are not the page of #2: one URL per page, one cache entry)."""
    if not raw.isascii() or not raw.isdigit() or raw.startswith("0") or len(raw) > 18:
        return None
    return int(raw)


@dataclass(frozen=True)
class Look:
    """What a request reads first: its release (None: the index), the form asked for, the
    release's newest change, the time; `item`: whether the item asked for is in it."""

    release: Release | None
    form: str
    last: tuple[int, float]
    now: float
    item: bool = True


class StatusServer:
    def __init__(self, repo: "Repository", config: "Config", *, tz: tzinfo | None = None,
                 health: Callable[[], Awaitable[tuple[bool, dict]]] | None = None,
                 metrics: "Metrics | None" = None,
                 transports: Callable[[], Iterable[Any]] = tuple,
                 queues: Callable[[], Iterable[Any]] | None = None,
                 sockets: "list[socket.socket] | None" = None) -> None:
        """`queues`: what /metrics asks for `queue_lengths()` (default: the transports).
        `sockets`: listening sockets bound already (`bot/listening.py`), served as they are;
        without them, `web.listen` is bound at `start`."""
        self.repo = repo
        self.health = health  # /healthz: the app's answer (database, transports)
        self.metrics = metrics  # /metrics: the dispatcher's counters, with `transports`' health
        self.transports = transports
        self.queues = queues or transports
        self._queued: dict[tuple[str, str], int] = {}  # the lengths read for the current scrape
        self._registry: Any = None  # prometheus_client's, made at the first /metrics
        self._sockets = list(sockets or [])
        self.config = config
        self.listen = config.web.listen if config.web is not None else "127.0.0.1:8080"
        self.public_url = (config.web.public_url or "").rstrip("/") if config.web else ""
        self.archive_url = config.web.archive_url if config.web is not None else None
        self.tz = tz or room_settings(config).tz  # days of the burndown and the timeline's "today"
        self.env = templates(self.archive_url)
        # part of every ETag: a new version or another archive URL renders differently
        from ... import __version__
        self._salt = f"{__version__}|{self.archive_url}"
        self.cache = RenderCache()
        self.reads = SharedReads()
        self._admit = asyncio.Lock()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None  # the bound port (useful with port 0)
        self.host: str | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._every_request])
        app.router.add_get("/", self.index)
        web_config = self.config.web
        if web_config is None or web_config.healthz:
            app.router.add_get("/healthz", self.healthz)
        if web_config is None or web_config.metrics:
            app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/release/{name}/burndown.svg", self.burndown)
        app.router.add_get("/release/{name}/feed.atom", self.feed)
        app.router.add_get("/release/{name}/item/{id}", self.item)
        app.router.add_get("/release/{name}", self.release)
        return app

    async def start(self) -> None:
        host, port = parse_listen(self.listen)
        self._runner = web.AppRunner(self.app(), access_log=None, logger=_HttpLog(log, {}))
        await self._runner.setup()
        # Sockets bound before the database was opened are served as they are: binding again
        # would leave a moment in which another process could take the port.
        sites = ([web.SockSite(self._runner, sock) for sock in self._sockets] if self._sockets
                 else [web.TCPSite(self._runner, host, port)])
        self._sockets = []  # the server's now: closed when it stops
        for site in sites:
            await site.start()
        self.host, self.port = host, (self.listening[0].getsockname()[1] if self.listening
                                      else port)
        log.info("status page on http://%s:%s/", host, self.port)

    @property
    def listening(self) -> list[Any]:
        """The sockets the server accepts on (asyncio's wrappers of them)."""
        runner = self._runner
        return [sock for site in (runner.sites if runner is not None else ())
                for sock in (getattr(getattr(site, "_server", None), "sockets", None) or ())]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for sock in self._sockets:  # handed over but never served
            sock.close()
        self._sockets = []
        self.cache.close()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @web.middleware
    async def _every_request(self, request: web.Request, handler):  # type: ignore[no-untyped-def]
        """Paced (see ADMIT), and every answer with the same security headers."""
        try:
            async with self._admit:  # see ADMIT
                await asyncio.sleep(ADMIT_GAP)
            resp = await handler(request)
        except web.HTTPException as e:  # 404, 400, 405: the same headers
            _secure(e.headers)
            raise
        _secure(resp.headers)
        return resp

    # -- conditional GET and the rendered copies -----------------------------------------------
    @staticmethod
    def _fresh(request: web.Request, etag: str, modified: float) -> bool:
        """Whether the client's copy is current (If-None-Match wins over If-Modified-Since)."""
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
            return "*" in tags or etag.removeprefix("W/") in tags
        since = request.if_modified_since
        return since is not None and int(modified) <= since.timestamp()

    async def _serve(self, request: web.Request, release: str, last: tuple[int, float], now: float,
                     query: tuple[Any, ...], build: Callable[[], Awaitable[bytes]],
                     content_type: str, charset: str | None = "utf-8") -> web.Response:
        """A page: 304 when the client's copy is current, else the copy rendered for this
        (release, stamp, query), rendered by `build` if there is none yet. `query` is what the
        page reads from the request and nothing else, so other parameters change nothing.
        The ETag and Last-Modified change with the newest history row, the day (relative times
        change at midnight) and the query."""
        stamp = (last[0], datetime.fromtimestamp(now, self.tz).date().isoformat())
        key = "|".join([self._salt, release, repr(query), repr(stamp)])
        etag = 'W/"' + hashlib.sha256(key.encode()).hexdigest()[:24] + '"'
        modified = max(last[1], views.start_of_day(now, self.tz))
        headers = {"ETag": etag, "Last-Modified": formatdate(int(modified), usegmt=True),
                   "Cache-Control": "no-cache"}  # may be kept, but revalidated each time
        if self._fresh(request, etag, modified):
            return web.Response(status=304, headers=headers)
        body = await self.cache.get(release, stamp, query, build)
        return web.Response(body=body, headers=headers, content_type=content_type, charset=charset)

    def _html(self, template: str, now: float, **context: Any) -> bytes:
        """A rendered template (in the render thread)."""
        return self.env.get_template(template).render(
            generated=views.stamp(now, self.tz), generated_iso=views.iso(now, self.tz),
            **context).encode()

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

    async def _look_up(self, name: str | None, item_id: int | None = None) -> Look | None:
        """What every request reads before its page is known, kept page or not: the release
        NAME names (None: the index), the form asked for, its newest change and the time;
        None when there is no such release, or no such item in it. Shared with the requests
        asking the same (cache.py), in one hand-off to the database thread."""
        async def look(s: Session) -> Look | None:
            if name is None:
                return Look(None, "html", await s.last_change(), s.now)
            found = await self._release(s, name)
            if found is None:
                return None
            rel, form = found
            if item_id is not None:
                try:
                    it = await s.get(item_id)
                except NotFound:
                    it = None
                if it is None or it.release != rel.name:
                    return Look(rel, form, (0, 0.0), s.now, item=False)
            return Look(rel, form, await s.last_change(rel), s.now)

        return await self.reads.read((name, item_id),
                                     lambda: self.repo.run("web", look, write=False))

    async def _named_release(self, request: web.Request) -> Look:
        """The release of a path under /release/NAME/ (its own name only, no `.txt`)."""
        name = request.match_info["name"]
        found = await self._look_up(name)
        if found is None or found.form != "html":
            raise web.HTTPNotFound(text=f"No release {_short(name, 80)}")
        return found

    async def _read(self, work: Callable[[Session], Awaitable[T]]) -> T:
        """A page's reads, in one hand-off to the database thread: building thousands of
        items from their rows (or replaying the history for the chart) runs there, not in the
        event loop, and the database is held once, not across turns of the loop."""
        return await self.repo.run("web", work, write=False)  # type: ignore[arg-type]

    async def healthz(self, request: web.Request) -> web.Response:
        """200 {"status": "ok", ...} while the database answers and every transport serves;
        503 with the reasons otherwise (a container HEALTHCHECK, a load balancer). Never cached."""
        ok, doc = await self.health() if self.health is not None else (True, {"status": "ok"})
        resp = web.json_response(doc, status=200 if ok else 503)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def metrics_page(self, request: web.Request) -> web.Response:
        """The Prometheus text format, from a registry of this server's own (never the
        process-wide default: two servers in one process, as in the tests, stay apart)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from ..metrics import Metrics, collector, queue_lengths
        if self._registry is None:
            self._registry = CollectorRegistry(auto_describe=False)
            self._registry.register(collector(self.metrics or Metrics(), self.transports,
                                              lambda: self._queued))
        # Asked before the synchronous export (a mail outbox is counted in the database);
        # nothing awaits between this and generate_latest, so scrapes never mix.
        self._queued = await queue_lengths(self.queues())
        resp = web.Response(body=generate_latest(self._registry))
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        resp.headers["Cache-Control"] = "no-store"
        return resp

    # -- pages ---------------------------------------------------------------------------------
    async def index(self, request: web.Request) -> web.Response:
        found = await self._look_up(None)
        assert found is not None
        last, now = found.last, found.now

        async def build() -> bytes:
            async def read(s: Session) -> tuple[list[tuple[Release, str]], float]:
                return [(r, await summary_line(s, r)) for r in await s.releases()], s.now

            rels, now = await self._read(read)
            return await self.cache.render(self._html, "index.html", now,
                                           title=f"{self.config.project or 'todobot'} releases",
                                           releases=rels)
        return await self._serve(request, "", last, now, ("index",), build, "text/html")

    @staticmethod
    async def _release(s: Session, name: str) -> tuple[Release, str] | None:
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
        name = request.match_info["name"]
        found = await self._look_up(name)
        if found is None:
            raise web.HTTPNotFound(text=f"No release {_short(name, 80)}")
        rel, form, last, now = found.release, found.form, found.last, found.now
        assert rel is not None
        if form != "html":
            return await self._serve(request, rel.name, last, now, (form,),
                                     lambda: self._export(rel, form),
                                     "application/json" if form == "json" else "text/plain")
        f = self._filters(request)
        page = self._page_number(request)

        async def build() -> bytes:
            async def read(s: Session) -> tuple[str, list[Any], list[Any], float]:
                return (await summary_line(s, rel), await release_timeline(s, rel, self.tz),
                        await s.items(rel, states=None), s.now)

            summary, milestones, everything, now = await self._read(read)
            return await self.cache.render(self._release_page, rel, f, page, summary, milestones,
                                           everything, now)
        try:
            return await self._serve(request, rel.name, last, now, ("html", f.key, page), build,
                                     "text/html")
        except views.BadFilter as e:  # a page past the last (each waiter its own answer)
            raise web.HTTPNotFound(text=f"No such page: {e}.") from None

    async def _export(self, rel: Release, form: str) -> bytes:
        from ...storage.layouts import render

        data = await self._read(lambda s: s.export_list(rel))
        if form == "json":
            return (await self.cache.render(to_json, data)).encode()
        return (await self.cache.render(render, data, ids=True)).encode()

    def _release_page(self, rel: Release, f: views.Filters, page: int, summary: str,
                      milestones: list[Any], everything: list[Any], now: float) -> bytes:
        """The release table (in the render thread: filtering and ordering 5,000 items is
        work too)."""
        shown = [it for it in everything if f.matches(it)]
        show_open = f.state in (None, "open", "all")
        open_items = [it for it in shown if it.is_open] if show_open else []
        closed_items = [it for it in shown if not it.is_open]
        paging = views.Paging.of(page, len(open_items), len(closed_items))
        return self._html(
            "release.html", now, title=f"{self.config.project or ''} {rel.name} TODO".lstrip(),
            release=rel, base=release_path(rel.name),
            summary=summary, timeline=timeline_lines(milestones), f=f,
            choices=views.Choices.of(everything), total=len(everything), shown=len(shown),
            show_open=show_open, paging=paging,
            open_total=len(open_items), closed_total=len(closed_items),
            open_rows=views.rows(open_items, now, self.tz, paging.part),
            closed_rows=views.rows(closed_items, now, self.tz, paging.part))

    async def item(self, request: web.Request) -> web.Response:
        raw_id = request.match_info["id"]
        item_id = _item_id(raw_id)

        name = request.match_info["name"]
        found = await self._look_up(name, item_id)
        if found is None or found.form != "html":
            raise web.HTTPNotFound(text=f"No release {_short(name, 80)}")
        rel, last, now = found.release, found.last, found.now
        assert rel is not None
        if item_id is None or not found.item:
            raise web.HTTPNotFound(text=f"No item {_short(raw_id, 40)} in {rel.name}")
        f = self._filters(request)

        async def build() -> bytes:
            async def read(s: Session) -> tuple[Any, Any, list[Any], list[Any], list[Any], float]:
                it = await s.get(item_id)
                return (it, await s.get(it.parent) if it.parent is not None else None,
                        await s.children(it.id), await s.notes(it.id),
                        await s.history(it.id, limit=HISTORY_ROWS), s.now)

            it, parent, children, notes, history, now = await self._read(read)
            return await self.cache.render(self._item_page, rel, it, f, parent, children, notes,
                                           history, now)
        return await self._serve(request, rel.name, last, now, ("item", item_id, f.key), build,
                                 "text/html")

    def _item_page(self, rel: Release, it: Any, f: views.Filters, parent: Any, children: list[Any],
                   notes: list[Any], history: list[Any], now: float) -> bytes:
        tz = self.tz

        def when(at: float) -> dict[str, str]:
            return {"when": views.relative_day(at, now, tz), "at": views.stamp(at, tz),
                    "iso": views.iso(at, tz)}

        return self._html(
            "item.html", now, title=f"#{it.id} {it.title} — {rel.name} TODO", release=rel,
            base=release_path(rel.name), it=it, f=f, parent=parent,
            state_label=STATE_MARK.get(it.state, it.state).lower(),
            severity_title=SEVERITY_TITLE[it.severity],
            created=when(it.created_at), updated=when(it.updated_at),
            children=views.rows(children, now, tz),
            notes=[{"text": n["text"], "author": n["author"], **when(n["at"])} for n in notes],
            history=list(reversed(views.events(history, now, tz))))

    async def feed(self, request: web.Request) -> web.Response:
        found = await self._named_release(request)
        rel, last, now = found.release, found.last, found.now
        assert rel is not None
        page_url = self._base(request) + release_path(rel.name)

        async def build() -> bytes:
            async def read(s: Session) -> tuple[list[Any], dict[int, Any], str, float]:
                changes = await s.recent_changes(rel, FEED_ENTRIES)
                items = await s.get_many({ch.item_id for ch in changes if ch.item_id is not None})
                return changes, items, await summary_line(s, rel), s.now

            changes, items, summary, now = await self._read(read)
            return await self.cache.render(self._feed, rel, page_url, changes, items, summary,
                                           last, now)
        return await self._serve(request, rel.name, last, now, ("feed", page_url), build,
                                 "application/atom+xml")

    def _feed(self, rel: Release, page_url: str, changes: list[Any], items: dict[int, Any],
              summary: str, last: tuple[int, float], now: float) -> bytes:
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
        return self.env.get_template("feed.xml").render(
            release=rel, project=self.config.project, summary=summary, feed_url=f"{page_url}/feed.atom",
            page_url=page_url, updated=updated, entries=entries).encode()

    async def burndown(self, request: web.Request) -> web.Response:
        found = await self._named_release(request)
        rel, last, now = found.release, found.last, found.now
        assert rel is not None
        size = request.query.get("size", "wide")
        if size not in SIZES:
            raise web.HTTPBadRequest(text=f"size is {' or '.join(SIZES)}, not {size[:40]!r}")

        async def build() -> bytes:
            async def read(s: Session) -> tuple[list[date], list[tuple[int, int, int]]]:
                days = self._days(rel, s.now)
                ends = [views.end_of_day(d, self.tz, s.now) for d in days]
                return days, await digests.burndown_counts(s, rel, ends)

            days, counts = await self._read(read)
            return await self.cache.render(burndown_svg, rel.name, days, counts, size)
        return await self._serve(request, rel.name, last, now, ("svg", size), build,
                                 "image/svg+xml", charset=None)

    def _days(self, rel: Release, now: float) -> list[date]:
        """From the day before the release began (nothing yet: a list imported today is a rise
        from 0, not a single point) to today."""
        last = datetime.fromtimestamp(now, self.tz).date()
        first = datetime.fromtimestamp(rel.created_at or now, self.tz).date() - timedelta(days=1)
        first = max(first, last - timedelta(days=BURNDOWN_MAX_DAYS - 1))
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]


__all__ = ["StatusServer", "burndown_svg", "parse_listen", "release_path", "templates"]
