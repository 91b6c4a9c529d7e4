"""Tests of sweeps on Ray Tune: ``e2rnas sweep run|resume|status|submit``, ``pareto``, ``export``.

Bad input is checked in-process, without Ray. The integration tests run the real command line
as a subprocess on an embedded local Ray (or a two-node loopback cluster) with a 2-point grid of
the ``cpu-tiny`` search cut to a few one-step epochs and a one-epoch proxy evaluation, and
check every artefact: the results table, the database, the export files and the statuses.
Sweeps on a ``file://`` storage URI check that the trials' files reach the run directory only
through the storage, and that status and resume work from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import SharedRun, e2rnas_env, start_sweep

from service import cli
from service.cli.sweep import run_dir_for
from service.errors import SweepStateError
from service.orchestration.addresses import free_port, free_ports
from service.orchestration.collect import collect, stored_table
from service.orchestration.processes import group_alive
from service.orchestration.rundir import (
    read_scheduler_state,
    read_sweep_state,
    set_status,
    sweep_id_for,
    trial_key,
    trial_states,
)
from service.orchestration.spec import load_sweep

SCRIPT = Path(sys.executable).parent / "e2rnas"
RAY = Path(sys.executable).parent / "ray"
EXPORT_FILES = {"genotypes.json", "genotypes.py", "front.csv", "front.parquet", "robust.csv"}

TINY_SWEEP = """\
name: {name}
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides:
    order: first
    nodes: 2  # a cell of 5 edges, not 14: the search steps cost a third
    epochs: {epochs}
    steps_per_epoch: {steps}
evaluation:
  mode: proxy
  overrides:
    epochs: 1
grid:
  L: [0.03, 0.08]
  F: [0.6]
resources:
  gpu: 0
  cpu: 1
