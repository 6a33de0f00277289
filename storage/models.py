"""The release TODO list as plain data: what the database stores and the formats carry."""

from __future__ import annotations

from dataclasses import dataclass, field

SEVERITIES = ("blocker", "nice")
MAX_DEPTH = 8  # how deep sub-items may nest (the config's `max_depth` may change it)
STATES = ("open", "done", "duplicate", "deferred", "dropped")


@dataclass
class Milestone:
    when: str  # a date as written ("30 July", "2012-07-30") or a word ("Weekly")
    name: str
    done: bool = False
    current: bool = False


@dataclass(slots=True)
class Item:
    """One stored item. `id` is global, stable and never reused."""

    id: int
    release: str
    area: str
    severity: str
    title: str
    tags: list[str] = field(default_factory=list)
    details: str = ""
    owners: list[str] = field(default_factory=list)  # names, in order
    owner_ids: list[int] = field(default_factory=list)  # the same owners as person ids
    progress: str = ""
    state: str = "open"
    parent: int | None = None
    duplicate_of: int | None = None
    links: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    section: str = ""  # see ListItem.section
    created_by: str = ""
    created_at: float = 0.0
    updated_by: str = ""
    updated_at: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.state == "open"


@dataclass
class ListItem:
    """One bullet of the list as the mail and JSON formats see it: nested, no bookkeeping.

    `id` is set when the source carried one (an exported mail with ids, the JSON format).
    """

    area: str
    severity: str
    title: str
    tags: list[str] = field(default_factory=list)
    details: str = ""
    owners: list[str] = field(default_factory=list)
    progress: str = ""
    state: str = "open"
    links: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    id: int | None = None
    duplicate_of: int | None = None
    children: list["ListItem"] = field(default_factory=list)
    # The heading the item was listed under when the layout names sections itself
    # ("Completed", "Bugs" in the development-update layout); "" in the 4.2 layout, whose
    # sections are just (area, severity).
    section: str = ""


@dataclass
class ReleaseList:
    """A whole release list: the unit of import and export."""

    release: str | None
    milestones: list[Milestone] = field(default_factory=list)
    items: list[ListItem] = field(default_factory=list)  # top-level items, in list order
    intro: str = ""  # prose before the timeline and sections ("Plan for a 4.2 release: ...")
    # Where the list came from and what reading it noticed: not part of the list itself.
    layout: str = field(default="", compare=False)  # a storage.layouts name; "" = unknown
    warnings: list[str] = field(default_factory=list, compare=False)  # one line each
    subject: str = field(default="", compare=False)  # the mail's Subject: line; "" = none


@dataclass
class Release:
    id: int
    name: str
    intro: str = ""
    created_at: float = 0.0
    layout: str = "xen-4.2"  # the mail layout it is exported and digested in
    subject: str = ""  # the Subject: of the mail it was imported from; "" = none


@dataclass
class Change:
    """One row of the history table."""

    id: int
    at: float
    actor: str
    item_id: int | None
    field: str
    before: str | None
    after: str | None
