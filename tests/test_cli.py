"""The command line as a user runs it: demo, console (piped), import, export, backup."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

SEED = Path(__file__).resolve().parent.parent / "storage" / "seed" / "xen-4.2.txt"


def todobot(*args: str, stdin: str = "", cwd: Path, env: dict | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "todobot", *args], input=stdin, text=True,
                          capture_output=True, cwd=cwd, timeout=60,
                          env={**os.environ, "TODOBOT_LOG": str(cwd / "todobot.log"), **(env or {})})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "todobot"
    assert exe.exists()


def test_demo_from_a_clean_directory(tmp_path):
    out = todobot("demo", "--as", "ijc", stdin="!blockers\n<george> !claim 1\n", cwd=tmp_path).stdout
    lines = out.splitlines()
    assert lines[0].startswith("todobot demo: the Xen 4.2 TODO list in todobot-demo.sqlite3")
    assert "!help" in lines[1]
    assert "<todobot> Open blockers for 4.2: 6 (6 unclaimed)" in lines
    assert "<todobot> tools, blockers:" in lines
    assert "<todobot> * #1 libxl stable API" in lines
    assert "<todobot> * #5 [CHECK] More formally deprecate xm/xend." in lines
    assert "<todobot> #1 claimed by george (was unclaimed): libxl stable API" in lines
    assert (tmp_path / "todobot-demo.sqlite3").exists()
    # A second run keeps the database: the claim is still there.
    again = todobot("demo", "--as", "ijc", stdin="!show 1\n", cwd=tmp_path).stdout
    assert "<todobot> Owners: george · Progress: none" in again.splitlines()


def test_console_piped_processes_every_line_in_order(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    script = ("".join(f"!add tools nice item {i}\n" for i in range(20))
              + "\n<jan> !claim 21\n<jan> !todo mine\n!nosuch\n")
    proc = todobot("console", "--db", "t.sqlite3", "--as", "ijc", "--release", "4.2", stdin=script,
                   cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:20] == [f"<todobot> Added #{20 + i} (tools, nice to have): item {i}" for i in range(20)]
    assert lines[20] == "<todobot> #21 claimed by jan (was unclaimed): item 1"
    assert lines[21] == "<todobot> Open items owned by jan for 4.2: 1"
    assert lines[-1] == "<todobot> Unknown command !nosuch. Say !help for the list."


def test_console_without_a_release_says_how_to_get_one(tmp_path):
    proc = todobot("console", "--db", "t.sqlite3", "--as", "ijc", "--release", "4.2",
                   stdin="!todo\n", cwd=tmp_path)
    assert proc.stdout.splitlines() == [
        "<todobot> Release 4.2 does not exist yet: import a list with `todobot import FILE "
        "--release 4.2`."]


def test_import_console_export_round_trip(tmp_path):
    proc = todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    assert proc.stdout.strip() == "Imported into 4.2: 19 added, 0 updated, 0 unchanged, 0 dropped"
    script = ("<george> !iam George Dunlap\n"
              "!add tools nice [BUG] vcpu-set doesn't take effect on guest\n"
              "<george> I can take this one\n"
              "!status 20 patch posted\n")
    out = todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin=script, cwd=tmp_path).stdout
    assert out.splitlines() == [
        "<todobot> You are now George Dunlap (was george).",
        "<todobot> Added #20 (tools, nice to have): [BUG] vcpu-set doesn't take effect on guest",
        "<todobot> #20 claimed by George Dunlap (was unclaimed): [BUG] vcpu-set doesn't take effect on guest",
        "<todobot> #20 progress: patch posted (was: none).",
    ]
    mail = todobot("export", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "[BUG] vcpu-set doesn't take effect on guest (George Dunlap, patch posted)" in " ".join(mail.split())
    doc = json.loads(todobot("export", "--release", "4.2", "--format", "json", "--db", "t.sqlite3",
                             cwd=tmp_path).stdout)
    assert set(doc) == {"release", "intro", "milestones", "items"}
    assert doc["milestones"][3] == {"when": "Weekly", "name": "RCN+1 until release", "done": False,
                                    "current": True}
    item = next(i for i in doc["items"] if i["id"] == 20)
    assert item == {"id": 20, "area": "tools", "severity": "nice", "tags": ["BUG"],
                    "title": "vcpu-set doesn't take effect on guest", "details": "", "owners": ["George Dunlap"],
                    "progress": "patch posted", "state": "open", "parent": None, "duplicate_of": None,
                    "links": [], "notes": []}
    md = todobot("export", "--release", "4.2", "--format", "markdown", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert md.startswith("# 4.2 TODO")
    # Re-import the exported mail into a new database: the same list comes back.
    (tmp_path / "export.txt").write_text(mail)
    todobot("import", "export.txt", "--release", "4.2", "--db", "u.sqlite3", cwd=tmp_path)
    doc2 = json.loads(todobot("export", "--release", "4.2", "--format", "json", "--db", "u.sqlite3",
                              cwd=tmp_path).stdout)
    assert doc2 == doc
    # And into the same database: everything matches by id, nothing changes.
    proc = todobot("import", "export.txt", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    assert proc.stdout.strip() == "Imported into 4.2: 0 added, 0 updated, 20 unchanged, 0 dropped"


def test_backup_cli(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    out = todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path).stdout.strip()
    assert re.fullmatch(r"Backed up to b\.sqlite3 \(\d+\.\d KiB, integrity check ok\)", out), out
    out = todobot("export", "--release", "4.2", "--db", "b.sqlite3", cwd=tmp_path).stdout
    assert "libxl stable API" in out
    # An existing file is replaced whole by the newer copy.
    todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin="!add tools nice after the first backup\n",
            cwd=tmp_path)
    todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path)
    assert "after the first backup" in todobot("export", "--release", "4.2", "--db", "b.sqlite3",
                                                cwd=tmp_path).stdout


def test_backup_into_a_directory_keeps_the_newest(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    (tmp_path / "backups").mkdir()
    old = ["t-20200101T000000Z.sqlite3", "t-20200102T000000Z.sqlite3", "t-20200103T000000Z.sqlite3"]
    for name in old + ["notes.txt"]:
        (tmp_path / "backups" / name).write_text("x")
    out = todobot("backup", "backups", "--keep", "2", "--db", "t.sqlite3", cwd=tmp_path).stdout.splitlines()
    made = re.fullmatch(r"Backed up to backups/(t-\d{8}T\d{6}Z\.sqlite3) \(.* KiB, integrity check ok\)", out[0])
    assert made, out
    assert out[1:] == [f"Removed the older backup backups/{n}" for n in old[:2]]
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == sorted([old[2], made.group(1), "notes.txt"])
    proc = todobot("backup", "b.sqlite3", "--keep", "2", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "--keep needs DEST to be a directory" in proc.stderr
    for dest, message in (("nosuch/", "todobot: nosuch: no such directory"),
                          ("./t.sqlite3", "todobot: t.sqlite3 is the database itself")):
        proc = todobot("backup", dest, "--db", "t.sqlite3", cwd=tmp_path, check=False)
        assert proc.returncode == 1 and proc.stderr.startswith(message), proc.stderr
    assert not (tmp_path / "nosuch").exists()


def test_restore_cli(tmp_path):
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    todobot("backup", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path)
    todobot("console", "--db", "t.sqlite3", "--as", "ijc", stdin="!add tools nice added later\n", cwd=tmp_path)
    out = todobot("restore", "b.sqlite3", "--db", "t.sqlite3", cwd=tmp_path).stdout.strip()
    kept = re.fullmatch(r"Restored t\.sqlite3 from b\.sqlite3; the replaced database is kept at (\S+)", out)
    assert kept, out
    assert "added later" not in todobot("export", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "added later" in todobot("export", "--release", "4.2", "--db", kept.group(1), cwd=tmp_path).stdout
    (tmp_path / "junk.sqlite3").write_text("junk")
    proc = todobot("restore", "junk.sqlite3", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("todobot: junk.sqlite3: ") and "Traceback" not in proc.stderr


def test_bad_config_fails_at_start_naming_the_key(tmp_path):
    (tmp_path / "bot.yaml").write_text("admins: []\nprefx: '!'\n")
    proc = todobot("console", "-c", "bot.yaml", cwd=tmp_path, check=False)
    assert proc.returncode == 2
    assert "bot.yaml: prefx: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_export_unknown_release_or_database(tmp_path):
    proc = todobot("export", "--release", "9.9", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "todobot: No database at t.sqlite3"
    assert not (tmp_path / "t.sqlite3").exists()
    todobot("import", str(SEED), "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path)
    proc = todobot("export", "--release", "9.9", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.strip() == "todobot: No release 9.9"


@pytest.mark.parametrize("content", ["", "\x00\x01binary"])
def test_import_garbage_is_refused_cleanly(tmp_path, content):
    (tmp_path / "junk.txt").write_text(content)
    proc = todobot("import", "junk.txt", "--release", "4.2", "--db", "t.sqlite3", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("todobot: ")
    assert "Traceback" not in proc.stderr


def test_version():
    from importlib.metadata import version
    proc = subprocess.run([sys.executable, "-m", "todobot", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == f"todobot {version('release-todobot')}"


def test_every_option_of_every_subcommand_has_help():
    import argparse

    from todobot.bot.cli import build_parser
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest for c in subs._choices_actions} == set(subs.choices)
    assert all(c.help for c in subs._choices_actions)
    for name, sp in [("todobot", parser), *subs.choices.items()]:
        for action in sp._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"{name} {action.option_strings or action.dest} has no help"
