"""What a digest says, read from the repository: the timeline's marks as of today, what
changed since the last digest (from the history table), stale claims and the open items.

The words and markup are the renderers' job (commands/render_digest.py); this module only
reads and summarises, so the scheduler, the mail transport, the CLI and `!digest` share it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timezone, tzinfo

from .digests import last_sent_at, pinged
from .models import Change, Item, ListItem, Milestone, Release, ReleaseList
from .repository import Session, list_tree
from .timeline import release_timeline

UTC = timezone.utc
DAY = 86400.0


# -- what changed ------------------------------------------------------------------------------


@dataclass
class Changes:
    new: list[Item] = field(default_factory=list)
    done: list[Item] = field(default_factory=list)
    to_blocker: list[Item] = field(default_factory=list)
    to_nice: list[Item] = field(default_factory=list)
    claimed: list[tuple[Item, list[str]]] = field(default_factory=list)  # who took it
    unclaimed: list[tuple[Item, list[str]]] = field(default_factory=list)  # who let go
    progress: list[tuple[Item, str, str]] = field(default_factory=list)  # before, after
    duplicates: list[Item] = field(default_factory=list)
    reopened: list[Item] = field(default_factory=list)
    closed: list[Item] = field(default_factory=list)  # deferred or dropped

    def __bool__(self) -> bool:
        return bool(self.new or self.done or self.to_blocker or self.to_nice or self.claimed
                    or self.unclaimed or self.progress or self.duplicates or self.reopened
                    or self.closed)


def _owners(value: str | None) -> list[str]:
    try:
        out = json.loads(value) if value else []
    except ValueError:
        return []
    return [str(o) for o in out] if isinstance(out, list) else []


async def summarise_changes(s: Session, changes: list[Change]) -> Changes:
    """History rows → what a reader wants to know. Several changes to one field of one item
    count once, from the first value to the last (claimed then unclaimed is no change)."""
    created: set[int] = set()
    net: dict[tuple[int, str], list[str | None]] = {}
    for ch in changes:
        if ch.item_id is None:
            continue
        if ch.field == "created" or (ch.field == "release"):
            created.add(ch.item_id)  # new here, or moved in from another release
            continue
        key = (ch.item_id, ch.field)
        if key in net:
            net[key][1] = ch.after
        else:
            net[key] = [ch.before, ch.after]
    out = Changes()
    items = await s.get_many(created | {item_id for item_id, _ in net})
    for item_id in sorted(created):
        if item_id in items:
            out.new.append(items[item_id])
    for (item_id, fld), (before, after) in sorted(net.items()):
        if before == after or item_id in created or item_id not in items:
            continue
        it = items[item_id]
        if fld == "state":
            if after == "done":
                out.done.append(it)
            elif after == "duplicate":
                out.duplicates.append(it)
            elif after == "open":
                out.reopened.append(it)
            elif after in ("deferred", "dropped"):
                out.closed.append(it)
        elif fld == "severity":
            (out.to_blocker if after == "blocker" else out.to_nice).append(it)
        elif fld == "owners":
            old, new = _owners(before), _owners(after)
            folded = {o.casefold() for o in old}
            added = [o for o in new if o.casefold() not in folded]
            if added:
                out.claimed.append((it, added))
            elif old and not new:
                out.unclaimed.append((it, old))
        elif fld == "progress" and (after or "") and it.is_open:
            out.progress.append((it, before or "", after or ""))
    return out


# -- stale claims ------------------------------------------------------------------------------


@dataclass
class StaleClaim:
    item: Item
    owners: list[tuple[str, str | None]]  # (name, identity when known)
    days: int

    @property
    def key(self) -> tuple[int, float]:
        """A claim is stale once per quiet period: the next change to the item starts a new one."""
        return (self.item.id, self.item.updated_at)


async def stale_claims(s: Session, items: Iterable[Item], days: int, now: float) -> list[StaleClaim]:
    out = []
    items = [it for it in items if it.is_open and it.owners and now - it.updated_at >= days * DAY]
    idents = await s.identities_of([i for it in items for i in it.owner_ids])
    for it in items:
        owners = [(name, _mention(idents.get(pid, []))) for name, pid in zip(it.owners, it.owner_ids)]
        out.append(StaleClaim(it, owners, int((now - it.updated_at) // DAY)))
    out.sort(key=lambda c: (-c.days, c.item.id))
    return out


def _mention(identities: list[str]) -> str | None:
    """The identity to mention a person by: a Matrix one where it has one (a pill)."""
    return next((i for i in identities if i.startswith("matrix:")), identities[0] if identities else None)


# -- collecting --------------------------------------------------------------------------------


@dataclass
class DigestData:
    release: Release
    now: float
    since: float
    tz: tzinfo
    totals: dict[str, int]  # open blockers, unclaimed blockers, nice to have (Session.summary)
    milestones: list[Milestone]
    changes: Changes
    items: list[Item]  # open items, list order
    stale_days: int | None
    stale: list[StaleClaim]  # the claims this digest pings
    # The closed items as (id, parent id, state): all the open tree needs of them (an open
    # child of a closed item takes its place), and all that is read of them.
    closed: list[tuple[int, int | None, str]]
    project: str | None = None  # the config's `project:`, named in headers and subjects

    @property
    def title(self) -> str:
        """"Acme 2.0", or "2.0" without a project: what the headers say before "TODO"."""
        return f"{self.project} {self.release.name}" if self.project else self.release.name

    def subject(self, template: str | None = None) -> str:
        """The weekly mail's subject: the config's template, else the subject of the mail the
        release was imported from, else "<title> TODO"."""
        return mail_subject(template, self.release, self.project)

    @property
    def open_list(self) -> ReleaseList:
        """The open items as the mail format's tree. Built when a renderer asks for it (the
        mail, a release in another layout), not for the chat form of the 4.2 layout."""
        # Closed items stand in as bare Items: list_tree places them, _open_tree drops them.
        shells = [Item(i, self.release.name, "", "", "", parent=parent, state=state)
                  for i, parent, state in self.closed]
        everything = sorted(self.items + shells, key=lambda it: it.id)  # list order
        return ReleaseList(self.release.name, [], _open_tree(list_tree(everything)), "",
                           layout=self.release.layout)

    @property
    def new_stale_keys(self) -> list[tuple[int, float]]:
        return [c.key for c in self.stale]

    @property
    def blockers(self) -> list[Item]:
        return [it for it in self.items if it.severity == "blocker"]


def _open_tree(nodes: list[ListItem]) -> list[ListItem]:
    """Open items only; an open child of a closed item moves up to its place. Rewires the
    nodes in place: they are list_tree's, fresh for this call (and without notes)."""
    out: list[ListItem] = []
    for n in nodes:
        n.children = _open_tree(n.children)
        if n.state == "open":
            out.append(n)
        else:
            out.extend(n.children)
    return out


