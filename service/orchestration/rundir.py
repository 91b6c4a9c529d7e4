"""A sweep's run directory and its state: the layout, ``sweep.json``, and the trial directories.

A run directory holds everything a sweep writes::

    <run_dir>/sweep.json          the spec, its sweep id, status and where things are
    <run_dir>/trials/<key>/       one search (and its evaluation) per trial; ``key`` is made
                                  of the swept values, so it is stable across restarts
    <run_dir>/tune/<name>/        Ray Tune's experiment state (Tuner.restore reads it)
    <run_dir>/results.parquet     the results table, one row per trial
    <run_dir>/results.db          the SQLite store, unless the spec names a database URL
    <run_dir>/export/             the Pareto front: genotypes.json/.py, front.csv/.parquet
    <run_dir>/report.html         the interactive report (plotly, self-contained)
    <run_dir>/scheduler.json      MO-ASHA's rungs and the trials it stopped (driver-side)

Each trial directory holds the search's files (``checkpoint.pt``, ``metrics.jsonl``,
``config.json``, ...), the evaluation's ``metrics.json`` and ``trial.json``: the trial's key, its
swept values, Tune's trial id, its status (``running``, ``done``, ``error``) and one record per
start (process, node, epochs already checkpointed). A trial that the sweep's scheduler stopped
early keeps ``running`` there: the driver records the stop in ``scheduler.json``, and
:func:`trial_states` reports it as ``stopped`` with the epoch it reached. With storage on a
filesystem URI the trial directories are copies downloaded from the storage
(:mod:`service.orchestration.storage`).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from service.errors import SweepStateError, TrialResultError
from service.files import write_json_atomically
from service.orchestration.points import trial_count
from service.orchestration.spec import SweepSpec, is_uri, parse_sweep
from service.results.urls import has_password

__all__ = [
    "CHECKPOINT_FILES",
    "EXPORT_DIR",
    "REPORT_FILE",
    "RESULTS_FILE",
    "SCHEDULER_FILE",
    "SWEEP_FILE",
    "TRIALS_DIR",
    "TRIAL_FILE",
    "TUNE_DIR",
    "create_state",
    "epochs_done",
    "read_scheduler_state",
    "read_state_file",
    "read_sweep_state",
    "read_trial_info",
    "set_status",
    "spec_of",
    "sweep_id_for",
    "sweep_progress",
    "trial_key",
    "trial_name",
    "trial_states",
    "write_trial_info",
]

SWEEP_FILE = "sweep.json"
TRIAL_FILE = "trial.json"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
RESULTS_FILE = "results.parquet"
REPORT_FILE = "report.html"
EXPORT_DIR = "export"
SCHEDULER_FILE = "scheduler.json"
CHECKPOINT_FILES = ("checkpoint.pt", "metrics.jsonl", "config.json")
"""The search's files a trial reports to Tune as its checkpoint (with a local run directory)."""


def trial_key(point: Mapping[str, Any]) -> str:
    """A directory name of the swept values, e.g. ``F=0.4_L=0.03_seed=0``: keys sorted, unsafe
    characters replaced, and a short hash appended when the name had to be shortened."""
    if not point:
        return "default"
    text = "_".join(f"{key}={point[key]}" for key in sorted(point))
    safe = re.sub(r"[^A-Za-z0-9_.=+-]", "-", text)
    if safe != text or len(safe) > 100:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        safe = f"{safe[:90]}-{digest}"
    return safe


def trial_name(spec: SweepSpec, point: Mapping[str, Any], tune_trial_id: str) -> str:
    """The name of a trial's directory: its key, and Tune's trial id for an Optuna sweep,
    whose sampled bounds may repeat (NSGA-II proposes duplicates)."""
    key = trial_key(point)
    return f"{key}_{tune_trial_id}" if spec.strategy.kind == "optuna" else key


def sweep_id_for(spec: SweepSpec, run_dir: Path) -> str:
    """The id of the sweep ``spec`` run into ``run_dir``: its name and a hash of the path."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"{spec.name}-{digest}"


# -- sweep.json ------------------------------------------------------------------------------


def read_sweep_state(run_dir: Path) -> dict[str, Any]:
    """The ``sweep.json`` of a run directory (SweepStateError when there is none)."""
    path = Path(run_dir) / SWEEP_FILE
    if not path.exists():
        raise SweepStateError(f"{run_dir}: no {SWEEP_FILE}; not the run directory of a sweep")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepStateError(f"{path}: cannot read the sweep state ({exc})") from None
    if not isinstance(state, dict) or "spec" not in state or "sweep_id" not in state:
        raise SweepStateError(f"{path}: expected an object with 'spec' and 'sweep_id'")
    return state


def spec_of(run_dir: Path) -> SweepSpec:
    """The spec stored in a run directory's ``sweep.json``."""
    state = read_sweep_state(Path(run_dir))
    return parse_sweep(state["spec"], source=str(Path(run_dir) / SWEEP_FILE))


def set_status(run_dir: Path, status: str) -> None:
    """Record the sweep's status (``running``, ``interrupted``, ``done``, ``failed``)."""
    state = read_sweep_state(run_dir)
    state["status"] = status
    state["updated_at"] = time.time()
    _write_state(Path(run_dir), state)


def _write_state(run_dir: Path, state: dict[str, Any]) -> None:
    # A database URL written out with its password (a sweep file may name one) is the
    # owner's only; the service passes its URL as a reference (service.results.urls).
    private = has_password(str(state.get("database_url", "")))
    write_json_atomically(run_dir / SWEEP_FILE, state, private=private)


