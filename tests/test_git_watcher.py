"""The git watcher on real repositories made here: commits close, reverts reopen, nothing twice."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from todobot.bot.app import App
from todobot.bot.config import ConfigError, load_config, parse_config, serving_problems
from todobot.bot.git.watcher import GitWatcher, item_ref_in, link_keys
from todobot.bot.rooms import room_settings
from todobot.commands.render_digest import changes_reply
from todobot.storage.digest_data import collect
from tests.harness import Clock
from tests.test_schedule import FakeTransport

COMMIT_URL = "https://git.example.org/xen/commit/{sha}"


class Git:
    """A real repository (or a bare one), with its own committer identity."""

    def __init__(self, path: Path, *, bare: bool = False, clone_of: "Git | None" = None) -> None:
        self.path = path
        if clone_of is not None:
            subprocess.run(["git", "clone", "-q", str(clone_of.path), str(path)], check=True)
        else:
            subprocess.run(["git", "init", "-q", "-b", "main", *(["--bare"] if bare else []),
                            str(path)], check=True)
        if not bare:
            self.git("config", "user.name", "Ada Lovelace")
            self.git("config", "user.email", "ada@example.org")
            self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.path), *args], check=True,
                              capture_output=True, text=True).stdout.strip()

    def commit(self, message: str, author: str | None = None) -> str:
        f = self.path / "file"
        f.write_text(f.read_text() + "x\n" if f.exists() else "x\n")
        self.git("add", "file")
        self.git("commit", "-q", "-m", message, *([f"--author={author}"] if author else []))
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def work(tmp_path) -> Git:
    repo = Git(tmp_path / "xen")
    repo.commit("Initial import")
    return repo


def watcher_for(chat, tmp_path, entry: dict, *, clock: Clock | None = None,
                rooms: tuple[str, ...] = ("#xen",), web: dict | None = None):
    config = parse_config({"database": str(tmp_path / "todo.sqlite3"), "default_release": "4.2",
                           "git": [entry], **({"web": web} if web else {})})
    transport = FakeTransport("irc:sim", chat.clock, list(rooms))
    w = GitWatcher(chat.repo, config, chat.dispatcher, [transport], clock=clock or chat.clock,
                   data_dir=str(tmp_path / "git-data"))
    return w, transport


def local(work: Git, **more) -> dict:
    return {"path": str(work.path), "branch": "main", "release": "4.2", "name": "xen",
            "commit_url": COMMIT_URL, **more}


async def test_closes_trailer_closes_the_item_at_the_next_poll(chat, tmp_path, work, caplog):
    w, room = watcher_for(chat, tmp_path, local(work), rooms=("#xen", "#xen-4.3"))
    chat.dispatcher.bind_room("irc:sim", "#xen-4.3",
                              replace(room_settings(chat.config), release="4.3"))
    caplog.set_level(logging.INFO)
    assert await w.poll() == []  # first look: starts at the tip
    assert "starting at its tip" in caplog.text
    sha = work.commit("libxl: make the API stable\n\nLong story.\n\nCloses: 4.2#1\n"
                      "Signed-off-by: Ada Lovelace <ada@example.org>")
    short = work.git("rev-parse", "--short", sha)
    applied = await w.poll()
    assert [(a.action, a.item.id) for a in applied] == [("closed", 1)]
    item = await chat.item(1)
    assert item.state == "done"
    assert item.progress == f"fixed in {short}"
    url = COMMIT_URL.format(sha=sha)
    assert item.notes == [f"fixed in {short} by Ada Lovelace {url}"]
    assert url in item.links
    assert {c.actor for c in await chat.history(1) if c.field == "state"} == {f"git:xen@{sha}"}
    assert f"git:xen@{sha}" in await chat.say("!history 1")
    # announced once, in the release's room (not in the room of another release)
    assert [p.room for p in room.posts] == ["#xen"]
    assert room.posts[0].reply.plain.startswith(f"#1 fixed in {short} by Ada Lovelace:")
    assert await w.poll() == []
    assert len(room.posts) == 1
    # the next digest says it: "Done: #1 libxl stable API (fixed in SHORT, DONE)"
    async with chat.repo.session("test", write=False) as s:
        since = (await s.get(3)).created_at + 1e-6  # after the fixture's items were added
        data = await collect(s, await s.require_release("4.2"), since=since)
    assert f"Done: #1 libxl stable API (fixed in {short}, DONE)" in changes_reply(data).plain


async def test_hash_id_and_fixes_and_only_real_trailers(chat, tmp_path, work):
    w, _ = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    # Not trailers: a line in the middle of the body, a commit SHA in Fixes:, another release.
    work.commit("tools: tidy\n\nCloses: 4.2#2\n\nThis paragraph says more.")
    work.commit("tools: tidy more\n\nFixes: 1234abcd5678 (\"tools: tidy\")\nCloses: 4.3#2")
    assert await w.poll() == []
    assert (await chat.item(2)).state == "open"
    work.commit("vMCE: save and restore\n\nFixes: #3")
    assert [a.item.id for a in await w.poll()] == [3]
    assert (await chat.item(3)).state == "done"
    # an item of another release is not this branch's to close, whatever the commit says
    async with chat.repo.session("test") as s:
        other = await s.add_item(await s.create_release("4.3"), area="tools", severity="nice",
                                 title="for later")
    work.commit(f"tools: later\n\nCloses: #{other.id}")
    assert await w.poll() == []
    assert (await chat.item(other.id)).state == "open"


async def test_author_is_cleaned_and_mail_lists_get_no_message_per_commit(chat, tmp_path, work):
    class MailLike(FakeTransport):
        async def post_digest(self, room, data):  # writes its own digest, like the mail transport
            raise AssertionError("not a digest")

    w, chat_room = watcher_for(chat, tmp_path, local(work))
    mail = MailLike("mail", chat.clock, ["xen-devel@lists.example.org"])
    w.transports.append(mail)
    await w.poll()
    work.commit("libxl: fix\n\nCloses: 4.2#1", author="Ada\u202e Lovelace <ada@example.org>")
    await w.poll()
    note = (await chat.item(1)).notes[0]
    assert "\u202e" not in note and "by Ada Lovelace" in note
    assert "\u202e" not in chat_room.posts[0].reply.plain
    assert mail.posts == []


async def test_link_trailer_closes_the_item_with_that_link(chat, tmp_path, work):
    await chat.say("!link 1 <20120730.1234@lists.example.org>")
    await chat.say("!link 2 https://bugs.example.org/show_bug.cgi?id=1822")
    w, _ = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    work.commit("libxl: fix\n\nLink: 20120730.1234@lists.example.org")  # no <>: the same id
    work.commit("libxl: other\n\nLink: https://bugs.example.org/show_bug.cgi?id=18")  # not equal
    assert [a.item.id for a in await w.poll()] == [1]
    assert (await chat.item(2)).state == "open"
    work.commit("libxl: fix 2\n\nLink: https://bugs.example.org/show_bug.cgi?id=1822")
    assert [a.item.id for a in await w.poll()] == [2]


async def test_link_to_the_archive_page_of_the_items_message_id(chat, tmp_path, work):
    await chat.say("!link 1 <20120730.1234@lists.example.org>")
    w, _ = watcher_for(chat, tmp_path, local(work),
                       web={"archive_url": "https://lore.example.org/r/{msgid}"})
    await w.poll()
    work.commit("libxl: fix\n\nLink: https://lore.example.org/r/20120730.1234@lists.example.org")
    assert [a.item.id for a in await w.poll()] == [1]


async def test_revert_reopens_and_restores_the_progress(chat, tmp_path, work):
    w, room = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    fix = work.commit("vMCE: save and restore\n\nCloses: 4.2#3")
    await w.poll()
    assert (await chat.item(3)).state == "done"
    work.git("revert", "--no-edit", fix)
    revert = work.git("rev-parse", "HEAD")
    assert [(a.action, a.item.id) for a in await w.poll()] == [("reopened", 3)]
    item = await chat.item(3)
    assert (item.state, item.progress) == ("open", "patch posted")
    assert "reopened" in item.notes[-1] and "Ada Lovelace" in item.notes[-1]
    assert [c.actor for c in await chat.history(3) if c.field == "state"][-1] == f"git:xen@{revert}"
    assert "reopened" in room.posts[-1].reply.plain


async def test_revert_leaves_an_item_someone_changed_since(chat, tmp_path, work):
    w, _ = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    fix = work.commit("libxl: fix\n\nCloses: 4.2#1")
    await w.poll()
    await chat.say("!reopen 1")
    work.git("revert", "--no-edit", fix)
    assert await w.poll() == []
    assert (await chat.item(1)).state == "open"


async def test_restart_applies_nothing_twice_and_catches_up(chat, tmp_path, work):
    entry = local(work)
    w, _ = watcher_for(chat, tmp_path, entry)
    await w.poll()
    work.commit("libxl: fix\n\nCloses: 4.2#1")
    await w.poll()
    await chat.say("!reopen 1")
    # "restart": a new watcher on the same database
    w2, room2 = watcher_for(chat, tmp_path, entry)
    assert await w2.poll() == []
    assert (await chat.item(1)).state == "open"
    # commits that landed while the bot was down are applied at the next start
    work.commit("vMCE: fix\n\nCloses: 4.2#3")
    w3, _ = watcher_for(chat, tmp_path, entry)
    assert [a.item.id for a in await w3.poll()] == [3]


async def test_a_commit_seen_again_after_a_rewind_is_not_applied_again(chat, tmp_path, work, caplog):
    w, room = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    base = work.git("rev-parse", "HEAD")
    fix = work.commit("libxl: fix\n\nCloses: 4.2#1")
    await w.poll()
    await chat.say("!reopen 1")
    work.git("reset", "-q", "--hard", base)  # rewound...
    await w.poll()
    work.git("reset", "-q", "--hard", fix)  # ...and brought forward to the same commit again
    assert await w.poll() == []
    assert (await chat.item(1)).state == "open"
    assert len(room.posts) == 1


async def test_topic_branch_commit_closes_nothing_until_merged(chat, tmp_path, work):
    w, _ = watcher_for(chat, tmp_path, local(work))
    await w.poll()
    work.git("checkout", "-q", "-b", "topic")
    work.commit("libxl: fix on a topic branch\n\nCloses: 4.2#1")
    assert await w.poll() == []
    work.git("checkout", "-q", "main")
    work.commit("unrelated")  # the branch moves on without the topic
    assert await w.poll() == []
    assert (await chat.item(1)).state == "open"
    work.git("merge", "-q", "--no-edit", "topic")
    assert [a.item.id for a in await w.poll()] == [1]


async def test_remote_url_is_fetched_and_force_push_reopens_nothing(chat, tmp_path, caplog):
    remote = Git(tmp_path / "remote.git", bare=True)
    dev = Git(tmp_path / "dev", clone_of=remote)
    dev.git("checkout", "-q", "-b", "main")
    dev.commit("Initial import")
    dev.git("push", "-q", "origin", "main")
    entry = {"url": str(remote.path), "branch": "main", "release": "4.2"}
    w, _ = watcher_for(chat, tmp_path, entry)
    await w.poll()
    assert (tmp_path / "git-data" / "remote.git").is_dir()  # cloned next to the database
    dev.commit("libxl: fix\n\nCloses: 4.2#1")
    dev.git("push", "-q", "origin", "main")
    applied = await w.poll()
    assert [a.item.id for a in applied] == [1]
    assert applied[0].commit.sha == dev.git("rev-parse", "HEAD")
    assert {c.actor for c in await chat.history(1) if c.field == "state"} == {
        f"git:remote@{applied[0].commit.sha}"}
    # force-push: the fix is gone from the branch, a new commit names #2
    dev.git("reset", "-q", "--hard", "HEAD~1")
    dev.commit("rewritten\n\nCloses: 4.2#2")
    dev.git("push", "-q", "--force", "origin", "main")
    caplog.clear()
    caplog.set_level(logging.INFO)
    assert await w.poll() == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "rewound or force-pushed" in warnings[0].getMessage()
    assert (await chat.item(1)).state == "done"  # not reopened by the rewrite
    assert (await chat.item(2)).state == "open"  # started from the new tip
    # and on from there as usual
    dev.commit("more\n\nCloses: 4.2#2")
    dev.git("push", "-q", "origin", "main")
    assert [a.item.id for a in await w.poll()] == [2]


async def test_unreadable_repository_warns_once_an_hour(chat, tmp_path, caplog):
    clock = Clock(1_000_000.0)
    w, _ = watcher_for(chat, tmp_path, {"path": str(tmp_path / "missing"), "branch": "main",
                                        "release": "4.2"}, clock=clock)
    caplog.set_level(logging.INFO)

    def warnings() -> int:
        return sum(r.levelno == logging.WARNING for r in caplog.records)

    assert await w.poll() == []
    assert warnings() == 1
    for step in (60, 1800, 3599):
        clock.now = 1_000_000.0 + step
        await w.poll()
    assert warnings() == 1
    clock.now = 1_000_000.0 + 3600
    await w.poll()
    assert warnings() == 2
    Git(tmp_path / "missing").commit("Initial import")
    await w.poll()
    assert "can be read again" in caplog.text


async def test_first_run_with_since_applies_the_commits_after_it(chat, tmp_path, work):
    start = work.git("rev-parse", "HEAD")
    work.commit("libxl: fix\n\nCloses: 4.2#1")
    w, _ = watcher_for(chat, tmp_path, local(work, since=start))
    assert [a.item.id for a in await w.poll()] == [1]


async def test_app_starts_and_stops_the_watcher(tmp_path, work):
    config = parse_config({"database": str(tmp_path / "app.sqlite3"),
                           "git": [local(work, poll_seconds=5)]})
    app = App(config, transports=[])
    await app.initialize()
    await app.start()
    try:
        await asyncio.wait_for(app.git.polled.wait(), 60)
        async with app.repo.session("test", write=False) as s:
            assert await s.kv_get("git.seen/xen/main") == work.git("rev-parse", "HEAD")
    finally:
        await app.stop()


def test_item_refs_and_link_forms():
    assert item_ref_in("4.2#10", "4.2") == 10
    assert item_ref_in("#10 (the vMCE one)", "4.2") == 10
    assert item_ref_in("4.2#10.", "4.2") == item_ref_in("#10, see also #11", "4.2") == 10
    assert item_ref_in("4.3#10", "4.2") is None
    assert item_ref_in("1234abcd (\"x\")", "4.2") is None
    assert item_ref_in("#١٠", "4.2") is None  # digits people read as ASCII only
    assert link_keys("<a.b@c>") == link_keys("a.b@c") == {"<a.b@c>"}
    assert link_keys("https://x/y") == {"https://x/y"}


def test_config_git_entries(tmp_path):
    cfg = parse_config({"git": [{"url": "https://xenbits.xen.org/git-http/xen.git",
                                 "branch": "staging", "release": "4.2"},
                                {"path": "/srv/xen", "branch": "stable-4.2", "release": "4.2",
                                 "name": "xen-stable"}]})
    assert [g.label for g in cfg.git] == ["xen", "xen-stable"]
    assert cfg.git[0].poll_seconds == 300
    bad = [
        ({"url": "a", "path": "b", "branch": "main", "release": "4.2"}, "not both"),
        ({"path": "b", "branch": "-x", "release": "4.2"}, "not a branch name"),
        ({"path": "b", "branch": "main", "release": "4.2", "commit_url": "javascript:{sha}"},
         "{sha}"),
        ({"path": "b", "branch": "main", "release": "4.2", "since": "a..b"}, "not a commit"),
    ]
    for entry, words in bad:
        with pytest.raises(ConfigError, match="git\\[0\\]") as exc:
            parse_config({"git": [entry]})
        assert words in str(exc.value)
    with pytest.raises(ConfigError, match="also named 'xen'"):
        parse_config({"git": [{"path": "/a/xen", "branch": "main", "release": "4.2"},
                              {"url": "https://x/xen.git", "branch": "main", "release": "4.2"}]})


async def test_a_data_directory_that_cannot_be_made_is_a_warning(chat, tmp_path, caplog):
    remote = Git(tmp_path / "remote.git", bare=True)
    w, _ = watcher_for(chat, tmp_path, {"url": str(remote.path), "branch": "main",
                                        "release": "4.2"})
    (tmp_path / "git-data").write_text("a file where the directory should be")
    assert await w.poll() == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot read" in warnings[0].getMessage()


async def test_no_hook_runs_when_fetching(chat, tmp_path):
    remote = Git(tmp_path / "remote.git", bare=True)
    dev = Git(tmp_path / "dev", clone_of=remote)
    dev.git("checkout", "-q", "-b", "main")
    dev.commit("Initial import")
    dev.git("push", "-q", "origin", "main")
    w, _ = watcher_for(chat, tmp_path, {"url": str(remote.path), "branch": "main",
                                        "release": "4.2"})
    await w.poll()
    marker = tmp_path / "hook-ran"
    hook = tmp_path / "git-data" / "remote.git" / "hooks" / "reference-transaction"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    dev.commit("libxl: fix\n\nCloses: 4.2#1")
    dev.git("push", "-q", "origin", "main")
    assert [a.item.id for a in await w.poll()] == [1]  # the fetch updated the branch...
    assert not marker.exists()  # ...and ran no hook


async def test_a_remote_that_does_not_answer_is_stopped_at_the_timeout(chat, tmp_path, caplog,
                                                                       monkeypatch):
    ssh = tmp_path / "silent-ssh"  # stands in for ssh to a host that never answers
    ssh.write_text("#!/bin/sh\nexec sleep 120\n")
    ssh.chmod(0o755)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(ssh))
    w, _ = watcher_for(chat, tmp_path, {"url": "ssh://127.0.0.1/xen.git", "branch": "main",
                                        "release": "4.2", "timeout": 0.5})
    assert await w.poll() == []
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "took longer than 0.5 s" in warnings[0]


async def test_a_changed_git_list_waits_for_a_restart(tmp_path, work):
    cfg = tmp_path / "bot.yaml"
    cfg.write_text(f"database: {tmp_path / 'reload.sqlite3'}\n")
    app = App(load_config(cfg), config_path=str(cfg), serve=False)
    await app.initialize()
    try:
        cfg.write_text(cfg.read_text() + f"git:\n  - path: {work.path}\n    branch: main\n"
                       "    release: '4.2'\n")
        assert app.reload() == ["git: at restart"]
        assert app.git is None
    finally:
        await app.stop()


def test_serving_without_the_git_program_is_refused(tmp_path, monkeypatch):
    cfg = parse_config({"database": str(tmp_path / "x.sqlite3"),
                        "git": [{"path": str(tmp_path), "branch": "main", "release": "4.2"}]})
    assert serving_problems(cfg) == []
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert serving_problems(cfg) == [
        "config: git: watching repositories needs the git program; install git"]
