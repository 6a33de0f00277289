"""A mail's actions run in one transaction, each under its own savepoint (Dispatcher.run_steps),
and what the sender is told about them (the acknowledgement)."""

from __future__ import annotations

from todobot.bot.mail.handling import ack_text, limit, steps_for
from todobot.bot.mail.replies import Claim, Command, Propose, parse_reply
from todobot.commands.messages import Message, Sender


def mail_msg(msg_id: str = "<m1@x>", *, authenticated: bool = False) -> Message:
    sender = Sender("mail:jan@suse.com", "Jan Beulich", authenticated=authenticated,
                    display_name="Jan Beulich", unverified="this message is not authenticated")
    return Message("mail", "xen-devel@lists.example.org", sender, "Re: TODO", msg_id=msg_id)


async def test_actions_apply_together_and_once(chat):
    d = chat.dispatcher
    actions = [Propose("hypervisor", "nice", "fix S3 regression (patch posted)"),
               Claim(proposal=0, said="mine"), Command("!status 1 v2 posted"),
               Command("!blocker 3"), Command("!frob 1")]
    replies = await d.run_steps(mail_msg(), steps_for(actions, d, link="<m1@x>"))
    assert [r.outcome for r in replies] == ["changed", "info", "changed", "refused", "refused"]
    new = await chat.item(4)
    assert (new.title, new.progress, new.owners, new.links) == (
        "fix S3 regression", "patch posted", ["Jan Beulich"], ["<m1@x>"])
    assert replies[0].plain == ("Added #4 (hypervisor, nice to have) and claimed it for Jan "
                                "Beulich: fix S3 regression")
    assert (await chat.item(1)).progress == "v2 posted"
    assert (await chat.item(3)).severity == "nice"  # refused: not authenticated
    assert "this message is not authenticated" in replies[3].plain
    # The same message again (a restart, a second connection): nothing at all.
    assert await d.run_steps(mail_msg(), steps_for(actions, d, link="<m1@x>")) is None
    assert len(await chat.history(4)) == 2  # created, owners: once


async def test_a_refused_step_is_undone_alone(chat):
    d = chat.dispatcher

    async def writes_then_fails(ctx, done):
        item = await ctx.item(1)
        await ctx.s.update(item, progress="half-written")
        raise RuntimeError("boom")

    steps = [d.command_step("!status 3 kept"), writes_then_fails, d.command_step("!claim 1")]
    replies = await d.run_steps(mail_msg("<m2@x>"), steps)
    assert [r.outcome for r in replies] == ["changed", "error", "changed"]
    assert (await chat.item(1)).progress == ""  # rolled back to its savepoint
    assert (await chat.item(1)).owners == ["Jan Beulich"]
    assert (await chat.item(3)).progress == "kept"


async def test_a_release_manager_with_a_proven_identity_is_obeyed(chat):
    chat.config.admins.append("mail:jan@suse.com")
    d = chat.dispatcher
    replies = await d.run_steps(mail_msg("<m3@x>", authenticated=True),
                                [d.command_step("!blocker 3")])
    assert replies[0].outcome == "changed" and (await chat.item(3)).severity == "blocker"


async def test_a_claim_under_a_quoted_title(chat):
    d = chat.dispatcher
    actions = parse_reply("> * vMCE save/restore changes (Jinsong Liu, patch posted)\n\n"
                          "mine\n\n> * libxl stable API -- we would like\n\nI'll take it\n")
    replies = await d.run_steps(mail_msg("<m4@x>"), steps_for(actions, d, link=None))
    assert replies[0].outcome == "refused"  # already claimed by Jinsong Liu
    assert "already claimed by Jinsong Liu" in replies[0].plain
    assert (await chat.item(1)).owners == ["Jan Beulich"]


def test_acknowledgement_says_what_was_applied_refused_and_not_understood():
    from todobot.commands.messages import text
    actions = [Propose("tools", "nice", "x"), Command("!frob 1"), Command("!show 1")]
    replies = [text("Added #20 (tools, nice to have): x", outcome="changed"),
               text("Unknown command !frob.", outcome="refused"), text("#1 libxl stable API")]
    assert ack_text(actions, replies) == (
        "Applied:\n\n  * Added #20 (tools, nice to have): x\n\n"
        "Not applied:\n\n  * !frob 1: Unknown command !frob.\n\n"
        "!show 1\n#1 libxl stable API\n")
    # Asked for nothing: says so, and why.
    assert ack_text([], []) == ("Nothing I could act on: no commands, claims or new items found "
                                "outside\nquoted text.\n")


async def test_a_mail_applies_at_most_twenty_actions_and_says_so(chat):
    d = chat.dispatcher
    actions = limit([Command(f"!note 1 n{i}") for i in range(60)])
    replies = await d.run_steps(mail_msg("<m5@x>"), steps_for(actions, d, link=None))
    assert len(replies) == 21 and replies[-1].outcome == "refused"
    assert "Only the first 20" in replies[-1].plain
    assert len((await chat.item(1)).notes) == 20
    # The acknowledgement says so first, whatever else it has to say.
    assert ack_text(actions, replies).startswith("Only the first 20 items")
    long = await d.run_steps(mail_msg("<m6@x>"), [d.command_step("!note 1 " + "x" * 3000)])
    assert long[0].plain.startswith("That command is too long (3008 characters")


async def test_adds_per_hour_count_the_sender_across_mails(chat):
    # History names each mail ("mail:jan@suse.com via <id>"); the limit is the sender's.
    d = chat.dispatcher
    limit_ = chat.config.max_adds_per_hour
    for n in range(limit_):
        [r] = await d.run_steps(mail_msg(f"<add{n}@x>"), [d.command_step(f"!add tools nice t{n}")],
                                actor=f"mail:jan@suse.com via <add{n}@x>")
        assert r.outcome == "changed"
    [r] = await d.run_steps(mail_msg("<add-over@x>"), [d.command_step("!add tools nice over")],
                            actor="mail:jan@suse.com via <add-over@x>")
    assert r.outcome == "refused" and f"the limit is {limit_}" in r.plain
