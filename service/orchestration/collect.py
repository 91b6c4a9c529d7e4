"""Collection: a run directory's trials into the results table, store, export and report.

:func:`collect` reads only the trial directories, so it can run again at any time and gives the
same rows; the store's upsert keeps it idempotent. It runs when Tune returns (and by
``sweep resume`` of a finished sweep); :func:`write_run_report` rewrites only the report from
``results.parquet``; :func:`stored_table` reads a sweep's table back from its database.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from service.analysis.export import export_front
from service.analysis.pareto import front_of
from service.analysis.report import write_report
from service.analysis.robust import robust_info
from service.analysis.robustview import robust_csv_frame
from service.errors import ConfigError, SweepStateError, UnknownSweepError
from service.files import replace_atomically
from service.orchestration.points import search_config_for, sweep_objectives, trial_count
from service.orchestration.rundir import (
    EXPORT_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SWEEP_FILE,
    read_sweep_state,
    set_status,
    spec_of,
    sweep_progress,
    trial_states,
)
from service.orchestration.spec import SweepSpec, parse_sweep
from service.orchestration.twostage import summarize
from service.results.store import ResultStore
from service.results.table import results_frame, trial_row

__all__ = [
    "Collected",
    "collect",
    "results_table",
    "stored_table",
    "sweep_outcome",
    "write_run_report",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` wrote."""

    results: Path
    database_url: str
    export: dict[str, Path]
    report: Path
    rows: int
    failed: int
    front: int


def results_table(run_dir: Path) -> pd.DataFrame:
    """The results table of the run directory, read from its trial directories."""
    run_dir = Path(run_dir).resolve()
    state = read_sweep_state(run_dir)
    spec = parse_sweep(state["spec"], source=str(run_dir / SWEEP_FILE))
    rows = []
    for info in trial_states(run_dir):
        status = info.get("status")
        status = status if status in ("done", "stopped") else "failed"
        rows.append(
            trial_row(
                state["sweep_id"],
                info["trial_key"],
                info["point"],
                Path(info["dir"]),
                status,
                backbone=_configured_backbone(spec, info["point"]),
                stopped_at=info.get("stopped_at"),
                two_stage=spec.evaluation.mode == "two_stage",
            )
        )
    return results_frame(rows)


def sweep_outcome(errors: int, spec: SweepSpec, run_dir: Path) -> str:
    """The sweep's status once Tune returned with ``errors`` trials failed for good.

    Ctrl-C makes Tune stop every running trial, save its state and return, with those trials
    TERMINATED and no error: only their trial.json, never marked done, tells them apart (a
    trial the scheduler stopped early counts as finished).
    """
    finished = [t for t in trial_states(run_dir) if t.get("status") in ("done", "stopped")]
    if errors:
        return "failed"
    if len(finished) < trial_count(spec):
        return "interrupted"
    return "done"


def _configured_backbone(spec: SweepSpec, point: Mapping[str, object]) -> str | None:
    """The backbone a trial's search config names, for a trial that never wrote its own."""
    try:
        return search_config_for(spec, point).backbone
    except ConfigError:
        return None


def _store_rows(state: dict[str, object], frame: pd.DataFrame, progress: Mapping[str, int]) -> None:
    """The sweep and its rows into its database; the rows land before the final status, so
    whoever reads "done" finds them all."""
    store = ResultStore(str(state["database_url"]))
    sweep_id = str(state["sweep_id"])
    try:
        store.create_schema()
        try:
            before = store.get_sweep(sweep_id)["status"]
        except UnknownSweepError:
            before = "running"
        spec = state["spec"]
        assert isinstance(spec, dict)
        store.upsert_sweep(sweep_id, str(state["name"]), before, spec)
        store.ingest(frame)
        store.update_sweep(sweep_id, status=str(state["status"]), progress=dict(progress))
    finally:
        store.close()


def collect(
    run_dir: Path,
    export_dir: Path | None = None,
    status: str | None = None,
    projection_2d: Sequence[str] | None = None,
    projection_3d: Sequence[str] | None = None,
) -> Collected:
    """Read every trial of the run directory into ``results.parquet``, the store and the
    export of the front; running it again writes the same rows.

    ``status`` (e.g. ``done`` at the end of a run) becomes the sweep's status, ``failed``
    instead of ``done`` when a trial did not finish. The report's projections plot
    ``projection_2d`` and ``projection_3d`` (default: the sweep file's ``report:`` choice).
    """
    run_dir = Path(run_dir).resolve()
    state = read_sweep_state(run_dir)
    spec = parse_sweep(state["spec"], source=str(run_dir / SWEEP_FILE))
    frame = results_table(run_dir)
    failed = int((frame["status"] == "failed").sum()) if len(frame) else 0
    if status is not None:
        if status == "done" and (failed or len(frame) < trial_count(spec)):
            status = "failed"
        set_status(run_dir, status)
        state["status"] = status
    if spec.evaluation.mode == "two_stage":
        summarize(run_dir, frame)
    results = run_dir / RESULTS_FILE
    replace_atomically(results, lambda path: frame.to_parquet(path, index=False))
    _store_rows(state, frame, sweep_progress(run_dir, trial_count(spec)))
    objectives = sweep_objectives(spec)
    front = front_of(frame, objectives)
    robust = robust_csv_frame(robust_info(frame, objectives))
    exported = export_front(front, export_dir or run_dir / EXPORT_DIR, robust)
    report = write_report(
        frame,
        run_dir / REPORT_FILE,
        objectives,
        title=f"E2RNAS sweep {spec.name}",
        projection_2d=spec.report.projection_2d if projection_2d is None else projection_2d,
        projection_3d=spec.report.projection_3d if projection_3d is None else projection_3d,
    )
    logger.info(
        "collected %d trials (%d failed), %d on the front; status %s",
        len(frame),
        failed,
        len(front),
        state["status"],
        extra={"sweep_id": state["sweep_id"]},
    )
    return Collected(
        results, state["database_url"], exported, report, len(frame), failed, len(front)
    )


def write_run_report(
    run_dir: Path,
    out: Path | None = None,
    projection_2d: Sequence[str] | None = None,
    projection_3d: Sequence[str] | None = None,
) -> Path:
    """Rewrite the report of a collected run directory from its ``results.parquet``, to
    ``out`` (default: its ``report.html``); the projections default to the sweep file's."""
    run_dir = Path(run_dir).resolve()
    spec = spec_of(run_dir)
    results = run_dir / RESULTS_FILE
    if not results.exists():
        raise SweepStateError(
            f"{run_dir}: no {RESULTS_FILE} yet; the sweep has not finished (see 'e2rnas sweep "
            f"status {run_dir}')"
        )
    return write_report(
        pd.read_parquet(results),
        out if out is not None else run_dir / REPORT_FILE,
        sweep_objectives(spec),
        title=f"E2RNAS sweep {spec.name}",
        projection_2d=spec.report.projection_2d if projection_2d is None else projection_2d,
        projection_3d=spec.report.projection_3d if projection_3d is None else projection_3d,
    )


def stored_table(run_dir: Path) -> pd.DataFrame:
    """The results table of the run directory as the store holds it; a database written by an
    older version is upgraded first (new columns, empty), as the service does on start."""
    state = read_sweep_state(Path(run_dir))
    store = ResultStore(state["database_url"])
    try:
        store.create_schema()
        return store.trials_frame(state["sweep_id"])
    finally:
        store.close()
