"""Answers of any size: split into events under Matrix's 64 KiB limit, paged with !more;
the digest posts in as many events as it needs."""

from __future__ import annotations

import json

import pytest

from todobot.bot.matrix.render import split_reply
from todobot.commands.render_digest import render_reply
from todobot.storage.digest_data import collect

from .conftest import RELEASE, bot_config, open_repo, prepare_db, start_bot, wait_bot_synced

pytestmark = pytest.mark.integration
EVENT_LIMIT = 65536


async def _seed(path: str, n: int, chars: int) -> list[str]:
    """`n` open items in tools whose titles are `chars` long (and full of HTML to escape)."""
    await prepare_db(path)
    db, repo = await open_repo(path)
    titles = [f"long-{i:02d} " + "<b>&amp;'\" " * (chars // 12) for i in range(n)]
    try:
        async with repo.session("test") as s:
            rel = await s.require_release(RELEASE)
            for title in titles:
                await s.add_item(rel, area="tools", severity="nice", title=title)
    finally:
        await db.close()
    return titles


def _size(ev) -> int:
    return len(json.dumps(ev.source, ensure_ascii=False).encode())


async def test_a_long_list_arrives_in_pages_each_under_the_limit(humans, synapse, tmp_path,
                                                                 bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    titles = await _seed(config.database, 55, 1900)
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        ev = await alice.say(room, "!todo tools")
        got = []
        for _ in range(10):
            page = await alice.wait_until(lambda: (lambda r: r if r and (
                "say !more)" in r[-1].body or "… and 5 more." in r[-1].body) else None)(
                    alice.replies_to(ev, bot_user)), timeout=90)
            got += page
            assert len(page) <= 5  # max_events
            if "… and 5 more." in page[-1].body:
                break
            assert page[-1].body.splitlines()[-1].endswith("more lines: say !more)")
            ev = await alice.say(room, "!more")
        assert len(got) > 5
        for part in got:
            assert _size(part) < EVENT_LIMIT // 2, _size(part)
            assert part.source["content"]["formatted_body"].count("<li>") >= 1
        text = "\n".join(p.body for p in got)
        for title in titles[:50]:  # !todo lists 50 and says how many more
            assert text.count(title) == 1, title[:10]
        ev = await alice.say(room, "!more")
        nothing = await alice.reply_to(ev, bot_user)
        assert nothing.body == "There is nothing more to show."
    finally:
        await app.stop()


async def test_a_large_digest_posts_in_as_many_events_as_it_needs(humans, synapse, tmp_path,
                                                                   bot_user):
    alice = await humans("alice")
    room = await alice.create_room([bot_user])
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    titles = await _seed(config.database, 80, 1500)
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: room in app.transports[-1].rooms())
        db, repo = await open_repo(config.database)
        try:
            async with repo.session("test", write=False) as s:
                data = await collect(s, await s.require_release(RELEASE), since=0)
        finally:
            await db.close()
        reply = render_reply(data, "full")
        expected = len(split_reply(reply))
        assert expected > 5  # more than one answer's worth: the digest has no !more
        await app.transports[-1].post(room, reply)
        said = await alice.wait_until(
            lambda: (lambda r: r if len(r) >= expected else None)(
                [e for e in alice.from_user(bot_user, room) if hasattr(e, "body")]), timeout=90)
        assert len(said) == expected
        assert all(_size(e) < EVENT_LIMIT // 2 for e in said)
        text = "\n".join(e.body for e in said)
        assert all(t in text for t in titles)  # (the changes name them too)
    finally:
        await app.stop()


async def _raw_event(person, synapse, room: str, event_id: str) -> dict:
    """The event as the server stores it (still encrypted): GET /rooms/{id}/event/{id}."""
    import aiohttp
    from urllib.parse import quote
    url = f"{synapse.url}/_matrix/client/v3/rooms/{quote(room)}/event/{quote(event_id)}"
    headers = {"Authorization": f"Bearer {person.client.access_token}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(url, headers=headers) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            return body


async def test_a_long_encrypted_list_of_emoji_arrives_whole(humans, synapse, tmp_path, bot_user,
                                                            caplog):
    """4-byte characters in an encrypted room: each costs 12 bytes in the JSON matrix-nio
    encrypts, and base64 adds a third. Every event of `!todo` arrives (none refused as too
    large), each far under the limit, and the ciphertext is the size the bot measured."""
    from todobot.bot.matrix.render import content_bytes, encrypted_bytes
    alice = await humans("alice")
    room = await alice.create_room([bot_user], encrypted=True)
    config = bot_config(synapse, tmp_path, bot_user, rooms=[room], admins=[alice.user_id])
    await prepare_db(config.database)
    titles = [f"emoji-{i:02d} " + "😀🎉" * 150 for i in range(20)]
    db, repo = await open_repo(config.database)
    try:
        async with repo.session("test") as s:
            rel = await s.require_release(RELEASE)
            for title in titles:
                await s.add_item(rel, area="tools", severity="nice", title=title)
    finally:
        await db.close()
    app = await start_bot(config)
    try:
        await wait_bot_synced(config.database, bot_user)
        await alice.wait_until(lambda: bot_user in alice.client.rooms[room].users)
        asked = [await alice.say(room, "!todo tools")]

        def complete(events) -> bool:
            text = "\n".join(e.body for e in events)
            return all(text.count(t) == 1 for t in titles)

        def page():
            r = alice.replies_to(asked[-1], bot_user)
            return r if r and ("say !more)" in r[-1].body or complete(
                [e for a in asked for e in alice.replies_to(a, bot_user)])) else None
        for _ in range(10):
            await alice.wait_until(page, timeout=120)
            got = [e for a in asked for e in alice.replies_to(a, bot_user)]
            if complete(got):
                break
            asked.append(await alice.say(room, "!more"))
        assert complete(got)
        assert len(got) > 5  # more than one page
        for ev in got:
            assert ev.decrypted
            raw = await _raw_event(alice, synapse, room, ev.event_id)
            assert raw["type"] == "m.room.encrypted"
            assert len(json.dumps(raw, ensure_ascii=False).encode()) < EVENT_LIMIT // 2
            actual = content_bytes(raw["content"])
            model = encrypted_bytes(ev.source["content"], room)
            assert actual <= model <= actual + 64, (actual, model)
        # Measured right the first time: the homeserver refused nothing (no cutting again).
        assert not [r for r in caplog.records if "too large" in r.getMessage()]
    finally:
        await app.stop()
