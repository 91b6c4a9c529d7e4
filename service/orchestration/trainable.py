"""One trial of a sweep: search at a grid point, then evaluate, reporting every epoch.

:func:`run_trial` is what each Ray Tune trial runs. It talks to Tune only through a
:class:`TrialSession` (its trial id, the node it runs on, the checkpoint it was restored from,
and a report call) that :mod:`service.orchestration.tuner` fills with Tune's public API, so
this module never imports Ray and survives its API changes.

The search runs :func:`search_core.search.run_search` with ``resume=True`` in the trial's own
directory and reports every epoch with a checkpoint (the search's ``checkpoint.pt``,
``metrics.jsonl`` and ``config.json``). When Ray restarts a failed trial (``FailureConfig``),
the trial starts again from its directory, or from Tune's copy of the checkpoint when the
directory has none or a damaged one (set aside as ``checkpoint.pt.corrupt``; without a copy the
search starts over, which gives the same result on the CPU). With storage on a URI
(``scratch``), the trial works in a node-local directory and every checkpoint carries all its
files (see :mod:`service.orchestration.storage`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from service.objectives import EVALUATED_OBJECTIVES, SEARCH_OBJECTIVES
from service.orchestration.points import eval_config_for, search_config_for, trial_resources
from service.orchestration.rundir import (
    CHECKPOINT_FILES,
    TRIAL_FILE,
    TRIALS_DIR,
    epochs_done,
    read_trial_info,
    trial_name,
    write_trial_info,
)
from service.orchestration.spec import SweepSpec, parse_sweep
from service.orchestration.storage import scratch_dir, stage

__all__ = ["TrialSession", "report_metrics", "run_retrain", "run_trial"]

logger = logging.getLogger(__name__)
CORRUPT_SUFFIX = ".corrupt"


class TrialSession(Protocol):
    """What a trial needs of the tuner that runs it."""

    def trial_id(self) -> str:
        """The tuner's id of this trial (stable across restarts of the trial)."""

    def node_id(self) -> str:
        """The id of the node the trial runs on."""

    def restored_checkpoint(self) -> AbstractContextManager[Path | None]:
        """The checkpoint the trial was restarted from, as a local directory (None on a
        first start), valid inside the ``with`` block."""

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        """Report ``metrics``, with the files of the directory ``checkpoint`` as a checkpoint."""


def report_metrics(record: Mapping[str, Any], phase: str) -> dict[str, Any]:
    """The metrics a trial reports: the search objectives, sizes and epoch of ``record``, the
    front metrics and the paper-protocol measures, any of which a sweep may rank on (NaN
    until measured), the genotype hash and the ``phase`` (``search`` while
    searching, ``done`` with the final report)."""
    metrics: dict[str, Any] = {name: math.nan for name in EVALUATED_OBJECTIVES}
    for key in (*SEARCH_OBJECTIVES, "params_m", "flops_m", "epoch"):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[key] = value
    if isinstance(record.get("genotype_hash"), str):
        metrics["genotype_hash"] = record["genotype_hash"]
    metrics["phase"] = phase
    return metrics


def _stale(trial_dir: Path, tune_trial_id: str) -> bool:
    """Whether a scratch directory holds another Tune trial's files than ``tune_trial_id``."""
    if not (trial_dir / TRIAL_FILE).exists():
        return trial_dir.exists()
    info = read_trial_info(trial_dir)
    return info.get("tune_trial_id") != tune_trial_id


def _copy_checkpoint_back(source: Path, trial_dir: Path) -> None:
    """Put Tune's copy of a trial's checkpoint back where the search resumes from, unless the
    trial directory already holds a checkpoint (it is then at least as recent)."""
    if (trial_dir / "checkpoint.pt").exists():
        return
    trial_dir.mkdir(parents=True, exist_ok=True)
    for name in CHECKPOINT_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, trial_dir / name)