max_trials: 4
"""


def _write_sweep(tmp_path: Path, name: str = "tiny", epochs: int = 1, steps: int = 1) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_SWEEP.format(name=name, epochs=epochs, steps=steps), encoding="utf-8")
    return path


def _e2rnas(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args],
        cwd=cwd,
        env=e2rnas_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _epochs(trial_dir: Path) -> list[int]:
    lines = (trial_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["epoch"] for line in lines if line.strip()]


def _check_artefacts(run_dir: Path, trials: int, epochs: int | None) -> pd.DataFrame:
    """Every artefact of a finished sweep: rows, database, export, statuses, and each trial's
    epochs, each run once (``epochs`` of every trial, or None: as its config.json says)."""
    state = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))
    assert state["status"] == "done"
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == trials
    assert set(frame["status"]) == {"done"}
    assert set(frame["evaluation"]) == {"proxy"}
    assert frame["L"].notna().all() and frame["F"].notna().all()
    assert frame[["test_error", "params_m", "flops_m", "pgd_acc", "ood_aupr"]].notna().all().all()
    assert frame["trial_id"].is_unique
    with sqlite3.connect(run_dir / "results.db") as db:
        assert db.execute("select count(*) from trials").fetchone() == (trials,)
        assert db.execute("select status from sweeps").fetchall() == [("done",)]
    export = run_dir / "export"
    assert {p.name for p in export.iterdir() if not p.name.startswith(".")} == EXPORT_FILES
    front = pd.read_csv(export / "front.csv")
    assert 1 <= len(front) <= trials
    assert set(front["trial_id"]) <= set(frame["trial_id"])
    genotypes = json.loads((export / "genotypes.json").read_text(encoding="utf-8"))
    assert genotypes and all("genotype_hash" in g for g in genotypes)
    for trial in trial_states(run_dir):
        assert trial["status"] == "done"
        config = json.loads((Path(trial["dir"]) / "config.json").read_text(encoding="utf-8"))
        expected = config["epochs"] if epochs is None else epochs
        assert _epochs(Path(trial["dir"])) == list(range(1, expected + 1))
    return frame


# -- bad input: one line, exit 2, nothing started -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: x\ngrid: [1, 2\n", "malformed YAML"),
        ("name: x\ncolour: red\ngrid: {L: [1], F: [1]}\n", "colour: unknown key"),
        ("name: x\ngrid: {L: [-2], F: [1]}\n", "grid.L[0]"),
        (
            "name: x\nsearch: {preset: cpu-tiny}\nmax_trials: 2\ngrid: {L: [1, 2], F: [1, 2]}\n",
            "max_trials",
        ),
    ],
    ids=["malformed", "unknown-key", "negative-bound", "over-cap"],
)
def test_bad_sweep_file_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    out = tmp_path / "run"
    for command in (["sweep", "run", str(path), "--out", str(out)], ["sweep", "submit", str(path)]):
        if command[1] == "submit":
            command += ["--address", "http://127.0.0.1:1"]
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("e2rnas: error: ")
        assert expected in err
    assert not out.exists()


def test_unreachable_address_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_sweep(tmp_path)
    port = free_port()  # nothing listens on it once the socket is closed
    out = tmp_path / "run"
    commands = [
        ["sweep", "run", str(path), "--out", str(out), "--address", f"127.0.0.1:{port}"],
        ["sweep", "submit", str(path), "--out", str(out), "--address", f"http://127.0.0.1:{port}"],
        ["sweep", "status", "raysubmit_x", "--address", f"http://127.0.0.1:{port}"],
    ]
    for command in commands:
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "nothing answers" in err
    assert not out.exists()


def test_run_refuses_a_directory_that_holds_a_sweep(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write_sweep(tmp_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "sweep.json").write_text("{}", encoding="utf-8")
    assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == 2
    assert "already holds a sweep" in capsys.readouterr().err
    for command in (["sweep", "resume", str(tmp_path)], ["pareto", str(tmp_path)]):
        assert cli.main(command) == 2
        assert "no sweep.json" in capsys.readouterr().err


def test_trial_key_is_stable_and_safe() -> None:
    assert trial_key({"L": 0.03, "F": 0.6, "seed": 0}) == "F=0.6_L=0.03_seed=0"
    assert trial_key({"seed": 0, "F": 0.6, "L": 0.03}) == "F=0.6_L=0.03_seed=0"
    odd = trial_key({"backbone": "a/b c"})
    assert "/" not in odd and " " not in odd
    assert trial_key({}) == "default"


# -- driving a sweep in the background ----------------------------------------------------------


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _trial_json(run_dir: Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted((run_dir / "trials").glob("*/trial.json")):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")) | {"dir": path.parent})
        except json.JSONDecodeError:
            continue
    return found


# -- the session's reference sweep, read ----------------------------------------------------


@pytest.mark.integration
@pytest.mark.slow
def test_local_sweep_writes_every_artefact_and_collects_idempotently(
    reference_sweep: SharedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The session's undisturbed reference sweep (tests/sweepkit.py: 2 trials, 4 epochs); a
    # worker killed in a run of the same file is tests/faults/test_sweep_faults.py.
    run_dir, path = reference_sweep.run_dir, reference_sweep.sweep_file
    assert reference_sweep.returncode == 0, reference_sweep.stderr[-3000:]
    for name in ("results.parquet", "results.db", "export/front.csv", "export/genotypes.py"):
        assert str(run_dir / name) in reference_sweep.stdout
    # Progress is logged on stderr, one line per event, each naming the sweep.
    sweep_id = sweep_id_for(load_sweep(path), run_dir.resolve())
    lines = reference_sweep.stderr.splitlines()
    finished = [line for line in lines if "trial F=0.6_L=0.03: done" in line]
    assert len(finished) == 1 and f"[sweep {sweep_id}]" in finished[0], reference_sweep.stderr[
        -3000:
    ]
    frame = _check_artefacts(run_dir, trials=2, epochs=4)
    assert sorted(frame["L"]) == [0.03, 0.08]
    # The interactive report: one self-contained page, plotly.js inline once, no CDN.
    report = run_dir / "report.html"
    assert str(report) in reference_sweep.stdout
    page = report.read_text()
    assert page.count("* plotly.js v") == 1 and '<script src="https://' not in page
    assert all(h in page for h in frame["genotype_hash"])

    # Tune's own per-trial records (CSV and JSON) are kept; no TensorBoard writer runs in the
    # driver (its import alone pulled torch into every driver start).
    trial_dirs = [p.parent for p in run_dir.glob("tune/*/*/result.json")]
    assert len(trial_dirs) == 2 and all((d / "progress.csv").exists() for d in trial_dirs)
    assert not list(run_dir.glob("tune/**/events.out.tfevents*"))

    # Collecting again gives the same rows, in the table and in the database.
    for _ in range(2):
        collected = collect(run_dir)
        assert collected.rows == 2
    again = pd.read_parquet(run_dir / "results.parquet")
    pd.testing.assert_frame_equal(frame, again)
    stored = stored_table(run_dir)
    assert sorted(stored["trial_id"]) == sorted(frame["trial_id"])
    _check_artefacts(run_dir, trials=2, epochs=4)
    # The sweep's row carries its final status and progress, as the web service shows them.
    from service.results.store import ResultStore

    state = read_sweep_state(run_dir)
    store = ResultStore(state["database_url"])
    try:
        row = store.get_sweep(state["sweep_id"])
    finally:
        store.close()
    assert row["status"] == "done"
    assert row["progress"] == {
        "total": 2,
        "pending": 0,
        "running": 0,
        "done": 2,
        "stopped": 0,
        "failed": 0,
        "epochs": 8,
    }

    assert cli.main(["sweep", "status", str(run_dir)]) == 0
    assert "done, 2/2 trials done" in capsys.readouterr().out
    assert cli.main(["sweep", "status", str(run_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["status"], status["total"], status["done"]) == ("done", 2, 2)
    assert [t["epochs"] for t in status["trials"]] == [4, 4]
    set_status(run_dir, "failed")  # a failed sweep's status exits 1, as its run did
    assert cli.main(["sweep", "status", str(run_dir), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["status"] == "failed"
    set_status(run_dir, "done")
    assert cli.main(["pareto", str(run_dir), "--objectives", "test_error,params_m"]) == 0
    printed = capsys.readouterr().out
    assert "over test_error, params_m" in printed and "hypervolume" in printed
    assert cli.main(["pareto", str(run_dir), "--json"]) == 0
    pareto = json.loads(capsys.readouterr().out)
    assert set(pareto) == {"objectives", "front", "ranks", "hypervolume", "reference", "knee"}
    assert len(pareto["ranks"]) == 2 and pareto["front"]
    assert cli.main(["export", str(run_dir), "--out", str(tmp_path / "exp")]) == 0
    assert {p.name for p in (tmp_path / "exp").iterdir()} == EXPORT_FILES

    # Resuming a finished sweep runs nothing again.
    attempts = {t["trial_key"]: len(t["attempts"]) for t in trial_states(run_dir)}
    resumed = _e2rnas("sweep", "resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_artefacts(run_dir, trials=2, epochs=4)
    assert {t["trial_key"]: len(t["attempts"]) for t in trial_states(run_dir)} == attempts


OPTUNA_SWEEP = """\
name: opt
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides: {epochs: 2, steps_per_epoch: 1, order: first, nodes: 2}
evaluation:
  mode: proxy
  overrides: {epochs: 1}
