"""People and their names: !iam, !whoami, !whois, and the release manager's !person.

A name belongs to one person. `!iam` sets your own and never touches anyone else's items;
a name that came from an imported mail belongs to a placeholder until a release manager
binds it to an identity (`!person link "Jan Beulich" irc:oftc/jbeulich`). A link that would
merge a person who has items or other identities asks to be repeated with `confirm`; `!person
unlink` takes an identity back.
"""

from __future__ import annotations

import shlex

from ..storage import NameTaken, NotFound, Person
from ..storage.names import clean
from .args import Text, Word
from .context import Context
from .messages import Reply, bold, text
from .naming import IDENTITY as _IDENTITY
from .naming import check_name
from .registry import Refused, UsageError, command

def _identity_label(person: Person) -> str:
    return ", ".join(person.identities) if person.identities else "nobody yet (from an imported list)"


@command("iam", Text("NAME"), help="set the name shown when you own an item",
         example="!iam George Dunlap")
async def iam(ctx: Context, name: str) -> Reply:
    check_name(name)
    if not ctx.authenticated:
        raise Refused("Log in to your account first: a name is bound to an account, not a nick.")
    holder = await ctx.s.person_named(name)
    mine = ctx.person
    if holder is not None and (mine is None or holder.id != mine.id):
        if holder.placeholder:
            await ctx.s.request_name(ctx.identity, holder)
            return text(f"{holder.name} is a name from the imported list; a release manager must "
                        f"confirm that it is you ({ctx.prefix}person link \"{holder.name}\" "
                        f"{ctx.identity}). Asked.", outcome="refused")
        raise Refused(f"{holder.name} is taken by {holder.identities[0]}.")
    if mine is None:
        person = await ctx.s.ensure_person(ctx.identity, name)
        return text(f"You are now {person.name} (was {ctx.default_name}).", outcome="changed")
    old = mine.name
    if old == name:
        return text(f"You are already {name}.")
    await ctx.s.rename_person(mine, name)
    return text(f"You are now {name} (was {old}).", outcome="changed")


@command("whoami", help="show your identity, name and rights", writes=False)
async def whoami(ctx: Context) -> Reply:
    parts = [f"You are {ctx.identity}"]
    if not ctx.authenticated:
        parts.append(" (not logged in to an account)")
    # The name they would get as a new person: a default name someone has is made unique.
    shown = ctx.me if ctx.person is not None else await ctx.s.free_name(ctx.default_name,
                                                                           ctx.identity)
    parts.append(f", shown as {shown}")
    if ctx.person is None:
        parts.append(f" (set a name with {ctx.prefix}iam NAME)")
    if ctx.is_admin:
        parts.append("; you are a release manager")
    return text("".join(parts) + ".")


@command("whois", Text("NAME"), help="who a name (or an identity) belongs to", writes=False,
         example="!whois Jan Beulich")
async def whois(ctx: Context, name: str) -> Reply:
    person = (await ctx.s.person_of(name) if _IDENTITY.fullmatch(name)
              else await ctx.s.person_named(name))
    if person is None:
        raise NotFound(f"Nobody is called {name}.")
    if person.placeholder:
        return text(f"{person.name} is a name from an imported list, not yet bound to anyone.")
    return text(f"{person.name} is {_identity_label(person)}.")


async def _person(ctx: Context, name: str) -> Person:
    found = await ctx.s.person_named(name)
    if found is None:
        raise NotFound(f"Nobody is called {name}.")
    return found


def _two(rest: str, what: str) -> tuple[str, str]:
    """`"A B" C D` or `A B -> C D`: two names."""
    if "->" in rest:
        a, b = (clean(x) for x in rest.split("->", 1))
    else:
        try:
            parts = shlex.split(rest)
        except ValueError:
            raise UsageError("unbalanced quotes") from None
        if len(parts) != 2:
            raise UsageError(f'put names in quotes: "{what}" "NEW NAME", or use ->')
        a, b = clean(parts[0]), clean(parts[1])
    if not a or not b:
        raise UsageError()
    return a, b


def _identity_arg(rest: str, verb: str) -> tuple[str, str, bool]:
    """`NAME IDENTITY [confirm]`: the name, the identity and whether `confirm` was said."""
    words = rest.split()
    confirmed = verb == "link" and len(words) > 2 and words[-1].casefold() == "confirm"
    if confirmed:
        rest = rest.rstrip()[:-len("confirm")]
    words = rest.rsplit(None, 1)
    if len(words) != 2 or not _IDENTITY.fullmatch(words[1]):
        raise UsageError(f"{verb} NAME IDENTITY, the identity like irc:oftc/jbeulich, "
                         "matrix:@jan:example.org or mail:jan@example.org")
    return clean(words[0].strip().strip('"')), words[1], confirmed


