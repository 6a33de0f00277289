"""The one way todobot runs git: `git -C DIR ...` as a subprocess, no shell, no prompts, no
hooks, a timeout.

The git command rather than a library: trailers are read by git's own parser
(`%(trailers)`), which no Python library reimplements, and a server that has a clone has git.
"""

from __future__ import annotations

import asyncio
import os
import signal
from contextlib import suppress


class GitError(Exception):
    """git could not do it (no repository, no such branch, timed out, not installed): one line."""


# Config given on every call: no hook or fsmonitor runs on our behalf, nothing is paged,
# signatures are not checked (and their output does not mix into ours).
_SAFE = ("-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "-c", "core.pager=cat",
         "-c", "log.showSignature=false", "-c", "color.ui=never")


async def git(directory: str, *args: str, timeout: float = 120.0,
              ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
    """(exit status, stdout) of `git -C directory ARGS`; GitError for any status not in `ok`."""
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ASKPASS": "", "SSH_ASKPASS": "",
           "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
           "LC_ALL": "C"}
    try:
        proc = await asyncio.create_subprocess_exec(
            "git", "-C", directory, *_SAFE, *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
            start_new_session=True)  # its own process group: a timeout ends ssh with it
    except OSError as exc:
        raise GitError(f"cannot run git: {exc.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (asyncio.TimeoutError, asyncio.CancelledError) as exc:
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise GitError(f"git {args[0]} took longer than {timeout:g} s; stopped") from None
    if proc.returncode not in ok:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {lines[-1] if lines else f'exit status {proc.returncode}'}")
    return proc.returncode or 0, out.decode("utf-8", "replace")
