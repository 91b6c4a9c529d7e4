"""The example sweep files ship in the wheel: ``/api/examples`` lists them when the service is
imported from an installed wheel, not only from a checkout.

In git ``service/api/examples`` is a link to the top-level ``sweeps/``; building the wheel
copies the files behind it as the package data of ``service.api``. The wheel is built from a
copy of what docker/Dockerfile copies (pyproject.toml, README.md, search_core, service, sweeps),
so the build writes nothing into the checkout, then installed with ``pip install --target``;
a subprocess that imports ``service`` from there alone asks the route through TestClient.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
SOURCES = ("pyproject.toml", "README.md", "search_core", "service", "sweeps")
ASK = """
import json
import service
from fastapi import FastAPI
from fastapi.testclient import TestClient
from service.api.routes import examples

app = FastAPI()
app.include_router(examples.router)
client = TestClient(app)
print(json.dumps({
    "imported_from": service.__file__,
    "listed": client.get("/api/examples").json(),
    "quickstart": client.get("/api/examples/quickstart").text,
}))
"""


def _run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=cwd, env=env)
    assert done.returncode == 0, f"{args[:4]} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.integration
def test_the_installed_wheel_serves_the_example_sweeps(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(REPO / name, source / name, symlinks=True, ignore=skip)
        else:
            shutil.copy2(REPO / name, source / name)
    pip = (sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input")
    _run(*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source))
    (wheel,) = tmp_path.glob("e2rnas_sweeps-*.whl")
    expected = sorted(path.stem for path in (REPO / "sweeps").glob("*.yaml"))
    with zipfile.ZipFile(wheel) as archive:
        shipped = set(archive.namelist())
    missing = [name for name in expected if f"service/api/examples/{name}.yaml" not in shipped]
    assert not missing, (
        f"{wheel.name} lacks the examples {missing}: pyproject.toml's "
        "[tool.setuptools.package-data] service needs 'api/examples/*.yaml'"
    )

    site = tmp_path / "site"
    _run(*pip, "install", "-q", "--no-deps", "--target", str(site), str(wheel))
    env = {**os.environ, "PYTHONPATH": str(site)}
    # Run from tmp_path: the checkout is not on sys.path, only the installed copy.
    answer = json.loads(_run(sys.executable, "-c", ASK, cwd=tmp_path, env=env))
    assert Path(answer["imported_from"]).is_relative_to(site), answer["imported_from"]
    assert answer["listed"] == {"data": expected, "count": len(expected)}
    assert answer["quickstart"] == (REPO / "sweeps" / "quickstart.yaml").read_text("utf-8")
