"""Hostile and random input: every message gets a documented kind of answer, never a crash.

Run big with `HYPOTHESIS_PROFILE=nightly` (100,000 examples).
"""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from todobot.commands.registry import all_commands
from tests.harness import Chat


NAMES = [c.name for c in all_commands()] + ["more", "nosuch"]
WORDS = st.sampled_from(["1", "#2", "3", "#999999999999", "0", "-1", "for", "Jan Beulich", "blocker",
                         "nice", "tools", "here", "done", "mine", "all", "unclaimed", "preview",
                         "http://x.org/a", "<a@b>", "[BUG]", "-", ",", "/", "4.3", "30 July", "\u202e"])
ARGS = st.lists(st.one_of(WORDS, st.text(max_size=30)), max_size=6).map(" ".join)
COMMANDS = st.builds(lambda n, a: f"!{n} {a}", st.sampled_from(NAMES), ARGS)
TEXT = st.one_of(COMMANDS, st.text(max_size=300), st.sampled_from(
    ["I can take this one", "mine", "I can take #1", "I'll take #99999999", "!", "!!", "!claim\x00 1"]))
NICKS = st.sampled_from(["ijc", "george", "jan", "mallory"])


def test_random_messages_never_crash(tmp_path):
    loop = asyncio.new_event_loop()
    chat = loop.run_until_complete(Chat.open(tmp_path / "f.sqlite3", admins=["console:ijc"],
                                             default_release="4.2"))

    async def seed():
        async with chat.repo.session("t") as s:
            rel = await s.create_release("4.2")
            a = await s.add_item(rel, area="tools", severity="blocker", title="one")
            await s.add_item(rel, area="tools", severity="nice", title="two", parent=a.id)

    loop.run_until_complete(seed())

    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(text=TEXT, nick=NICKS, authenticated=st.booleans())
    def check(text, nick, authenticated):
        reply = loop.run_until_complete(chat.reply(text, nick, authenticated=authenticated))
        if reply is None:
            return
        assert reply.outcome != "error", (text, reply.plain)
        assert reply.lines, text
        for line in reply.lines:
            assert line.plain or line.kind != "text"

    try:
        check()
        # The database is intact after all of it.
        async def integrity():
            async with chat.db.conn.execute("PRAGMA integrity_check") as cur:
                return (await cur.fetchone())[0]
        assert loop.run_until_complete(integrity()) == "ok"
    finally:
        loop.run_until_complete(chat.close())
        loop.close()
