"""Tests of experiment tracking (``service/orchestration/tracking.py``): the ``tracking``
section's checks, the callbacks it builds, and what one real sweep leaves in each tracker.

The sweep is one trial of the ``cpu-tiny`` search (a two-node cell, two one-step epochs, a
one-epoch proxy) with MLflow, TensorBoard and W&B (offline) all on, run once by the real command
line on an embedded local Ray and read back by the trackers' own readers: MLflow's client on
its SQLite store, TensorBoard's ``EventAccumulator``, and W&B's offline run directory. Nothing
touches the network: W&B is offline, MLflow's store a local file, telemetry off. The sweep
leaves MLflow and W&B at their defaults; the callbacks' explicit settings are checked without
a sweep (a new MLflow SQLite store costs seconds of migrations, so that test names a server).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import SCRIPT, e2rnas_env

from search_core.errors import ConfigError
from service.objectives import EPOCH_METRICS, FRONT_METRICS, SEARCH_OBJECTIVES
from service.orchestration.spec import load_sweep, parse_sweep
from service.orchestration.tracking import (
    INSTALL_FIX,
    prepare_trackers,
    require_package,
    tracker_callbacks,
    trial_genotype,
)
from service.yamltext import excerpt

SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"
TRACKER_MODULES = ("mlflow", "tensorboardX", "wandb", "tensorboard")
needs_trackers = pytest.mark.skipif(
    any(importlib.util.find_spec(module) is None for module in TRACKER_MODULES),
    reason=f"the tracking packages are optional and not installed: {INSTALL_FIX}",
)
EPOCHS = 2
EXPERIMENT = "tracked-exp"
TRACKED_SWEEP = """\
name: tracked
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides:
    order: first
    nodes: 2
    batch_size: 8
    epochs: {epochs}
    steps_per_epoch: 1
evaluation:
  mode: proxy
  overrides:
    epochs: 1
grid:
  L: [0.03]
  F: [0.6]
resources:
  gpu: 0
  cpu: 1
max_trials: 1
tracking:  # MLflow and W&B where they go by default: into the run directory
  mlflow: {{experiment: {experiment}}}
  tensorboard: true
  wandb: {{mode: offline, project: e2rnas-test}}
