"""What a sweep's seed robustness costs over its front, through the real web service.

Writes a finished sweep of synthetic trials (bench/synthetic.py: ``--configurations`` grid
points × ``--seeds`` seeds, the five front metrics) into a temporary SQLite database, starts
``e2rnas serve`` on it in a subprocess on a loopback port, and times, round-robin so that load
on the machine weighs on both alike, ``GET /api/sweeps/{id}/robust?resamples=N`` (dominance
probabilities from N draws of one seed per configuration, the hypervolume of each draw, the
attainment surfaces) against one ``GET /api/sweeps/{id}/pareto`` on the same sweep. The same
two computations without HTTP or the database (`robust_info` and `pareto_info` on the table)
are timed beside them, to show where the time goes. Medians and the ratios are the result.

    python bench/robust.py
    python bench/robust.py --configurations 100 --seeds 3 --resamples 1000 --repeats 7
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from synthetic import build_sweep, running_service

from service.analysis.pareto import pareto_info
from service.analysis.robust import robust_info
from service.analysis.robustview import count_text
from service.objectives import FRONT_METRICS, directions
from service.results.store import ResultStore


def timed_round_robin(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each call, one warm-up each, timed in turns."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--configurations", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="bench-robust-"))
    url = f"sqlite:///{tmp / 'service.db'}"
    trials = args.configurations * args.seeds
    sweep_id = build_sweep(url, trials, seeds=args.seeds)
    store = ResultStore(url)
    frame = store.trials_frame(sweep_id)
    store.close()
    objectives = directions(FRONT_METRICS)
    info = robust_info(frame, objectives, resamples=args.resamples)
    print(
        f"{len(frame)} trials: {len(info.table)} configurations x {info.runs[1]} seeds, "
        f"{len(objectives)} objectives; dominance probability by {info.method} "
        f"({info.resamples} draws of {count_text(info.combinations)} combinations), hypervolume "
        f"interval by {info.hypervolume.method} ({info.hypervolume.draws} draws)"
    )
    with running_service(tmp / "storage", url) as service, httpx.Client(timeout=600) as client:
        base = f"{service.url}/api/sweeps/{sweep_id}"

        def get(path: str) -> Callable[[], object]:
            def call() -> object:
                answer = client.get(base + path)
                answer.raise_for_status()
                return answer.content

            return call

        medians = timed_round_robin(
            {
                "GET /pareto": get("/pareto"),
                f"GET /robust?resamples={args.resamples}": get(
                    f"/robust?resamples={args.resamples}"
                ),
                "pareto_info (no HTTP)": lambda: pareto_info(frame, objectives),
                "robust_info (no HTTP)": lambda: robust_info(
                    frame, objectives, resamples=args.resamples
                ),
            },
            args.repeats,
        )
    pareto_s = medians["GET /pareto"]
    print(f"{'call':<34} {'median ms':>10} {'/ GET /pareto':>14}")
    for name, seconds in medians.items():
        print(f"{name:<34} {seconds * 1e3:>10.1f} {seconds / pareto_s:>14.2f}")


if __name__ == "__main__":
    main()
