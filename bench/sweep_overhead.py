"""What a sweep costs beyond its trials' own compute, Ray's start-up included.

Runs a sweep file end to end on an embedded local Ray and prints

    overhead ratio = wall time ÷ (summed trial compute ÷ concurrent slots)

where a trial's compute is the time its search epochs and its evaluation took inside the
trial (``search_seconds`` + ``eval_seconds`` of the results table) and the slots are how many
trials ran at once (cluster CPUs ÷ CPUs per trial, at most the number of trials). 1.0 would
mean Ray, Tune, data loading, checkpointing and collection cost nothing.

    python bench/sweep_overhead.py sweeps/quickstart.yaml --num-cpus 2
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from pathlib import Path

from service.orchestration.collect import results_table
from service.orchestration.points import trial_count
from service.orchestration.spec import load_sweep
from service.orchestration.tuner import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, nargs="?", default=Path("sweeps/quickstart.yaml"))
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: temp)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    spec = load_sweep(args.sweep)
    out = args.out or Path(tempfile.mkdtemp(prefix="sweep-bench-")) / spec.name
    started = time.perf_counter()
    run_sweep(spec, out, num_cpus=args.num_cpus)
    wall = time.perf_counter() - started
    table = results_table(out)
    compute = float((table["search_seconds"].fillna(0) + table["eval_seconds"].fillna(0)).sum())
    trials = trial_count(spec)
    slots = max(1, min(trials, math.floor(args.num_cpus / spec.resources.cpu)))
    ideal = compute / slots
    done = int((table["status"] == "done").sum())
    print(f"sweep {spec.name}: {done}/{trials} trials done, {slots} concurrent slots")
    print(f"wall time                      {wall:9.1f} s")
    print(f"summed trial compute           {compute:9.1f} s")
    print(f"ideal (compute / slots)        {ideal:9.1f} s")
    print(f"overhead ratio (wall / ideal)  {wall / ideal:9.2f}")


if __name__ == "__main__":
    main()