async def _link(ctx: Context, rest: str) -> Reply:
    name, identity, confirmed = _identity_arg(rest, "link")
    p = await ctx.s.person_named(name)
    if p is None:
        check_name(name)
        p = await ctx.s.owner_named(name)
    current = await ctx.s.person_of(identity)
    if current is not None and current.id != p.id and not confirmed:
        # Linking merges the identity's whole person: say what goes with it, and ask again.
        items = await ctx.s.count_all_owned(current.id)
        others = [i for i in current.identities if i != identity]
        if items or others:
            what = [f"{items} item{'s' * (items != 1)}"] if items else []
            what += [f"identit{'ies' if len(others) != 1 else 'y'} {', '.join(others)}"] if others else []
            return text(f"{identity} is {current.name}; linking merges {current.name} "
                        f"({' and '.join(what)}) into {p.name}. To do it, say {ctx.prefix}person "
                        f"link \"{p.name}\" {identity} confirm", outcome="refused")
    moved = await ctx.s.link_identity(p, identity)
    more = f"; {moved} item{'s' * (moved != 1)} of their former name now show {p.name}" if moved else ""
    return text(f"{p.name} is now {identity}{more}.", outcome="changed")


async def _unlink(ctx: Context, rest: str) -> Reply:
    name, identity, _ = _identity_arg(rest, "unlink")
    p = await _person(ctx, name)
    if identity not in p.identities:
        raise Refused(f"{identity} is not {p.name}'s ({p.name} is {_identity_label(p)}).")
    await ctx.s.unlink_identity(p, identity)
    left = (f"{p.name} is still {_identity_label(p)}" if p.identities
            else f"{p.name} is a placeholder now, its items kept")
    return text(f"{identity} is no longer {p.name}; {left}.", outcome="changed")


_VERBS = ("list", "show", "link", "unlink", "rename", "merge", "pending")


@command("person", Word("|".join(_VERBS), choices=_VERBS),
         Text("...", optional=True), who="admin",
         usage='list | show NAME | link NAME IDENTITY [confirm] | unlink NAME IDENTITY | '
         'rename NAME -> NEW | merge NAME -> INTO | pending',
         help="people and their identities: bind a name from an imported list to someone's "
         "identity (link; confirm to merge a person who has items), take an identity back "
         "(unlink), rename, merge two people, list the waiting !iam requests",
         example='!person link "Jan Beulich" irc:oftc/jbeulich')
async def person(ctx: Context, verb: str, rest: str | None) -> Reply:
    rest = rest or ""
    if verb == "list":
        people = await ctx.s.persons()
        reply = Reply(long=len(people) > 8).add(bold("People"), f": {len(people)}")
        for p in people:
            reply.bullet(f"{p.name} — {_identity_label(p)}")
        return reply
    if verb == "pending":
        requests = await ctx.s.name_requests()
        if not requests:
            return text("No name requests are waiting.")
        reply = Reply().add(bold("Waiting for a release manager"), ":")
        for identity, p, _ in requests:
            reply.bullet(f"{identity} says they are {p.name}: {ctx.prefix}person link "
                         f"\"{p.name}\" {identity}")
        return reply
    if verb == "show":
        p = await _person(ctx, clean(rest))
        owned = await ctx.s.count_owned(p.id)
        return text(f"{p.name} — {_identity_label(p)}; owns {owned} open item"
                    f"{'s' * (owned != 1)}.")
    if verb == "link":
        return await _link(ctx, rest)
    if verb == "unlink":
        return await _unlink(ctx, rest)
    a, b = _two(rest, "NAME")
    p = await _person(ctx, a)
    if verb == "rename":
        check_name(b)
        old = p.name
        try:
            await ctx.s.rename_person(p, b, confirm=True)
        except NameTaken as exc:
            raise Refused(f"{exc.holder.name} is taken by {_identity_label(exc.holder)}; "
                          f"{ctx.prefix}person merge them instead.") from None
        return text(f"{old} is now called {b}.", outcome="changed")
    into = await _person(ctx, b)
    if into.id == p.id:
        raise Refused("That is the same person.")
    moved = await ctx.s.merge_persons(p, into)
    return text(f"{p.name} merged into {into.name} ({moved} item{'s' * (moved != 1)} changed).",
                outcome="changed")
