"""What serving a sweep's results costs over reading them from the database directly.

Writes a finished sweep of synthetic trials (bench/synthetic.py) into a temporary SQLite
database (or ``--database-url``, e.g. a PostgreSQL one), starts ``e2rnas serve`` on it in a
subprocess on a loopback port, and drives ``--clients`` concurrent clients from this process,
``--requests`` requests per endpoint. The bare baseline is the same work without the service:
the same number of calls, by the same number of threads, of ``ResultStore(url).trials_frame``
(and `service.analysis.pareto.pareto_info` on it for the front). Service and bare runs alternate,
endpoint by endpoint, for ``--rounds`` rounds, so that load on the machine weighs on both
alike; the ratios (service p95 / bare p95, service req/s / bare req/s) are the result.

    python bench/service_load.py --trials 240 --clients 8 --requests 80
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from synthetic import build_sweep, running_service

from service.analysis.pareto import pareto_info
from service.orchestration.points import sweep_objectives
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore

PAIR = {"test_error": "min", "params_m": "min"}
ROW = "{:<22} {:>13.1f} {:>8.1f} {:>8.1f} {:>11.1f} {:>8.1f} {:>8.1f} {:>10.2f} {:>10.2f}"


class Samples:
    """Latencies of one side (service or bare) of one endpoint, and the wall time they took."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.wall = 0.0

    def rate(self) -> float:
        return len(self.latencies) / self.wall

    def quantile(self, q: float) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[round(q * 100) - 1]


def drive(call: Callable[[], None], requests: int, clients: int, into: Samples) -> None:
    """``requests`` calls of ``call`` spread over ``clients`` threads; latencies into ``into``."""

    def timed(_: int) -> float:
        start = time.perf_counter()
        call()
        return time.perf_counter() - start

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        into.latencies.extend(pool.map(timed, range(requests)))
    into.wall += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=80, help="per endpoint and side")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of the two sides")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in a temp dir)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tmp = Path(tempfile.mkdtemp(prefix="service-load-"))
    url = args.database_url or f"sqlite:///{tmp / 'service.db'}"
    sweep_id = build_sweep(url, args.trials)
    store = ResultStore(url)
    objectives = sweep_objectives(parse_sweep(store.get_sweep(sweep_id)["spec"]))

    def bare_results() -> None:
        store.trials_frame(sweep_id)

    def bare_front(chosen: Mapping[str, str]) -> Callable[[], None]:
        def call() -> None:
            frame = store.trials_frame(sweep_id)
            pareto_info(frame[frame["status"] == "done"].reset_index(drop=True), chosen)

        return call

    base = f"/api/sweeps/{sweep_id}"
    endpoints: dict[str, tuple[str, Callable[[], None]]] = {
        "pareto": (f"{base}/pareto", bare_front(objectives)),
        "pareto (2 objectives)": (f"{base}/pareto?objectives={','.join(PAIR)}", bare_front(PAIR)),
        "results json": (f"{base}/results", bare_results),
        "results csv": (f"{base}/results?format=csv", bare_results),
        "results parquet": (f"{base}/results?format=parquet", bare_results),
    }
    service_side = {name: Samples() for name in endpoints}
    bare_side = {name: Samples() for name in endpoints}
    with running_service(tmp / "storage", url) as service:
        clients: list[httpx.Client] = []
        local = threading.local()  # one client (one keep-alive connection) per thread

        def served(path: str) -> Callable[[], None]:
            def call() -> None:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = httpx.Client(base_url=service.url, timeout=300.0)
                    clients.append(client)
                response = client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(f"{path}: {response.status_code} {response.text[:300]}")

            return call

        try:
            for path, bare in endpoints.values():  # warm-up: imports, caches, pools
                served(path)()
                bare()
            for turn in range(args.rounds):
                for name, (path, bare) in endpoints.items():
                    sides: list[tuple[Callable[[], None], Samples]] = [
                        (served(path), service_side[name]),
                        (bare, bare_side[name]),
                    ]
                    for call, into in sides if turn % 2 == 0 else sides[::-1]:
                        drive(call, args.requests // args.rounds, args.clients, into)
        finally:
            for client in clients:
                client.close()
    store.close()
    kind = url.split(":", 1)[0]
    print(
        f"sweep of {args.trials} trials in {kind}; {args.clients} concurrent clients, "
        f"{args.requests} requests per endpoint and side, {os.cpu_count()} CPUs; "
        f"service exit status {service.returncode}"
    )
    header = (
        f"{'endpoint':<22} {'service req/s':>13} {'p50 ms':>8} {'p95 ms':>8}"
        f" {'bare req/s':>11} {'p50 ms':>8} {'p95 ms':>8} {'p95 ratio':>10} {'rps ratio':>10}"
    )
    print(header)
    for name in endpoints:
        s, b = service_side[name], bare_side[name]
        row: list[Any] = [name, s.rate(), 1e3 * s.quantile(0.5), 1e3 * s.quantile(0.95)]
        row += [b.rate(), 1e3 * b.quantile(0.5), 1e3 * b.quantile(0.95)]
        row += [s.quantile(0.95) / b.quantile(0.95), s.rate() / b.rate()]
        print(ROW.format(*row))


if __name__ == "__main__":
    main()
