#!/usr/bin/env python3
"""Make tests/data/schemas/vN.sqlite3: one small database per earlier schema, written by the
code of the commit where that schema was the latest.

    .venv/bin/python scripts/make-schema-fixtures.py            # all schemas below
    .venv/bin/python scripts/make-schema-fixtures.py 3 4        # only these

For each schema it checks the commit out into a temporary `git worktree` (removed after),
imports that checkout's code (the layout of the packages changed over time: top-level
`bot`/`commands`/`storage` at first, the `todobot` namespace later) and drives the same
scenario through that code's own dispatcher, as people did in chat:

- a release imported from a small 4.2-layout mail, one item owned by an imported name
  ("Jan Beulich", a placeholder: no identity);
- `console:george` claims an item under the name the old code gave him (no `!iam`);
- `irc:oftc/ijc`, an IRC account, sets `!iam Ian Campbell` and claims another item.

The answers that code gave to `!whoami` and `!person list` are written beside each database
as vN.json, with which item each identity owned: tests/test_schema_upgrades.py upgrades a
copy and checks that today's code answers the same and lets each owner act on their item.
Re-run it only to add a schema; the fixtures are made once by code that no longer changes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "schemas"

# Schema version -> the first-parent commit whose code made it the latest. Schema 1 never
# shipped alone: the commit that added it also added 2; its database is written with that
# code held at schema 1 (schema 2 only adds transport bookkeeping tables).
COMMITS = {
    1: "632dc21",
    2: "632dc21",
    3: "078949e",
    4: "93d5008",
    5: "8b367cb",
    6: "2886e94",
    7: "2e0343e",
    8: "ba8df06",
    9: "ed8a9bd",
}

MAIL = """\
Plan for a 4.2 release:

The updated TODO list follows.

hypervisor, blockers:

    * Fix the frobnicator (Jan Beulich)

    * Unclaimed hypervisor bug

tools, blockers:

    * Unclaimed tools bug

    * Another tools bug
"""

# Run inside the old checkout, by the same interpreter: argv = checkout, database, schema.
DRIVER = r'''
import asyncio, faulthandler, importlib, json, sys, tempfile
# a step that waits forever shows where instead of hanging the script
faulthandler.dump_traceback_later(60, exit=True)
from pathlib import Path

root, db_path, schema = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
mail = sys.stdin.read()
# The venv's editable install of today's todobot must not answer for the old checkout.
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
for name in list(sys.modules):
    if name.split(".")[0] in ("todobot", "bot", "commands", "storage"):
        del sys.modules[name]
if (root / "src").is_dir():
    pkg = Path(tempfile.mkdtemp()) / "todobot"
    pkg.mkdir()
    (pkg / "__init__.py").write_text((root / "src" / "__init__.py").read_text())
    for sub in ("bot", "commands", "storage"):
        (pkg / sub).symlink_to(root / sub)
    sys.path.insert(0, str(pkg.parent))
    prefix = "todobot."
else:
    sys.path.insert(0, str(root))
    prefix = ""


def mod(name):
    module = importlib.import_module(prefix + name)
    assert str(root) in str(Path(module.__file__).resolve()), module.__file__
    return module


def first(*names):
    for name in names:
        try:
            return mod(name)
        except (ImportError, AssertionError):
            pass
    raise ImportError(names)


storage = mod("storage")
dbmod = mod("storage.db")
if schema < len(mod("storage.migrations").STEPS):
    orig = dbmod.migrate
    dbmod.migrate = lambda conn: orig(conn, target=schema)
messages = first("commands.messages", "bot.messages")
mail_mod = first("storage.layouts.xen42", "storage.mail")
Config = mod("bot.config").Config
Dispatcher = mod("bot.dispatcher").Dispatcher

ADMIN = "console:rm"


async def main():
    db = await storage.Database.open(db_path)
    repo = storage.Repository(db)
    async with repo.session("cli:import") as s:
        await s.import_list("4.2", mail_mod.parse_mail(mail, "4.2"))
    disp = Dispatcher(repo, Config(database=db_path, admins=[ADMIN], default_release="4.2"))
    if hasattr(disp, "bind_default"):
        from dataclasses import fields, replace
        settings = mod("bot.rooms").room_settings(disp.config)
        if "cooldown" in {f.name for f in fields(settings)}:  # the console has no command rate
            settings = replace(settings, cooldown=False)
        disp.bind_default("console", settings)

    async def say(identity, nick, text):
        transport = identity.split(":", 1)[0]
        sender = messages.Sender(identity=identity, nick=nick, authenticated=True)
        msg = messages.Message(transport=transport, room="console", sender=sender, text=text)
        reply = await disp.handle(msg)
        return None if reply is None else reply.plain

    answers = {"schema": schema, "said": []}

    async def log(identity, nick, text):
        answer = await say(identity, nick, text)
        answers["said"].append([identity, text, answer])
        return answer

    await log("console:george", "george", "!claim 2")
    await log("irc:oftc/ijc", "ijc", "!iam Ian Campbell")
    await log("irc:oftc/ijc", "ijc", "!claim 4")
    answers["owned"] = {"console:george": 2, "irc:oftc/ijc": 4}
    answers["whoami"] = {i: await say(i, i.rsplit("/", 1)[-1].split(":")[-1], "!whoami")
                         for i in ("console:george", "irc:oftc/ijc")}
    answers["person_list"] = await say(ADMIN, "rm", "!person list")
    await db.close()
    print(json.dumps(answers, indent=1, ensure_ascii=False))


asyncio.run(main())
'''


def make(schema: int, commit: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q",
                        str(tree), commit], check=True)
        try:
            db = Path(tmp) / "db.sqlite3"
            out = subprocess.run([sys.executable, "-c", DRIVER, str(tree), str(db), str(schema)],
                                 input=MAIL, capture_output=True, text=True, cwd=tmp)
            if out.returncode != 0:
                raise SystemExit(f"schema {schema} ({commit}): {out.stderr.strip()}")
            answers = json.loads(out.stdout)
            answers["commit"] = commit
            # One file, no WAL beside it: fold the log in and shrink before committing.
            subprocess.run([sys.executable, "-c",
                            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
                            "c.execute('PRAGMA wal_checkpoint(TRUNCATE)');"
                            "c.execute('PRAGMA journal_mode=DELETE'); c.execute('PRAGMA page_size=512');"
                            "c.execute('VACUUM')",
                            str(db)], check=True)
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / f"v{schema}.sqlite3").write_bytes(db.read_bytes())
            (OUT / f"v{schema}.json").write_text(
                json.dumps(answers, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
            print(f"v{schema}: {commit}, {db.stat().st_size} bytes")
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tree)], check=True)


def main(argv: list[str]) -> None:
    wanted = [int(a) for a in argv] or sorted(COMMITS)
    for schema in wanted:
        make(schema, COMMITS[schema])


if __name__ == "__main__":
    main(sys.argv[1:])