def create_state(
    spec: SweepSpec, run_dir: Path, database_url: str, tune_path: str | None = None
) -> dict[str, Any]:
    """Write the ``sweep.json`` of a new sweep into ``run_dir`` and return it.

    ``tune_path`` is where Tune keeps the experiment: ``<run_dir>/tune/<name>`` unless the
    spec's storage is a URI (then ``<uri>/<sweep_id>``, given by the caller).
    """
    run_dir = Path(run_dir).resolve()
    if (run_dir / SWEEP_FILE).exists():
        raise SweepStateError(
            f"{run_dir}: already holds a sweep; continue it with 'e2rnas sweep resume "
            f"{run_dir}' or choose another --out"
        )
    now = time.time()
    state: dict[str, Any] = {
        "sweep_id": sweep_id_for(spec, run_dir),
        "name": spec.name,
        "spec": spec.model_dump(mode="json"),
        "status": "running",
        "run_dir": str(run_dir),
        "tune_path": tune_path or str(run_dir / TUNE_DIR / spec.name),
        "database_url": database_url,
        "trials": trial_count(spec),
        "created_at": now,
        "updated_at": now,
    }
    if is_uri(spec.storage.path) and tune_path is not None:
        state["storage_uri"] = spec.storage.path
    _write_state(run_dir, state)
    return state


# -- trial directories -----------------------------------------------------------------------


def read_trial_info(trial_dir: Path) -> dict[str, Any]:
    """A trial directory's ``trial.json``; {} when it has none or it cannot be read (a trial
    whose first write was cut short starts afresh)."""
    try:
        info = json.loads((Path(trial_dir) / TRIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def write_trial_info(trial_dir: Path, info: Mapping[str, Any]) -> None:
    write_json_atomically(Path(trial_dir) / TRIAL_FILE, info)


def epochs_done(trial_dir: Path) -> int:
    """The epochs a trial directory's checkpoint holds (0 without one)."""
    metrics = trial_dir / "metrics.jsonl"
    if not (trial_dir / "checkpoint.pt").exists() or not metrics.exists():
        return 0
    return sum(1 for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip())


def _trial_dirs(run_dir: Path) -> list[Path]:
    trials = run_dir / TRIALS_DIR
    if not trials.is_dir():
        return []
    # Hidden directories are downloads in progress (storage.sync_trials), never trials.
    return sorted(
        p for p in trials.iterdir() if not p.name.startswith(".") and (p / TRIAL_FILE).exists()
    )


def trial_states(run_dir: Path) -> list[dict[str, Any]]:
    """Each trial directory's ``trial.json`` plus the epochs it finished and its directory.

    A sweep on a storage URI first downloads the trials' latest checkpoints (sync_trials).
    """
    from service.orchestration.storage import sync_trials

    if (Path(run_dir) / SWEEP_FILE).exists():
        sync_trials(Path(run_dir))
    stopped = read_scheduler_state(Path(run_dir)).get("stopped", {})
    states: list[dict[str, Any]] = []
    for path in _trial_dirs(Path(run_dir)):
        try:
            info = json.loads((path / TRIAL_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            # Written whole (write_trial_info), so a cut file is damage, not a trial starting.
            raise TrialResultError(
                f"{path / TRIAL_FILE}: cannot read the trial's state ({error}); restore it "
                "(the rows already stored are unchanged)"
            ) from None
        info.update(dir=str(path), epochs=epochs_done(path))
        if info.get("status") != "done" and path.name in stopped:
            info.update(status="stopped", stopped_at=int(stopped[path.name]))
            info["epochs"] = min(info["epochs"], info["stopped_at"])
        states.append(info)
    return states


def read_state_file(path: Path, what: str, fix: str, key: str) -> dict[str, Any]:
    """A JSON object the driver writes whole (``scheduler.json``, ``two_stage.json``); {} when
    there is none. One that cannot be read, or lacks ``key`` as an object or list, raises
    SweepStateError naming the file, ``what`` it holds and the ``fix``."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SweepStateError(f"{path}: cannot read {what} ({error}); {fix}") from None
    if not isinstance(state, dict) or not isinstance(state.get(key), dict | list):
        raise SweepStateError(f"{path}: expected an object with '{key}'; {fix}")
    return state


def read_scheduler_state(run_dir: Path) -> dict[str, Any]:
    """The run directory's ``scheduler.json`` (MO-ASHA's state: rungs, decisions and the
    trials it stopped); {} for a sweep without one (``fifo``, or no decision yet)."""
    fix = "restore it, or remove it to rank the unfinished trials afresh"
    return read_state_file(Path(run_dir) / SCHEDULER_FILE, "the scheduler's state", fix, "stopped")


def sweep_progress(run_dir: Path, total: int) -> dict[str, int]:
    """Trials pending, running, done, stopped (early, by the scheduler) and failed, and
    search epochs done, from the trial directories of ``run_dir`` (``total`` trials in all)."""
    counts = dict.fromkeys(("pending", "running", "done", "stopped", "failed", "epochs"), 0)
    counts["total"] = total
    for info in trial_states(run_dir) if Path(run_dir).exists() else []:
        status = str(info.get("status"))
        key = {"error": "failed"}.get(status, status)
        counts[key if key in ("done", "stopped", "failed") else "running"] += 1
        counts["epochs"] += int(info.get("epochs", 0))
    counted = sum(counts[key] for key in ("done", "stopped", "failed", "running"))
    counts["pending"] = max(0, total - counted)
    return counts
