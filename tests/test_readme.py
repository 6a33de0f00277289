"""The README's example session is what the demo really prints; the commands table (in
docs/commands.md) names every command."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_cli import todobot

README = Path(__file__).resolve().parent.parent / "README.md"
COMMANDS = Path(__file__).resolve().parent.parent / "docs" / "commands.md"


def demo_answers(block: str, cwd: Path) -> tuple[list[str], list[str]]:
    """What a session block says the bot answers, and what a fresh `todobot demo` answers when
    the block's `<nick> text` lines are typed into it."""
    said = [ln for ln in block.splitlines() if re.match(r"<(?!todobot>)\w+> ", ln)]
    expected = [ln for ln in block.splitlines() if ln.startswith("<todobot> ")]
    out = todobot("demo", "--as", "ijc", stdin="\n".join(said) + "\n", cwd=cwd).stdout
    return expected, [ln for ln in out.splitlines() if ln.startswith("<todobot> ")]


def test_example_session_matches_the_demo(tmp_path):
    block = README.read_text(encoding="utf-8").split("## An example session")[1].split("```")[1]
    expected, answered = demo_answers(block, tmp_path)
    assert answered == expected


def test_quick_start_and_test_command_are_shown_first():
    text = README.read_text(encoding="utf-8")
    assert (text.index("pip install '.[e2e]' && todobot demo") < text.index("make test")
            < text.index("## An example session"))


def test_every_command_is_in_the_commands_table():
    from todobot.commands.registry import all_commands
    table = COMMANDS.read_text(encoding="utf-8").split("## Commands")[1].split("\n## ")[0]
    rows = [ln for ln in table.splitlines() if ln.startswith("| `!")]
    for cmd in all_commands():
        assert any(f"`!{cmd.name}" in row or f"/ `!{cmd.name}" in row for row in rows), cmd.name


def test_the_person_row_names_every_verb_and_the_owner_limit():
    from todobot.commands.claims import MAX_OWNERS
    from todobot.commands.registry import lookup
    table = COMMANDS.read_text(encoding="utf-8").split("## Commands")[1].split("\n## ")[0]
    person_row = next(ln for ln in table.splitlines() if ln.startswith("| `!person "))
    verbs = person_row.split("`")[1].removeprefix("!person ").replace("\\|", "|").split("|")
    assert verbs == list(lookup("person").args[0].choices)
    assign_row = next(ln for ln in table.splitlines() if ln.startswith("| `!assign "))
    assert f"(at most {MAX_OWNERS})" in assign_row
