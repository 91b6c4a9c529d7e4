"""search_core depends on torch, torchvision, numpy and scikit-learn only (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ALLOWED = {"torch", "torchvision", "numpy", "sklearn", "search_core", "__future__"}
ROOT = Path(__file__).resolve().parents[2]


def test_search_core_imports_only_allowed_packages() -> None:
    stdlib = set(sys.stdlib_module_names)
    bad = []
    files = sorted((ROOT / "search_core").rglob("*.py"))
    assert files
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top not in ALLOWED and top not in stdlib:
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert not bad, "search_core imports outside torch/torchvision/numpy/sklearn:\n" + "\n".join(
        bad
    )
