"""Two-stage fronts: a proxy for every trial, the full retrain of the proxy front only.

The choice of the retrained trials (proxy front, one per genotype, a cap by hypervolume
contribution) is checked against brute force; Kendall's τ against a count of concordant pairs.
The end-to-end test runs a real two-stage sweep on an embedded Ray, kills its driver during
the second stage and resumes it: a finished retrain is not redone, and the results, database,
export, report and the page's figure hold both stages.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import driver, kill_when, start_sweep, sweep_text

from service.analysis.pareto import hypervolume, pareto_info
from service.errors import ConfigError
from service.objectives import FRONT_METRICS
from service.orchestration.spec import parse_sweep
from service.orchestration.twostage import (
    TWO_STAGE_FILE,
    choose_retrains,
    proxy_objectives,
    read_two_stage,
    summarize,
)
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS

TWO_STAGE = (
    "evaluation:\n"
    "  mode: two_stage\n"
    "  proxy: {overrides: {epochs: 1}}\n"
    "  retrain: {preset: cpu-tiny, overrides: {epochs: 3, layers: 3, init_channels: 4}, max: 2}\n"
)


def _two_stage_text(name: str, evaluation: str = TWO_STAGE) -> str:
    """The reference sweep on three seeds of one point, one trial at a time, two-staged."""
    text = sweep_text(name, (0.03,)).replace("  F: [0.6]\n", "  F: [0.6]\n  seed: [0, 1, 2]\n")
    text = text.replace("  cpu: 1\n", "  cpu: 1\n  max_concurrent: 1\n")
    proxy = "evaluation:\n  mode: proxy\n  overrides:\n    epochs: 1\n"
    assert proxy in text
    return text.replace(proxy, evaluation)


# -- bad settings -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("evaluation", "expected"),
    [
        ("evaluation: {mode: two_stage}\n", "evaluation: retrain: missing"),
        ("evaluation: {mode: proxy, retrain: {max: 2}}\n", "retrain: used only by mode two_stage"),
        (
            "evaluation: {mode: two_stage, preset: cpu-tiny, retrain: {max: 2}}\n",
            "preset: mode two_stage takes them in its proxy and retrain sections",
        ),
        ("evaluation: {mode: two_stage, retrain: {max: 0}}\n", "evaluation.retrain.max"),
        (
            "evaluation: {mode: two_stage, retrain: {overrides: {bogus: 1}}}\n",
            "evaluation.retrain.overrides.bogus: unknown config key",
        ),
        (
            "evaluation: {mode: two_stage, proxy: {overrides: {epochs: -1}}, retrain: {}}\n",
            "evaluation.proxy.overrides.epochs",
        ),
        ("evaluation: {mode: two_stage, retrain: {preset: huge}}\n", "retrain.preset: unknown"),
    ],
)
def test_bad_two_stage_settings_are_refused_naming_the_field(
    evaluation: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_sweep(_two_stage_text("bad", evaluation))


def test_a_two_stage_sweep_on_a_storage_uri_is_refused() -> None:
    text = _two_stage_text("uri") + "storage: {path: 's3://bucket/prefix'}\n"
    with pytest.raises(ConfigError, match=r"storage\.path 's3://bucket/prefix': a two_stage"):
        parse_sweep(text)


# -- the choice and the summary against references ----------------------------------------------


def _frame(rng: np.random.Generator, rows: int, hashes: int) -> pd.DataFrame:
    data: dict[str, Any] = {
        "trial_id": [f"t{i:02d}" for i in range(rows)],
        "status": ["done"] * rows,
        "genotype_hash": [f"g{rng.integers(hashes)}" for _ in range(rows)],
        "evaluation": ["proxy"] * rows,
    }
    for name in FRONT_METRICS:
        data[f"proxy_{name}"] = rng.integers(0, 6, rows).astype(float)
        data[name] = np.nan
    return pd.DataFrame(data)


@pytest.mark.parametrize("seed", range(12))
def test_the_retrained_trials_are_the_proxy_front_one_per_genotype_capped_by_contribution(
    tmp_path: Path, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    frame = _frame(rng, int(rng.integers(3, 14)), int(rng.integers(2, 8)))
    cap = int(rng.integers(1, 4))
    spec = parse_sweep(
        _two_stage_text("x").replace("max: 2}", f"max: {cap}}}") + "strategy: {kind: grid}\n"
    )
    objectives = proxy_objectives(spec)
    # Brute force: nondominated rows, the first of each genotype, then the cap.
    values = frame[list(objectives)].to_numpy() * np.array(
        [-1 if d == "max" else 1 for d in objectives.values()]
    )
    front = [
        i
        for i in range(len(frame))
        if not any((values[j] <= values[i]).all() and (values[j] < values[i]).any()
                   for j in range(len(frame)))
    ]  # fmt: skip
    firsts: dict[str, str] = {}
    for i in front:
        firsts.setdefault(frame.loc[i, "genotype_hash"], frame.loc[i, "trial_id"])
    unique = list(firsts.values())
    reference = pareto_info(frame, objectives).reference
    points = frame.set_index("trial_id").loc[unique, list(objectives)].to_numpy()
    whole = hypervolume(points, objectives, reference)
    alone = [
        whole - hypervolume(np.delete(points, i, axis=0), objectives, reference)
        if len(points) > 1
        else whole
        for i in range(len(points))
    ]
    best = sorted(range(len(unique)), key=lambda i: (-round(alone[i], 12), i))[:cap]
    expected = [unique[i] for i in sorted(best)]

    state = choose_retrains(tmp_path, spec, frame)
    assert state["proxy_front"] == [frame.loc[i, "trial_id"] for i in front]
    assert state["chosen"] == expected
    # Chosen once: a resumed sweep retrains the same trials, whatever the table says now.
    assert choose_retrains(tmp_path, spec, frame.iloc[:1])["chosen"] == expected
    assert read_two_stage(tmp_path) == state


def test_kendall_tau_per_metric_over_the_retrained_trials(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 6
    frame = pd.DataFrame({"evaluation": ["retrain"] * rows + ["proxy"] * 2})
    for name in FRONT_METRICS:
        proxy = rng.permutation(rows).astype(float)
        frame[f"proxy_{name}"] = [*proxy, 1.0, 2.0]
        frame[name] = [*rng.permutation(rows).astype(float), np.nan, np.nan]
    (tmp_path / TWO_STAGE_FILE).write_text(
        json.dumps({"chosen": [], "first_stage_trials": 8}), encoding="utf-8"
    )
    summary = summarize(tmp_path, frame)["summary"]
    assert (summary["retrained"], summary["saved"]) == (6, 2)
    for name in FRONT_METRICS:
        a = frame[f"proxy_{name}"].to_numpy()[:rows]
        b = frame[name].to_numpy()[:rows]
        signs = [np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in
                 itertools.combinations(range(rows), 2)]  # fmt: skip
        assert summary["kendall_tau"][name] == pytest.approx(sum(signs) / len(signs))


def test_the_proxy_columns_are_results_columns() -> None:
    proxies = [f"proxy_{name}" for name in FRONT_METRICS]
    assert all(p in RESULT_COLUMNS and p in FLOAT_COLUMNS for p in proxies)


# -- a real two-stage sweep, killed during its second stage --------------------------------------


def _second_retrain_under_way(run_dir: Path) -> bool:
    state = run_dir / TWO_STAGE_FILE
    if not state.exists():
        return False
    first, second = json.loads(state.read_text(encoding="utf-8"))["chosen"]
    finished = (run_dir / "trials" / first / "retrain" / "metrics.json").exists()
    started = (run_dir / "trials" / second / "retrain" / "eval_checkpoint.pt").exists()
    return finished and started


@pytest.mark.integration
@pytest.mark.slow
def test_a_two_stage_sweep_killed_in_its_second_stage_resumes_without_redoing_a_retrain(
    tmp_path: Path,
) -> None:
    path, run_dir = tmp_path / "two.yaml", tmp_path / "run"
    path.write_text(_two_stage_text("two"), encoding="utf-8")
    under_way = lambda: _second_retrain_under_way(run_dir)  # noqa: E731
    kill_when(start_sweep(path, run_dir, tmp_path), under_way, "second retrain")
    first, second = read_two_stage(run_dir)["chosen"]
    finished = run_dir / "trials" / first / "retrain"
    before = {p.name: p.stat().st_mtime_ns for p in finished.iterdir() if p.is_file()}
    resumed = driver("resume", str(run_dir), cwd=tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    # The finished retrain was read back, not run again.
    assert {p.name: p.stat().st_mtime_ns for p in finished.iterdir() if p.is_file()} == before
    log = (run_dir / "trials" / second / "retrain" / "eval_log.jsonl").read_text()
    assert [json.loads(line)["epoch"] for line in log.splitlines()] == [1, 2, 3]

    state = read_two_stage(run_dir)
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 3 and set(frame["status"]) == {"done"}
    proxies = [f"proxy_{name}" for name in FRONT_METRICS]
    assert frame[proxies].notna().all().all()  # every trial's proxy
    retrained = frame[frame["evaluation"] == "retrain"]
    assert sorted(retrained["trial_id"]) == sorted([first, second])
    assert retrained[list(FRONT_METRICS)].notna().all().all()
    assert frame[frame["evaluation"] == "proxy"][list(FRONT_METRICS)].isna().all().all()
    assert state["summary"]["retrained"] == 2 and state["summary"]["saved"] == 1
    assert set(state["summary"]["kendall_tau"]) == set(FRONT_METRICS)
    with sqlite3.connect(run_dir / "results.db") as db:
        stored = db.execute("select trial_id, proxy_test_error, test_error from trials").fetchall()
    for trial_id, proxy_error, error in stored:
        row = frame.set_index("trial_id").loc[trial_id]
        assert proxy_error == row["proxy_test_error"]
        assert (error is None) == math.isnan(row["test_error"])
    front = pd.read_csv(run_dir / "export" / "front.csv")
    assert set(front["trial_id"]) <= {first, second} and "proxy_test_error" in front.columns
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert "Two-stage fronts: proxy and retrain" in report
    assert "Not a two-stage sweep" not in report
    _check_the_page_figure(run_dir, frame)


def _check_the_page_figure(run_dir: Path, frame: pd.DataFrame) -> None:
    """The sweep page's two-stage figure, as the service serves it from the database."""
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.api.settings import load_settings

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("E2RNAS_")}
    try:
        settings = load_settings(
            storage=run_dir.parent / "storage", database_url=f"sqlite:///{run_dir / 'results.db'}"
        )
        with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
            sweep_id = json.loads((run_dir / "sweep.json").read_text())["sweep_id"]
            answer = client.get(f"/api/sweeps/{sweep_id}/figures/two_stage")
    finally:
        os.environ.update(saved)
    assert answer.status_code == 200, answer.text
    traces = {t["name"]: t for t in answer.json()["data"]}
    assert len(traces["proxy (all trials)"]["x"]) == len(frame)
    assert len(traces["retrain (all trials)"]["x"]) == 2
    links = traces["retrained point and its proxy"]
    assert len(links["x"]) == 3 * 2  # a segment and a gap per retrained trial
