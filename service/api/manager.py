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
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from service.api.settings import ServiceSettings
from service.errors import E2RNASError, JobError, SweepConflictError
from service.logs import sweep_context
from service.orchestration.collect import results_table
from service.orchestration.dataroots import ROOTS_VARIABLE, check_data_roots
from service.orchestration.driverlock import lock_holder
from service.orchestration.jobs import RayJobs
from service.orchestration.points import check_local_gpu, trial_count
from service.orchestration.rundir import SWEEP_FILE, read_sweep_state, sweep_id_for, sweep_progress
from service.orchestration.spec import SweepSpec, parse_sweep
from service.results.store import ResultStore

__all__ = ["STATUSES", "TERMINAL", "SweepConflictError", "SweepManager"]

STATUSES = ("pending", "running", "done", "failed", "cancelled")
TERMINAL = ("done", "failed", "cancelled")
SUBMITTED_FILE = "submitted.yaml"

logger = logging.getLogger(__name__)


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
            self.refresh_all()
            self._stop.wait(self.settings.poll_seconds)

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
        submitted["storage"] = {
            "path": str(self.storage),
            "database_url": self.settings.resolved_database_url(),
        }
        submitted["ray"] = {"address": None}
        spec = parse_sweep(submitted, source="body")
        sweep_id = sweep_id_for(spec, run_dir)
        run_dir.mkdir(parents=True)
        sweep_file = run_dir / SUBMITTED_FILE
        sweep_file.write_text(yaml.safe_dump(submitted, sort_keys=False), encoding="utf-8")
        self.store.upsert_sweep(sweep_id, spec.name, "pending", submitted)
        self.store.update_sweep(
            sweep_id,
            run_dir=str(run_dir),
            progress=sweep_progress(run_dir, trial_count(spec)),
        )
        with sweep_context(sweep_id):
            try:
                job_id = self.jobs.submit(run_dir, sweep_file, submission_id=f"{sweep_id}-0")
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
        for row in self.store.sweeps():
            sweep_id = row["sweep_id"]
            if row["run_dir"] and (row["status"] not in TERMINAL or sweep_id in self._following):
                with sweep_context(sweep_id):
                    try:
                        self.refresh(sweep_id)
                    except E2RNASError as error:
                        logger.warning("refresh failed: %s", error)
                        self.store.update_sweep(sweep_id, message=str(error))

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
            if changes.get("status", row["status"]) != row["status"]:
                logger.info("status %s -> %s", row["status"], changes["status"])
            self.store.update_sweep(sweep_id, **changes)
            return self.store.get_sweep(sweep_id)

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
        job_id = self.jobs.submit(run_dir, sweep_file, submission_id=f"{sweep_id}-{attempt}")
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
