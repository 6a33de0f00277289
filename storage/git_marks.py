"""What the git watcher remembers: the last commit seen per branch, and per item the commits
already applied to it, so that no commit acts twice — across restarts, force-pushes that bring
an old commit back, and two configured entries reading the same repository.

Kept in the kv table (no schema change). Keys:
  git.seen/NAME/BRANCH  the last tip of BRANCH the watcher named NAME has handled (a SHA)
  git.item/ID           JSON {"applied": [SHA...], "closed_by": SHA|null, "progress": "..."}
  git.closed/SHA        JSON [ID...] — the items SHA closed, looked up when a revert of SHA lands
Functions here run inside a repository session (one transaction), like the Session methods;
the session's actor (git:NAME@SHA) is what history records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .models import Item
from .repository import Session


@dataclass
class ItemMarks:
    applied: list[str] = field(default_factory=list)  # commits that already acted on the item
    closed_by: str | None = None  # the commit that closed it, while it stays closed by it
    progress: str = ""  # the item's progress before the commit replaced it with "fixed in"


async def last_seen(s: Session, name: str, branch: str) -> str | None:
    return await s.kv_get(f"git.seen/{name}/{branch}")


async def set_last_seen(s: Session, name: str, branch: str, sha: str) -> None:
    await s.kv_set(f"git.seen/{name}/{branch}", sha)


async def marks(s: Session, item_id: int) -> ItemMarks:
    raw = await s.kv_get(f"git.item/{item_id}")
    if raw is None:
        return ItemMarks()
    data = json.loads(raw)
    return ItemMarks(list(data.get("applied", [])), data.get("closed_by"), data.get("progress", ""))


async def _save(s: Session, item_id: int, m: ItemMarks) -> None:
    await s.kv_set(f"git.item/{item_id}", json.dumps(
        {"applied": m.applied, "closed_by": m.closed_by, "progress": m.progress}))


async def close_from_commit(s: Session, item: Item, sha: str, short: str, author: str,
                            url: str | None) -> Item | None:
    """Mark an open item done by commit `sha`: progress "fixed in SHORT", a note naming the
    author and the commit's link. The item when it changed; None when `sha` already acted on
    it (never twice) or it is not open (a closed item stays as people left it)."""
    m = await marks(s, item.id)
    if sha in m.applied:
        return None
    m.applied.append(sha)
    changed = None
    if item.state == "open":
        links = item.links + [url] if url and url not in item.links else item.links
        m.progress, m.closed_by = item.progress, sha
        changed = await s.update(item, state="done", progress=f"fixed in {short}", links=links)
        await s.add_note(changed, f"fixed in {short} by {author}" + (f" {url}" if url else ""))
        closed = json.loads(await s.kv_get(f"git.closed/{sha}") or "[]")
        await s.kv_set(f"git.closed/{sha}", json.dumps(sorted({*closed, item.id})))
    await _save(s, item.id, m)
    return changed


async def closed_by(s: Session, sha: str) -> list[int]:
    """The items commit `sha` closed."""
    return [int(i) for i in json.loads(await s.kv_get(f"git.closed/{sha}") or "[]")]


async def reopen_from_revert(s: Session, item: Item, reverted: str, sha: str, short: str,
                             author: str, url: str | None) -> Item | None:
    """Reopen an item that `reverted` closed, because commit `sha` reverts it. None when `sha`
    already acted on it, or the item is no longer done by `reverted` (someone changed it since:
    their word stands)."""
    m = await marks(s, item.id)
    if sha in m.applied:
        return None
    m.applied.append(sha)
    changed = None
    if item.state == "done" and m.closed_by == reverted:
        changed = await s.update(item, state="open", progress=m.progress)
        await s.add_note(changed, f"reopened: {reverted[:len(short)]} reverted in {short} by "
                                  f"{author}" + (f" {url}" if url else ""))
        m.closed_by, m.progress = None, ""
    await _save(s, item.id, m)
    return changed
