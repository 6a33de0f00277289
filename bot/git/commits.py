"""Commits as the watcher needs them: who, which, their trailers (read by git's own trailer
parser) and the commit they revert, if any."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...storage.names import clean
from .run import GitError, git

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# The line `git revert` writes ("This reverts commit SHA." — for a merge it goes on with
# ", reversing"); one whole line of the body, never a match anywhere in the text.
_REVERTS = re.compile(r"This reverts commit ([0-9a-f]{40}|[0-9a-f]{64})(?:\.|, reversing)")
_FIELDS = 5


@dataclass(frozen=True)
class Commit:
    sha: str
    short: str
    author: str
    trailers: tuple[tuple[str, str], ...]  # (key as written, value), in order, unfolded
    reverts: str | None  # the SHA this commit reverts

    def values(self, *keys: str) -> list[str]:
        """Values of the trailers with these keys (case-insensitive, as git compares them)."""
        wanted = {k.casefold() for k in keys}
        return [v for k, v in self.trailers if k.casefold() in wanted]


async def resolve(directory: str, rev: str, *, timeout: float) -> str | None:
    """The commit `rev` names, or None when it names none."""
    status, out = await git(directory, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}",
                            timeout=timeout, ok=(0, 1))
    return out.strip() if status == 0 else None


async def is_ancestor(directory: str, old: str, new: str, *, timeout: float) -> bool:
    """Whether `old` is reachable from `new` (False too when `old` is gone from the repository:
    the branch was rewound and the old commits collected)."""
    status, _ = await git(directory, "merge-base", "--is-ancestor", old, new, timeout=timeout,
                          ok=(0, 1, 128))
    return status == 0


async def between(directory: str, old: str | None, new: str, *, timeout: float) -> list[Commit]:
    """Commits reachable from `new` and not from `old`, oldest first (every commit a merge
    brought in counts: it became reachable from the branch)."""
    rng = f"{old}..{new}" if old else new
    # %(trailers:only,unfold) is git's trailer parser: the trailer block of the message, each
    # trailer on one line as "Key: value" (continuation lines joined).
    fmt = "%H%x00%h%x00%aN%x00%(trailers:only,unfold)%x00%B%x00"
    _, out = await git(directory, "log", "--reverse", f"--format={fmt}", rng, "--", timeout=timeout)
    fields = out.split("\x00")
    # Each record ends with a NUL and a newline: 5 fields a commit, then the last newline.
    records, rest = divmod(len(fields) - 1, _FIELDS)
    if rest or (fields and fields[-1].strip()):
        raise GitError("git log gave output in an unexpected shape; nothing applied")
    commits = []
    for i in range(records):
        sha, short, author, trailers, body = fields[i * _FIELDS:(i + 1) * _FIELDS]
        sha = sha.strip()
        if not _SHA.fullmatch(sha):
            raise GitError("git log gave output in an unexpected shape; nothing applied")
        commits.append(Commit(sha, short.strip(), clean(author), _trailers(trailers),
                              _reverted(body)))
    return commits


def _trailers(block: str) -> tuple[tuple[str, str], ...]:
    out = []
    for line in block.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() and value.strip():
            out.append((key.strip(), value.strip()))
    return tuple(out)


def _reverted(body: str) -> str | None:
    for line in body.splitlines():
        if m := _REVERTS.match(line.strip()):
            return m.group(1)
    return None
