"""The digest of a generated list, pinned byte for byte in every form it is sent in.

The list has several areas, sub-items (some nested past RENDER_DEPTH, some open under closed
parents), tags, owners with and without identities, links, notes, every closed state and a
week of changes. Work on the digest's speed must leave every byte of this as it is.

After a deliberate change of the output, rewrite the pinned file with
`python -m tests.test_digest_pinned` and review its diff.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import timezone
from pathlib import Path

import pytest

from todobot.commands.messages import Reply
from todobot.commands.render_digest import render_html, render_markdown, render_reply, render_text
from todobot.storage import Database, Milestone, Repository
from todobot.storage import digest_data
from todobot.storage.digest_data import collect
from tests.harness import Clock, ids, ts

PINNED = Path(__file__).resolve().parent / "data" / "digest-pinned.txt"
AREAS = ["tools", "hypervisor", "docs", "arm", "x86"]
PEOPLE = ["Ian Campbell", "George Dunlap", "Jinsong Liu", "Dev <Four>", "Ian Jackson"]


def _reply(reply: Reply) -> list[str]:
    """A Reply with everything a transport may use: each line's kind, level and spans."""
    out = [f"long={reply.long} outcome={reply.outcome} items={reply.items}"]
    out += [f"{ln.kind} {ln.level} {ln.spans!r}" for ln in reply.lines]
    return out


async def _build(path: Path) -> tuple[Database, Repository]:
    clock = Clock(ts(2012, 6, 1, 9))
    db = await Database.open(path)
    repo = Repository(db, clock=clock)
    async with repo.session("console:ijc") as s:
        rel = await s.create_release("4.2")
        await s.set_milestones(rel, [Milestone("19 March", "TODO list locked down"),
                                     Milestone("2 April", "Feature Freeze"),
                                     # marked as the 4.2 mail marks them
                                     Milestone("30 July", "First release candidate", done=True),
                                     Milestone("Weekly", "RCN+1 until release", current=True)])
        person = await s.owner_named(PEOPLE[1])
        await s.link_identity(person, "matrix:@george:example.org")
        made: list[int] = []
        for i in range(90):
            parent = None
            if i % 4 == 1 and made:
                parent = made[-1]  # a sub-item of the one before
            elif i % 9 == 8:
                parent = made[i // 3]  # a later sub-item of an earlier item
            if 60 <= i < 76:
                parent = made[-1] if i > 60 else None  # one chain deeper than RENDER_DEPTH
            owners = [PEOPLE[(i + k) % len(PEOPLE)] for k in range(i % 3)]
            it = await s.add_item(
                rel, area=AREAS[(i // 2) % len(AREAS)] if parent is None else "tools",
                severity="blocker" if i % 5 in (0, 3) else "nice",
                title=f"item {i} of the list" + (" see https://bugs.example.org/%d" % i if i % 7 == 0 else ""),
                tags=["BUG"] if i % 6 == 0 else (["RFC", "x"] if i % 11 == 0 else []),
                details="(details here)" if i % 8 == 2 else "",
                owners=await ids(s, *owners),
                progress="patch posted" if i % 3 == 2 else "",
                links=["https://lists.example.org/%d" % i] if i % 10 == 4 else [],
                parent=parent)
            made.append(it.id)
            if i % 13 == 5:
                await s.add_note(it, f"note on {i}")
        # Closed before the week began: DONE, duplicate, deferred, dropped (some with open kids).
        for i, state in ((2, "done"), (5, "done"), (9, "deferred"), (13, "dropped"), (61, "done")):
            await s.update(await s.get(made[i]), state=state)
        await s.update(await s.get(made[17]), state="duplicate", duplicate_of=made[16])
    clock.now = ts(2012, 7, 24, 10)  # the week after the last digest
    async with repo.session("console:ijc") as s:
        await s.update(await s.get(made[3]), owners=await ids(s, "Ian Campbell"))
        await s.update(await s.get(made[4]), owners=[])
        await s.update(await s.get(made[6]), progress="v2 posted")
        await s.update(await s.get(made[7]), severity="blocker")
        await s.update(await s.get(made[10]), severity="nice")
        await s.update(await s.get(made[12]), state="done")
        await s.update(await s.get(made[9]), state="open")  # reopened
        await s.update(await s.get(made[14]), state="dropped")
        await s.update(await s.get(made[15]), state="duplicate", duplicate_of=made[3])
        await s.add_item(rel, area="docs", severity="nice", title="<b>new</b> this week",
                         parent=made[40])
    clock.now = ts(2012, 7, 30, 9)
    return db, repo


async def outputs() -> str:
    with tempfile.TemporaryDirectory() as tmp:
        db, repo = await _build(Path(tmp) / "pinned.sqlite3")
        try:
            out: list[str] = []
            for layout in ("xen-4.2", "xen-dev-update"):
                async with repo.session("console:ijc") as s:
                    rel = await s.set_layout(await s.require_release("4.2"), layout)
                async with repo.session("t", write=False) as s:
                    data = await collect(s, rel, since=ts(2012, 7, 23, 9), stale_days=10,
                                         tz=timezone.utc)
                out += [f"== {layout}: full reply", *_reply(render_reply(data, "full"))]
                out += [f"== {layout}: short reply", *_reply(render_reply(
                    data, "short", prefix="!", status_url="https://status.example.org/"))]
                out += [f"== {layout}: plain", render_reply(data, "full").plain]
                out += [f"== {layout}: mail", render_text(data, status_url="https://status.example.org")]
                out += [f"== {layout}: markdown", render_markdown(data)]
                out += [f"== {layout}: html", render_html(data, status_url="https://status.example.org")]
            return "\n".join(out) + "\n"
        finally:
            await db.close()


async def test_digest_output_is_pinned():
    assert PINNED.exists(), "run `python -m tests.test_digest_pinned` once to write the pinned output"
    got = await outputs()
    want = PINNED.read_text(encoding="utf-8")
    assert got.splitlines() == want.splitlines()  # line by line: pytest shows where it differs
    assert got == want


async def test_the_chat_digest_of_a_42_list_does_without_the_mail_tree(tmp_path, monkeypatch):
    """Building the open items' mail tree is most of a big digest's cost when nothing shows it."""
    db, repo = await _build(tmp_path / "t.sqlite3")
    try:
        async with repo.session("t", write=False) as s:
            data = await collect(s, await s.require_release("4.2"), since=ts(2012, 7, 23, 9))

        def no_tree(*_):
            raise AssertionError("the mail tree was built")
        monkeypatch.setattr(digest_data, "list_tree", no_tree)
        assert len(render_reply(data, "full").lines) > 90 and render_markdown(data)
        with pytest.raises(AssertionError, match="mail tree"):
            render_text(data)  # the mail does show it
    finally:
        await db.close()


if __name__ == "__main__":
    PINNED.write_text(asyncio.run(outputs()), encoding="utf-8")
    print(f"wrote {PINNED}", file=sys.stderr)