grid:
  seed: [0]
scheduler: {kind: mo_asha, reduction_factor: 2}  # a rung after epoch 1: one of two goes on
strategy:
  kind: optuna
  sampler: nsga2
  num_samples: 2
  seed: 0
  L: {low: 0.02, high: 0.12}
  F: {low: 0.3, high: 1.5}
  objectives: [test_error, params_m, flops_m]
resources: {gpu: 0, cpu: 1, max_concurrent: 1}
max_trials: 2
"""


@pytest.mark.integration
@pytest.mark.slow
def test_optuna_sweep_samples_bounds_in_their_ranges_under_mo_asha(tmp_path: Path) -> None:
    path = tmp_path / "opt.yaml"
    path.write_text(OPTUNA_SWEEP, encoding="utf-8")
    run_dir = tmp_path / "run"
    done = _e2rnas("sweep", "run", str(path), "--out", str(run_dir), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 2 and set(frame["status"]) <= {"done", "stopped"}
    # MO-ASHA named the trials as their directories are named (with Tune's trial id): the
    # first to reach the rung went on, the second only if it dominated the first there.
    scheduler = read_scheduler_state(run_dir)
    first, second = (d["trial"] for d in scheduler["decisions"] if d["milestone"] == 1)
    assert frame.set_index("trial_id").loc[first, "status"] == "done"
    stopped = set(frame.loc[frame["status"] == "stopped", "trial_id"])
    assert stopped == set(scheduler["stopped"]) <= {second}
    assert frame["L"].between(0.02, 0.12).all() and frame["F"].between(0.3, 1.5).all()
    assert set(frame["seed"]) == {0}
    assert frame["trial_id"].is_unique
    with sqlite3.connect(run_dir / "results.db") as db:
        assert db.execute("select count(*) from trials").fetchone() == (2,)
    front = pd.read_parquet(run_dir / "export" / "front.parquet")
    assert 1 <= len(front) <= 2 and set(front["trial_id"]).isdisjoint(stopped)


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("storage", ["local", "uri"])
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(
    tmp_path: Path, storage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A short trial (1 epoch) finishes while a long one (40 epochs) is still searching. On a
    # storage URI the trials' files reach the run directory only through the storage
    # (trial_states syncs them), from the driver's first look to the resume. An epoch here
    # takes about 0.35 s and the short trial's proxy evaluation longer than that: with 8
    # epochs the long trial once passed epoch 6 before the short one was done, leaving no
    # moment to interrupt in; 40 leave several seconds.
    if storage == "uri":
        path = _uri_sweep(tmp_path, tmp_path / "storage", name="interrupt")
    else:
        path = _write_sweep(tmp_path, name="interrupt")
    text = path.read_text(encoding="utf-8")
    text = text.replace("    epochs: 1\n    steps", "    steps").replace(
        "  L: [0.03, 0.08]\n", "  L: [0.05]\n  epochs: [1, 40]\n"
    )
    path.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    driver = start_sweep(path, run_dir, tmp_path)

    def one_done_one_searching() -> bool:
        if not (run_dir / "sweep.json").exists():
            return False
        trials = trial_states(run_dir)
        done = [t for t in trials if t["status"] == "done"]
        searching = [t for t in trials if t["status"] == "running" and 1 <= t["epochs"] <= 30]
        return bool(done and searching)

    try:
        _wait_for(one_done_one_searching, 240, "one trial done and one searching")
        driver.send_signal(signal.SIGINT)
        _out, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 130, err[-3000:]
    assert "sweep resume" in err
    state = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))
    assert state["status"] == "interrupted"
    before = {t["trial_key"]: (t["status"], t["epochs"]) for t in trial_states(run_dir)}
    assert sorted(status for status, _ in before.values()) == ["done", "running"]

    resumed = _e2rnas("sweep", "resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    frame = _check_artefacts(run_dir, trials=2, epochs=None)
    assert sorted(frame["epochs"]) == [1, 40]
    for trial in trial_states(run_dir):
        status, epochs = before[trial["trial_key"]]
        if status == "done":
            assert len(trial["attempts"]) == 1  # a finished trial is not run again
        else:
            assert len(trial["attempts"]) == 2
            resumed_from = trial["attempts"][-1]["epochs_before"]
            if storage == "local":
                assert resumed_from == epochs >= 1  # resumed, not rerun
            else:
                # The driver sees the checkpoints Tune registered; the node's scratch
                # directory may hold one more epoch, checkpointed as the sweep stopped, and
                # the trial resumes from that one (each epoch still runs once: see above).
                assert resumed_from >= epochs >= 1
    if storage == "uri":
        _check_uri_storage(run_dir, tmp_path / "storage", tmp_path, capsys)


def _check_uri_storage(
    run_dir: Path, storage: Path, cwd: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A finished sweep on a storage URI: Tune's state and the checkpoints live under the URI,
    each trial worked in a scratch directory outside the run directory (removed once it
    finished) and its files reached the run directory only from its last checkpoint; status
    reads them, and resuming the finished sweep restores Tune's state from the URI and runs
    nothing again."""
    state = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))
    assert state["storage_uri"] == storage.as_uri()
    assert state["tune_path"] == f"{storage.as_uri()}/{state['sweep_id']}"
    experiment = storage / state["sweep_id"]
    assert (experiment / "tuner.pkl").exists()
    assert list(experiment.glob("experiment_state-*.json"))
    assert len(list(experiment.glob("*/checkpoint_*/trial.json"))) == 2
    assert not (run_dir / "tune").exists()
    for trial in trial_states(run_dir):
        local = Path(trial["dir"])
        source = (local / ".synced-from").read_text(encoding="utf-8")
        assert source.startswith(str(experiment)) and "/checkpoint_" in source
        for attempt in trial["attempts"]:
            assert not Path(attempt["dir"]).is_relative_to(run_dir)
            assert not Path(attempt["dir"]).exists()
        assert {"genotype.json", "metrics.json", "checkpoint.pt"} <= {
            p.name for p in local.iterdir()
        }
    assert cli.main(["sweep", "status", str(run_dir)]) == 0
    assert "done, 2/2 trials done" in capsys.readouterr().out
    attempts = {t["trial_key"]: len(t["attempts"]) for t in trial_states(run_dir)}
    resumed = _e2rnas("sweep", "resume", str(run_dir), cwd=cwd)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _check_artefacts(run_dir, trials=2, epochs=None)
    assert {t["trial_key"]: len(t["attempts"]) for t in trial_states(run_dir)} == attempts


