"""Tests of the Optuna study export (``e2rnas export DIR --optuna-storage URL``) and of the
optuna strategy's ``storage``, read back with Optuna's own ``load_study``.

The run directory is real: ``sweep.json`` written by ``rundir.create_state`` and the rows
stored through ``ResultStore`` into its SQLite database, as a finished sweep leaves them. Its
table is the synthetic 3×3 sweep (``synthetic_front.py``, front rows 0, 4 and 8) under seed 0,
with three more trials under seed 1: one failed, one stopped early (with front values that
would dominate every other, so a leak onto the front shows) and one done without ``pgd_acc``.
The study's best trials are compared with the done trials' front of ``service.analysis.pareto``
and, independently, with a brute-force dominance test. The last test runs a real optuna sweep
on Ray that keeps its study in a storage, then exports it beside that study.
"""

from __future__ import annotations

import json
import math
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from search_core.genotypes import Genotype
from service import cli
from service.analysis.optuna_study import (
    SWEEP_ATTR,
    export_study,
    open_storage,
    param_distributions,
)
from service.analysis.pareto import pareto_answer, to_minimisation
from service.errors import ConfigError, StoreError
from service.objectives import FRONT_METRICS, directions
from service.orchestration.collect import stored_table
from service.orchestration.rundir import create_state
from service.orchestration.spec import parse_sweep
from service.orchestration.strategy import optuna_search_args
from service.results.store import ResultStore, default_url
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS, results_frame

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_front import FRONT, METRICS, brute_force_front, sweep_frame

GRID_SWEEP = """\
name: synth
search: {preset: cpu-tiny}
grid: {L: [1.0, 2.0, 3.0], F: [100.0, 200.0, 300.0], seed: [0, 1]}
"""
OPTUNA_SWEEP = """\
name: sampled
search: {preset: cpu-tiny}
grid: {seed: [0]}
strategy:
  kind: optuna
  num_samples: 4
  L: {low: 0.5, high: 4.0}
  F: {low: 50.0, high: 400.0}
  objectives: [test_error, params_m]
"""
# Trials 9, 10, 11: failed, stopped early (values that would dominate), done without pgd_acc.
EXTRA = (
    ("failed", (math.nan,) * 5),
    ("stopped", (0.1, 0.1, 1.0, 99.0, 99.0)),
    ("done", (1.5, 0.5, 50.0, math.nan, 99.0)),
)


def _rows(sweep_id: str) -> list[dict[str, Any]]:
    """The results rows: the synthetic sweep's nine under seed 0, then the three EXTRA."""
    rows = []
    for i, record in enumerate(sweep_frame().to_dict(orient="records")):
        rows.append(_row(sweep_id, i, "done", record))
    for k, (status, metrics) in enumerate(EXTRA):
        record = {
            "L": 1.0 + k,
            "F": 100.0,
            "seed": 1,
            **dict(zip(FRONT_METRICS, metrics, strict=True)),
        }
        if status == "failed":
            record.update(genotype=None, genotype_hash=None)
        else:
            record.update(sweep_frame().iloc[k][["genotype", "genotype_hash"]].to_dict())
        rows.append(_row(sweep_id, 9 + k, status, record))
    return rows


def _row(sweep_id: str, index: int, status: str, record: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update(sweep_id=sweep_id, trial_id=f"t{index:02d}", status=status, backbone="darts")
    row.update({"evaluation": "proxy", **record})
    return row


def make_run(base: Path, sweep_text: str, rows: Any = _rows, name: str = "run") -> Path:
    """A run directory as a finished sweep leaves it: sweep.json and the stored rows."""
    run_dir = base / name
    run_dir.mkdir()
    spec = parse_sweep(sweep_text, "sweep.yaml")
    state = create_state(spec, run_dir, default_url(run_dir))
    store = ResultStore(state["database_url"])
    try:
        store.create_schema()
        store.upsert_sweep(state["sweep_id"], spec.name, "done", state["spec"])
        store.ingest(results_frame(rows(state["sweep_id"])))
    finally:
        store.close()
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path, GRID_SWEEP)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def _export(run_dir: Path, url: str, *flags: str) -> int:
    return cli.main(["export", str(run_dir), "--optuna-storage", url, *flags])


