"""Every chat command, as text in and reply out, checked against what is stored."""

from __future__ import annotations

import pytest

from todobot.commands.messages import Sender


async def test_help_lists_every_command_and_explains_one(chat):
    out = await chat.say("!help")
    for name in ("!blockers", "!todo", "!show", "!add", "!sub", "!claim", "!unclaim", "!assign",
                 "!status", "!done", "!reopen", "!blocker", "!nice", "!dup", "!defer", "!link",
                 "!note", "!edit", "!history", "!release", "!milestone", "!digest", "!iam"):
        assert name in out.split(), name
    out = await chat.say("!help claim")
    assert out.splitlines()[0] == "!claim ID [for NAME] — claim an item yourself, or for someone else."
    assert "Example: !claim 12" in out
    assert (await chat.say("!help dup")).endswith("Who: release managers.")
    assert await chat.say("!help nosuch") == "No command !nosuch. Say !help for the list."


async def test_blockers_groups_by_area_with_sub_items(chat):
    assert await chat.say("!blockers") == (
        "Open blockers for 4.2: 2 (2 unclaimed)\n"
        "tools, blockers:\n"
        "* #1 libxl stable API\n"
        "  * #2 Interfaces which may need to be async:")
    assert await chat.say("!blockers hypervisor") == "No open blockers for 4.2 in hypervisor."


async def test_todo_filters(chat):
    out = await chat.say("!todo")
    assert out.splitlines()[-2:] == ["hypervisor, nice to have:",
                                     "* #3 vMCE save/restore changes (Jinsong Liu, patch posted)"]
    assert "#3" not in await chat.say("!todo unclaimed")
    assert "#1" in await chat.say("!todo unclaimed")
    assert await chat.say("!todo mine") == "Nothing: open items owned by ijc for 4.2 is an empty list."
    await chat.say("!claim 1")
    assert "* #1 libxl stable API (ijc)" in await chat.say("!todo mine")
    assert await chat.say("!todo hypervisor") == (
        "Open items in hypervisor for 4.2: 1\nhypervisor, nice to have:\n"
        "* #3 vMCE save/restore changes (Jinsong Liu, patch posted)")
    await chat.say("!done 1")
    assert "#1" not in await chat.say("!todo")
    assert "* #1 libxl stable API (ijc, DONE)" in await chat.say("!todo all")
    assert (await chat.say("!todo two words")).startswith("Usage: !todo")


async def test_show_everything_about_an_item(chat):
    await chat.say("!link 1 http://lists.xen.org/archives/html/xen-devel/2012-03/msg00793.html")
    await chat.say("!note 1 downstreams rely on this")
    out = await chat.say("!show #1")
    lines = out.splitlines()
    assert lines[0] == "#1 libxl stable API  (4.2, tools, blockers, open)"
    assert "Owners: unclaimed · Progress: none" in lines
    assert "Link: http://lists.xen.org/archives/html/xen-devel/2012-03/msg00793.html" in lines
    assert "  * #2 Interfaces which may need to be async:" in lines
    assert any(ln.startswith("Note: downstreams rely on this — ijc, ") for ln in lines)
    assert (await chat.say("!show 2")).splitlines()[2] == "Under #1 libxl stable API"
    assert await chat.say("!show 99") == (
        "No item #99: !todo lists the open ones, !find TEXT finds any.")
    assert await chat.say("!show") == "Usage: !show ID"
    assert await chat.say("!show abc") == "Usage: !show ID — 'abc' is not an item id (like 12 or #12)"


async def test_add_parses_tags_and_names_the_new_item(chat):
    out = await chat.say("!add tools nice [BUG] vcpu-set doesn't take effect on guest")
    assert out == "Added #4 (tools, nice to have): [BUG] vcpu-set doesn't take effect on guest"
    item = await chat.item(4)
    assert (item.area, item.severity, item.tags, item.title, item.state, item.created_by) == (
        "tools", "nice", ["BUG"], "vcpu-set doesn't take effect on guest", "open", "console:ijc")
    out = await chat.say("!add docs blocker [BUG(?)] [CHECK] man page for xl.cfg <1@x.org>")
    assert out == "Added #5 (docs, blockers): [BUG(?)] [CHECK] man page for xl.cfg <1@x.org>"
    assert (await chat.item(5)).links == ["<1@x.org>"]
    assert await chat.say("!add tools urgent thing") == (
        "Usage: !add AREA blocker|nice TITLE — severity is blocker or nice, not 'urgent'")
    assert await chat.say("!add tools nice") == "Usage: !add AREA blocker|nice TITLE"
    assert (await chat.say("!add tools nice " + "x" * 400)).startswith(
        "That title is 400 characters long; the limit is 300.")


