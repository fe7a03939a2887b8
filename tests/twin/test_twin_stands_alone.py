"""The twin imitates AWS for the provider's tests, so it shares no code with the provider: a bug
both shared would pass every test. No module of the twin may import ``aws_ml_provider`` (or
anything from ``plugins/``), at module level or inside a function.

Checked: the twin's top-level modules, ``aws_twin/core`` and every service folder.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[2]
TWIN = ROOT / "aws_twin"
CHECKED = [TWIN, *sorted(p for p in (TWIN / "services").iterdir() if p.is_dir() and p.name != "__pycache__")]
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


# ---- what the twin holds itself instead: the formats Textract reads ----------------------------
def test_textract_formats_by_magic_bytes(twin):
    """The twin's own format table: JPEG, PNG, TIFF (both byte orders), PDF (header within the
    first 1,024 bytes); anything else is Textract's UnsupportedDocumentException."""
    from aws_twin.services.textract.documents import detect_format

    samples = ROOT / "include" / "data" / "receipts"
    assert detect_format((samples / "receipt_grocery.jpg").read_bytes()) == "JPEG"
    assert detect_format((samples / "invoice_northwind.png").read_bytes()) == "PNG"
    assert detect_format((samples / "receipt_cafe.tif").read_bytes()) == "TIFF"
    assert detect_format(b"MM\x00*" + bytes(8)) == "TIFF"
    assert detect_format((samples / "receipts_two_pages.pdf").read_bytes()) == "PDF"
    assert detect_format(b"\n" * 100 + b"%PDF-1.7\n") == "PDF"
    assert detect_format(b"\n" * 1100 + b"%PDF-1.7\n") is None
    for other in (b"GIF89a\x01\x00", b"BM6\x00\x00\x00", b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"PK\x03\x04docx"):
        assert detect_format(other) is None
    with pytest.raises(ClientError) as exc:
        twin.client("textract").detect_document_text(Document={"Bytes": b"GIF89a" + bytes(64)})
    assert exc.value.response["Error"]["Code"] == "UnsupportedDocumentException"