"""
OFFLINE_ENV = {
    "WANDB_SILENT": "true",
    "WANDB_DISABLE_GIT": "true",
    "WANDB_ERROR_REPORTING": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
}
BASE = """\
name: t
search: {preset: cpu-tiny}
grid: {L: [0.03], F: [0.6]}
"""


# -- the section's checks: one line naming the field, nothing imported -----------------------

BAD = {
    "unknown tracker": ("tracking: {colour: red}", "tracking.colour: unknown key; expected one of"),
    "unknown mlflow key": (
        "tracking: {mlflow: {uri: 'http://host'}}",
        "tracking.mlflow.uri: unknown key; expected one of tracking_uri, experiment",
    ),
    "unknown wandb key": ("tracking: {wandb: {key: abc}}", "tracking.wandb.key: unknown key"),
    "nothing on": ("tracking: {tensorboard: false}", "tracking: turns no tracker on"),
    "relative path": (
        "tracking: {mlflow: {tracking_uri: mlruns}}",
        "tracking.mlflow.tracking_uri: 'mlruns' is a path; a relative one",
    ),
    "relative sqlite": (
        "tracking: {mlflow: {tracking_uri: 'sqlite:///mlflow.db'}}",
        "tracking.mlflow.tracking_uri: 'sqlite:///mlflow.db': a relative SQLite path",
    ),
    "relative file URI": (
        "tracking: {mlflow: {tracking_uri: 'file:mlruns'}}",
        "a file URI needs an absolute path",
    ),
    "file URI on a host": (
        "tracking: {mlflow: {tracking_uri: 'file://host/mlruns'}}",
        "a file URI needs an absolute path",
    ),
    "unknown scheme": (
        "tracking: {mlflow: {tracking_uri: 'ftp://host/x'}}",
        "tracking.mlflow.tracking_uri: unknown tracking URI scheme 'ftp'",
    ),
    "no host": ("tracking: {mlflow: {tracking_uri: 'http:///x'}}", "no host"),
    "password": (
        "tracking: {mlflow: {tracking_uri: 'https://me:secret@host:5000'}}",
        "MLFLOW_TRACKING_PASSWORD",
    ),
    "spaces": ("tracking: {mlflow: {tracking_uri: 'http://a b'}}", "holds spaces"),
    "wandb mode": ("tracking: {wandb: {mode: cloud}}", "tracking.wandb.mode: "),
    "wandb project": (
        "tracking: {wandb: {project: 'a/b'}}",
        "tracking.wandb.project: expected 1 to 128 letters",
    ),
    "wandb relative dir": (
        "tracking: {wandb: {dir: wandb}}",
        "tracking.wandb.dir: 'wandb' is relative",
    ),
    "tensorboard not a bool": ("tracking: {tensorboard: maybe}", "tracking.tensorboard: "),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_tracking_section_fails_with_one_line_naming_the_field(case: str) -> None:
    text, expected = BAD[case]
    with pytest.raises(ConfigError) as error:
        parse_sweep(BASE + text + "\n", "sweeps/bad.yaml")
    message = str(error.value)
    assert message.startswith("sweeps/bad.yaml: tracking")
    assert expected in message
    assert "\n" not in message


def test_absolute_stores_and_servers_are_accepted_as_written() -> None:
    for uri in (
        "sqlite:////abs/mlflow.db",
        "file:///abs/mlruns",
        "http://127.0.0.1:5000",
        "https://mlflow.example.org/prefix",
    ):
        spec = parse_sweep(BASE + f"tracking: {{mlflow: {{tracking_uri: '{uri}'}}}}\n")
        assert spec.tracking is not None and spec.tracking.mlflow is not None
        assert spec.tracking.mlflow.tracking_uri == uri
    spec = parse_sweep(BASE + "tracking: {tensorboard: true}\n")
    assert spec.tracking is not None and spec.tracking.trackers() == ["tensorboard"]
    assert parse_sweep(BASE).tracking is None


def test_the_example_sweep_loads_with_every_tracker_on() -> None:
    path = SWEEPS / "tracking.yaml"
    assert path.read_text(encoding="utf-8").startswith("#")
    spec = load_sweep(path)
    assert spec.name == "tracking"
    assert spec.tracking is not None
    assert spec.tracking.trackers() == ["mlflow", "tensorboard", "wandb"]


def test_a_missing_package_is_one_line_naming_the_section_and_the_fix() -> None:
    with pytest.raises(ConfigError) as error:
        require_package("tracking.mlflow", "e2rnas_no_such_tracker_package")
    assert str(error.value) == (
        "tracking.mlflow: needs the Python package 'e2rnas_no_such_tracker_package', which is "
        "not installed here; pip install 'e2rnas-sweeps[tracking]'"
    )


def test_the_schema_imports_no_tracker_and_no_ray() -> None:
    """The tracking packages are optional: the service imports without them."""
    code = (
        "import sys, service.orchestration.spec, service.orchestration.tracking\n"
        "print(sorted({'ray', 'mlflow', 'wandb', 'tensorboardX', 'torch'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert done.stdout.strip() == "[]"


# -- the callbacks, built for real -----------------------------------------------------------


@needs_trackers
def test_the_callbacks_follow_the_section_in_the_order_tune_calls_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.air.integrations.mlflow import MLflowLoggerCallback
    from ray.air.integrations.wandb import WandbLoggerCallback
    from ray.tune import Callback
    from ray.tune.logger import TBXLoggerCallback

    monkeypatch.delenv("WANDB_MODE", raising=False)
    text = (
        "tracking: {mlflow: {tracking_uri: 'http://127.0.0.1:5000', experiment: e},"
        f" tensorboard: true, wandb: {{mode: offline, project: p, dir: '{tmp_path}/wb'}}}}\n"
    )
    spec = parse_sweep(BASE + text)
    prepare_trackers(spec)
    assert os.environ["WANDB_MODE"] == "offline"  # where Ray's callback reads it
    genotypes, mlflow, tensorboard, wandb = tracker_callbacks(spec, tmp_path / "run")
    assert isinstance(genotypes, Callback)  # before MLflow's upload at the trial's end
    assert isinstance(mlflow, MLflowLoggerCallback)
    assert (mlflow.tracking_uri, mlflow.experiment_name) == ("http://127.0.0.1:5000", "e")
    assert mlflow.should_save_artifact and mlflow.tags == {"sweep": "t"}
    assert isinstance(tensorboard, TBXLoggerCallback)
    assert isinstance(wandb, WandbLoggerCallback)
    assert wandb.project == "p"
    assert wandb.kwargs == {"mode": "offline", "dir": str(tmp_path / "wb")}
    assert (tmp_path / "wb").is_dir()  # made here: W&B's logging actor runs on this node


@needs_trackers
def test_a_file_store_opens_where_mlflow_allows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow 3 opens a file store only with MLFLOW_ALLOW_FILE_STORE=true (older versions
    always): then its artifacts stay inside the store; else one line names the field."""
    import mlflow.environment_variables as variables
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = (tmp_path / "mlruns").as_uri()
    spec = parse_sweep(BASE + f"tracking: {{mlflow: {{tracking_uri: '{uri}'}}}}\n")
    if hasattr(variables, "MLFLOW_ALLOW_FILE_STORE"):
        monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
        with pytest.raises(ConfigError) as error:
            tracker_callbacks(spec, tmp_path)
        message = str(error.value)
        # The URI as the project quotes users' values (shortened when long: xdist's paths).
        quoted = excerpt(uri)
        assert message.startswith(f"tracking.mlflow.tracking_uri: MLflow cannot use {quoted}: ")
        assert "MLFLOW_ALLOW_FILE_STORE" in message and "\n" not in message
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    tracker_callbacks(spec, tmp_path)
    experiment = MlflowClient(uri).get_experiment_by_name("t")
    assert experiment is not None
    assert experiment.artifact_location.startswith(uri)