async def test_sub_inherits_area_and_severity(chat):
    assert await chat.say("!sub 1 libxl_device_pci_add (and remove)") == (
        "Added #4 under #1 (tools, blockers): libxl_device_pci_add (and remove)")
    item = await chat.item(4)
    assert (item.parent, item.area, item.severity) == (1, "tools", "blocker")
    assert (await chat.say("!sub 77 x")).startswith("No item #77: ")


async def test_claim_unclaim_assign_and_co_owners(chat):
    assert await chat.say("!claim 1", "george") == (
        "#1 claimed by george (was unclaimed): libxl stable API")
    assert await chat.say("!claim 1", "george") == "george already owns #1."
    assert await chat.say("!claim 1", "jan") == (
        "#1 claimed by jan as co-owner; also owned by george.")
    assert (await chat.item(1)).owners == ["george", "jan"]
    assert await chat.say("!unclaim 1", "jan") == "#1 unclaimed by jan (still owned by george)."
    assert await chat.say("!unclaim 1", "mallory") == (
        "Only the owners of #1 or a release manager may unclaim it; it is owned by george.")
    assert await chat.say("!assign 1 jan, Jinsong Liu", "george") == (
        "#1 assigned to jan, Jinsong Liu (was george).")
    assert (await chat.item(1)).owners == ["jan", "Jinsong Liu"]
    assert await chat.say("!assign 3 Someone", "mallory") == (
        "Only the owners of #3 or a release manager may assign it; it is owned by Jinsong Liu.")
    assert await chat.say("!claim 3 for Tim Deegan", "mallory") == (
        "Only the owners of #3 or a release manager may claim it for someone else; "
        "it is owned by Jinsong Liu.")
    assert await chat.say("!claim 2 for Tim Deegan") == (
        "#2 claimed by Tim Deegan (by ijc) (was unclaimed): Interfaces which may need to be async:")
    assert await chat.say("!claim 2 to me") == "Usage: !claim ID [for NAME]"


async def test_status_done_reopen(chat):
    assert await chat.say("!status 3 Ping sent") == "#3 progress: Ping sent (was: patch posted)."
    assert await chat.say("!status 3 -") == "#3 progress: none (was: Ping sent)."
    assert (await chat.item(3)).progress == ""
    assert await chat.say("!done 1", "george") == (
        "Only the owners of #1 or a release manager may mark it done; it is owned by nobody (unclaimed).")
    await chat.say("!claim 1", "george")
    assert await chat.say("!done 1 fixed in 25745", "george") == (
        "#1 done: libxl stable API (1 open sub-item left: #2)")
    item = await chat.item(1)
    assert item.state == "done" and item.notes == ["fixed in 25745"]
    assert await chat.say("!done 1", "george") == "#1 is already done."
    assert await chat.say("!claim 1", "jan") == "#1 is done; !reopen it before you claim it."
    assert await chat.say("!reopen 1", "george") == "#1 reopened (was done): libxl stable API"
    assert (await chat.item(1)).state == "open"
    assert await chat.say("!reopen 1") == "#1 is already open."


async def test_done_reply_carries_a_reaction(chat):
    reply = await chat.reply("!claim 1")
    assert reply.reaction == "✅" and reply.outcome == "changed" and reply.items == (1,)
    reply = await chat.reply("!done 1")
    assert reply.reaction == "✅"


async def test_blocker_and_nice_move_with_sub_items(chat):
    assert await chat.say("!nice 1") == (
        "#1 moved to nice to have (was blockers, with 1 sub-item): libxl stable API")
    assert [(await chat.item(i)).severity for i in (1, 2)] == ["nice", "nice"]
    assert await chat.say("!nice 1") == "#1 is already in nice to have."
    assert await chat.say("!blocker 3") == "#3 moved to blockers (was nice to have): vMCE save/restore changes"
    assert await chat.say("!blocker 3", "george") == "Only release managers may use !blocker."


