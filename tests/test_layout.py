"""The package layout: one `todobot` namespace, imports that flow bot -> commands -> storage.

Ruff bans the bare names too (TID251 in pyproject.toml, with the checkout as a namespace
package so that relative imports do not resolve to them); this test reads every module's
imports itself as well, and checks the direction, which ruff cannot express.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {"bot": 0, "commands": 1, "storage": 2}  # a module may import its own layer or lower


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name within todobot) of every import in a package module."""
    layer = path.relative_to(ROOT).parts[0]
    package = ["todobot", layer, *path.relative_to(ROOT / layer).parts[:-1]]
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                out.append((node.lineno, ".".join(base + ([node.module] if node.module else []))))
            elif node.module:
                out.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names)
    return out


def _modules(*folders: str) -> list[Path]:
    return [p for f in folders for p in sorted((ROOT / f).rglob("*.py"))]


def test_no_bare_package_imports():
    """`import bot` would load a second copy of a module under another name."""
    bad = []
    for path in _modules("bot", "commands", "storage", "tests", "bench", "src"):
        for line, name in _imports(path) if path.parts[len(ROOT.parts)] in LAYERS else [
                (n.lineno, m) for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(n, (ast.Import, ast.ImportFrom)) and not getattr(n, "level", 0)
                for m in ([a.name for a in n.names] if isinstance(n, ast.Import) else [n.module or ""])]:
            if name.split(".")[0] in LAYERS:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not bad, "bare imports (use todobot.* or a relative import):\n" + "\n".join(bad)


def test_imports_flow_one_way():
    upward = []
    for layer, rank in LAYERS.items():
        for path in _modules(layer):
            for line, name in _imports(path):
                parts = name.split(".")
                if parts[0] == "todobot" and len(parts) > 1 and LAYERS.get(parts[1], 99) < rank:
                    upward.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not upward, "imports must flow bot -> commands -> storage:\n" + "\n".join(upward)


def test_installed_namespace(tmp_path):
    """From a directory outside the checkout only `todobot.*` exists, and `python -m todobot` runs."""
    code = ("import importlib.util as u, todobot.bot, todobot.commands, todobot.storage;"
            "print([n for n in ('bot', 'commands', 'storage') if u.find_spec(n)])")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
    ver = subprocess.run([sys.executable, "-m", "todobot", "--help"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert ver.returncode == 0 and "todobot" in ver.stdout


def test_every_package_folder_is_installed():
    """A folder of modules missing from pyproject's `packages` works in the editable install
    the tests use and is absent from a real `pip install .`."""
    import tomllib
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"todobot." + ".".join(p.parent.relative_to(ROOT).parts)
               for layer in LAYERS for p in (ROOT / layer).rglob("__init__.py")}
    assert folders - listed == set()
