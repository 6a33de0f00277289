"""Rights follow people, never names — tried as a hostile member of a channel would."""

from __future__ import annotations

from todobot.storage import ListItem, ReleaseList


async def _history_len(chat) -> int:
    async with chat.repo.session("t", write=False) as s:
        row = await s._one("SELECT COUNT(*) FROM history")
    return row[0]


async def test_taking_someone_s_name_gives_nothing(chat):
    assert (await chat.say("!claim 1", "bob")).startswith("#1 claimed by bob")
    assert await chat.say("!iam bob", "alice") == "bob is taken by console:bob."
    assert await chat.say("!iam BOB ", "alice") == "bob is taken by console:bob."  # case, spaces
    assert (await chat.say("!done 1", "alice")).startswith("Only the owners of #1")
    assert await chat.say("!iam alice", "alice") == "You are now alice (was alice)."
    assert (await chat.item(1)).owners == ["bob"]  # nobody's items moved
    assert (await chat.say("!done 1", "bob")).startswith("#1 done")


async def test_a_name_from_an_imported_mail_waits_for_a_release_manager(chat):
    async with chat.repo.session("cli:import") as s:
        await s.import_list("4.2", ReleaseList("4.2", items=[ListItem(
            area="hypervisor", severity="nice", title="PoD problems", owners=["Jan Beulich"])]))
    assert (await chat.item(4)).owners == ["Jan Beulich"]
    before = await _history_len(chat)
    assert await chat.say("!iam Jan Beulich", "mallory") == (
        'Jan Beulich is a name from the imported list; a release manager must confirm that it is '
        'you (!person link "Jan Beulich" console:mallory). Asked.')
    assert (await chat.say("!done 4", "mallory")).startswith("Only the owners of #4")
    assert (await chat.say("!assign 4 Mallory", "mallory")).startswith("Only the owners of #4")
    assert await _history_len(chat) == before
    assert "console:mallory says they are Jan Beulich" in await chat.say("!person pending")
    # The real Jan, once bound by a release manager, owns the item; the request is gone.
    assert await chat.say('!person link "Jan Beulich" console:jan') == "Jan Beulich is now console:jan."
    assert (await chat.say("!done 4", "jan")).startswith("#4 done")
    assert await chat.say("!whois Jan Beulich", "anyone") == "Jan Beulich is console:jan."
    assert (await chat.say("!person link Jan console:x", "mallory")).startswith(
        "Only release managers may use !person")


async def test_linking_merges_the_identity_s_own_items_into_the_name(chat):
    await chat.say("!claim 1", "jbeulich")  # claimed under the default name
    async with chat.repo.session("t") as s:
        await s.update(await s.get(3), owners=[(await s.owner_named("Jan Beulich")).id])
    # The identity's person owns an item: the link says what it merges and asks again.
    assert await chat.say('!person link "Jan Beulich" console:jbeulich') == (
        "console:jbeulich is jbeulich; linking merges jbeulich (1 item) into Jan Beulich. To do "
        'it, say !person link "Jan Beulich" console:jbeulich confirm')
    assert (await chat.item(1)).owners == ["jbeulich"]
    assert await chat.say('!person link "Jan Beulich" console:jbeulich confirm') == (
        "Jan Beulich is now console:jbeulich; 1 item of their former name now show Jan Beulich.")
    assert (await chat.item(1)).owners == ["Jan Beulich"]
    assert (await chat.say("!done 3", "jbeulich")).startswith("#3 done")


async def test_look_alike_and_reserved_names_are_refused(chat):
    await chat.say("!iam Jan Beulich", "jan")
    assert await chat.say("!iam Jan Beul\u0456ch", "mallory") == (  # Cyrillic і
        "That name mixes Latin letters with look-alike letters of another script.")
    assert await chat.say("!iam \uff2aan Beulich", "mallory") == (  # fullwidth Ｊ: NFKC
        "Jan Beulich is taken by console:jan.")
    assert await chat.say("!iam Jan\u200b Beulich", "mallory") == (  # zero-width space
        "Jan Beulich is taken by console:jan.")
    for word in ("unclaimed", "DONE", "none", "?"):
        assert "is a word the list uses" in await chat.say(f"!iam {word}", "mallory")
    assert await chat.say("!iam @alice:example.org", "mallory") == (
        "That is a Matrix user id, not a name: say a name, like !iam Ada Lovelace.")
    assert await chat.say("!iam irc:oftc/jan", "mallory") == (
        "That is an account, not a name: say the name people know you by.")


async def test_the_nick_holder_is_not_the_account(chat):
    """Account A claims while using nick alice_away; account B later holds that nick."""
    a = dict(transport="irc:oftc", identity="irc:oftc/alice")
    b = dict(transport="irc:oftc", identity="irc:oftc/bruno")
    assert (await chat.say("!claim 1", "alice_away", **a)).startswith("#1 claimed by alice_away")
    assert (await chat.say("!done 1", "alice_away", **b)).startswith("Only the owners of #1")
    unauth = dict(transport="irc:oftc", identity="irc:oftc/~alice_away", authenticated=False)
    assert (await chat.say("!done 1", "alice_away", **unauth)).startswith("Log in to your account")
    assert (await chat.say("!done 1", "alice", **a)).startswith("#1 done")