# -- a real two-node cluster on loopback -----------------------------------------------------------


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A Ray head and a second one-CPU node on 127.0.0.1; yields the jobs server's URL."""
    port, dashboard, *more = free_ports(8)
    env = e2rnas_env()
    temp = Path("/tmp") / f"ray-e2rnas-{os.getpid()}"
    head = [
        str(RAY),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard}",
        "--num-cpus=1",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
        # Free ports for what has a fixed default: another test's Ray may hold those.
        f"--dashboard-agent-listen-port={more[0]}",
        f"--ray-client-server-port={more[1]}",
    ]
    # The second node shares the machine: its agents need ports of their own.
    worker = [
        str(RAY),
        "start",
        f"--address=127.0.0.1:{port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        "--disable-usage-stats",
        f"--dashboard-agent-listen-port={more[2]}",
        f"--dashboard-agent-grpc-port={more[3]}",
        f"--metrics-export-port={more[4]}",
        f"--runtime-env-agent-port={more[5]}",
    ]
    # Each `ray start` in a session of its own: the daemons it leaves behind stay in its
    # process group, so the teardown stops this cluster's processes and no other Ray's
    # (`ray stop` would stop every Ray on the machine, a parallel test's too).
    groups: list[int] = []
    try:
        for command in (head, worker):
            started = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            groups.append(started.pid)
            out, _ = started.communicate(timeout=120)
            assert started.returncode == 0, out[-3000:]
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        for group in reversed(groups):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(group_alive(group) for group in groups) and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.mark.integration
@pytest.mark.slow
def test_submit_to_a_two_node_cluster(tmp_path: Path, cluster: str) -> None:
    path = _write_sweep(tmp_path, name="cluster")
    run_dir = tmp_path / "run"
    submitted = _e2rnas(
        "sweep",
        "submit",
        str(path),
        "--address",
        cluster,
        "--out",
        str(run_dir),
        cwd=tmp_path,
        timeout=420,  # the submission waits up to jobs.AGENT_WAIT_S for the head's job agent
    )
    assert submitted.returncode == 0, submitted.stderr[-3000:]
    job_id = submitted.stdout.strip().splitlines()[-1]

    def finished() -> bool:
        status = _e2rnas("sweep", "status", job_id, "--address", cluster, cwd=tmp_path)
        assert status.returncode in (0, 1), status.stderr  # 1: the job failed (checked below)
        return any(word in status.stdout for word in ("SUCCEEDED", "FAILED", "STOPPED"))

    _wait_for(finished, 400, "the job")
    status = _e2rnas("sweep", "status", job_id, "--address", cluster, cwd=tmp_path)
    assert "SUCCEEDED" in status.stdout, status.stdout
    _check_artefacts(run_dir, trials=2, epochs=1)
    # Two one-CPU trials at once on two one-CPU nodes: one trial ran on each node.
    nodes = {t["attempts"][0]["node"] for t in trial_states(run_dir)}
    assert len(nodes) == 2