async def test_dup_collapses_owners_links_notes_and_sub_items(chat):
    await chat.say("!add hypervisor nice address PoD problems with early host side accesses")
    await chat.say("!link 4 <5029F2A1.1@suse.com>")
    await chat.say("!note 4 same as the PoD entry")
    await chat.say("!sub 4 port the patch to -unstable")
    await chat.say("!assign 4 Jan Beulich")
    out = await chat.say("!dup 4 3")
    assert out == ("#4 is a duplicate of #3: collapsed into it (owners Jinsong Liu, Jan Beulich; "
                   "1 link, 1 note, 1 sub-item moved): vMCE save/restore changes")
    dup, target, sub = await chat.item(4), await chat.item(3), await chat.item(5)
    assert (dup.state, dup.duplicate_of, dup.owners, dup.links) == ("duplicate", 3, [], [])
    assert target.owners == ["Jinsong Liu", "Jan Beulich"]
    assert target.links == ["<5029F2A1.1@suse.com>"]
    assert target.notes == ["same as the PoD entry"]
    assert sub.parent == 3
    assert await chat.say("!dup 4 3") == "#4 is already a duplicate of #3."
    assert await chat.say("!dup 3 3") == "An item cannot be a duplicate of itself."
    assert await chat.say("!dup 1 2") == "#2 is a sub-item of #1; a duplicate cannot absorb its parent."
    assert "* #4 address PoD problems with early host side accesses (DUPLICATE of #3)" in \
        await chat.say("!todo all")


async def test_defer_out_of_release_and_into_another(chat):
    assert await chat.say("!defer 3") == "#3 deferred out of 4.2: vMCE save/restore changes"
    assert (await chat.item(3)).state == "deferred"
    assert await chat.say("!defer 1 4.3") == "#1 deferred to 4.3 as #4: libxl stable API"
    old, new, sub_copy = await chat.item(1), await chat.item(4), await chat.item(5)
    assert old.state == "deferred" and (await chat.item(2)).state == "deferred"
    assert (new.release, new.state, new.title) == ("4.3", "open", "libxl stable API")
    assert (sub_copy.release, sub_copy.parent) == ("4.3", 4)
    assert old.notes == ["deferred to 4.3 as #4"]
    assert await chat.say("!blockers") == "No open blockers for 4.2."  # the room stays on 4.2


async def test_link_note_edit_history(chat):
    assert await chat.say("!link 1 http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822") == (
        "#1 now links to http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822 (1 link).")
    assert await chat.say("!link 1 not-a-url") == (
        "Usage: !link ID URL|<message-id> — give one URL (http://..., https://...) or a message-id <...@...>")
    assert await chat.say("!note 1 Ping sent to IanJ") == "Noted on #1 (1 note)."
    assert await chat.say("!edit 1 [CHECK] libxl stable API for 4.2") == (
        "#1 is now: [CHECK] libxl stable API for 4.2 (was: libxl stable API)")
    assert await chat.say("!edit 1 x", "george") == "Only release managers may use !edit."
    out = (await chat.say("!history 1")).splitlines()
    assert out[0] == "History of #1 (5 most recent):"
    assert out[1].endswith("test created: libxl stable API")
    assert out[2].endswith('console:ijc links: (none) → ["http://bugzilla.xen.org/bugzilla/show_bug.cgi?id=1822"]')
    assert out[3].endswith("console:ijc note: Ping sent to IanJ")
    assert out[4].endswith("console:ijc title: libxl stable API → libxl stable API for 4.2")
    assert out[5].endswith("console:ijc tags: (none) → [\"CHECK\"]")


async def test_release_timeline_and_milestones(chat):
    assert await chat.say("!release") == (
        "Release 4.2: 2 open blockers (2 unclaimed), 1 nice to have\n"
        "No timeline yet: add milestones with !milestone DATE NAME.")
    for cmd in ("!milestone 19 March TODO list locked down", "!milestone 2 April Feature Freeze",
                "!milestone 30 July First release candidate", "!milestone Weekly RCN+1 until release"):
        assert (await chat.say(cmd)).startswith("Added: ")
    assert await chat.say("!milestone here RCN+1 until release") == (
        "We are now at: Weekly -- RCN+1 until release")
    assert await chat.say("!milestone 3 April Feature Freeze") == (
        "Moved (was 2 April): 3 April -- Feature Freeze")
    assert await chat.say("!milestone done First release candidate") == (
        "Done: 30 July -- First release candidate")
    assert await chat.say("!release") == (
        "Release 4.2: 2 open blockers (2 unclaimed), 1 nice to have\n"
        "19 March        -- TODO list locked down\n"
        "3 April         -- Feature Freeze\n"
        "30 July         -- First release candidate  << DONE\n"
        "Weekly          -- RCN+1 until release      << WE ARE HERE")
    assert await chat.say("!milestone here Nonexistent") == (
        "No milestone named 'Nonexistent'; the timeline has: TODO list locked down, "
        "Feature Freeze, First release candidate, RCN+1 until release.")
    assert await chat.say("!milestone here x", "george") == "Only release managers may use !milestone."


