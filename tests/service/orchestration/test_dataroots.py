"""Data roots: a sweep's data paths restricted to the folders the operator allows.

The service refuses a sweep whose ``data_root`` or ``imagefolder:`` path lies outside every
allowed root (through a real app and its validate route), the command line does the same when
``E2RNAS_DATA_ROOTS`` is set and accepts any path when it is not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from search_core.datapaths import FILE_FOLDERS, dataset_path
from service import cli
from service.api import create_app
from service.api.settings import load_settings
from service.errors import ConfigError
from service.orchestration.dataroots import check_data_roots, parse_roots, roots_from_env
from service.orchestration.spec import parse_sweep

TOKEN = "roots-token"
AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/yaml"}


def _sweep(dataset: str, data_root: str | None = None, ood: str = "digits-ood") -> str:
    root = f"    data_root: {data_root}\n" if data_root else ""
    return (
        f"name: roots\ndataset: '{dataset}'\nood_dataset: '{ood}'\n"
        f"search:\n  preset: cpu-tiny\n  overrides:\n    epochs: 1\n{root}"
        "grid: {L: [0.05], F: [0.6]}\nresources: {gpu: 0, cpu: 1}\n"
    )


def _transfer(data_root: str) -> str:
    """A digits search (no data folder) whose two-stage retrain is Table V's ImageNet transfer,
    which reads DATA_ROOT/imagenet."""
    evaluation = "evaluation:\n  mode: two_stage\n  retrain: {preset: imagenet, max: 1}\n"
    return _sweep("digits", data_root) + evaluation


@pytest.fixture
def folders(tmp_path: Path) -> dict[str, Path]:
    allowed, other = tmp_path / "allowed", tmp_path / "elsewhere"
    for folder in (allowed / "sets", other):
        folder.mkdir(parents=True)
    (allowed / "escape").symlink_to(other)  # inside the root by name, outside in fact
    return {"allowed": allowed, "other": other}


def test_the_loaders_folders_are_torchvisions() -> None:
    from torchvision import datasets

    assert FILE_FOLDERS["cifar10"] == datasets.CIFAR10.base_folder
    assert FILE_FOLDERS["cifar100"] == datasets.CIFAR100.base_folder
    assert dataset_path("digits", "/x") is None
    assert dataset_path("imagefolder:/abs/set", "/x") == Path("/abs/set")
    assert dataset_path("imagefolder:rel", "/x") == Path("/x/rel")


def test_paths_inside_the_roots_pass_and_outside_are_refused(folders: dict[str, Path]) -> None:
    allowed, other = folders["allowed"], folders["other"]
    roots = parse_roots(f"{allowed}{os.pathsep}/nonexistent-root")
    fine = [
        _sweep("cifar10", str(allowed / "sets")),
        _sweep(f"imagefolder:{allowed / 'sets'}"),
        _sweep("imagefolder:sets", str(allowed)),
        _sweep("digits"),  # reads no file: nothing to check
        _transfer(str(allowed)),
    ]
    for text in fine:
        check_data_roots(parse_sweep(text, source="t"), roots)
    refused = {
        _sweep("cifar10", str(other)): "data_root",
        _sweep("svhn", str(allowed / "escape")): "data_root",
        _sweep(f"imagefolder:{other}"): "dataset",
        _sweep("digits", ood=f"imagefolder:{allowed / 'escape'}"): "ood_dataset",
        _sweep("cifar10", "data"): "data_root",  # relative: depends on who reads it
        _transfer(str(other)): "dataset",  # only the retrain reads it, DATA_ROOT/imagenet
    }
    for text, field in refused.items():
        with pytest.raises(ConfigError) as info:
            check_data_roots(parse_sweep(text, source="t"), roots)
        message = str(info.value)
        assert message.startswith(f"{field}: ") and "\n" not in message
        assert str(allowed) in message, message


def test_the_service_refuses_data_outside_its_roots(
    folders: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("E2RNAS_"):
            monkeypatch.delenv(name)
    allowed, other = folders["allowed"], folders["other"]
    monkeypatch.setenv("E2RNAS_DATA_ROOTS", str(allowed))
    settings = load_settings(storage=tmp_path / "storage", api_token=TOKEN)
    assert settings.data_roots == (allowed.resolve(),)
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        answer = client.post(
            "/api/sweeps/validate", content=_sweep("cifar10", str(other)), headers=AUTH
        )
        assert answer.status_code == 422, answer.text
        detail = answer.json()["detail"]
        assert detail.startswith("data_root: ") and str(allowed) in detail
        created = client.post("/api/sweeps", content=_sweep(f"imagefolder:{other}"), headers=AUTH)
        assert created.status_code == 422 and created.json()["detail"].startswith("dataset: ")
        assert client.get("/api/sweeps").json()["count"] == 0  # nothing recorded, nothing run
        inside = _sweep("cifar10", str(allowed / "sets"))
        assert client.post("/api/sweeps/validate", content=inside, headers=AUTH).status_code == 200
    # Without roots, the service reads no data folder at all; digits still run.
    monkeypatch.delenv("E2RNAS_DATA_ROOTS")
    bare = load_settings(storage=tmp_path / "storage2", api_token=TOKEN)
    with TestClient(create_app(bare), base_url="http://127.0.0.1") as client:
        answer = client.post(
            "/api/sweeps/validate", content=_sweep("cifar10", str(allowed)), headers=AUTH
        )
        assert answer.status_code == 422 and "E2RNAS_DATA_ROOTS" in answer.json()["detail"]
        ok = client.post("/api/sweeps/validate", content=_sweep("digits"), headers=AUTH)
        assert ok.status_code == 200, ok.text


def test_the_command_line_checks_roots_only_when_they_are_set(
    folders: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = folders["other"]
    path = tmp_path / "sweep.yaml"
    path.write_text(_sweep("cifar10", str(other)), encoding="utf-8")
    out = tmp_path / "run"
    monkeypatch.setenv("E2RNAS_DATA_ROOTS", str(folders["allowed"]))
    assert roots_from_env() == (folders["allowed"].resolve(),)
    search = ["search", "--preset", "cpu-tiny", "--set", "dataset=cifar10"]
    for command in (
        ["sweep", "run", str(path), "--out", str(out)],
        [*search, "--set", f"data_root={other}", "--out", str(out)],
    ):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("e2rnas: error: data_root: "), err
        assert not out.exists()
    # Unset, the user's own command takes any path: it gets as far as reading the files.
    monkeypatch.delenv("E2RNAS_DATA_ROOTS")
    assert roots_from_env() is None
    assert cli.main([*search, "--set", f"data_root={other}", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no cifar-10-batches-py/ under" in err and str(other) in err, err