# -- storage on a filesystem URI -------------------------------------------------------------------


def _uri_sweep(tmp_path: Path, storage: Path, name: str = "uri", steps: int = 1) -> Path:
    path = _write_sweep(tmp_path, name=name, steps=steps)
    text = path.read_text(encoding="utf-8") + f"storage:\n  path: {storage.as_uri()}\n"
    path.write_text(text, encoding="utf-8")
    return path


def test_bad_storage_uri_fails_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    blocker = tmp_path / "a-file"
    blocker.write_text("", encoding="utf-8")
    cases = {
        "ftp://host/x": "storage.path: unknown filesystem scheme 'ftp'",
        "file://host/x": "storage.path: 'file://host/x': a file URI needs an absolute path",
        blocker.as_uri(): "is a file; expected a directory",
    }
    for uri, expected in cases.items():
        path = _write_sweep(tmp_path)
        path.write_text(
            path.read_text(encoding="utf-8") + f"storage:\n  path: '{uri}'\n", encoding="utf-8"
        )
        assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("e2rnas: error: "), err
        assert expected in err
        assert not out.exists()
    # Called directly, run_sweep refuses storage.path/<name> as the run directory of a URI;
    # the CLI instead defaults to ./runs/<name> on this machine.
    path = _uri_sweep(tmp_path, tmp_path / "storage")
    spec = load_sweep(path)
    from service.orchestration.tuner import run_sweep

    with pytest.raises(SweepStateError, match="local run directory with --out"):
        run_sweep(spec, Path(spec.storage.path) / spec.name)
    assert run_dir_for(None, spec.storage.path, spec.name) == (Path("runs") / spec.name).resolve()


def test_run_refuses_a_storage_that_holds_the_run_directorys_experiment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    storage, out = tmp_path / "storage", tmp_path / "run"
    path = _uri_sweep(tmp_path, storage)
    sweep_id = sweep_id_for(load_sweep(path), out.resolve())
    (storage / sweep_id).mkdir(parents=True)  # left by a run whose run directory was removed
    assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a Tune experiment" in err
    assert "choose another --out" in err
    assert not (out / "sweep.json").exists()
