"""The twin imitates AWS for the provider's tests, so it shares no code with the provider: a bug
both shared would pass every test. No module of the twin may import ``aws_ml_provider`` (or
anything from ``plugins/``), at module level or inside a function.

Checked here: ``aws_twin/core`` and ``aws_twin/services/textract``. (The SageMaker part is being
freed of its import on another branch; widen ``CHECKED`` to all of ``aws_twin`` once it is.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TWIN = ROOT / "aws_twin"
CHECKED = [TWIN / "core", TWIN / "services" / "textract"]
FORBIDDEN = ("aws_ml_provider", "plugins")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import statement of a Python file, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                out.append((node.lineno, node.args[0].value))
    return out


def forbidden_imports(folder: Path) -> list[str]:
    found = []
    for py in sorted(folder.rglob("*.py")):
        for line, module in imported_modules(py):
            if module.split(".")[0] in FORBIDDEN:
                found.append(f"{py.relative_to(folder.parent)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("folder", CHECKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_twin_imports_nothing_from_the_provider(folder):
    assert folder.is_dir() and list(folder.rglob("*.py"))
    assert forbidden_imports(folder) == []


def test_the_check_finds_such_an_import(tmp_path):
    """The walk sees top-level, nested, relative-free and importlib imports."""
    (tmp_path / "a.py").write_text(
        "import os\nfrom aws_ml_provider.utils.expense import sniff_format\n"
        "def f():\n    import plugins.aws_ml_provider\n"
        "    return importlib.import_module('aws_ml_provider.hooks')\n"
    )
    found = forbidden_imports(tmp_path)
    assert [f.split(" imports ")[1] for f in found] == [
        "aws_ml_provider.utils.expense",
        "plugins.aws_ml_provider",
        "aws_ml_provider.hooks",
    ]