def _by_id(study: optuna.Study) -> dict[str, optuna.trial.FrozenTrial]:
    return {t.user_attrs["trial_id"]: t for t in study.trials}


def test_best_trials_are_the_sweeps_front(
    run_dir: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _export(run_dir, url) == 0
    out = capsys.readouterr().out
    assert out.strip() == (
        f"optuna study 'synth' in {url}: 12 trials (9 complete, 1 failed, 2 pruned)"
    )
    study = optuna.load_study(storage=url, study_name="synth")
    objectives = directions(FRONT_METRICS)
    assert study.directions == [
        optuna.study.StudyDirection.MINIMIZE if d == "min" else optuna.study.StudyDirection.MAXIMIZE
        for d in objectives.values()
    ]
    assert study.metric_names == list(FRONT_METRICS)
    assert study.user_attrs["objectives"] == objectives

    frame = stored_table(run_dir)
    ours = pareto_answer(frame, objectives)["front"]
    front = {tuple(record[name] for name in FRONT_METRICS) for record in ours}
    assert {tuple(t.values) for t in study.best_trials} == front
    assert front == {METRICS[i] for i in FRONT}
    # Independently: brute-force dominance over the complete trials' values.
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    values = to_minimisation(np.array([t.values for t in complete]), objectives)
    assert {tuple(complete[i].values) for i in brute_force_front(values)} == front


def test_states_params_and_user_attributes(run_dir: Path, url: str) -> None:
    assert _export(run_dir, url) == 0
    trials = _by_id(optuna.load_study(storage=url, study_name="synth"))
    assert len(trials) == 12
    states = {trial_id: t.state for trial_id, t in trials.items()}
    assert states.pop("t09") == TrialState.FAIL
    assert states.pop("t10") == TrialState.PRUNED  # stopped early
    assert states.pop("t11") == TrialState.PRUNED  # done, but pgd_acc was not measured
    assert set(states.values()) == {TrialState.COMPLETE}
    assert trials["t09"].values is None and trials["t10"].values is None

    frame = stored_table(run_dir).set_index("trial_id")
    for trial_id, trial in trials.items():
        row = frame.loc[trial_id]
        assert trial.params == {"L": row["L"], "F": row["F"], "seed": row["seed"]}
        assert trial.user_attrs["status"] == row["status"]
        assert trial.user_attrs["backbone"] == "darts"
        if trial_id == "t09":
            assert "genotype" not in trial.user_attrs and "genotype_hash" not in trial.user_attrs
            continue
        genotype = Genotype.loads(trial.user_attrs["genotype"])
        assert genotype.genotype_hash() == trial.user_attrs["genotype_hash"] == row["genotype_hash"]
    # The grid's values, in the grid's order, are each param's choices.
    distributions = trials["t00"].distributions
    assert distributions == {
        "L": CategoricalDistribution([1.0, 2.0, 3.0]),
        "F": CategoricalDistribution([100.0, 200.0, 300.0]),
        "seed": CategoricalDistribution([0, 1]),
    }


def test_export_again_replaces_its_study_without_duplicating(
    run_dir: Path, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _export(run_dir, url) == 0
    capsys.readouterr()
    assert _export(run_dir, url) == 0
    assert capsys.readouterr().out.rstrip().endswith("; replaced the earlier export")
    study = optuna.load_study(storage=url, study_name="synth")
    assert sorted(_by_id(study)) == [f"t{i:02d}" for i in range(12)]
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["synth"]
    # --out and --optuna-storage together: both written; another name is a second study.
    out = tmp_path / "files"
    assert _export(run_dir, url, "--study-name", "synth-2", "--out", str(out)) == 0
    assert (out / "front.csv").is_file()
    names = {s.study_name for s in optuna.get_all_study_summaries(url)}
    assert names == {"synth", "synth-2"}
    assert (
        optuna.load_study(storage=url, study_name="synth-2").user_attrs[SWEEP_ATTR]
        == (study.user_attrs[SWEEP_ATTR])
    )


def test_a_study_the_export_did_not_write_is_refused(
    run_dir: Path, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    foreign = optuna.create_study(storage=url, study_name="synth", directions=["minimize"])
    foreign.add_trial(optuna.trial.create_trial(value=1.0))
    assert _export(run_dir, url) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("e2rnas: error: --study-name: ")
    assert "already holds a study named 'synth', written by no export of a sweep" in err
    assert len(optuna.load_study(storage=url, study_name="synth").trials) == 1
    # Another sweep's export under the same name (the same file run elsewhere) is refused too.
    other = make_run(tmp_path, GRID_SWEEP, name="other-run")
    assert _export(other, url, "--study-name", "shared") == 0
    assert _export(run_dir, url, "--study-name", "shared") == 2
    err = capsys.readouterr().err
    assert "written by the export of sweep 'synth-" in err and "another --study-name" in err


@pytest.mark.parametrize(
    ("storage", "expected"),
    [
        ("notaurl", "--optuna-storage: got '<a database URL that does not parse>'; expected an"),
        ("sqlite:////no/such/dir/optuna.db", "cannot open an Optuna storage there"),
        ("foo://bar", "cannot open an Optuna storage there (Can't load plugin"),
        ("env:E2RNAS_TEST_UNSET_URL", "names the environment variable 'E2RNAS_TEST_UNSET_URL'"),
        (
            "postgresql+psycopg://user:secret-pw@127.0.0.1:1/optuna",
            "--optuna-storage postgresql+psycopg://user:***@127.0.0.1:1/optuna: cannot open",
        ),
    ],
)
def test_a_bad_storage_is_one_line_and_writes_nothing(
    run_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    storage: str,
    expected: str,
) -> None:
    out = tmp_path / "files"
    assert _export(run_dir, storage, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("e2rnas: error: ")
    assert expected in err and "secret-pw" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--objectives", "test_error,bogus"], "unknown objective(s) 'bogus'"),
        (["--study-name", ""], "--study-name: got ''; expected a non-empty name"),
    ],
)
def test_bad_objectives_and_names_are_one_line(
    run_dir: Path, url: str, capsys: pytest.CaptureFixture[str], flags: list[str], expected: str
) -> None:
    assert _export(run_dir, url, *flags) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err
    assert optuna.get_all_study_names(url) == []


def test_export_needs_a_destination(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["export", str(run_dir)]) == 2
    assert "expected --out DIR2, --optuna-storage URL or both" in capsys.readouterr().err
    assert cli.main(["export", str(run_dir), "--study-name", "x", "--out", "o"]) == 2
    assert "--study-name: names a study of --optuna-storage" in capsys.readouterr().err


def test_optuna_visualization_draws_the_pareto_front(run_dir: Path, url: str) -> None:
    assert _export(run_dir, url, "--objectives", "test_error,params_m,pgd_acc") == 0
    study = optuna.load_study(storage=url, study_name="synth")
    figure = optuna.visualization.plot_pareto_front(study)
    front = next(trace for trace in figure.data if "Best Trial" in trace.hovertemplate)
    points = set(zip(front.x, front.y, front.z, strict=True))
    assert points == {tuple(t.values) for t in study.best_trials}
    assert figure.layout.scene.xaxis.title.text == "test_error"
    # Five objectives: the plot takes three of them, as Optuna documents.
    assert _export(run_dir, url, "--study-name", "five") == 0
    five = optuna.load_study(storage=url, study_name="five")
    figure = optuna.visualization.plot_pareto_front(
        five, targets=lambda t: t.values[:3], target_names=list(FRONT_METRICS[:3])
    )
    assert len(figure.data) >= 1


def test_a_sampled_range_is_a_float_distribution(
    tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    def rows(sweep_id: str) -> list[dict[str, Any]]:
        record = {"seed": 0, "genotype": None, "genotype_hash": None}
        return [
            _row(sweep_id, i, "done", {**record, "L": low, "F": 60.0 * (i + 1), **metrics})
            for i, (low, metrics) in enumerate(
                [(0.7, {"test_error": 3.0, "params_m": 1.0}), (3.2, {"test_error": 2.0})]
            )
        ]

    run_dir = make_run(tmp_path, OPTUNA_SWEEP, rows)
    assert _export(run_dir, url) == 0
    study = optuna.load_study(storage=url, study_name="sampled")
    assert study.metric_names == ["test_error", "params_m"]  # the strategy's objectives
    first, second = study.trials
    assert first.distributions == {
        "L": FloatDistribution(0.5, 4.0),
        "F": FloatDistribution(50.0, 400.0),
        "seed": CategoricalDistribution([0]),
    }
    assert first.params == {"L": 0.7, "F": 60.0, "seed": 0} and first.values == [3.0, 1.0]
    assert second.state == TrialState.PRUNED  # no params_m: off the front


def test_the_analysis_api_without_the_command_line(url: str) -> None:
    frame = results_frame(_rows("sw"))
    space = param_distributions(frame)  # the rows' own values, the failed row's included
    assert space["seed"] == CategoricalDistribution([0, 1])
    done = export_study(frame, FRONT_METRICS, url, "api", "sw", distributions=space)
    assert done.states == {"COMPLETE": 9, "FAIL": 1, "PRUNED": 2} and not done.replaced
    bad = frame.assign(status=["completed"] * len(frame))
    with pytest.raises(ConfigError, match=r"^trial t00: status: got 'completed'; expected one"):
        export_study(bad, FRONT_METRICS, url, "api", "sw")
    assert len(optuna.load_study(storage=url, study_name="api").trials) == 12  # untouched
    out_of_range = {"L": FloatDistribution(0.0, 2.0)}
    with pytest.raises(ConfigError, match=r"^trial t06: The value 3.0 of parameter 'L' isn't"):
        export_study(frame, FRONT_METRICS, url, "api", "sw", distributions=out_of_range)


# -- the optuna strategy's storage ----------------------------------------------------------


def test_the_optuna_strategy_keeps_its_study_in_the_storage(url: str) -> None:
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    text = OPTUNA_SWEEP + f"  sampler: nsga2\n  storage: '{url}'\n"
    spec = parse_sweep(text, "sweep.yaml")
    args = optuna_search_args(spec.strategy, "sampled-1234")
    assert args["study_name"] == "sampled-1234"
    assert isinstance(args["sampler"], optuna.samplers.NSGAIISampler)
    space = {"L": tune.uniform(0.5, 4.0), "F": tune.uniform(50.0, 400.0)}
    search = OptunaSearch(space, metric=["test_error", "params_m"], mode=["min", "min"], **args)
    assert search.suggest("trial-1") is not None
    study = optuna.load_study(storage=url, study_name="sampled-1234")
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE] * 2
    assert len(study.trials) == 1 and set(study.trials[0].params) == {"L", "F"}
    named = parse_sweep(text.replace("nsga2", "tpe") + "  study_name: mine\n", "sweep.yaml")
    assert optuna_search_args(named.strategy, "sampled-1234")["study_name"] == "mine"
    assert "storage" not in optuna_search_args(parse_sweep(OPTUNA_SWEEP, "s").strategy, "x")
    assert optuna_search_args(parse_sweep(GRID_SWEEP, "s").strategy, "x") == {}


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("  storage: 'postgresql://u:pw@db/x'\n", "strategy.storage: a URL with a password"),
        ("  storage: optuna.db\n", "strategy.storage: expected an SQLAlchemy URL"),
        ("  study_name: lone\n", "study_name: names the study in storage; give storage too"),
    ],
)
def test_bad_strategy_storage_is_refused(line: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_sweep(OPTUNA_SWEEP + line, "sweep.yaml")


def test_a_referenced_storage_pickles_as_its_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ray Tune pickles its searcher (study and storage) into the experiment's directory.
    path = tmp_path / "secret-place.db"
    monkeypatch.setenv("E2RNAS_TEST_OPTUNA_URL", f"sqlite:///{path}")
    storage = open_storage("env:E2RNAS_TEST_OPTUNA_URL", "strategy.storage")
    optuna.create_study(storage=storage, study_name="s")
    data = pickle.dumps(storage)
    assert b"secret-place" not in data and b"env:E2RNAS_TEST_OPTUNA_URL" in data
    assert pickle.loads(data).get_all_studies()[0].study_name == "s"
    monkeypatch.delenv("E2RNAS_TEST_OPTUNA_URL")
    with pytest.raises(ConfigError, match=r"strategy\.storage: env:E2RNAS_TEST_OPTUNA_URL names"):
        pickle.loads(data)
    with pytest.raises(StoreError, match="cannot open"):
        open_storage(f"sqlite:///{tmp_path}/no/such/dir.db")


def test_a_sweep_whose_storage_cannot_open_stops_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "searched.yaml"
    bad = "sqlite:////no/such/dir/optuna.db"
    path.write_text(SEARCHED_SWEEP.format(url=bad), encoding="utf-8")
    run_dir = tmp_path / "run"
    assert cli.main(["sweep", "run", str(path), "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"strategy.storage {bad}: cannot open an Optuna storage there" in err
    assert not (run_dir / "sweep.json").exists()


SEARCHED_SWEEP = """\
name: searched
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides: {{epochs: 1, steps_per_epoch: 1, order: first, nodes: 2}}
evaluation:
  mode: proxy
  overrides: {{epochs: 1}}
grid:
  seed: [0]
strategy:
  kind: optuna
  sampler: nsga2
  num_samples: 2
  seed: 0
  L: {{low: 0.02, high: 0.12}}
  F: {{low: 0.3, high: 1.5}}
  objectives: [test_error, params_m]
  storage: '{url}'
resources: {{gpu: 0, cpu: 1, max_concurrent: 1}}
max_trials: 2
"""


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_optuna_sweep_keeps_its_study_and_exports_beside_it(
    tmp_path: Path, url: str
) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from sweepkit import e2rnas_env

    path = tmp_path / "searched.yaml"
    path.write_text(SEARCHED_SWEEP.format(url=url), encoding="utf-8")
    run_dir = tmp_path / "run"
    script = Path(sys.executable).parent / "e2rnas"
    command = [str(script), "sweep", "run", str(path), "--out", str(run_dir)]
    done = subprocess.run(
        command, cwd=tmp_path, env=e2rnas_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sweep_id = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))["sweep_id"]
    searched = optuna.load_study(storage=url, study_name=sweep_id)  # the search's own study
    assert [t.state for t in searched.trials] == [TrialState.COMPLETE] * 2
    assert _export(run_dir, url) == 0
    exported = optuna.load_study(storage=url, study_name="searched")
    frame = stored_table(run_dir).sort_values("trial_id")
    sampled = {(t.params["L"], t.params["F"]) for t in searched.trials}
    assert {(t.params["L"], t.params["F"]) for t in exported.trials} == sampled
    assert sorted(t.user_attrs["trial_id"] for t in exported.trials) == list(frame["trial_id"])
    front = pareto_answer(frame, directions(["test_error", "params_m"]))["front"]
    values = {(r["test_error"], r["params_m"]) for r in front}
    assert {tuple(t.values) for t in exported.best_trials} == values
    # The search's study is no export of this sweep: exporting under its name is refused.
    assert _export(run_dir, url, "--study-name", sweep_id) == 2
    assert len(optuna.load_study(storage=url, study_name=sweep_id).trials) == 2
