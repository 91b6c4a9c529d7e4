"""Faults around a sweep's driver and its database, injected for real on one run directory.

A real ``e2rnas sweep run`` of one grid point of the reference sweep (``tests/sweepkit.py``),
storing its rows in a PostgreSQL server of the test's own:

1. while it runs, a second ``sweep run`` and a ``sweep resume`` of its run directory are refused
   at once, naming it (one driver per run directory);
2. it is killed with SIGKILL after a checkpoint; the lock is free, and ``sweep resume`` finishes
   the sweep with the undisturbed row;
3. the database is stopped while the sweep's rows are collected into it: one clear error, the
   results table still written whole; started again, collecting stores the same single row;
4. the finished trial's ``trial.json`` is cut in half: every reader stops with one line naming
   the file and the fix, and nothing stored is lost (the database and ``results.parquet``
   still hold the undisturbed row); with the file restored, collecting gives that row again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweepkit import SharedRun, compare_rows, driver, sweep_text

from service import cli
from service.errors import StoreError, TrialResultError
from service.orchestration.collect import collect, stored_table
from service.orchestration.driverlock import lock_holder

GRID_L = (0.03,)


def _wait(what: str, condition: Callable[[], object], driver: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 300
    while not condition():
        assert time.monotonic() < deadline and driver.poll() is None, f"no {what}"
        time.sleep(0.1)


def _one_row(frame: pd.DataFrame, reference: pd.DataFrame) -> tuple[int, int]:
    return compare_rows(frame, reference[reference["L"].isin(GRID_L)])


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_driver_a_stopped_database_and_a_cut_trial_file_lose_no_row(
    tmp_path: Path,
    reference_sweep: SharedRun,
    stoppable_postgres: Any,
    fault: Callable[[str], dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    reference = reference_sweep.frame()
    killed = fault("driver SIGKILL, then sweep resume")
    path, run_dir = tmp_path / "locked.yaml", tmp_path / "run"
    text = sweep_text("locked", GRID_L)
    path.write_text(f"{text}storage: {{database_url: '{stoppable_postgres.url}'}}\n", "utf-8")

    # 1-2. One driver per run directory, then a SIGKILL after a checkpoint.
    first = driver("run", str(path), "--out", str(run_dir), cwd=tmp_path)
    try:
        _wait("lock", lambda: (h := lock_holder(run_dir)) is not None and h.pid == first.pid, first)
        second = driver("run", str(path), "--out", str(run_dir), cwd=tmp_path)
        _out, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith(f"e2rnas: error: {run_dir}: "), err
        assert f"pid {first.pid}" in err
        _wait("sweep.json", (run_dir / "sweep.json").exists, first)
        resume = driver("resume", str(run_dir), cwd=tmp_path)
        _out, err = resume.communicate(timeout=120)
        assert resume.returncode == 2 and f"pid {first.pid}" in err, err
        _wait("checkpoint", lambda: list(run_dir.glob("trials/*/checkpoint.pt")), first)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
        killed["injected"] = True
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert lock_holder(run_dir) is None  # the kernel released it with the process
    resumed = driver("resume", str(run_dir), cwd=tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))["status"] == "done"
    assert lock_holder(run_dir) is None
    finished = pd.read_parquet(run_dir / "results.parquet")
    killed["rows_lost"], killed["rows_duplicated"] = _one_row(finished, reference)
    assert (killed["rows_lost"], killed["rows_duplicated"]) == (0, 0)
    assert _one_row(stored_table(run_dir), reference) == (0, 0)

    # 3. The database goes away while the rows are collected into it.
    ingest = fault("database down during ingest")
    stoppable_postgres.stop()
    ingest["injected"] = True
    with pytest.raises(StoreError) as info:
        collect(run_dir)
    assert "\n" not in str(info.value) and "database" in str(info.value).lower(), info.value
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "results.parquet"), finished)
    stoppable_postgres.start()
    assert collect(run_dir).rows == 1
    stored = stored_table(run_dir)
    ingest["rows_lost"], ingest["rows_duplicated"] = _one_row(stored, reference)
    assert len(stored) == 1 and (ingest["rows_lost"], ingest["rows_duplicated"]) == (0, 0)

    # 4. The finished trial's record is cut in half.
    cut = fault("trial.json cut in half")
    record = next(run_dir.glob("trials/*/trial.json"))
    whole = record.read_bytes()
    record.write_bytes(whole[: len(whole) // 2])
    cut["injected"] = True
    with pytest.raises(TrialResultError) as info:
        collect(run_dir)
    assert str(info.value).startswith(f"{record}: cannot read the trial's state")
    capsys.readouterr()
    assert cli.main(["sweep", "status", str(run_dir)]) == 2
    printed = capsys.readouterr().err
    assert printed.count("\n") == 1 and str(record) in printed and "restore it" in printed
    kept = [pd.read_parquet(run_dir / "results.parquet"), stored_table(run_dir)]
    assert all(_one_row(frame, reference) == (0, 0) for frame in kept)
    record.write_bytes(whole)
    assert collect(run_dir).rows == 1
    again = [pd.read_parquet(run_dir / "results.parquet"), stored_table(run_dir)]
    counts = [_one_row(frame, reference) for frame in (*kept, *again)]
    cut["rows_lost"] = max(lost for lost, _ in counts)
    cut["rows_duplicated"] = max(duplicated for _, duplicated in counts)
    assert counts == [(0, 0)] * 4
