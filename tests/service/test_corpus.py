"""A corpus of bad inputs, each refused by the real entry points with one line naming the field.

The cases are data (``corpus/cases.yaml``): sweep files, ``--set`` values, genotype files,
``e2rnas count`` arguments and raw HTTP bodies. Every sweep file goes through
``e2rnas sweep run`` (:func:`service.cli.main`, in-process) and ``POST /api/sweeps/validate``
(the app of :func:`service.api.create_app` on a SQLite store); every ``--set`` value through
``e2rnas search`` and, as a ``search.overrides`` entry, through the API. Each answer must be
one line naming the field (exit code 2, or a 4xx JSON ``detail``), without a traceback, and
leave no file, run directory or database row behind.

Tally (``test_the_corpus_is_large_enough`` checks it): 126 sweep files, 50 ``--set`` values,
17 genotype files, 10 ``count`` argument lists and 13 HTTP bodies: 216 inputs, 386 runs
(125 sweep files through the CLI and 125 through the API, one of each kind being
channel-specific; 50 ``--set`` values through the CLI and 46 as overrides through the API).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from fastapi.testclient import TestClient

from search_core.genotypes import BUNDLED
from service import cli
from service.api import create_app
from service.api.settings import load_settings

CASES: dict[str, Any] = yaml.safe_load(
    (Path(__file__).parent / "corpus" / "cases.yaml").read_text(encoding="utf-8")
)
BASE: str = CASES["base"]
SERVICE_CAP = 1000


# -- inputs too large to write as data -------------------------------------------------------


def _seeds(count: int, max_trials: int, repeat_first: bool = False) -> str:
    seeds = [10_000_000 + i for i in range(count)]
    if repeat_first:
        seeds[-1] = seeds[0]
    listed = ", ".join(map(str, seeds))
    return (
        f"name: t\nsearch: {{preset: cpu-tiny}}\nmax_trials: {max_trials}\n"
        f"grid: {{L: [0.05], F: [0.5], seed: [{listed}]}}\n"
    )


def _alias_bomb() -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    return "\n".join(lines) + "\n"


def _genotype(change: Callable[[dict[str, Any]], None]) -> str:
    data = BUNDLED["darts_v2"].to_json()
    change(data)
    return json.dumps(data)


def _set_item(data: dict[str, Any], key: str, index: int, value: Any) -> None:
    data[key][index] = value


GENERATORS: dict[str, Callable[[], str]] = {
    "alias_bomb": _alias_bomb,
    "deep_block": lambda: "".join("  " * i + "a:\n" for i in range(40)) + "  " * 40 + "b\n",
    "deep_flow": lambda: "name: " + "[" * 5000 + "]" * 5000 + "\n",
    "huge_nodes": lambda: "name: t\ngrid: {L: [" + ", ".join(map(str, range(20_000))) + "]}\n",
    "grid_cube": lambda: (
        "name: cube\nsearch: {preset: cpu-tiny}\ngrid:\n"
        f"  L: [{', '.join(f'{0.01 * (i + 1):.2f}' for i in range(30))}]\n"
        f"  F: [{', '.join(f'{0.1 * (i + 1):.1f}' for i in range(30))}]\n"
        f"  seed: [{', '.join(map(str, range(30)))}]\n"
    ),
    "seed_list": lambda: _seeds(8500, 100),
    "seed_list_repeat": lambda: _seeds(5000, 10_000, repeat_first=True),
    "service_cap": lambda: _seeds(2000, 5000),
    "genotype_unknown_op": lambda: _genotype(
        lambda d: _set_item(d, "normal", 0, ["sep_conv_9x9", 0])
    ),
    "genotype_bad_input": lambda: _genotype(
        lambda d: _set_item(d, "normal", 0, ["sep_conv_3x3", 9])
    ),
    "genotype_bad_concat": lambda: _genotype(lambda d: d.update(normal_concat=[2, 3, 99])),
    "genotype_edge_not_pair": lambda: _genotype(
        lambda d: _set_item(d, "normal", 0, "sep_conv_3x3")
    ),
    "genotype_extra_key": lambda: _genotype(lambda d: d.update(extra=1)),
    "genotype_py_two": lambda: (
        f"A = {BUNDLED['darts_v2'].to_darts_text('A').split(' = ', 1)[1]}\n"
        f"B = {BUNDLED['darts_v1'].to_darts_text('B').split(' = ', 1)[1]}\n"
    ),
    "json_deep": lambda: '{"name": "t", "grid": {"L": [' + "[" * 50 + "]" * 50 + '], "F": [1]}}',
    "json_very_deep": lambda: '{"name": "t", "grid": {"L": [' + "[" * 100_000 + "]" * 100_000,
    "too_large": lambda: "name: t\n" + "# padding\n" * 30_000,
}


def _sweep_text(case: dict[str, Any]) -> str:
    if "generate" in case:
        return GENERATORS[case["generate"]]()
    if "text" in case:
        return str(case["text"])
    if "replace" in case:
        old, new = case["replace"]
        assert old in BASE, case["id"]
        return BASE.replace(old, new, 1)
    return BASE + case["add"]


def _ids(section: str, channel: str | None = None) -> list[dict[str, Any]]:
    cases = CASES[section]
    if channel is None:
        return list(cases)
    return [c for c in cases if channel in c.get("channels", ["cli", "api"])]


def _skip_without_cpu_only(case: dict[str, Any]) -> None:
    if case.get("no_cuda") and torch.cuda.is_available():
        pytest.skip("the case refuses GPUs on a machine without CUDA")


# -- the two entry points ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _nothing_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input that passed would start Ray or a search: fail the test instead."""
    import search_core.search
    import service.orchestration.tuner

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the input was accepted")

    monkeypatch.setattr(service.orchestration.tuner, "run_sweep", refuse)
    monkeypatch.setattr(search_core.search, "run_search", refuse)