async def test_digest_preview(chat):
    out = await chat.say("!digest preview")
    assert out.splitlines()[0] == "4.2 TODO digest: 2 open blockers (2 unclaimed), 1 nice to have"
    assert "* #3 vMCE save/restore changes (Jinsong Liu, patch posted)" in out
    assert await chat.say("!digest now") == "Usage: !digest [preview]"


async def test_iam_binds_a_name_and_moves_claims(chat):
    await chat.say("!claim 1", "george")
    assert await chat.say("!iam George Dunlap", "george") == (
        "You are now George Dunlap (was george).")
    assert (await chat.item(1)).owners == ["George Dunlap"]
    assert await chat.say("!done 1", "george") == "#1 done: libxl stable API (1 open sub-item left: #2)"
    assert await chat.say("!iam George Dunlap", "mallory") == "George Dunlap is taken by console:george."
    assert await chat.say("!iam Bad, Name") == (
        "Usage: !iam NAME — a name is 1-64 characters without , / ( ) [ ] < > and does not start "
        "with # or @")
    assert await chat.say("!whoami", "george") == "You are console:george, shown as George Dunlap."


async def test_unauthenticated_senders_cannot_act_as_owners_or_admins(chat):
    await chat.say('!person link "Jinsong Liu" irc:net/jinsong')
    assert await chat.say("!done 3", "~jinsong", authenticated=False, transport="irc:net") == (
        "Log in to your account to mark it done (#3): a nick alone does not show whose item it is.")
    assert await chat.say("!nice 1", "ijc", authenticated=False) == (
        "Only release managers may use !nice, and you are not logged in to an account here.")
    assert await chat.say("!iam Someone", "x", authenticated=False) == (
        "Log in to your account first: a name is bound to an account, not a nick.")


async def test_unknown_and_malformed_commands(chat):
    assert await chat.say("!tood") == "Unknown command !tood. Did you mean !todo? Say !help for the list."
    assert await chat.say("!zzzzzz") == "Unknown command !zzzzzz. Say !help for the list."
    assert await chat.say("!claim") == "Usage: !claim ID [for NAME]"
    assert await chat.say("!claim 12x") == "Usage: !claim ID [for NAME] — '12x' is not an item id (like 12 or #12)"
    assert (await chat.say("!done 99")).startswith("No item #99: ")
    assert await chat.say("!!!") is None
    assert await chat.say("! claim 1") is None
    assert await chat.say("just chatting about !things") is None
    long = "!note 1 " + "x" * 3000
    assert await chat.say(long) == "That message is too long (3008 characters; the limit is 2000)."
    assert (await chat.item(1)).notes == []


async def test_text_is_stored_exactly_and_control_characters_neutralised(chat):
    title = "Ünïcödé RTL 🎉 <script>alert(1)</script> & \"quotes\""
    typed = title.replace("RTL", "\u202eRTL\u202c")
    await chat.say(f"!add tools nice {typed}")
    assert (await chat.item(4)).title == title  # markup kept as text; bidi overrides removed
    await chat.say("!add tools nice evil\r\nJOIN #evil\x00x")
    assert (await chat.item(5)).title == "evil JOIN #evil x"


async def test_internal_errors_are_logged_not_shown(chat, monkeypatch, caplog):
    async def boom(ctx, args):
        raise RuntimeError("kaboom")

    import dataclasses

    from todobot.commands.registry import COMMANDS
    monkeypatch.setitem(COMMANDS, "show", dataclasses.replace(COMMANDS["show"], handler=boom))
    out = await chat.say("!show 1")
    assert out.startswith("internal error, logged as ")
    ref = out.rsplit(" ", 1)[1]
    assert any(ref in r.getMessage() and r.exc_info for r in caplog.records)
    assert "kaboom" not in out


