"""Persistence of the release TODO list: SQLite, schema migrations, the repository API and
the mail layouts (`layouts/`)."""

from .db import Database
from .models import Change, Item, ListItem, Milestone, Release, ReleaseList
from .repository import NotFound, Repository, Session

__all__ = ["Change", "Database", "Item", "ListItem", "Milestone", "NotFound", "Release",
           "ReleaseList", "Repository", "Session"]
