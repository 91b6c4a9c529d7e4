"""A service killed with SIGKILL, then started again on the same storage: the embedded Ray head
it left (in a session of its own, so it survived) is found through its record and stopped with
its jobs, and a sweep whose run directory a driver still holds is not resubmitted until that
driver is gone; then it is, and it finishes. Real processes, a real Ray, a real store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import SharedRun, compare_rows, sweep_text

from service.api.manager import SUBMITTED_FILE, SweepManager
from service.api.settings import load_settings
from service.orchestration.collect import stored_table
from service.orchestration.jobs import HEAD_RECORD
from service.orchestration.rundir import sweep_id_for
from service.orchestration.spec import parse_sweep

OLD_SERVICE = """\
import sys, time
from pathlib import Path
from typing import Any
from service.orchestration.jobs import RayJobs
jobs = RayJobs(num_cpus=1, state_dir=Path(sys.argv[1]))
deadline = time.monotonic() + 120
while True:
    try:
        job = jobs.client().submit_job(entrypoint="sleep 6123")
        break
    except RuntimeError:
        if time.monotonic() > deadline:
            raise
        time.sleep(2)
while str(jobs.client().get_job_status(job)) not in ("RUNNING", "JobStatus.RUNNING"):
    time.sleep(0.5)
print("ready", flush=True)
time.sleep(600)
"""
HOLD = """\
import sys, time
from pathlib import Path
from typing import Any
from service.orchestration.driverlock import driver_lock
with driver_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""
SWEEP = sweep_text("restart", (0.08,))  # one point of the session's reference sweep


def _pgrep(pattern: str) -> str:
    done = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True, check=False)
    return "\n".join(line for line in done.stdout.splitlines() if "pgrep" not in line)


def _started(script: str, *args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip() in ("ready", "held"), line
    return process


@pytest.mark.integration
@pytest.mark.slow
def test_a_restarted_service_stops_the_old_head_and_waits_for_the_old_driver(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    reference_sweep: SharedRun,
    fault: Callable[[str], dict[str, Any]],
) -> None:
    killed = fault("service SIGKILL, then restart")
    for name in list(os.environ):
        if name.startswith("E2RNAS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    storage = (tmp_path / "storage").resolve()
    storage.mkdir()
    settings = load_settings(storage=storage, api_token="t", poll_seconds=0.5, ray_num_cpus=1)
    old = _started(OLD_SERVICE, str(storage))
    old.send_signal(signal.SIGKILL)  # no shutdown: its head and job live on
    old.wait()
    killed["injected"] = True
    record = json.loads((storage / HEAD_RECORD).read_text(encoding="utf-8"))
    old_head = record["temp_dir"]
    assert _pgrep(old_head) and _pgrep("sleep 6123")

    spec = parse_sweep(SWEEP, source="test")
    run_dir = storage / "restart-0001"
    run_dir.mkdir()
    submitted = spec.model_dump(mode="json")
    submitted["storage"] = {"path": str(storage), "database_url": settings.resolved_database_url()}
    submitted["ray"] = {"address": None}
    (run_dir / SUBMITTED_FILE).write_text(yaml.safe_dump(submitted), encoding="utf-8")
    sweep_id = sweep_id_for(parse_sweep(submitted, source="test"), run_dir)
    holder = _started(HOLD, str(run_dir))  # the old driver, still running
    manager = SweepManager(settings)
    try:
        manager.store.upsert_sweep(sweep_id, spec.name, "running", submitted)
        manager.store.update_sweep(sweep_id, run_dir=str(run_dir), job_id=f"{sweep_id}-0")
        row = manager.refresh(sweep_id)
        # The new head stopped the old one and its job before it started.
        assert not _pgrep(old_head) and not _pgrep("sleep 6123")
        assert json.loads((storage / HEAD_RECORD).read_text())["temp_dir"] != old_head
        # The run directory is still locked: no resume is submitted, the message says why.
        assert row["job_id"] == f"{sweep_id}-0" and row["status"] == "running"
        assert f"pid {holder.pid}" in row["message"]
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        row = manager.refresh(sweep_id)
        assert row["job_id"] == f"{sweep_id}-1" and row["status"] == "pending"
        deadline = time.monotonic() + 600
        while row["status"] not in ("done", "failed", "cancelled"):
            assert time.monotonic() < deadline, row
            time.sleep(1)
            row = manager.refresh(sweep_id)
        assert row["status"] == "done", (row, manager.jobs.logs_tail(row["job_id"]))
        reference = reference_sweep.frame()
        lost, duplicated = compare_rows(stored_table(run_dir), reference[reference["L"] == 0.08])
        killed["rows_lost"], killed["rows_duplicated"] = lost, duplicated
        assert (lost, duplicated) == (0, 0)
    finally:
        holder.kill()
        holder.wait()
        manager.close()
        if _pgrep(old_head):  # the test failed before the new service stopped it
            os.killpg(int(record["pid"]), signal.SIGKILL)
    assert not (storage / HEAD_RECORD).exists()  # a clean shutdown leaves no record