def run_cli(
    argv: list[str], capsys: pytest.CaptureFixture[str], expected: str, folder: Path
) -> None:
    """``e2rnas ARGV`` in-process: exit 2, one stderr line naming the field, nothing written."""
    before = sorted(p.name for p in folder.rglob("*"))
    code = cli.main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("e2rnas: error: "), err
    assert "Traceback" not in err
    assert expected in err, err
    assert sorted(p.name for p in folder.rglob("*")) == before


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Path]]:
    storage = tmp_path_factory.mktemp("storage")
    settings = load_settings(
        storage=storage,
        database_url=f"sqlite:///{(storage / 'api.db').resolve()}",
        max_trials=SERVICE_CAP,
        max_body_bytes=256 * 1024,
        poll_seconds=60,
    )
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        yield client, storage


def post_validate(
    api: tuple[TestClient, Path], body: bytes, kind: str, expected: str, status: int | None = None
) -> None:
    """``POST /api/sweeps/validate``: a 4xx JSON answer of one line naming the field; no row,
    no file."""
    client, storage = api
    before = sorted(p.name for p in storage.rglob("*"))
    answer = client.post("/api/sweeps/validate", content=body, headers={"Content-Type": kind})
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    if status is not None:
        assert answer.status_code == status, answer.text[:300]
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    assert expected in detail, detail
    assert client.app.state.manager.store.sweeps() == []  # type: ignore[attr-defined]
    assert sorted(p.name for p in storage.rglob("*")) == before


# -- the corpus ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", _ids("sweep", "cli"), ids=lambda c: c["id"])
def test_sweep_file_through_the_cli(
    case: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _skip_without_cpu_only(case)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(_sweep_text(case), encoding="utf-8")
    argv = ["sweep", "run", str(path), "--out", str(tmp_path / "run")]
    run_cli(argv, capsys, case["error"], tmp_path)


@pytest.mark.parametrize("case", _ids("sweep", "api"), ids=lambda c: c["id"])
def test_sweep_file_through_the_api(case: dict[str, Any], api: tuple[TestClient, Path]) -> None:
    _skip_without_cpu_only(case)
    post_validate(api, _sweep_text(case).encode("utf-8"), "application/yaml", case["error"])


@pytest.mark.parametrize("case", _ids("set"), ids=lambda c: c["id"])
def test_set_value_through_the_cli(
    case: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["search", "--preset", "cpu-tiny", "--set", case["value"], "--out", "out"]
    run_cli(argv, capsys, case["error"], tmp_path)


@pytest.mark.parametrize(
    "case", [c for c in _ids("set") if c.get("api", True)], ids=lambda c: c["id"]
)
def test_set_value_as_a_sweep_override_through_the_api(
    case: dict[str, Any], api: tuple[TestClient, Path]
) -> None:
    key, _, text = case["value"].partition("=")
    overrides = f"search:\n  preset: cpu-tiny\n  overrides:\n    {key}: {text}\n"
    body = BASE.replace("search: {preset: cpu-tiny}\n", overrides)
    expected = case["error"] if case["error"].startswith(f"{key}: ") else f"{key}: {case['error']}"
    post_validate(api, body.encode("utf-8"), "application/yaml", "search.overrides." + expected)


@pytest.mark.parametrize("case", _ids("genotype"), ids=lambda c: c["id"])
def test_genotype_file_through_the_cli(
    case: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    if "file" in case:
        path = tmp_path / case["file"]
        if "bytes" in case:
            path.write_bytes(bytes.fromhex(case["bytes"]))
        else:
            path.write_text(case.get("text") or GENERATORS[case["generate"]](), encoding="utf-8")
        name = str(path) + (f":{case['select']}" if "select" in case else "")
    else:
        name = case["name"]
    run_cli(["count", name], capsys, case["error"], tmp_path)


@pytest.mark.parametrize("case", _ids("count"), ids=lambda c: c["id"])
def test_count_arguments(
    case: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    run_cli(["count", *case["args"]], capsys, case["error"], tmp_path)


@pytest.mark.parametrize("case", _ids("http"), ids=lambda c: c["id"])
def test_http_body(case: dict[str, Any], api: tuple[TestClient, Path]) -> None:
    if "bytes" in case:
        body = bytes.fromhex(case["bytes"])
    elif "generate" in case:
        body = GENERATORS[case["generate"]]().encode("utf-8")
    else:
        body = case["body"].encode("utf-8")
    post_validate(api, body, case["type"], case["error"], case["status"])


def test_the_corpus_is_large_enough() -> None:
    """The tally of the module docstring, and the 150 inputs the corpus promises at least."""
    sizes = {
        section: len(CASES[section]) for section in ("sweep", "set", "genotype", "count", "http")
    }
    assert sizes == {"sweep": 126, "set": 50, "genotype": 17, "count": 10, "http": 13}, sizes
    assert sum(sizes.values()) >= 150
    ids = [(s, c["id"]) for s in sizes for c in CASES[s]]
    assert len(ids) == len(set(ids)), "case ids are unique within a section"
