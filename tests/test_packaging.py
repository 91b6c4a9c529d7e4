"""Packaging, checked: the lock is what is installed, the ranges admit it, the extras split.

``pyproject.toml`` says which versions the code works with (ranges) and which extras pull the
web service, PostgreSQL and experiment tracking; ``requirements.lock`` pins the one set that
``make demo``/``make test`` install (with hashes) and that the Docker image is constrained to.
These tests read the environment they run in, so on a clean clone they prove that ``make
test`` installed from the lock: every locked package at its locked version, nothing else.
"""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements.lock"
PROJECT = canonicalize_name("e2rnas-sweeps")
# The packages that only an extra may bring: searching and sweeping alone must not pull them.
WEB_STACK = {"fastapi", "starlette", "uvicorn", "pydantic-settings", "fastapi-offline"}
# (tensorboardX is not among them: Ray Tune itself requires it.)
EXTRA_ONLY = WEB_STACK | {"psycopg", "psycopg-binary", "mlflow-skinny", "wandb"}


def locked() -> dict[NormalizedName, str]:
    """``name -> version`` of every package in the lock (hash lines and comments skipped)."""
    pins = {}
    for line in LOCK.read_text(encoding="utf-8").splitlines():
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", line)
        if match:
            pins[canonicalize_name(match.group(1))] = match.group(2)
    return pins


def pyproject() -> dict[str, object]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        project: dict[str, object] = tomllib.load(handle)["project"]
    return project


def declared() -> list[Requirement]:
    """Every requirement of pyproject.toml, the extras' included (not the self-references)."""
    project = pyproject()
    requirements = [Requirement(text) for text in project["dependencies"]]  # type: ignore[attr-defined]
    for texts in project["optional-dependencies"].values():  # type: ignore[attr-defined]
        requirements += [Requirement(text) for text in texts]
    return [r for r in requirements if canonicalize_name(r.name) != PROJECT]


def installed() -> dict[NormalizedName, str]:
    """What pip installed into this environment: its site-packages only, since importing Ray
    puts Ray's own vendored copies (``ray/thirdparty_files``: psutil, colorama) on sys.path."""
    folders = sorted({sysconfig.get_path("purelib"), sysconfig.get_path("platlib")})
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version
        for dist in importlib.metadata.distributions(path=folders)
    }


def test_every_locked_package_is_installed_at_its_locked_version() -> None:
    have = installed()
    wrong = {
        name: (version, have.get(name))
        for name, version in locked().items()
        if have.get(name, "").split("+")[0] != version
    }
    assert not wrong, f"(locked, installed) differ; run make test on a clean clone: {wrong}"


def test_nothing_is_installed_that_the_lock_does_not_pin() -> None:
    # pip itself is the installer, not a locked package; the project is installed from source.
    extra = set(installed()) - set(locked()) - {PROJECT, canonicalize_name("pip")}
    assert not extra, f"installed but not locked: {sorted(extra)}"


def test_every_declared_requirement_is_locked_within_its_range() -> None:
    pins = locked()
    problems = []
    for requirement in declared():
        version = pins.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement.name}=={version} is outside {requirement.specifier}")
    assert not problems, "; ".join(problems) + " (run make lock)"


def test_every_declared_requirement_has_a_range_or_a_pin() -> None:
    # An open lower bound alone lets a future major release in untested; pins need a reason.
    # The dev tools and type stubs follow their latest release on purpose.
    tools = {
        *("pytest", "pytest-xdist", "hypothesis", "pillow", "packaging", "ruff", "mypy"),
        *("types-pyyaml", "pandas-stubs", "httpx", "playwright", "schemathesis"),
        *("import-linter", "uv"),
    }
    open_ended = [
        str(r)
        for r in declared()
        if not any(s.operator in {"<", "<=", "==", "~="} for s in r.specifier)
        and canonicalize_name(r.name) not in tools
    ]
    assert not open_ended, f"no upper bound: {open_ended}"


def test_the_tests_imports_are_declared() -> None:
    """Every third-party package a test imports is a declared requirement (hypothesis, PIL, ...)."""
    names = set()
    for path in (REPO / "tests").rglob("*.py"):
        names |= set(re.findall(r"^\s*(?:import|from) ([A-Za-z_]\w*)", path.read_text(), re.M))
    # The project's packages, and the tests' and benchmarks' own helper modules.
    local = {"search_core", "service", "__future__"} | {
        path.stem for folder in ("tests", "bench") for path in (REPO / folder).rglob("*.py")
    }
    third_party = {n for n in names - local if n not in sys.stdlib_module_names}
    provided = {
        module: dist
        for module, dists in importlib.metadata.packages_distributions().items()
        for dist in dists
    }
    direct = {canonicalize_name(r.name) for r in declared()}
    undeclared = {
        module: provided.get(module)
        for module in third_party
        if canonicalize_name(provided.get(module, module)) not in direct
    }
    assert not undeclared, f"imported by the tests but not declared: {undeclared}"


def _closure(extras: set[str]) -> set[NormalizedName]:
    """The installed packages that installing the project with ``extras`` pulls in."""
    environment: dict[str, str] = dict(default_environment())
    seen: set[NormalizedName] = set()
    todo: list[tuple[str, set[str]]] = [("e2rnas-sweeps", extras)]
    while todo:
        name, wanted = todo.pop()
        for text in importlib.metadata.requires(name) or []:
            requirement = Requirement(text)
            if requirement.marker and not any(
                requirement.marker.evaluate({**environment, "extra": extra})
                for extra in (wanted or {""})
            ):
                continue
            key = canonicalize_name(requirement.name)
            if key == PROJECT:
                todo.append((name, set(requirement.extras)))
            elif key not in seen:
                seen.add(key)
                todo.append((requirement.name, set(requirement.extras)))
    return seen


def test_searching_alone_does_not_pull_the_web_stack() -> None:
    core = _closure(set())
    assert not EXTRA_ONLY & core, f"the core install pulls {sorted(EXTRA_ONLY & core)}"
    assert {"torch", "ray", "optuna", "pandas", "plotly", "sqlalchemy"} <= core
    assert _closure({"web"}) >= WEB_STACK
    assert {"psycopg", "psycopg-binary"} <= _closure({"postgres"})
    assert {"mlflow-skinny", "tensorboard", "wandb"} <= _closure({"tracking"})


def test_the_command_line_searches_without_importing_the_web_stack() -> None:
    """``e2rnas count`` and every command's parser load without FastAPI, uvicorn or psycopg."""
    code = (
        "import sys; from service.cli import main; rc = main(['count', 'darts_v2']); "
        "print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn', 'psycopg', 'mlflow', "
        "'wandb') if m in sys.modules)); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["torch", "torchvision"])
def test_the_dockerfile_takes_its_torch_from_the_lock(name: str) -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)\s*$", text, flags=re.MULTILINE))
    assert args[f"{name.upper()}_VERSION"] == locked()[canonicalize_name(name)]
    assert "COPY requirements.lock" in text
    assert "--constraint constraints.txt" in text


def test_a_missing_extra_is_one_line_naming_the_field_and_the_install() -> None:
    from service.errors import ConfigError, require_package

    require_package("serve", "fastapi", "web")  # installed here: nothing to say
    with pytest.raises(ConfigError) as caught:
        require_package("database_url", "e2rnas_no_such_driver", "postgres")
    assert str(caught.value) == (
        "database_url: needs the Python package 'e2rnas_no_such_driver', which is not "
        "installed here; pip install 'e2rnas-sweeps[postgres]'"
    )
