"""The architecture of docs/ARCHITECTURE.md, checked: layers, who may import what, room sizes.

The import rules are import-linter contracts in pyproject.toml (``[tool.importlinter]``): the
tree must keep them, and each contract must break when one forbidden import is added to a copy
of the tree (so a contract that could never fail is caught too). The other checks read the
source: no module of ``service`` over 400 lines, no function over 60 lines without a
``# long: why`` comment on the line above its ``def``, each front metric's direction written in
one module only, and the code cites docs/ARCHITECTURE.md, never a file outside the repository.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from service.objectives import METRICS

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_tree_keeps_every_import_contract() -> None:
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


# One forbidden import per contract id: (file, line to add).
FORBIDDEN = {
    "layers": ("service/results/table.py", "import service.orchestration.points"),
    "core": ("search_core/cost.py", "import pandas"),
    "ray": ("service/analysis/pareto.py", "import ray"),
    "database": ("service/api/routes/health.py", "import sqlalchemy"),
    "web": ("service/orchestration/rundir.py", "import fastapi"),
}


def _contract_names() -> dict[str, str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return {contract["id"]: contract["name"] for contract in contracts}


def test_every_contract_has_a_forbidden_import_to_prove_it() -> None:
    assert set(_contract_names()) == set(FORBIDDEN)


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tree")
    skip = shutil.ignore_patterns("__pycache__")
    for package in ("search_core", "service"):
        shutil.copytree(REPO / package, root / package, ignore=skip)
    shutil.copy2(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize("contract", list(FORBIDDEN))
def test_each_contract_breaks_on_a_forbidden_import(tree_copy: Path, contract: str) -> None:
    relative, line = FORBIDDEN[contract]
    path = tree_copy / relative
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{line}  # added by the test\n", encoding="utf-8")
    try:
        done = _lint_imports(tree_copy)
    finally:
        path.write_text(original, encoding="utf-8")
    report = " ".join(done.stdout.split())  # lint-imports wraps long contract names
    assert done.returncode != 0, done.stdout
    assert "1 broken" in report, done.stdout
    assert f"{_contract_names()[contract]} BROKEN" in report, done.stdout


def _python_files(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


@pytest.mark.parametrize("path", _python_files("service"), ids=lambda p: str(p.relative_to(REPO)))
def test_rooms_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{path}: {len(lines)} lines; split it by idea"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            reason = lines[first - 2].strip() if first >= 2 else ""
            assert length <= MAX_FUNCTION_LINES or reason.startswith("# long:"), (
                f"{path}:{node.lineno}: {node.name} has {length} lines; split it or say why "
                "in a '# long: ...' comment above it"
            )


def _source_files() -> list[Path]:
    suffixes = {".py", ".js", ".html", ".j2"}
    return sorted(p for p in (REPO / "service").rglob("*") if p.suffix in suffixes)


def test_each_metric_direction_is_written_in_one_module() -> None:
    found: dict[str, set[str]] = {}
    for path in _source_files():
        text = path.read_text(encoding="utf-8")
        for name, metric in METRICS.items():
            pattern = rf"""["']?\b{name}\b["']?\s*[:=,(]\s*["']{metric.direction}["']"""
            if re.search(pattern, text):
                found.setdefault(name, set()).add(str(path.relative_to(REPO)))
    assert found == {name: {"service/objectives.py"} for name in METRICS}


def test_code_cites_the_repository_architecture_document() -> None:
    outside = re.compile(r"DESIGN\.md|\.\./shared")
    for folder in ("search_core", "service", "tests", "bench"):
        for path in _python_files(folder):
            if path == Path(__file__):
                continue
            assert not outside.search(path.read_text(encoding="utf-8")), path
    assert (REPO / "docs" / "ARCHITECTURE.md").is_file()