def _set_aside_if_damaged(trial_dir: Path) -> None:
    """Rename a checkpoint that cannot be read to ``checkpoint.pt.corrupt``, so that the trial
    restarts from Tune's copy (or from the start) instead of failing on it at every retry."""
    from search_core.errors import CheckpointError
    from search_core.search import CHECKPOINT, load_checkpoint

    path = trial_dir / CHECKPOINT
    if not path.exists():
        return
    try:
        load_checkpoint(path)
    except CheckpointError as error:
        logger.warning("%s; set aside as %s%s", error, CHECKPOINT, CORRUPT_SUFFIX)
        path.replace(path.with_name(CHECKPOINT + CORRUPT_SUFFIX))


def _restore(session: TrialSession, trial_dir: Path, scratch: bool) -> None:
    """Bring the trial directory up to the checkpoint Tune restored the trial from."""
    trial_id = session.trial_id()
    _set_aside_if_damaged(trial_dir)
    with session.restored_checkpoint() as saved:
        if saved is not None:
            # A scratch directory left on this node may be older than the checkpoint (the
            # trial ran on another node since). It is newer only when this node ran an epoch
            # whose checkpoint Tune had not registered when the sweep stopped.
            newer = not _stale(trial_dir, trial_id) and epochs_done(trial_dir) > epochs_done(saved)
            if not scratch:
                _copy_checkpoint_back(saved, trial_dir)
            elif not newer:
                shutil.rmtree(trial_dir, ignore_errors=True)
                stage(saved, trial_dir)
        elif scratch and _stale(trial_dir, trial_id):
            # Left by an earlier experiment of the same run directory (its storage was removed).
            shutil.rmtree(trial_dir, ignore_errors=True)
    trial_dir.mkdir(parents=True, exist_ok=True)


def _start(
    session: TrialSession, trial_dir: Path, key: str, point: dict[str, Any], scratch: bool
) -> tuple[dict[str, Any], bool]:
    """The trial's ``trial.json`` content, with this start recorded, and whether it had
    finished already.

    Each start (a restart after a failure, a resumed sweep) is recorded with the process and
    the epochs already checkpointed, so a resume can be told from a rerun. A trial that
    finished while the sweep was being stopped, before Tune recorded its end, is started again
    by the resume: it only reports its recorded result again, which is no new attempt.
    """
    previous = read_trial_info(trial_dir)  # {} when damaged: the trial's record starts afresh
    if not previous and (trial_dir / TRIAL_FILE).exists():
        logger.warning("%s: unreadable; the trial's record starts afresh", trial_dir / TRIAL_FILE)
    attempts: list[dict[str, Any]] = list(previous.get("attempts", []))
    finished = previous.get("status") == "done"
    if not finished:
        attempt: dict[str, Any] = {
            "pid": os.getpid(),
            "node": session.node_id(),
            "epochs_before": epochs_done(trial_dir),
        }
        if scratch:
            attempt["dir"] = str(trial_dir)  # where it worked: never the driver's run directory
        attempts.append(attempt)
    info = {
        "trial_key": key,
        "point": point,
        "tune_trial_id": session.trial_id(),
        "attempts": attempts,
    }
    if not finished:
        write_trial_info(trial_dir, {**info, "status": "running"})
    return info, finished


@contextmanager
def _staged(trial_dir: Path, checkpoint_dir: Path, scratch: bool) -> Iterator[Path]:
    """A temporary directory with what a report's checkpoint holds: every file of a scratch
    trial directory, else the search's checkpoint files."""
    with tempfile.TemporaryDirectory(prefix="e2rnas-ckpt-") as staging:
        if scratch:
            stage(trial_dir, Path(staging))  # everything: the driver reads only this
        else:
            for name in CHECKPOINT_FILES:
                if (checkpoint_dir / name).exists():
                    shutil.copy2(checkpoint_dir / name, Path(staging) / name)
        yield Path(staging)


