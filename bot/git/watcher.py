"""The git watcher: polls each configured branch and lets the commits that land on it close
the items they name.

A commit that becomes reachable from the branch closes an open item of the entry's release
when a trailer of its message (read by git's trailer parser) says `Closes: RELEASE#ID`,
`Fixes: RELEASE#ID` or `Closes: #ID`, or a `Link:` trailer equals one of the item's links
(message-ids with or without <>, URLs exactly, and a message-id's archive URL when `web:`
names one). The item becomes done with progress "fixed in SHORTSHA", a note "fixed in SHORTSHA
by AUTHOR" and the commit's link; the release's chat rooms are told once. A commit that says
"This reverts commit SHA." reopens what SHA closed. History names the actor git:NAME@SHA.

A commit on the configured branch is trusted as a release manager is: who may push there is
the repository's business. Nothing else counts — not other branches, not other releases.

At most once: the last tip handled per branch is stored, and every commit that acted on an
item is stored with it (storage/git_marks.py), so a restart, a rewound branch brought forward
again or a second entry reading the same repository never applies a commit twice. A branch
that was rewound or force-pushed is logged once and followed from its new tip; nothing is
applied or reopened because of it. A first run starts at the tip (unless `since:` is given).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...commands.format import summary
from ...commands.links import message_id_url
from ...commands.messages import Reply, item_ref, link, text
from ...storage import Item, NotFound, git_marks
from ..logs import log_failure
from .commits import Commit, between, is_ancestor, resolve
from .run import GitError, git
from .settings import GitRepo

if TYPE_CHECKING:
    from ...storage import Repository
    from ..config import Config
    from ..dispatcher import Dispatcher
    from ..transport import Transport

log = logging.getLogger(__name__)

WARN_EVERY = 3600.0  # an unreadable repository is a WARNING at most this often


@dataclass(frozen=True)
class Applied:
    """What one commit did to one item: "closed" or "reopened"."""

    action: str
    item: Item
    commit: Commit
    url: str | None


def item_ref_in(value: str, release: str) -> int | None:
    """`4.2#10` or `#10` (the first word of a Closes:/Fixes: trailer) → 10 when it names an item
    of `release`; None for anything else (`Fixes: 1234abcd ("subject")` is a commit, not ours)."""
    words = value.split()
    rel, sep, num = (words[0].rstrip(",;.") if words else "").rpartition("#")
    if not sep or not (num.isascii() and num.isdigit()) or (rel and rel != release):
        return None
    return int(num)


def link_keys(value: str, archive_url: str | None = None) -> set[str]:
    """The forms a link compares in: a message-id without its <>, a URL exactly as written;
    a message-id also as its archive URL when an archive is configured."""
    value = value.strip()
    if "://" in value:
        return {value}
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1]
    if not value or "@" not in value or any(ch.isspace() or ch in "<>" for ch in value):
        return set()
    keys = {f"<{value}>"}
    if (url := message_id_url(f"<{value}>", archive_url)) is not None:
        keys.add(url)
    return keys


class GitWatcher:
    def __init__(self, repo: "Repository", config: "Config", dispatcher: "Dispatcher | None" = None,
                 transports: list["Transport"] | None = None, *,
                 clock: Callable[[], float] = time.time, data_dir: str | None = None) -> None:
        self.repo = repo
        self.config = config
        self.dispatcher = dispatcher
        self.transports = transports if transports is not None else []
        self.clock = clock
        base = Path(config.database).parent if config.database != ":memory:" else Path.cwd()
        self.data_dir = Path(data_dir) if data_dir else base / "todobot-git"
        self._warned: dict[str, float] = {}  # entry → when its repository was last unreadable
        self._stop = asyncio.Event()
        self.polled = asyncio.Event()  # set after each poll of an entry (tests wait on it)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        if self.config.git:
            log.info("git watcher started: %s", ", ".join(
                f"{e.label} {e.branch} for {e.release}" for e in self.config.git))
            await asyncio.gather(*(self._loop(entry) for entry in self.config.git))

    async def _loop(self, entry: GitRepo) -> None:
        while not self._stop.is_set():
            await self.poll_entry(entry)
            try:
                await asyncio.wait_for(self._stop.wait(), entry.poll_seconds)
            except asyncio.TimeoutError:
                pass

    async def poll(self) -> list[Applied]:
        """Poll every entry once, now."""
        out: list[Applied] = []
        for entry in self.config.git:
            out += await self.poll_entry(entry)
        return out

    async def poll_entry(self, entry: GitRepo) -> list[Applied]:
        """One poll of one entry; never raises: a problem is logged and retried next poll."""
        try:
            applied = await self._poll(entry)
        except (GitError, OSError) as exc:  # OSError: the data directory cannot be written
            self._unreadable(entry, str(exc))
            return []
        except Exception:
            log_failure(log, "git %s: poll failed; trying again in %g s", entry.label,
                        entry.poll_seconds)
            return []
        finally:
            self.polled.set()
        if self._warned.pop(entry.label, None) is not None:
            log.info("git %s: the repository can be read again", entry.label)
        return applied

    def _unreadable(self, entry: GitRepo, why: str) -> None:
        now, last = self.clock(), self._warned.get(entry.label)
        if last is None or now - last >= WARN_EVERY:
            self._warned[entry.label] = now
            log.warning("git %s: cannot read %s branch %s: %s (retrying every %g s; this "
                        "warning repeats at most once an hour)", entry.label,
                        entry.path or entry.url, entry.branch, why, entry.poll_seconds)
        else:
            log.debug("git %s: still unreadable: %s", entry.label, why)

    # -- one poll -------------------------------------------------------------------------------
    async def _poll(self, entry: GitRepo) -> list[Applied]:
        directory, rev = await self._checkout(entry)
        tip = await resolve(directory, rev, timeout=entry.timeout)
        if tip is None:
            raise GitError(f"no branch {entry.branch}")
        name = entry.label
        async with self.repo.session(f"git:{name}", write=False) as s:
            seen = await git_marks.last_seen(s, name, entry.branch)
        if seen is None and entry.since is None:
            log.info("git %s: first look at %s; starting at its tip %s, earlier commits are not "
                     "applied (set since: to apply them)", name, entry.branch, tip[:12])
            await self._seen(entry, tip)
            return []
        if seen is None:
            assert entry.since is not None
            seen = await resolve(directory, entry.since, timeout=entry.timeout)
            if seen is None:
                raise GitError(f"since: {entry.since} names no commit in the repository")
            log.info("git %s: first look at %s; applying the commits after %s", name,
                     entry.branch, entry.since)
        if seen == tip:
            return []
        if not await is_ancestor(directory, seen, tip, timeout=entry.timeout):
            log.warning("git %s: %s was rewound or force-pushed (%s is no longer in its history; "
                        "the tip is now %s). Following the new tip; nothing is applied or "
                        "reopened because of it.", name, entry.branch, seen[:12], tip[:12])
            await self._seen(entry, tip)
            return []
        applied: list[Applied] = []
        commits = await between(directory, seen, tip, timeout=entry.timeout)
        links = await self._link_index(entry) if any(c.values("Link") for c in commits) else {}
        for commit in commits:
            done = await self._apply(entry, commit, links)
            applied += done
            for a in done:
                await self._announce(entry, a)
        await self._seen(entry, tip)
        return applied

    async def _seen(self, entry: GitRepo, tip: str) -> None:
        async with self.repo.session(f"git:{entry.label}") as s:
            await git_marks.set_last_seen(s, entry.label, entry.branch, tip)

    async def _checkout(self, entry: GitRepo) -> tuple[str, str]:
        """(directory, revision) to read: the local clone as it is, or the remote's branch
        fetched into a bare repository of our own."""
        if entry.path is not None:
            return entry.path, entry.branch
        assert entry.url is not None
        directory = self.data_dir / f"{entry.label}.git"
        if not directory.exists():
            # Made under another name and renamed: a half-made repository is never taken for one.
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fresh = directory.with_name(directory.name + ".new")
            await git(str(self.data_dir), "init", "--quiet", "--bare", "--", fresh.name,
                      timeout=entry.timeout)
            os.replace(fresh, directory)
        ref = f"refs/heads/{entry.branch}"
        # `+`: a force-pushed branch is followed (and noticed as one), not refused.
        await git(str(directory), "fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
                  "--", entry.url, f"+{ref}:{ref}", timeout=entry.timeout)
        return str(directory), ref

    async def _link_index(self, entry: GitRepo) -> dict[str, set[int]]:
        """Each link form (see `link_keys`) → the open items of the entry's release with it.
        Read once a poll: most commits of a busy tree carry a Link: that names no item, and
        they need no write transaction."""
        archive = self.config.web.archive_url if self.config.web is not None else None
        index: dict[str, set[int]] = {}
        async with self.repo.session(f"git:{entry.label}", write=False) as s:
            release = await s.release(entry.release)
            for it in await s.items(release, states=("open",)) if release is not None else []:
                for mine in it.links:
                    for key in link_keys(mine, archive):
                        index.setdefault(key, set()).add(it.id)
        return index

    async def _apply(self, entry: GitRepo, commit: Commit,
                     links: dict[str, set[int]]) -> list[Applied]:
        wanted = {i for v in commit.values("Closes", "Fixes")
                  if (i := item_ref_in(v, entry.release)) is not None}
        wanted |= {i for v in commit.values("Link") for key in link_keys(v)
                   for i in links.get(key, ())}
        if not (wanted or commit.reverts):
            return []
        url = entry.commit_url.replace("{sha}", commit.sha) if entry.commit_url else None
        out: list[Applied] = []
        async with self.repo.session(f"git:{entry.label}@{commit.sha}") as s:
            for item_id in sorted(wanted):
                try:
                    item = await s.get(item_id)
                except NotFound:
                    log.info("git %s: commit %s names #%d, which does not exist", entry.label,
                             commit.short, item_id)
                    continue
                if item.release != entry.release:
                    log.info("git %s: commit %s names #%d of release %s; this branch serves %s: "
                             "left alone", entry.label, commit.short, item_id, item.release,
                             entry.release)
                    continue
                changed = await git_marks.close_from_commit(s, item, commit.sha, commit.short,
                                                            commit.author, url)
                if changed is not None:
                    out.append(Applied("closed", changed, commit, url))
            if commit.reverts:
                for item_id in await git_marks.closed_by(s, commit.reverts):
                    try:
                        item = await s.get(item_id)
                    except NotFound:
                        continue
                    changed = await git_marks.reopen_from_revert(
                        s, item, commit.reverts, commit.sha, commit.short, commit.author, url)
                    if changed is not None:
                        out.append(Applied("reopened", changed, commit, url))
        for a in out:
            log.info("git %s: #%d %s by %s", entry.label, a.item.id, a.action, commit.short)
        return out

    # -- telling the rooms ----------------------------------------------------------------------
    async def _rooms_of(self, release: str) -> list[tuple["Transport", str]]:
        """The chat rooms that follow `release`, as the digest scheduler finds them."""
        assert self.dispatcher is not None
        out = []
        async with self.repo.session("todobot:git", write=False) as s:
            for transport in self.transports:
                if getattr(transport, "post_digest", None) is not None:
                    continue
                for room in transport.rooms():
                    if await self.dispatcher.resolve_release(s, transport.name, room) == release:
                        out.append((transport, room))
        return out

    async def _announce(self, entry: GitRepo, applied: Applied) -> None:
        """Once, in the chat rooms of the item's release (after the change is stored: a crash
        in between loses the message, never repeats it). A transport that writes its own digest
        (mail) is not sent a message per commit: the next digest says it."""
        if self.dispatcher is None:
            return
        try:
            reply = announcement(applied)
            for transport, room in await self._rooms_of(entry.release):
                await transport.post(room, reply)
        except Exception:
            log_failure(log, "git %s: telling the rooms about #%d failed", entry.label,
                        applied.item.id)


def announcement(a: Applied) -> Reply:
    c = a.commit
    what = (f" fixed in {c.short} by {c.author}: " if a.action == "closed"
            else f" reopened: {c.reverts[:len(c.short)] if c.reverts else ''} was reverted in "
                 f"{c.short} by {c.author}: ")
    parts: list[Any] = [item_ref(a.item.id), what, summary(a.item)]
    if a.url:
        parts += [" ", link(a.url)]
    return text(*parts, outcome="changed", items=(a.item.id,))
