"""Shared fixtures: a chat harness that runs commands as text in, reply out — no network."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

# Property tests: a few hundred examples per run by default; HYPOTHESIS_PROFILE=nightly runs
# 100,000 (the command parser, the mail importer, IRC splitting, Matrix HTML).
_QUIET = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
# CI: the same examples every run (derandomized), so a red build is reproducible; the nightly
# profile searches at random.
settings.register_profile("ci", max_examples=300, deadline=None, derandomize=True,
                          suppress_health_check=_QUIET)
settings.register_profile("nightly", max_examples=100_000, deadline=None, suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

from tests.harness import Chat, ids


@pytest.fixture
async def chat(tmp_path):
    """A fresh database with release 4.2 holding a few items; console:ijc is a release manager.

    #1 tools blocker "libxl stable API" (unclaimed), #2 its sub-item, #3 hypervisor nice
    "vMCE save/restore changes" owned by Jinsong Liu.
    """
    c = await Chat.open(tmp_path / "todo.sqlite3", admins=["console:ijc"], default_release="4.2")
    async with c.repo.session("test") as s:
        rel = await s.create_release("4.2")
        a = await s.add_item(rel, area="tools", severity="blocker", title="libxl stable API")
        await s.add_item(rel, area="tools", severity="blocker", title="Interfaces which may need to be async:",
                         parent=a.id)
        await s.add_item(rel, area="hypervisor", severity="nice", title="vMCE save/restore changes",
                         owners=await ids(s, "Jinsong Liu"), progress="patch posted")
    yield c
    await c.close()


def pytest_collection_modifyitems(config, items):
    """A nightly property run takes as long as it takes: no per-test timeout then."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "nightly":
        for item in items:
            item.add_marker(pytest.mark.timeout(0))
