"""The new layouts from the command line: import detected, `--format markdown` as the
Markdown checklist layout, export choices limited to the layouts that write."""

from __future__ import annotations

from pathlib import Path

from tests.test_cli import todobot

DATA = Path(__file__).resolve().parent / "data"


def test_a_regzbot_report_imports_and_exports_as_a_checklist(tmp_path):
    proc = todobot("import", str(DATA / "regzbot-report.txt"), "--release", "7.2", "--db", "t.sqlite3",
                   cwd=tmp_path)
    assert proc.stdout.splitlines()[1] == "Imported into 7.2: 4 added, 0 updated, 0 unchanged, 0 dropped"
    assert proc.stderr == ""
    out = todobot("export", "--release", "7.2", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert out.startswith("# 7.2 TODO\n\n## Bugs\n\n### current cycle")
    assert "- [ ] **#1** frobnet: link stays down after resume from suspend" in out.splitlines()
    md = todobot("export", "--release", "7.2", "--format", "markdown", "--db", "t.sqlite3",
                 cwd=tmp_path).stdout
    forced = todobot("export", "--release", "7.2", "--layout", "markdown-checklist", "--db",
                     "t.sqlite3", cwd=tmp_path).stdout
    assert md == forced == out
    # The checklist imports back into a fresh database as the same list.
    (tmp_path / "export.md").write_text(out)
    todobot("import", "export.md", "--release", "7.2", "--db", "u.sqlite3", cwd=tmp_path)
    again = todobot("export", "--release", "7.2", "--db", "u.sqlite3", cwd=tmp_path).stdout
    assert again == out


def test_export_refuses_a_layout_that_only_reads(tmp_path):
    proc = todobot("export", "--release", "7.2", "--layout", "regzbot", "--db", "t.sqlite3",
                   cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "invalid choice: 'regzbot'" in proc.stderr


def test_a_xen_release_update_round_trips_through_the_command_line(tmp_path):
    todobot("import", str(DATA / "xen-release-update.txt"), "--release", "9.9", "--db", "t.sqlite3",
            cwd=tmp_path)
    out = todobot("export", "--release", "9.9", "--db", "t.sqlite3", cwd=tmp_path).stdout
    assert "OPEN ISSUES AND BLOCKERS\n========================\n" in out
    (tmp_path / "export.txt").write_text(out)
    todobot("import", "export.txt", "--release", "9.9", "--db", "u.sqlite3", cwd=tmp_path)
    assert todobot("export", "--release", "9.9", "--db", "u.sqlite3", cwd=tmp_path).stdout == out
