"""Faults inside a running sweep, injected for real, each ending with the undisturbed rows.

One real local sweep of the reference file (``tests/sweepkit.py``: two trials, four epochs)
takes two faults: the worker of the first trial to checkpoint is killed with SIGKILL, and the
other trial's ``checkpoint.pt`` is cut to half its bytes before its worker is killed too. Ray
Tune restarts both; the first resumes from its checkpoint, the second sets the damaged file
aside and resumes from Tune's copy. The sweep must end with exactly the rows of the undisturbed
reference run: none lost, none duplicated, every result equal to the bit.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweepkit import EPOCHS, SharedRun, compare_rows, start_sweep, sweep_text

from service.orchestration.rundir import trial_states


def _epochs(trial_dir: Path) -> int:
    metrics = trial_dir / "metrics.jsonl"
    if not (trial_dir / "checkpoint.pt").exists() or not metrics.exists():
        return 0
    return sum(1 for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip())


def _running(run_dir: Path) -> list[dict[str, Any]]:
    """The trials whose worker has checkpointed 1..EPOCHS-1 epochs, with their trial.json."""
    found = []
    for path in sorted((run_dir / "trials").glob("*/trial.json")):
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        if info.get("status") == "running" and 1 <= _epochs(path.parent) < EPOCHS:
            found.append(info | {"dir": path.parent})
    return found


def _tune_copies(run_dir: Path, grid_l: float) -> int:
    """How many checkpoints Tune has registered for the trial at ``L=grid_l``."""
    count = 0
    for config in run_dir.glob("tune/*/*/checkpoint_*/config.json"):
        if json.loads(config.read_text(encoding="utf-8")).get("L") == grid_l:
            count += 1
    return count


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_worker_and_a_damaged_checkpoint_end_with_the_undisturbed_rows(
    tmp_path: Path, reference_sweep: SharedRun, fault: Callable[[str], dict[str, Any]]
) -> None:
    killed, damaged = fault("worker SIGKILL"), fault("checkpoint damaged, then worker SIGKILL")
    path = tmp_path / "faults.yaml"
    path.write_text(sweep_text("faults"), encoding="utf-8")
    run_dir = tmp_path / "run"
    driver = start_sweep(path, run_dir, tmp_path)
    victims: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + 300
        while len(victims) < 2 and driver.poll() is None and time.monotonic() < deadline:
            for trial in _running(run_dir):
                if trial["trial_key"] in victims:
                    continue
                if not victims:
                    os.kill(trial["attempts"][-1]["pid"], signal.SIGKILL)
                    killed["injected"] = True
                elif _tune_copies(run_dir, trial["point"]["L"]) >= 1:
                    checkpoint = trial["dir"] / "checkpoint.pt"
                    data = checkpoint.read_bytes()
                    checkpoint.write_bytes(data[: len(data) // 2])
                    os.kill(trial["attempts"][-1]["pid"], signal.SIGKILL)
                    damaged["injected"] = True
                else:
                    continue
                victims[trial["trial_key"]] = trial
            time.sleep(0.05)
        out, err = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            driver.send_signal(signal.SIGINT)
            driver.communicate(timeout=60)
    assert killed["injected"] and damaged["injected"], f"victims: {list(victims)}"
    assert driver.returncode == 0, err[-3000:]
    assert "results.parquet" in out

    reference = reference_sweep.frame()
    frame = SharedRun(path, run_dir, 0, out, err).frame()
    lost, duplicated = compare_rows(frame, reference)
    killed["rows_lost"] = damaged["rows_lost"] = lost
    killed["rows_duplicated"] = damaged["rows_duplicated"] = duplicated
    assert (lost, duplicated) == (0, 0)
    assert len(frame) == len(reference) == 2

    # Each victim was started again once. The killed one resumed from its checkpoint, not from
    # scratch. The damaged file was set aside; the search went on from Tune's copy when Tune
    # had registered it before the kill, else from the start (the same rows either way).
    states = {t["trial_key"]: t for t in trial_states(run_dir)}
    first, second = (states[key]["attempts"] for key in victims)
    assert len(first) == len(second) == 2, (first, second)
    assert first[1]["epochs_before"] >= 1, first
    damaged_dir = list(victims.values())[1]["dir"]
    assert (damaged_dir / "checkpoint.pt.corrupt").exists()
    assert not (victims[next(iter(victims))]["dir"] / "checkpoint.pt.corrupt").exists()
