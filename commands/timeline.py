"""The release timeline: !release, !releases, !milestone (the digest lives in digest.py)."""

from __future__ import annotations

from .messages import Reply, bold
from ..storage import Milestone, Release, Session

from .context import Context
from ..storage.dates import is_free_form, when_problem
from ..storage.names import release_name_problem
from ..storage.timeline import marks, release_timeline
from .args import Text, Word
from .registry import Refused, UsageError, command

def timeline_lines(milestones: list[Milestone]) -> list[str]:
    """The chat and page form of the timeline (marks from storage/timeline.py): the mail's
    `DATE -- NAME << MARK` lines, the marks aligned, one mark a line."""
    width = max((len(m.name) for m in milestones), default=0)
    out = []
    for m in milestones:
        mark = "".join(f"<< {k}" for k in marks(m)[-1:])
        line = f"{m.when:<15} -- {m.name}"
        out.append(f"{line:<{19 + width}}  {mark}".rstrip() if mark else line)
    return out


def summary_text(n: dict[str, int]) -> str:
    """`Session.summary`'s counts as the one-line summary the digest and `!release` show."""
    return (f"{n['blockers']} open blocker{'s' * (n['blockers'] != 1)} ({n['unclaimed']} "
            f"unclaimed), {n['nice']} nice to have")


async def summary_line(s: Session, release: Release) -> str:
    return summary_text(await s.summary(release))


@command("release", Word("new", optional=True, choices=("new",)), Word("NAME", optional=True),
         usage="[NAME] | new NAME", admin_verbs=("new",), example="!release", writes=False,
         help="the release timeline, with << WE ARE HERE; `new NAME` (release managers) starts "
         "a release, which becomes this room's when it has none")
async def release(ctx: Context, new: str | None, name: str | None) -> Reply:
    if new:
        return await _new_release(ctx, name)
    rel = await ctx.s.require_release(name) if name else await ctx.release()
    milestones = await release_timeline(ctx.s, rel, ctx.settings.tz)  # as the digest has it
    reply = Reply().add(bold(f"Release {rel.name}"), ": ", await summary_line(ctx.s, rel))
    if not milestones:
        reply.add(f"No timeline yet: add milestones with {ctx.prefix}milestone DATE NAME.")
    for line in timeline_lines(milestones):
        reply.add(line)
    return reply


async def _new_release(ctx: Context, name: str | None) -> Reply:
    if name is None:
        raise UsageError("new NAME, like: new 2.0")
    problem = release_name_problem(name)
    if problem:
        raise Refused(f"{problem}.")
    taken = await ctx.s.release_like(name)
    if taken is not None:
        raise Refused(f"Release {taken.name} exists already: {ctx.prefix}release {taken.name} "
                      "shows it.")
    rel = await ctx.s.create_release(name)
    msg = ctx.message
    configured = ctx.settings.release
    if configured is not None:  # the config names this room's release, and the config wins
        where = ("this room's release, as the config says" if configured == rel.name else
                 f"this room stays on {configured}, as the config says")
    elif (chosen := await ctx.s.room_release(msg.transport, msg.room)) is None:
        # The room had chosen none (it followed the newest release): this one is its choice.
        await ctx.s.bind_room(msg.transport, msg.room, rel)
        where = f"this room's release now: {ctx.prefix}add, {ctx.prefix}milestone work on it"
    else:
        where = f"this room stays on {chosen.name}"
    return Reply(outcome="changed").add(f"Started release {rel.name}; {where}.")


@command("releases", help="the releases todobot knows", writes=False)
async def releases(ctx: Context) -> Reply:
    rels = await ctx.s.releases()
    if not rels:
        return Reply().add(f"No releases yet: a release manager starts one with "
                           f"{ctx.prefix}release new NAME, or imports a list with "
                           "`todobot import FILE --release NAME`.")
    reply = Reply()
    for rel in rels:
        here = " (this room)" if rel.name == ctx.release_name else ""
        reply.bullet(bold(rel.name), f"{here}: {await summary_line(ctx.s, rel)}")
    return reply


@command("milestone", Text("DATE NAME"), usage="DATE NAME | here NAME | done NAME", who="admin",
         example="!milestone 30 July First release candidate",
         help="add a milestone or move one to a new date; `here NAME` marks where we are, "
         "`done NAME` marks one done")
async def milestone(ctx: Context, args: str) -> Reply:
    rel = await ctx.release()
    words = args.split()
    if len(words) < 2:
        raise UsageError()
    milestones = await ctx.s.milestones(rel)
    verb = words[0].casefold()
    if verb in ("here", "done"):
        name = " ".join(words[1:])
        idx = _find(milestones, name)
        if idx is None:
            raise Refused(f"No milestone named {name!r}; the timeline has: "
                          + (", ".join(m.name for m in milestones) or "nothing yet") + ".")
        m = milestones[idx]
        if verb == "here":
            for i, other in enumerate(milestones):
                other.current = i == idx
            m.done = False
            label = "We are now at"
        else:
            m.done, m.current = True, False
            label = "Done"
        await ctx.s.set_milestones(rel, milestones)
        return Reply(outcome="changed").add(f"{label}: {m.when} -- {m.name}")
    when, name = _split_when(words)
    problem = when_problem(when)
    if problem:
        raise UsageError(problem)
    if "<<" in name or "--" in name:
        raise UsageError("a milestone name has no << or -- (the timeline uses them)")
    idx = _find(milestones, name)
    if idx is None:
        milestones.append(Milestone(when, name))
        verb = "Added"
    else:
        before = milestones[idx].when
        milestones[idx].when = when
        verb = f"Moved (was {before})"
    await ctx.s.set_milestones(rel, milestones)
    return Reply(outcome="changed").add(f"{verb}: {when} -- {name}")


_MONTHS = {m.casefold() for m in ("January February March April May June July August September "
                                  "October November December Jan Feb Mar Apr Jun Jul Aug Sep Sept "
                                  "Oct Nov Dec").split()}


def _split_when(words: list[str]) -> tuple[str, str]:
    """`30 July First release candidate` → ("30 July", "First release candidate");
    `Mid/Late April RC1` → ("Mid/Late April", "RC1"); `2012-07-30 RC1` and
    `Weekly RCN+1 until release` take one word as the date."""
    if len(words) >= 3 and is_free_form(" ".join(words[:2])) and not is_free_form(words[0]):
        return " ".join(words[:2]), " ".join(words[2:])
    if len(words) >= 3 and words[0].isdigit() and words[1].casefold().rstrip(",") in _MONTHS:
        return " ".join(words[:2]), " ".join(words[2:])
    if len(words) >= 3 and words[0].casefold().rstrip(",") in _MONTHS and words[1].isdigit():
        return " ".join(words[:2]), " ".join(words[2:])
    return words[0], " ".join(words[1:])


def _find(milestones: list[Milestone], name: str) -> int | None:
    for i, m in enumerate(milestones):
        if m.name.casefold() == name.casefold():
            return i
    return None
