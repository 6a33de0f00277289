"""Persistence of the release TODO list: SQLite, schema migrations, the repository API and
the mail layouts (`layouts/`)."""

from .db import Database, DatabaseChanged, DatabaseProblem
from .models import MAX_DEPTH, Change, Item, ListItem, Milestone, Release, ReleaseList
from .people import NameTaken, Person, actor_identity
from .repository import NotFound, Repository, Session

__all__ = ["MAX_DEPTH", "Change", "Database", "DatabaseChanged",
           "DatabaseProblem", "Item", "ListItem", "Milestone", "NameTaken",
           "NotFound", "Person", "Release", "ReleaseList", "Repository", "Session",
           "actor_identity"]
