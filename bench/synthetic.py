"""A finished sweep of synthetic trials in a real results database, and the real web service
over it in a subprocess: shared by ``bench/service_load.py`` and the service's load and fuzz
tests (which put ``bench/`` on ``sys.path``).

The rows follow the results-table contract of `service.results` (as `trial_row` writes them
for an evaluated trial): every trial is ``done`` with the five front metrics, its swept ``L``,
``F`` and ``seed``, and one of a few genotypes derived from seeded random alphas, so that
the front, the exports and the cell diagrams see real genotypes and repeated hashes. The
metrics are seeded too: the same arguments give the same rows, hence the same front.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_core.derive import derive_genotype
from service.objectives import PROXY_METRICS
from service.orchestration.points import grid_points, trial_count
from service.orchestration.rundir import trial_key
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore
from service.results.table import package_versions, results_frame

__all__ = ["Service", "build_sweep", "free_port", "running_service", "sweep_yaml"]

REPO = Path(__file__).resolve().parent.parent
GENOTYPES = 12  # distinct genotypes among the trials
STARTUP_S = 120.0


def sweep_yaml(trials: int, name: str = "synthetic", seeds: int = 2) -> str:
    """A valid sweep file (quickstart's settings) whose grid has at least ``trials`` points:
    L × F × ``seeds`` seeds."""
    per_seed = -(-trials // seeds)
    l_count = max(1, int(np.ceil(np.sqrt(per_seed))))
    f_count = -(-per_seed // l_count)
    l_values = [round(0.01 + 0.01 * i, 4) for i in range(l_count)]
    f_values = [round(0.2 + 0.1 * i, 4) for i in range(f_count)]
    return (
        f"name: {name}\n"
        "dataset: digits\n"
        "ood_dataset: digits-ood\n"
        "search: {preset: cpu-tiny}\n"
        "evaluation: {mode: proxy, preset: cpu-tiny}\n"
        f"grid: {{L: {json.dumps(l_values)}, F: {json.dumps(f_values)}, "
        f"seed: {json.dumps(list(range(seeds)))}}}\n"
        "resources: {gpu: 0, cpu: 1}\n"
        f"max_trials: {max(100, l_count * f_count * seeds)}\n"
    )


def _rows(sweep_id: str, points: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    genotypes = [
        derive_genotype(
            torch.randn(14, 8, generator=generator), torch.randn(14, 8, generator=generator)
        )
        for _ in range(GENOTYPES)
    ]
    versions = package_versions()
    rows = []
    for index, point in enumerate(points):
        genotype = genotypes[index % GENOTYPES]
        # Bigger bounds: bigger, more accurate and more robust networks, with noise.
        size = point["L"] * (1.0 + 0.3 * rng.standard_normal() ** 2)
        test_error = 30.0 / (1.0 + 40.0 * size) + rng.uniform(0.0, 4.0)
        rows.append(
            {
                "sweep_id": sweep_id,
                "trial_id": trial_key(point),
                "status": "done",
                "backbone": "darts",
                "val_loss": float(rng.uniform(0.2, 1.5)),
                "ood_loss": float(rng.uniform(0.1, 0.9)),
                "adv_loss": float(rng.uniform(1.0, 2.5)),
                "nop_loss": float(rng.uniform(0.0, 0.2)),
                "flops_loss": float(rng.uniform(0.0, 0.2)),
                "mgda_weights": json.dumps([0.2] * 5),
                "test_error": float(test_error),
                "params_m": float(size),
                "flops_m": float(point["F"] * rng.uniform(0.6, 1.4)),
                "pgd_acc": float(20.0 + 150.0 * size + rng.uniform(0.0, 10.0)),
                "ood_aupr": float(rng.uniform(60.0, 95.0)),
                "latency_ms": float(rng.uniform(1.0, 5.0)),
                "evaluation": "proxy",
                "genotype": genotype.dumps(),
                "genotype_hash": genotype.genotype_hash(),
                **dict.fromkeys(PROXY_METRICS, float("nan")),
                "ood_aupr_paper": float(rng.uniform(25.0, 40.0)),
                "pgd_acc_paper": float(20.0 + 160.0 * size + rng.uniform(0.0, 10.0)),
                "ood_fpr95_in": float(rng.uniform(20.0, 60.0)),
                "grad_norms": json.dumps([0.1] * 5),
                "effective_weights": json.dumps([0.02] * 5),
                "search_options": None,
                "search_epochs": 50.0,
                "search_seconds": float(rng.uniform(50.0, 150.0)),
                "eval_seconds": float(rng.uniform(10.0, 40.0)),
                "device": "cpu",
                "versions": versions,
                **point,
            }
        )
    return rows


def build_sweep(
    url: str, trials: int = 240, seed: int = 0, name: str = "synthetic", seeds: int = 2
) -> str:
    """Write a finished sweep of ``trials`` synthetic trials, ``seeds`` seeds per grid point,
    into the database at ``url`` (schema created if missing), as the service records one;
    returns its sweep id."""
    spec = parse_sweep(sweep_yaml(trials, name, seeds), source="synthetic sweep")
    points = grid_points(spec)[:trials]
    sweep_id = f"{name}-{seed:08x}"
    store = ResultStore(url)
    try:
        store.create_schema()
        store.upsert_sweep(sweep_id, name, "done", spec.model_dump(mode="json"))
        total = trial_count(spec)
        progress = {"total": total, "pending": total - len(points), "running": 0}
        progress.update(done=len(points), failed=0, epochs=len(points) * 5)
        store.update_sweep(sweep_id, run_dir=f"/nonexistent/{sweep_id}", progress=progress)
        store.ingest(results_frame(_rows(sweep_id, points, seed)))
    finally:
        store.close()
    return sweep_id


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Service:
    """A running ``e2rnas serve``; ``returncode`` and ``log`` are set once it stopped."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    returncode: int | None = None
    log: str = ""


def _wait_ready(service: Service, deadline: float) -> None:
    import httpx

    while True:
        if service.process.poll() is not None:
            raise RuntimeError(
                f"the service exited with {service.process.returncode} before answering:\n"
                + service.log_path.read_text(errors="replace")[-4000:]
            )
        try:
            if httpx.get(f"{service.url}/api/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"the service did not answer on {service.url} within {STARTUP_S} s")
        time.sleep(0.2)


@contextmanager
def running_service(storage: Path, database_url: str) -> Iterator[Service]:
    """``python -m service.cli serve`` on a free loopback port, with its run directories in
    ``storage`` and its database at ``database_url`` (``E2RNAS_DATABASE_URL``; the other
    ``E2RNAS_*`` variables of this process are not passed on), ready to answer; on exit it
    gets SIGTERM and is waited for, and ``returncode`` and ``log`` are filled in."""
    storage.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("E2RNAS_")}
    env.setdefault("OMP_NUM_THREADS", "1")
    env["E2RNAS_DATABASE_URL"] = database_url
    log_path = storage / "service.log"
    command = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--storage", str(storage)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    service = Service(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_ready(service, time.monotonic() + STARTUP_S)
        yield service
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            service.returncode = process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            service.returncode = process.wait()
        service.log = log_path.read_text(errors="replace")