def mail_subject(template: str | None, release: Release, project: str | None) -> str:
    """See `DigestData.subject`; also for mails that carry no digest."""
    if template:
        return " ".join(template.format(release=release.name, project=project or "").split())
    if release.subject:
        return release.subject
    return f"{project} {release.name} TODO" if project else f"{release.name} TODO"


async def collect(s: Session, release: Release, *, since: float, stale_days: int | None = None,
                  transport: str | None = None, room: str | None = None,
                  tz: tzinfo | None = None, project: str | None = None) -> DigestData:
    """Everything a digest says, read in one session. With `transport` and `room`, stale
    claims already pinged there in an earlier digest are left out (each is pinged once).
    An import is a baseline: what it wrote is what the readers have already (the mail), so
    the changes start after the latest import, not with every imported item as new."""
    tz = tz or UTC
    now = s.now
    items = await s.items(release)
    closed = [tuple(r) for r in await s._all(
        "SELECT id, parent_id, state FROM items WHERE release_id = ? AND state != 'open'", release.id)]
    milestones = await release_timeline(s, release, tz)
    baseline = await s.last_import(release)
    changes = await summarise_changes(
        s, [c for c in await s.changes_since(release, since) if c.id > baseline])
    stale: list[StaleClaim] = []
    if stale_days:
        stale = await stale_claims(s, items, stale_days, now)
        if transport is not None and room is not None:
            done = await pinged(s, transport, room, [c.key for c in stale])
            stale = [c for c in stale if c.key not in done]
    return DigestData(release, now, since, tz, await s.summary(release), milestones,
                      changes, items, stale_days, stale, closed, project)


async def since_for_room(s: Session, release: Release, transport: str, room: str) -> float:
    """Changes since this room's last digest, or over the last week when it had none."""
    last = await last_sent_at(s, release.name, transport, room)
    return last if last is not None else s.now - 7 * DAY