async def test_a_failing_command_leaves_nothing_half_written(chat, monkeypatch):
    """One transaction per command: an error after the first write rolls everything back."""
    import dataclasses

    from todobot.commands.registry import COMMANDS

    async def half(ctx, args):
        item = await ctx.item(1)
        await ctx.s.update(item, progress="half written")
        raise RuntimeError("crash mid-command")

    monkeypatch.setitem(COMMANDS, "status", dataclasses.replace(COMMANDS["status"], handler=half))
    assert (await chat.say("!status 1 x")).startswith("internal error")
    assert (await chat.item(1)).progress == ""
    assert [c.field for c in await chat.history(1)] == ["created"]


async def test_every_change_is_in_history(chat):
    await chat.say("!claim 1", "george")
    await chat.say("!status 1 patch posted", "george")
    await chat.say("!nice 1")
    await chat.say("!done 1")
    rows = [(c.actor, c.field, c.before, c.after) for c in await chat.history(1)]
    assert rows == [
        ("test", "created", None, "libxl stable API"),
        ("console:george", "owners", "[]", '["george"]'),
        ("console:george", "progress", "", "patch posted"),
        ("console:ijc", "severity", "blocker", "nice"),
        ("console:ijc", "state", "open", "done"),
    ]


@pytest.mark.parametrize("prefix", ["?", "todo:"])
async def test_prefix_is_configurable(tmp_path, prefix):
    from tests.harness import Chat
    c = await Chat.open(tmp_path / "p.sqlite3", prefix=prefix)
    try:
        assert await c.say("!help") is None
        assert (await c.say(f"{prefix}help claim")).startswith(f"{prefix}claim ID")
        assert await c.say(f"{prefix}blockers") == (
            f"This room tracks no release yet: a release manager starts one with {prefix}release "
            "new NAME, or imports a list with `todobot import FILE --release NAME`.")
    finally:
        await c.close()


async def test_the_flood_warning_shows_a_name_only_cleaned(chat):
    """A display name is the sender's own text: the warning never carries its bidi
    overrides or control characters."""
    sender = Sender("matrix:@m:x", "\u202eevil\x07 name\u2066", display_name="x")
    replies = [await chat.reply("!todo", sender=sender, transport="matrix") for _ in range(12)]
    [warning] = [r.plain for r in replies if r is not None and "too many" in r.plain]
    assert warning.startswith("evil name: too many commands at once"), warning


async def test_flood_from_one_person_is_answered_once_then_ignored(chat):
    replies = [await chat.say("!todo", "spammer", transport="irc:net") for _ in range(1000)]
    answered = [r for r in replies if r is not None]
    warnings = [r for r in answered if "too many commands" in r]
    assert warnings == ["spammer: too many commands at once; I will ignore yours for 1 s."]
    assert len(answered) == 11  # the burst of 10, then the one warning
    # Someone else is unaffected, and the spammer is heard again once the bucket refills.
    assert (await chat.say("!todo", "other", transport="irc:net")).startswith("Open items")
    chat.clock.now += 3
    assert (await chat.say("!todo", "spammer", transport="irc:net")).startswith("Open items")
    # The console (a local terminal) is never throttled.
    for _ in range(50):
        assert (await chat.say("!todo")).startswith("Open items")


async def test_plain_language_counts_against_the_same_cooldown(chat):
    """"I can take #1" is a write like !claim: a flood of it is warned once, then ignored."""
    replies = [await chat.say("I can take #1", "spammer", transport="irc:net") for _ in range(40)]
    answered = [r for r in replies if r is not None]
    assert [r for r in answered if "too many commands" in r] == [
        "spammer: too many commands at once; I will ignore yours for 1 s."]
    assert len(answered) == 11  # the burst of 10, then the one warning


async def test_long_lists_stop_at_fifty_and_say_how_to_narrow(chat):
    async with chat.repo.session("test") as s:
        rel = await s.require_release("4.2")
        for i in range(60):
            await s.add_item(rel, area="docs", severity="nice", title=f"page {i}")
    out = (await chat.say("!todo")).splitlines()
    assert out[0] == "Open items for 4.2: 63"
    assert out[-1] == "… and 13 more (say !todo AREA to narrow it down)."
    assert out[1:5] == ["tools, blockers:", "* #1 libxl stable API",
                        "  * #2 Interfaces which may need to be async:", "hypervisor, nice to have:"]
    assert sum(ln.startswith(("* ", "  * ")) for ln in out) == 50
    assert (await chat.say("!todo docs")).splitlines()[-1] == "… and 10 more."
