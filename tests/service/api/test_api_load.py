"""Load test of the real service: ``e2rnas serve`` (uvicorn) in a subprocess over a SQLite
database holding a finished sweep of 240 synthetic trials, hammered from this process by 8
threads of concurrent requests to the results and front endpoints. Every answer must be 200,
whole, and the same as the store and `service.analysis.pareto.pareto_info` give directly; the server
must then stop cleanly on SIGTERM. No timing is asserted (bench/service_load.py measures it).
"""

from __future__ import annotations

import io
import signal
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from service.analysis.pareto import pareto_info
from service.orchestration.points import sweep_objectives
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from synthetic import build_sweep, running_service

pytestmark = pytest.mark.integration

TRIALS = 240
THREADS = 8
REQUESTS_PER_THREAD = 40
PAIR = "test_error,params_m"


def _expected_front(frame: pd.DataFrame, objectives: dict[str, str]) -> dict[str, Any]:
    done = frame[frame["status"] == "done"].reset_index(drop=True)
    info = pareto_info(done, objectives)
    ids = done["trial_id"]
    return {
        "front": sorted(str(ids.iloc[i]) for i in info.front),
        "knee": None if info.knee is None else str(ids.iloc[info.knee]),
        "ranks": {str(ids.iloc[i]): int(r) for i, r in enumerate(info.ranks)},
        "hypervolume": info.hypervolume,
    }


def _front_of(answer: dict[str, Any]) -> dict[str, Any]:
    return {
        "front": sorted(record["trial_id"] for record in answer["front"]),
        "knee": answer["knee"],
        "ranks": answer["ranks"],
        "hypervolume": answer["hypervolume"],
    }


def test_concurrent_reads_of_a_big_sweep_are_whole_and_consistent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    sweep_id = build_sweep(url, TRIALS)
    store = ResultStore(url)
    try:
        frame = store.trials_frame(sweep_id)
        spec = parse_sweep(store.get_sweep(sweep_id)["spec"])
        expected = {
            "pareto": _expected_front(frame, sweep_objectives(spec)),
            "pareto-pair": _expected_front(frame, {"test_error": "min", "params_m": "min"}),
        }
    finally:
        store.close()
    assert len(frame) == TRIALS
    base = f"/api/sweeps/{sweep_id}"
    endpoints = {
        "pareto": f"{base}/pareto",
        "pareto-pair": f"{base}/pareto?objectives={PAIR}",
        "results": f"{base}/results",
        "csv": f"{base}/results?format=csv",
        "parquet": f"{base}/results?format=parquet",
    }
    names = list(endpoints)

    def check(name: str, response: httpx.Response) -> None:
        assert response.status_code == 200, (name, response.status_code, response.text[:500])
        if name in ("pareto", "pareto-pair"):
            assert _front_of(response.json()) == expected[name], name
        elif name == "results":
            answer = response.json()
            assert answer["count"] == TRIALS and len(answer["data"]) == TRIALS
            assert answer["columns"] == list(frame.columns)
            assert [r["trial_id"] for r in answer["data"]] == list(frame["trial_id"])
        elif name == "csv":
            assert response.headers["content-type"].startswith("text/csv")
            table = pd.read_csv(io.StringIO(response.text))
            assert len(table) == TRIALS and list(table.columns) == list(frame.columns)
        else:
            table = pd.read_parquet(io.BytesIO(response.content))
            assert len(table) == TRIALS and list(table.columns) == list(frame.columns)
            assert list(table["trial_id"]) == list(frame["trial_id"])

    def client_thread(number: int) -> Counter[str]:
        done: Counter[str] = Counter()
        with httpx.Client(base_url=service.url, timeout=120.0) as client:
            for request in range(REQUESTS_PER_THREAD):
                name = names[(number + request) % len(names)]
                check(name, client.get(endpoints[name]))
                done[name] += 1
        return done

    with running_service(tmp_path / "storage", url) as service, ThreadPoolExecutor(THREADS) as pool:
        counts = sum(pool.map(client_thread, range(THREADS)), Counter[str]())
    assert sum(counts.values()) == THREADS * REQUESTS_PER_THREAD
    assert set(counts) == set(names)
    # uvicorn re-raises the SIGTERM it handled once its shutdown (the app's lifespan included)
    # is complete, so a clean stop exits by that signal; a crash would show a traceback.
    assert service.returncode in (0, -signal.SIGTERM), service.log
    assert "Traceback" not in service.log and "ERROR" not in service.log, service.log
