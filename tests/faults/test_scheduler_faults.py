"""A driver killed in the middle of an MO-ASHA sweep, then resumed: the same stops.

A real ``e2rnas sweep run`` of the reference sweep under MO-ASHA, one trial at a time
(``sweepkit.asha_text``), is killed with SIGKILL once the first trial, ranked at both rungs,
has finished, and before the second trial reached a rung. The finished trial reports no epoch
again, so its places at the rungs exist only in the killed driver's ``scheduler.json``:
``sweep resume`` must read them back, or the second trial would be the first at its rung and
go on. The resumed sweep must stop what the replay of the
undisturbed FIFO reference stops (``--order trials``), at the same epochs, with the
reference's values to the bit in every row.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweepkit import (
    ASHA_SETTING,
    RESULT_COLUMNS,
    SharedRun,
    asha_text,
    driver,
    kill_when,
    start_sweep,
)

from service.orchestration.replay import replay_sweep
from service.orchestration.rundir import SCHEDULER_FILE, read_scheduler_state
from service.results.table import read_search_records

FIRST = "F=0.6_L=0.03"  # Tune's first trial
SEARCH_COLUMNS = ("val_loss", "ood_loss", "adv_loss", "nop_loss", "flops_loss", "params_m")


def _first_trial_over(run_dir: Path) -> bool:
    """The first trial ranked at both rungs and finished, the second at no rung yet."""
    path, first = run_dir / SCHEDULER_FILE, run_dir / "trials" / FIRST / "trial.json"
    if not path.exists() or not first.exists():
        return False
    decisions = json.loads(path.read_text(encoding="utf-8"))["decisions"]
    return len(decisions) == 2 and json.loads(first.read_text(encoding="utf-8"))["status"] == "done"


@pytest.mark.integration
@pytest.mark.slow
def test_a_driver_killed_mid_mo_asha_resumes_to_the_same_stops(
    tmp_path: Path, reference_sweep: SharedRun, fault: Callable[[str], dict[str, Any]]
) -> None:
    killed = fault("driver SIGKILL mid MO-ASHA sweep, then resume")
    path, run_dir = tmp_path / "asha.yaml", tmp_path / "run"
    path.write_text(asha_text("asha-killed"), encoding="utf-8")
    kill_when(start_sweep(path, run_dir, tmp_path), lambda: _first_trial_over(run_dir), "rungs")
    killed["injected"] = True
    assert len(read_scheduler_state(run_dir)["decisions"]) == 2
    resumed = driver("resume", str(run_dir), cwd=tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]

    (expected,) = replay_sweep(
        reference_sweep.run_dir, [ASHA_SETTING], order="trials", include_fifo=False
    )
    state = read_scheduler_state(run_dir)
    assert expected.stopped and state["stopped"] == expected.stopped
    frame = pd.read_parquet(run_dir / "results.parquet")
    reference = reference_sweep.frame()
    counts = frame["trial_id"].value_counts()
    killed["rows_lost"] = len(set(reference["trial_id"]) - set(counts.index))
    killed["rows_duplicated"] = int((counts - 1).sum())
    assert (killed["rows_lost"], killed["rows_duplicated"]) == (0, 0)
    for _, row in frame.iterrows():
        (same,) = reference[reference["trial_id"] == row["trial_id"]].to_dict("records")
        if row["trial_id"] not in expected.stopped:
            assert row["status"] == "done"
            assert all(row[c] == same[c] for c in RESULT_COLUMNS), row["trial_id"]
            continue
        epoch = expected.stopped[row["trial_id"]]
        records = read_search_records(
            reference_sweep.run_dir / "trials" / row["trial_id"] / "metrics.jsonl"
        )
        (at_stop,) = [r for r in records if r["epoch"] == epoch]
        assert (row["status"], row["search_epochs"]) == ("stopped", epoch)
        assert all(row[c] == at_stop[c] for c in SEARCH_COLUMNS), row["trial_id"]
