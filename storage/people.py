"""People, their identities and their names (the repository's `Session` includes these).

A person is who owns items. Rights follow identities — `console:NICK`, `irc:NETWORK/ACCOUNT`,
`matrix:@user:server`, `mail:ADDRESS` — which all point to one person; a person has exactly
one display name, and no two persons have names that are the same under `names.name_key`
(case, spacing and look-alike letters ignored). A person without an identity is a
placeholder: an owner named in an imported mail, whom a release manager binds to an identity
with `!person link`.

A name someone chose (`!iam`, a display name) is only a label: an import never gives that
person items. A name is *confirmed* when a release manager bound it (`!person link`, `!person
rename`); an imported owner's name goes to its confirmed holder, else to a placeholder — and
a person who merely chose that name yields it to the placeholder and waits in `!person
pending`, as if they had said `!iam` after the import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .names import clean, name_key


def actor_identity(actor: str) -> str:
    """The identity behind a history actor: a mail's changes are recorded as
    "mail:a@b via <id@host>" (the message that carried them), made by `mail:a@b`."""
    return actor.split(" via ", 1)[0]


class NameTaken(ValueError):
    """The name belongs to another person; `holder` is that person."""

    def __init__(self, name: str, holder: "Person") -> None:
        super().__init__(name)
        self.name = name
        self.holder = holder


@dataclass
class Person:
    id: int
    name: str
    identities: list[str] = field(default_factory=list)
    confirmed: bool = False  # a release manager bound this name to this person

    @property
    def placeholder(self) -> bool:
        return not self.identities


class PeopleSession:
    """Session methods for people; they run inside the session's transaction."""

    now: float

    async def _one(self, sql: str, *args: Any) -> Any: ...  # provided by Session
    async def _all(self, sql: str, *args: Any) -> list[Any]: ...  # provided by Session
    async def execute(self, sql: str, args: Any = ()) -> Any: ...  # provided by Session
    async def _history(self, release_id: int | None, item_id: int | None, field: str,
                       before: Any, after: Any) -> None: ...  # provided by Session

    async def _person(self, row: Any) -> Person | None:
        if row is None:
            return None
        ids = await self._all("SELECT identity FROM identities WHERE person_id = ? ORDER BY identity",
                              row["id"])
        return Person(row["id"], row["name"], [r["identity"] for r in ids],
                      row["confirmed_key"] == row["name_key"])

    async def person(self, person_id: int) -> Person | None:
        return await self._person(await self._one("SELECT * FROM persons WHERE id = ?", person_id))

    async def person_of(self, identity: str) -> Person | None:
        return await self._person(await self._one(
            "SELECT persons.* FROM persons JOIN identities ON identities.person_id = persons.id"
            " WHERE identities.identity = ?", identity))

    async def person_named(self, name: str) -> Person | None:
        return await self._person(await self._one("SELECT * FROM persons WHERE name_key = ?",
                                                  name_key(name)))

    async def persons(self) -> list[Person]:
        return [p for r in await self._all("SELECT * FROM persons ORDER BY name_key")
                if (p := await self._person(r)) is not None]

    async def _new_person(self, name: str) -> Person:
        cur = await self.execute(
            "INSERT INTO persons (name, name_key, created_at) VALUES (?, ?, ?)",
            (name, name_key(name), self.now))
        await self._history(None, None, "person", None, name)
        return Person(cur.lastrowid or 0, name)

    async def free_name(self, default_name: str, identity: str) -> str:
        """`default_name`, made unique with the identity in brackets when another person has
        that name already: the name `identity` gets as a new person."""
        base = clean(default_name) or identity
        name, n = base, 2
        tail = identity.split(':', 1)[-1]
        if await self.person_named(name) is not None:
            name = f"{base} ({tail})"
        while await self.person_named(name) is not None:
            name, n = f"{base} ({tail} {n})", n + 1
        return name

    async def ensure_person(self, identity: str, default_name: str) -> Person:
        """The identity's person, created on first need with `free_name(default_name)`."""
        found = await self.person_of(identity)
        if found is not None:
            return found
        name = await self.free_name(default_name, identity)
        person = await self._new_person(name)
        await self.execute("INSERT INTO identities (identity, person_id) VALUES (?, ?)",
                                (identity, person.id))
        await self._history(None, None, f"identity {identity}", None, name)
        person.identities.append(identity)
        return person

    async def owner_named(self, name: str) -> Person:
        """The person a name in a list or a command means: the one with that name, else a new
        placeholder."""
        if not clean(name):
            raise ValueError("an owner's name shows nothing")
        return await self.person_named(name) or await self._new_person(clean(name))

    async def import_owner(self, name: str) -> tuple[Person, bool]:
        """The person an owner named in an imported list is: the name's placeholder or its
        confirmed holder, else a new placeholder. A person who only chose the name yields
        it (renamed as `free_name` would, their request waiting in `!person pending`); the
        flag says so."""
        holder = await self.person_named(name)
        if holder is None or holder.placeholder or holder.confirmed:
            return await self.owner_named(name), False
        identity = holder.identities[0]
        await self.rename_person(holder, await self.free_name(holder.name, identity))
        placeholder = await self._new_person(clean(name))
        await self.request_name(identity, placeholder)
        return placeholder, True
    async def rename_person(self, person: Person, name: str, *, confirm: bool = False) -> None:
        """`confirm`: a release manager names the person (else a name they chose is only
        confirmed if a release manager confirmed it for them before)."""
        holder = await self.person_named(name)
        if holder is not None and holder.id != person.id:
            raise NameTaken(name, holder)
        key = name_key(name)
        await self.execute("UPDATE persons SET name = ?, name_key = ? WHERE id = ?",
                           (name, key, person.id))
        if confirm:
            await self._confirm(person, key)
        else:
            row = await self._one("SELECT confirmed_key FROM persons WHERE id = ?", person.id)
            person.confirmed = row["confirmed_key"] == key
        await self._history(None, None, f"person #{person.id}", person.name, name)
        person.name = name

    async def _confirm(self, person: Person, key: str | None = None) -> None:
        key = key or name_key(person.name)
        await self.execute("UPDATE persons SET confirmed_key = ? WHERE id = ?", (key, person.id))
        person.confirmed = True

    async def merge_persons(self, src: Person, dst: Person) -> int:
        """`src` becomes `dst`: its items, identities and requests move; returns items changed."""
        rows = await self._all(
            "SELECT items.id, items.owners FROM items, json_each(items.owners) AS o"
            " WHERE o.value = ?", src.id)
        import json
        for row in rows:
            owners = [dst.id if o == src.id else o for o in json.loads(row["owners"])]
            await self.execute("UPDATE items SET owners = ? WHERE id = ?",
                                    (json.dumps(list(dict.fromkeys(owners))), row["id"]))
        await self.execute("UPDATE identities SET person_id = ? WHERE person_id = ?",
                                (dst.id, src.id))
        await self.execute("DELETE FROM name_requests WHERE person_id = ?", (src.id,))
        await self.execute("DELETE FROM persons WHERE id = ?", (src.id,))
        await self._history(None, None, f"person #{dst.id}", f"merged {src.name}", dst.name)
        dst.identities = sorted(set(dst.identities) | set(src.identities))
        return len(rows)

    async def link_identity(self, person: Person, identity: str) -> int:
        """A release manager binds `identity` to `person`, confirming the person's name; the
        identity's former person, if any, is merged into it. Returns how many items changed
        owner."""
        await self._confirm(person)
        await self.execute("DELETE FROM name_requests WHERE identity = ?", (identity,))
        current = await self.person_of(identity)
        if current is not None and current.id == person.id:
            return 0
        if current is not None:
            return await self.merge_persons(current, person)
        await self.execute("INSERT INTO identities (identity, person_id) VALUES (?, ?)",
                                (identity, person.id))
        await self._history(None, None, f"identity {identity}", None, person.name)
        person.identities.append(identity)
        return 0

    async def unlink_identity(self, person: Person, identity: str) -> None:
        """Detach `identity` from `person` (whose items stay; with no identity left it is a
        placeholder). The identity starts afresh as a new person when it next speaks."""
        await self.execute("DELETE FROM identities WHERE identity = ? AND person_id = ?",
                           (identity, person.id))
        await self.execute("DELETE FROM name_requests WHERE identity = ?", (identity,))
        await self._history(None, None, f"identity {identity}", person.name, None)
        person.identities.remove(identity)

    async def count_all_owned(self, person_id: int) -> int:
        """Items of any state the person owns."""
        row = await self._one("SELECT COUNT(*) FROM items, json_each(items.owners) AS o"
                              " WHERE o.value = ?", person_id)
        return int(row[0])

    async def identities_of(self, person_ids: list[int]) -> dict[int, list[str]]:
        """Each person's identities (for mentions), in one query."""
        out: dict[int, list[str]] = {}
        ids = sorted(set(person_ids))
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for r in await self._all(
                    f"SELECT person_id, identity FROM identities WHERE person_id IN"
                    f" ({','.join('?' * len(chunk))}) ORDER BY identity", *chunk):
                out.setdefault(r["person_id"], []).append(r["identity"])
        return out

    async def count_created_by(self, identities: list[str], since: float) -> int:
        """Items created since `since` by any of `identities`, also as recorded with the
        message that carried them ("mail:a@b via <id@host>")."""
        total = 0
        for identity in identities:
            row = await self._one(
                "SELECT COUNT(*) FROM history WHERE field = 'created' AND at > ?"
                " AND (actor = ? OR substr(actor, 1, ?) = ?)",
                since, identity, len(identity) + 5, identity + " via ")
            total += int(row[0])
        return total

    async def count_owned(self, person_id: int) -> int:
        row = await self._one("SELECT COUNT(*) FROM items, json_each(items.owners) AS o"
                              " WHERE items.state = 'open' AND o.value = ?", person_id)
        return int(row[0])

    async def request_name(self, identity: str, person: Person) -> None:
        await self.execute(
            "INSERT INTO name_requests (identity, person_id, at) VALUES (?, ?, ?)"
            " ON CONFLICT(identity) DO UPDATE SET person_id = excluded.person_id, at = excluded.at",
            (identity, person.id, self.now))

    async def name_requests(self) -> list[tuple[str, Person, float]]:
        out = []
        for r in await self._all("SELECT * FROM name_requests ORDER BY at"):
            person = await self.person(r["person_id"])
            if person is not None:
                out.append((r["identity"], person, r["at"]))
        return out
