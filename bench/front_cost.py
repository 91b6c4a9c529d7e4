"""The cost of a front: MO-ASHA against FIFO on one real sweep, measured by replay.

Runs the sweep file (default ``sweeps/early_stopping.yaml``: 27 trials of 10 epochs on the
embedded digits) once to the end under FIFO, then replays its logged per-epoch records through
MO-ASHA under several settings (no training; :mod:`service.orchestration.replay`) and prints,
for each, the search epochs it would have spent ÷ the grid's and the hypervolume of the front
of the trials it would have let finish ÷ the whole front's (the sweep's front metrics and
reference point). The aim of issue 11: a setting at ≤ 40 % of the epochs keeping ≥ 90 % of the
hypervolume. A run directory that already holds the finished sweep is replayed as it is; an
interrupted one is resumed first.

    python bench/front_cost.py                     # runs/front_cost, then the table
    python bench/front_cost.py --run-dir DIR --set grace_period=1,2 --set reduction_factor=3
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from service.logs import configure_logging
from service.orchestration.replay import (
    format_table,
    parse_settings,
    replay_sweep,
    replay_table,
    settings_grid,
)
from service.orchestration.rundir import SWEEP_FILE, read_sweep_state, spec_of
from service.orchestration.spec import load_sweep, parse_sweep
from service.orchestration.tuner import run_sweep

DEFAULT_SETTINGS = (
    "grace_period=1,2",
    "reduction_factor=2,3",
    "metrics=val_loss+adv_loss+ood_loss+params_m+flops_m,val_loss+params_m+flops_m",
    "tie_break=crowding,hypervolume",
    "max_rungs=1,all",
)
EPOCH_AIM, HYPERVOLUME_AIM = 0.40, 0.90


def _run_fifo(sweep: Path, run_dir: Path, num_cpus: int) -> float:
    """Run (or resume) the sweep under FIFO into ``run_dir``; the seconds it took here."""
    started = time.perf_counter()
    if (run_dir / SWEEP_FILE).exists():
        if read_sweep_state(run_dir)["status"] != "done":
            run_sweep(spec_of(run_dir), run_dir, resume=True, num_cpus=num_cpus)
        else:
            return 0.0
    else:
        data = load_sweep(sweep).model_dump(mode="json")
        data["scheduler"] = {"kind": "fifo"}
        run_sweep(parse_sweep(data, source=str(sweep)), run_dir, num_cpus=num_cpus)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, nargs="?", default=Path("sweeps/early_stopping.yaml"))
    parser.add_argument("--run-dir", type=Path, default=Path("runs/front_cost"))
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--set", dest="settings", action="append", default=None, metavar="KEY=V1[,V2...]"
    )
    parser.add_argument("--order", choices=("arrival", "trials"), default="arrival")
    args = parser.parse_args()
    configure_logging("warning")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    run_dir = args.run_dir.resolve()
    ran = _run_fifo(args.sweep, run_dir, args.num_cpus)
    settings = settings_grid(parse_settings(args.settings or DEFAULT_SETTINGS))
    started = time.perf_counter()
    outcomes = replay_sweep(run_dir, settings, order=args.order)
    replayed = time.perf_counter() - started
    table = replay_table(outcomes)
    table["aim"] = [
        "yes" if e <= EPOCH_AIM and h >= HYPERVOLUME_AIM else ""
        for e, h in zip(table["epochs_ratio"], table["hypervolume_ratio"], strict=True)
    ]
    fifo = outcomes[0]
    print(
        f"sweep {run_dir}: {fifo.finished} trials, {fifo.full_epochs} search epochs, front of "
        f"{fifo.front}, hypervolume {fifo.full_hypervolume:.6g}; replay order {args.order}"
    )
    print(format_table(table))
    met = table[table["aim"] == "yes"]
    print(
        f"aim (<= {EPOCH_AIM:.0%} of the epochs, >= {HYPERVOLUME_AIM:.0%} of the hypervolume): "
        f"{len(met)} of {len(settings)} settings"
    )
    sweep_time = f"{ran:.1f} s" if ran else "run earlier"
    print(f"sweep run: {sweep_time}; {len(outcomes)} replays: {replayed:.2f} s")


if __name__ == "__main__":
    main()
