"""The web service's sweeps: submit one as a Ray Job, follow it, cancel it, pick it up again.

The database is the record. A sweep created here gets a row (status ``pending``) before its job
is submitted; a background loop then refreshes every unfinished sweep from Ray's job status and
from the trial directories Tune's workers write (progress, finished trials' rows), and the job's
own collection writes the final rows and status when it ends. After a restart of the service
the loop finds the unfinished sweeps in the database: a job Ray still runs is followed again,
and a job Ray no longer knows (the embedded Ray stopped with the service) is resubmitted as
``e2rnas sweep resume``, so finished trials are not run again. It is not resubmitted while a
driver still holds the run directory's lock (:mod:`service.orchestration.driverlock`): after a
SIGKILL of the service, the embedded Ray it left is stopped when the new one starts
(:class:`~service.orchestration.jobs.RayJobs`), and the resume waits until its driver is gone.

The loop outlives any failure: a sweep whose refresh fails (a truncated ``trial.json``, Ray's
job server gone) is logged, skipped for a while that doubles with each failure in a row up to
``refresh_backoff_max_seconds``, and retried, while the other sweeps go on; a pass that fails
as a whole (the database gone) backs off the same way. `SweepManager.loop_state` tells
``/api/health`` when the loop last got through and how many passes in a row failed.

The database URL may hold a password, so a sweep's spec names it by reference
(``env:E2RNAS_DATABASE_URL``, `service.results.urls`) and the job gets the URL in its
environment: the stored spec, ``submitted.yaml`` and ``sweep.json`` hold no secret.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from service.api.settings import ServiceSettings
from service.errors import E2RNASError, JobError, SweepConflictError
from service.files import write_text_atomically
from service.logs import sweep_context
from service.orchestration.collect import results_table
from service.orchestration.dataroots import ROOTS_VARIABLE, check_data_roots
from service.orchestration.driverlock import lock_holder
from service.orchestration.jobs import RayJobs
from service.orchestration.points import check_local_gpu, trial_count
from service.orchestration.rundir import SWEEP_FILE, read_sweep_state, sweep_id_for, sweep_progress
from service.orchestration.spec import SweepSpec, parse_sweep
from service.results.store import ResultStore
from service.results.urls import DATABASE_URL_ENV, env_reference

__all__ = ["STATUSES", "TERMINAL", "LoopState", "SweepConflictError", "SweepManager"]

STATUSES = ("pending", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
SUBMITTED_FILE = "submitted.yaml"
LOOP_DOWN_AFTER = 3  # failed passes in a row before /api/health calls the loop down

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopState:
    """How the refresh loop fares, for ``/api/health``."""

    alive: bool  # its thread runs (False before start and after close)
    # When a pass last listed the sweeps and tried each one due (one sweep's failure does
    # not fail the pass; it counts in failing_sweeps).
    last_success: dt.datetime | None
    consecutive_failures: int  # passes in a row that failed as a whole
    failing_sweeps: int  # sweeps whose last refresh failed
    last_error: str | None

    @property
    def down(self) -> bool:
        return not self.alive or self.consecutive_failures >= LOOP_DOWN_AFTER


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if isinstance(error, E2RNASError) else f"{type(error).__name__}: {text}"


class SweepManager:
    """Creates, follows and cancels the service's sweeps; `close` stops what it started."""

    def __init__(self, settings: ServiceSettings, jobs: RayJobs | None = None) -> None:
        self.settings = settings
        self.storage = settings.storage.resolve()
        self.storage.mkdir(parents=True, exist_ok=True)
        self.store = ResultStore(settings.resolved_database_url())
        self.store.create_schema()
        # A sweep's job checks its data paths again, against the same roots.
        roots = {ROOTS_VARIABLE: os.pathsep.join(map(str, settings.data_roots))}
        self.jobs = jobs or RayJobs(
            settings.ray_address,
            settings.ray_num_cpus,
            state_dir=self.storage,
            job_env=roots if settings.data_roots else None,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._following: set[str] = set()  # sweeps whose job Ray last reported not ended
        self._failures = 0  # passes in a row that failed as a whole
        self._last_success: dt.datetime | None = None
        self._last_error: str | None = None
        self._sweep_failures: dict[str, int] = {}  # sweep id: its refreshes failed in a row
        self._retry_at: dict[str, float] = {}  # sweep id: monotonic time of its next try
        # The job reads the URL from its environment; its spec only names the variable.
        self._job_env = {DATABASE_URL_ENV: settings.resolved_database_url()}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the unfinished sweeps in the background (and resubmit lost ones)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="sweep-refresh", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.jobs.shutdown()
        self.store.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh_all()
            except Exception as error:  # the loop must outlive whatever one pass meets
                self._failures += 1
                self._last_error = _one_line(error)
                logger.error(
                    "refresh pass failed (%d in a row; next in %.1f s): %s",
                    self._failures,
                    self._backoff(self._failures),
                    self._last_error,
                )
            else:
                if self._failures:
                    logger.info("refresh passes go through again")
                self._failures = 0
                self._last_success = dt.datetime.now(dt.UTC)
            self._stop.wait(self._backoff(self._failures))

    def _backoff(self, failures: int) -> float:
        """Seconds before the next try after ``failures`` failures in a row: the poll
        interval, doubled with each failure, at most ``refresh_backoff_max_seconds``."""
        poll = self.settings.poll_seconds
        if failures == 0:
            return poll
        return min(self.settings.refresh_backoff_max_seconds, poll * 2.0 ** min(failures, 30))

    def loop_state(self) -> LoopState:
        return LoopState(
            alive=self._thread is not None and self._thread.is_alive(),
            last_success=self._last_success,
            consecutive_failures=self._failures,
            failing_sweeps=len(self._sweep_failures),
            last_error=self._last_error,
        )

    # -- requests --------------------------------------------------------------------------

    def validate(self, data: str | Mapping[str, Any]) -> SweepSpec:
        """The sweep as the CLI checks it, plus the service's cap on trials and its data
        roots (a data path outside them is refused, naming the field)."""
        # The cap is checked on the trial count, before any of the sweep's configs is built.
        spec = parse_sweep(data, source="body", service_cap=self.settings.max_trials)
        if self.settings.ray_address is None:  # a cluster checks its GPUs when it places trials
            check_local_gpu(spec)
        check_data_roots(spec, self.settings.data_roots)
        return spec

    def create(self, data: str | Mapping[str, Any]) -> str:
        """Validate, record and submit a sweep; returns its id."""
        spec = self.validate(data)
        # Under the lock: the refresh loop must not see the row before its job id exists,
        # or it would take the sweep for lost and submit it a second time.
        with self._lock:
            return self._submit_new(spec)

    def _submit_new(self, spec: SweepSpec) -> str:
        run_dir = self.storage / f"{spec.name}-{uuid.uuid4().hex[:8]}"
        submitted = spec.model_dump(mode="json")
        # The service decides where results go: its storage and its database.
        submitted["storage"] = {"path": str(self.storage), "database_url": env_reference()}
        submitted["ray"] = {"address": None}
        spec = parse_sweep(submitted, source="body")
        sweep_id = sweep_id_for(spec, run_dir)
        run_dir.mkdir(parents=True)
        sweep_file = run_dir / SUBMITTED_FILE
        write_text_atomically(sweep_file, yaml.safe_dump(submitted, sort_keys=False), True)
        self.store.upsert_sweep(sweep_id, spec.name, "pending", submitted)
        self.store.update_sweep(
            sweep_id,
            run_dir=str(run_dir),
            progress=sweep_progress(run_dir, trial_count(spec)),
        )
        with sweep_context(sweep_id):
            try:
                job_id = self.jobs.submit(
                    run_dir, sweep_file, submission_id=f"{sweep_id}-0", env=self._job_env
                )
            except JobError as error:
                logger.error("submission refused: %s", error)
                self.store.update_sweep(sweep_id, status="failed", message=str(error))
                raise
            self.store.update_sweep(sweep_id, job_id=job_id)
            logger.info("submitted as Ray job %s, run directory %s", job_id, run_dir)
        return sweep_id

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        row = self.store.get_sweep(sweep_id)
        if row["status"] in TERMINAL:
            raise SweepConflictError(
                f"sweep {sweep_id!r} is already {row['status']}; only pending or running "
                "sweeps can be cancelled"
            )
        if row["job_id"]:
            self.jobs.stop(row["job_id"])
        self.store.update_sweep(sweep_id, status="cancelled", message="cancelled by request")
        with sweep_context(sweep_id):
            logger.info("cancelled by request")
        return self.store.get_sweep(sweep_id)

    # -- following -------------------------------------------------------------------------

    def refresh_all(self) -> None:
        """Refresh every unfinished sweep whose back-off has run out; one sweep's failure is
        logged and recorded as its message, and the others go on (the listing's failure, the
        database's, is the caller's)."""
        now = time.monotonic()
        for row in self.store.sweeps():
            sweep_id = row["sweep_id"]
            followed = row["status"] not in TERMINAL or sweep_id in self._following
            if not row["run_dir"] or not followed or self._retry_at.get(sweep_id, 0.0) > now:
                continue
            with sweep_context(sweep_id):
                try:
                    self.refresh(sweep_id)
                except Exception as error:  # one sweep's trouble must not stop the others
                    self._sweep_failed(sweep_id, error)
                else:
                    if self._sweep_failures.pop(sweep_id, 0):
                        logger.info("refresh goes through again")
                    self._retry_at.pop(sweep_id, None)

    def _sweep_failed(self, sweep_id: str, error: Exception) -> None:
        failures = self._sweep_failures.get(sweep_id, 0) + 1
        self._sweep_failures[sweep_id] = failures
        wait = self._backoff(failures)
        self._retry_at[sweep_id] = time.monotonic() + wait
        message = _one_line(error)
        logger.warning("refresh failed (%d in a row; next in %.1f s): %s", failures, wait, message)
        # When the database is the trouble, the next pass's listing says so.
        with contextlib.suppress(E2RNASError):
            self.store.update_sweep(sweep_id, message=message)

    def refresh(self, sweep_id: str) -> dict[str, Any]:
        """Bring one sweep's status, progress and finished rows up to date.

        A sweep stays followed until Ray reports its job ended, even once its status is
        final (the job's collection writes ``done`` while the job still runs), so that the
        last progress is recorded and a final status is never overwritten.
        """
        with self._lock:
            row = self.store.get_sweep(sweep_id)
            final = row["status"] in TERMINAL
            if not row["run_dir"] or (final and sweep_id not in self._following):
                return row
            run_dir = Path(row["run_dir"])
            spec = parse_sweep(row["spec"], source=f"sweep {sweep_id}")
            job_state = self.jobs.status(row["job_id"]) if row["job_id"] else None
            # Progress after the job state: what the job did up to the state we act on.
            changes: dict[str, Any] = {"progress": sweep_progress(run_dir, trial_count(spec))}
            if job_state is None:
                self._following.discard(sweep_id)
                if not final:
                    changes.update(self._pick_up(sweep_id, run_dir, row["job_id"]))
            elif job_state in ("PENDING", "RUNNING"):
                self._following.add(sweep_id)
                if not final:
                    changes["status"] = "pending" if job_state == "PENDING" else "running"
                self._ingest_finished(run_dir)
            else:
                self._following.discard(sweep_id)
                if row["status"] == "cancelled" or job_state == "STOPPED":
                    changes["status"] = "cancelled"
                elif job_state == "SUCCEEDED":
                    # The job's collection wrote every row; its verdict is in sweep.json.
                    ended = (
                        read_sweep_state(run_dir)["status"]
                        if (run_dir / SWEEP_FILE).exists()
                        else "failed"
                    )
                    changes["status"] = "done" if ended == "done" else "failed"
                else:
                    changes["status"] = "failed"
                    changes["message"] = self.jobs.logs_tail(row["job_id"])
                    self._ingest_finished(run_dir)  # what finished before the failure stays
            # Only over the status read above: the job's own collection may have written its
            # final status meanwhile, and a stale "running" must not overwrite it.
            self.store.update_sweep(sweep_id, if_status=row["status"], **changes)
            after = self.store.get_sweep(sweep_id)
            if after["status"] != row["status"]:  # what the store holds, whoever wrote it
                logger.info("status %s -> %s", row["status"], after["status"])
            return after

    def _pick_up(self, sweep_id: str, run_dir: Path, old_job: str | None) -> dict[str, Any]:
        """The changes for a sweep whose job Ray does not know: resubmitted, unless a driver
        still holds its run directory (one a previous Ray of this service left running),
        in which case it is followed through its files until that driver ends."""
        holder = lock_holder(run_dir)
        if holder is None:
            return {"job_id": self._resubmit(sweep_id, run_dir, old_job), "status": "pending"}
        self._ingest_finished(run_dir)
        return {
            "message": f"a driver ({holder}) still runs this sweep in {run_dir}; it is "
            "resumed here once that driver ends"
        }

    def _resubmit(self, sweep_id: str, run_dir: Path, old_job: str | None) -> str:
        suffix = (old_job or "").rsplit("-", 1)[-1]
        attempt = int(suffix) + 1 if suffix.isdigit() else 1
        # A sweep.json means Tune started: resume it; otherwise start it from the file.
        sweep_file = None if (run_dir / SWEEP_FILE).exists() else run_dir / SUBMITTED_FILE
        job_id = self.jobs.submit(
            run_dir, sweep_file, submission_id=f"{sweep_id}-{attempt}", env=self._job_env
        )
        logger.info(
            "Ray no longer knows job %s; %s as job %s",
            old_job,
            "started again" if sweep_file else "resumed",
            job_id,
        )
        return job_id

    def _ingest_finished(self, run_dir: Path) -> None:
        if not (run_dir / SWEEP_FILE).exists():
            return
        frame = results_table(run_dir)
        finished = frame[frame["status"] == "done"]
        if len(finished):
            self.store.ingest(finished)