async def test_an_unauthenticated_nick_may_claim_but_never_act_as_owner(chat):
    unauth = dict(transport="irc:oftc", identity="irc:oftc/~drive-by", authenticated=False)
    assert (await chat.say("!claim 1", "drive-by", **unauth)).startswith(
        "#1 claimed by drive-by")
    assert (await chat.say("!unclaim 1", "drive-by", **unauth)).startswith("Log in to your account")


async def test_sub_items_nest_eight_deep_at_most(chat):
    parent = 2  # #2 is already under #1: depth 2
    for _ in range(6):
        reply = await chat.say(f"!sub {parent} deeper")
        assert reply.startswith("Added #"), reply
        parent = int(reply.split("#")[1].split(" ")[0])
    assert await chat.say(f"!sub {parent} too deep") == (
        f"Sub-items nest at most 8 deep; #{parent} is already 8 deep. Add it to a shallower item.")


async def test_a_1100_deep_chain_from_an_older_version_still_renders(chat, tmp_path):
    from todobot.commands.render_digest import full_reply, render_html, render_markdown, render_text
    from todobot.storage.digest_data import collect
    from todobot.storage.formats import to_json
    from todobot.storage.layouts import render
    from todobot.storage.layouts.xen42 import render_mail

    async with chat.repo.session("old version") as s:
        rel = await s.require_release("4.2")
        parent = 1
        for n in range(1100):
            parent = (await s.add_item(rel, area="tools", severity="blocker", title=f"level {n}",
                                       parent=parent)).id
    async with chat.repo.session("t", write=False) as s:
        lst = await s.export_list(rel)
        mail = render_mail(lst)
        assert "level 1099" in " ".join(mail.split()) and "level 1099" in to_json(lst)
        assert max(len(line) for line in mail.splitlines()) <= 72
        assert "level 1099" in render(lst, layout="markdown-checklist")
        data = await collect(s, rel, since=0)
        assert "level 1099" in " ".join(render_text(data).split())
        assert "level 1099" in render_markdown(data)
        assert "level 1099" in render_html(data) and "level 1099" in full_reply(data).plain
    assert "#1 libxl stable API" in await chat.say("!todo")
    assert (await chat.say("!dup 1 3")).startswith("#1 is a duplicate of #3")


async def test_adding_is_limited_per_person_and_hour(chat):
    for n in range(30):
        assert (await chat.say(f"!add tools nice item {n}", "spammer")).startswith("Added")
    assert await chat.say("!add tools nice one more", "spammer") == (
        "You have added 30 items in the last hour; the limit is 30. A release manager can add more.")
    assert (await chat.say("!sub 1 one more", "spammer")).startswith("You have added 30")
    assert (await chat.say("!add tools nice fine", "ijc")).startswith("Added")  # release manager
    chat.clock.now += 3601
    chat.repo.clock = chat.clock
    assert (await chat.say("!add tools nice later", "spammer")).startswith("Added")


async def test_invisible_text_ids_and_dates(chat):
    assert await chat.say("!add tools nice \u200b\u202e") == "Usage: !add AREA blocker|nice TITLE"
    assert await chat.say("!show \u0663") == "Usage: !show ID — '٣' is not an item id (like 12 or #12)"
    assert await chat.say("!show #0") == "Usage: !show ID — '#0' is not an item id (like 12 or #12)"
    assert (await chat.say("!defer 1 ../etc")).startswith("Usage: !defer ID [RELEASE] — '../etc' is not")
    assert (await chat.say("!defer 1 4.3.json")).startswith("Usage: !defer ID [RELEASE] — '4.3.json' is not")
    assert await chat.say("!milestone soonish First RC") == (
        "Usage: !milestone DATE NAME | here NAME | done NAME — 'soonish' is not a date: write "
        "it like 30 July, 2012-07-30, Weekly or Mid/Late April")
    assert await chat.say("!milestone Mid/Late April First RC") == "Added: Mid/Late April -- First RC"
    assert await chat.say("!milestone 30 July RC1") == "Added: 30 July -- RC1"


async def test_a_full_database_is_one_line_and_changes_nothing(chat):
    async with chat.repo.session("t") as s:
        await s.conn.execute("PRAGMA max_page_count = 1")  # below what it holds: no growth
    before = await _history_len(chat)
    reply = None
    for n in range(200):
        reply = await chat.say(f"!note 1 {'x' * 900} {n}")
        if not reply.startswith("Noted"):
            break
    assert reply == "The database is full: nothing was changed."
    async with chat.repo.session("t") as s:
        await s.conn.execute("PRAGMA max_page_count = 1073741823")
    assert await _history_len(chat) >= before


async def test_a_protocol_display_name_gets_the_same_checks_as_iam(chat):
    from todobot.commands.messages import Sender
    sneaky = Sender("matrix:@m:example.org", "unclaimed", display_name="unclaimed")
    assert (await chat.say("!claim 1", sender=sneaky)).startswith("#1 claimed by m:example.org")
    twin = Sender("matrix:@x:example.org", "Jinsong Liu", display_name="Jinsong Liu")
    assert (await chat.say("!claim 2", sender=twin)).startswith(
        "#2 claimed by Jinsong Liu (@x:example.org)")