def _evaluate(spec: SweepSpec, search_config: Any, result: Any, trial_dir: Path) -> dict[str, Any]:
    """The trial's final report: the last search record and, unless the sweep evaluates
    nothing, the front metrics its evaluation measured (read back when already done)."""
    from search_core.evaluate import METRICS_FILE, run_evaluation, run_proxy
    from search_core.search import CHECKPOINT, load_checkpoint

    last = result.records[-1] if result.records else {}
    final = report_metrics(last, "done")
    eval_config = eval_config_for(spec, search_config)
    if eval_config is None:
        return final
    metrics_path = trial_dir / METRICS_FILE
    if metrics_path.exists():
        measured = json.loads(metrics_path.read_text(encoding="utf-8"))
    elif spec.evaluation.mode in ("proxy", "two_stage"):
        supernet = load_checkpoint(trial_dir / CHECKPOINT)["net"]
        measured = run_proxy(
            result.genotype,
            search_config,
            trial_dir,
            epochs=eval_config.epochs,
            resume=True,
            supernet_state=supernet,
        )
    else:
        measured = run_evaluation(result.genotype, eval_config, trial_dir, resume=True)
    for name in (*EVALUATED_OBJECTIVES, "eval_seconds"):
        value = measured.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            final[name] = float(value)
    return final


def _forget_scratch(trial_dir: Path) -> None:
    """The final checkpoint holds every file now; the node keeps no copy of a finished trial
    (nor the sweep's folder once its last trial here is done: rmdir fails while in use)."""
    shutil.rmtree(trial_dir, ignore_errors=True)
    for folder in (trial_dir.parent, trial_dir.parent.parent):
        try:
            folder.rmdir()
        except OSError:
            break


def run_trial(
    config: dict[str, Any],
    spec_data: dict[str, Any],
    run_dir: str,
    session: TrialSession,
    scratch: str | None = None,
) -> None:
    """One trial: search at the grid point ``config``, then evaluate; reports to ``session``.

    ``spec_data`` is the sweep spec as JSON data, and ``run_dir`` the absolute run directory
    whose ``trials/`` holds this trial's directory. With ``scratch`` (the sweep id of a sweep on
    a storage URI: no shared filesystem), the trial works in a node-local scratch directory
    instead and persists every file through its checkpoints, the last one with its final report.
    """
    from search_core.search import run_search

    spec = parse_sweep(spec_data)
    point = dict(config)
    resources = trial_resources(spec)
    search_config = search_config_for(spec, point).replace(threads=max(1, int(resources["cpu"])))
    if resources["gpu"] > 0 and search_config.device == "cpu":
        search_config = search_config.replace(device="cuda")
    key = trial_name(spec, point, session.trial_id())
    trial_dir = Path(run_dir) / TRIALS_DIR / key if scratch is None else scratch_dir(scratch, key)
    remote = scratch is not None
    _restore(session, trial_dir, remote)
    info, _ = _start(session, trial_dir, key, point, remote)

    def reporter(record: dict[str, Any], checkpoint_dir: Path) -> None:
        with _staged(trial_dir, checkpoint_dir, remote) as staging:
            session.report(report_metrics(record, "search"), checkpoint=staging)

    try:
        result = run_search(search_config, trial_dir, resume=True, reporter=reporter)
        final = _evaluate(spec, search_config, result, trial_dir)
    except Exception:
        write_trial_info(trial_dir, {**info, "status": "error"})
        raise
    write_trial_info(trial_dir, {**info, "status": "done"})
    if not remote:
        session.report(final)
        return
    with _staged(trial_dir, trial_dir, remote) as staging:
        session.report(final, checkpoint=staging)
    _forget_scratch(trial_dir)


def run_retrain(
    config: dict[str, Any], spec_data: dict[str, Any], run_dir: str, session: TrialSession
) -> None:
    """One trial of a two-stage sweep's second stage: the full retrain of the first-stage
    trial ``config["trial"]`` (:func:`service.orchestration.twostage.retrain_one`), reported
    once, as a trial's final report."""
    from service.orchestration.twostage import retrain_one

    spec = parse_sweep(spec_data)
    measured = retrain_one(spec, Path(run_dir), str(config["trial"]))
    final: dict[str, Any] = {"phase": "done", "trial": str(config["trial"])}
    for name in (*EVALUATED_OBJECTIVES, "eval_seconds"):
        value = measured.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            final[name] = float(value)
    session.report(final)
