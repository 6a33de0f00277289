"""The `git:` entries of the config: which branch of which repository serves which release."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from ..config_schema import BaseModel, Field, field_validator, model_validator

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# A branch (or, for a local clone, a remote-tracking name like origin/stable-4.2) as git allows
# it, without anything rev-parse would read as an option or a range.
_BRANCH = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
_REV = re.compile(r"[0-9a-fA-F]{7,64}|[A-Za-z0-9_][A-Za-z0-9._/-]*")


class GitRepo(BaseModel):
    """A branch whose commits close items: `Closes: RELEASE#ID`, `Fixes: RELEASE#ID` or a
    `Link:` to one of the item's links (see bot/git/watcher.py)."""

    path: str | None = None  # a local clone, read as it is (someone else keeps it up to date)
    url: str | None = None  # a remote, fetched into the data directory next to the database
    branch: str
    release: str
    poll_seconds: float = Field(300.0, ge=5, le=86400)
    name: str | None = None  # in actors (git:NAME@SHA); default: from path or url
    commit_url: str | None = None  # e.g. https://github.com/o/r/commit/{sha}
    since: str | None = None  # first run: apply commits after this one (default: none, start at the tip)
    timeout: float = Field(120.0, gt=0, le=3600)  # seconds one git command may take

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME.fullmatch(v):
            raise ValueError("letters, digits, '.', '_' and '-' only (it names the actor git:NAME@SHA)")
        return v

    @field_validator("branch")
    @classmethod
    def _branch(cls, v: str) -> str:
        if not _BRANCH.fullmatch(v) or ".." in v or v.endswith((".lock", "/", ".")):
            raise ValueError(f"{v!r} is not a branch name (like staging or stable-4.2)")
        return v

    @field_validator("since")
    @classmethod
    def _since(cls, v: str | None) -> str | None:
        if v is not None and (not _REV.fullmatch(v) or ".." in v):
            raise ValueError(f"{v!r} is not a commit (a SHA, or a tag or branch name)")
        return v

    @field_validator("commit_url")
    @classmethod
    def _commit_url(cls, v: str | None) -> str | None:
        from ...commands.links import safe_url
        if v is not None and ("{sha}" not in v or not safe_url(v.replace("{sha}", "0"))):
            raise ValueError("an http(s) URL with {sha} where the commit goes, like "
                             "https://github.com/OWNER/REPO/commit/{sha}")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "GitRepo":
        if (self.path is None) == (self.url is None):
            raise ValueError("set path (a local clone) or url (a remote to fetch), not both")
        if self.url is not None and self.url.startswith("-"):
            raise ValueError(f"{self.url!r} is not a repository URL")
        return self

    @property
    def label(self) -> str:
        """The entry's name: `name`, else the repository's from its path or URL (xen.git → xen)."""
        if self.name:
            return self.name
        source = (self.path or self.url or "").rstrip("/")
        last = PurePosixPath(source.replace(":", "/")).name.removesuffix(".git")
        return re.sub(r"[^A-Za-z0-9._-]", "_", last).lstrip("._-") or "repo"