@needs_trackers
def test_the_genotype_is_read_from_the_trial_directory_else_its_checkpoint(
    tmp_path: Path,
) -> None:
    from ray.tune import Checkpoint

    trial_dir, saved = tmp_path / "trial", tmp_path / "checkpoint"
    trial_dir.mkdir()
    saved.mkdir()
    checkpoint = Checkpoint.from_directory(str(saved))
    assert trial_genotype(trial_dir, None) is None
    assert trial_genotype(trial_dir, checkpoint) is None  # a search stopped early
    (saved / "genotype.json").write_text('{"from": "checkpoint"}\n', encoding="utf-8")
    assert trial_genotype(trial_dir, checkpoint) == '{"from": "checkpoint"}\n'
    (trial_dir / "genotype.json").write_text('{"from": "trial"}\n', encoding="utf-8")
    assert trial_genotype(trial_dir, checkpoint) == '{"from": "trial"}\n'


# -- one real sweep, every tracker on --------------------------------------------------------


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tracked sweep, run once by ``e2rnas sweep run``; its folder, run directory, trial
    directory, the trial's search records and its results row."""
    folder = tmp_path_factory.mktemp("tracked")
    path = folder / "tracked.yaml"
    text = TRACKED_SWEEP.format(epochs=EPOCHS, folder=folder, experiment=EXPERIMENT)
    path.write_text(text, encoding="utf-8")
    run_dir = folder / "run"
    env = {**e2rnas_env(), **OFFLINE_ENV}
    env.pop("WANDB_MODE", None)  # the section's mode, offline, is what counts
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        env[name] = str(folder / "wandb-home")
    done = subprocess.run(
        [str(SCRIPT), "sweep", "run", str(path), "--out", str(run_dir)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (trial_dir,) = (run_dir / "trials").iterdir()
    lines = (trial_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    row = pd.read_parquet(run_dir / "results.parquet").iloc[0]
    return {
        "folder": folder,
        "run_dir": run_dir,
        "trial_dir": trial_dir,
        "records": [json.loads(line) for line in lines],
        "row": row,
    }


def _mlflow_run(tracked_run: dict[str, Any]) -> tuple[Any, str]:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tracked_run['run_dir']}/mlflow.db"  # the default store
    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=[EXPERIMENT])
    assert len(runs) == 1
    assert runs["status"].tolist() == ["FINISHED"]
    assert runs["params.L"].tolist() == ["0.03"] and runs["tags.sweep"].tolist() == ["tracked"]
    return MlflowClient(uri), str(runs["run_id"].iloc[0])


@pytest.mark.integration
@pytest.mark.slow
@needs_trackers
def test_mlflow_has_every_epochs_objectives_and_the_front_metrics(
    tracked_run: dict[str, Any],
) -> None:
    """One step per report: each search epoch, then the final report one step after."""
    client, run_id = _mlflow_run(tracked_run)
    records = tracked_run["records"]
    assert [r["epoch"] for r in records] == list(range(1, EPOCHS + 1))
    for name in EPOCH_METRICS:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        assert [step for step, _ in history] == list(range(1, EPOCHS + 2)), name
        values = [value for _, value in history[:EPOCHS]]
        assert values == pytest.approx([r[name] for r in records]), name
    row = tracked_run["row"]
    for name in FRONT_METRICS:
        (*_, last) = client.get_metric_history(run_id, name)
        assert last.step == EPOCHS + 1
        assert last.value == pytest.approx(row[name]), name


@pytest.mark.integration
@pytest.mark.slow
@needs_trackers
def test_mlflow_keeps_the_genotype_as_an_artifact(tracked_run: dict[str, Any]) -> None:
    client, run_id = _mlflow_run(tracked_run)
    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"genotype.json", "result.json", "progress.csv"} <= names
    local = Path(client.download_artifacts(run_id, "genotype.json", str(tracked_run["folder"])))
    written = (tracked_run["trial_dir"] / "genotype.json").read_text(encoding="utf-8")
    assert local.read_text(encoding="utf-8") == written
    assert json.loads(written) == json.loads(tracked_run["row"]["genotype"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None  # beside the database, not in the driver's cwd (mlruns/)
    assert experiment.artifact_location == (tracked_run["run_dir"] / "mlartifacts").as_uri()
    assert not (tracked_run["folder"] / "mlruns").exists()
    (tune_trial,) = [
        p for p in (tracked_run["run_dir"] / "tune" / "tracked").iterdir() if p.is_dir()
    ]
    assert (tune_trial / "genotype.json").read_text(encoding="utf-8") == written


@pytest.mark.integration
@pytest.mark.slow
@needs_trackers
def test_tensorboard_has_one_step_per_epoch_of_each_objective(
    tracked_run: dict[str, Any],
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped, unused-ignore]
        EventAccumulator,
    )

    tune_dir = tracked_run["run_dir"] / "tune" / "tracked"
    (events,) = tune_dir.glob("*/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    tags = set(accumulator.Tags()["scalars"])
    records = tracked_run["records"]
    for name in EPOCH_METRICS:
        scalars = accumulator.Scalars(f"ray/tune/{name}")
        assert [s.step for s in scalars] == list(range(1, EPOCHS + 2)), name
        values = [s.value for s in scalars[:EPOCHS]]
        assert values == pytest.approx([r[name] for r in records], rel=1e-6), name
    for name in FRONT_METRICS:
        assert f"ray/tune/{name}" in tags
        (last,) = [s for s in accumulator.Scalars(f"ray/tune/{name}") if s.step == EPOCHS + 1]
        assert last.value == pytest.approx(tracked_run["row"][name], rel=1e-6), name


@pytest.mark.integration
@pytest.mark.slow
@needs_trackers
def test_wandb_writes_one_offline_run_per_trial(tracked_run: dict[str, Any]) -> None:
    (offline,) = (tracked_run["run_dir"] / "wandb").glob("offline-run-*")  # the default dir
    (records,) = offline.glob("run-*.wandb")
    data = records.read_bytes()
    # wandb's record format has no Python reader any more; the keys are plain protobuf strings
    for name in (*SEARCH_OBJECTIVES, *FRONT_METRICS):
        assert name.encode() in data, name
    assert not (tracked_run["folder"] / "wandb").exists()  # not the driver's cwd
