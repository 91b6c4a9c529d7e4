"""Tests of the web service's REST API (service/api) through FastAPI's TestClient, on real
databases: the same suite on a SQLite file and on a real PostgreSQL server (a fresh database
per test on the throwaway server of ``tests/conftest.py``).

Sweeps for the read paths are written straight into the store (a sweep row and trial rows), so
no search runs; one end-to-end test (integration, slow) submits a real tiny sweep, restarts the
service in the middle of it and checks that the sweep is picked up without redoing work.
"""

from __future__ import annotations

import ast
import io
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import SharedRun, compare_rows, sweep_text

from search_core.derive import derive_genotype
from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED, Genotype
from service import cli
from service.analysis.figures import compare_fronts, projection, scatter_matrix
from service.analysis.gallery import FIGURE_NAMES, sweep_figure, why_not
from service.analysis.plotdata import compare_info, rank_table
from service.api import create_app
from service.api.settings import ServiceSettings, load_settings
from service.objectives import FRONT_METRICS, directions, registry
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore
from service.results.table import FLOAT_COLUMNS, RESULT_COLUMNS, package_versions, results_frame

TOKEN = "s3cret-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}
SWEEP_ID = "synthetic-0123abcd"
UNKNOWN_ID = "no-such-sweep-42"
QUICKSTART = Path(__file__).resolve().parents[3] / "sweeps" / "quickstart.yaml"
OBJECTIVES5 = directions(FRONT_METRICS)
SWEPT = ["F", "L", "seed"]  # the swept keys, as the results table sorts them
CONTRACT_PATHS = {
    "/api/sweeps": {"get", "post"},
    "/api/sweeps/{sweep_id}": {"get"},
    "/api/sweeps/{sweep_id}/cancel": {"post"},
    "/api/sweeps/{sweep_id}/results": {"get"},
    "/api/sweeps/{sweep_id}/pareto": {"get"},
    "/api/sweeps/{sweep_id}/robust": {"get"},
    "/api/sweeps/{sweep_id}/export/{file_name}": {"get"},
    "/api/health": {"get"},
    "/api/objectives": {"get"},
    "/api/sweeps/{sweep_id}/figures": {"get"},
    "/api/sweeps/{sweep_id}/figures/{name}": {"get"},
    "/api/compare": {"get"},
}
EXPORT_TYPES = {
    "genotypes.json": "application/json",
    "genotypes.py": "text/x-python",
    "front.csv": "text/csv",
    "front.parquet": "application/vnd.apache.parquet",
    "robust.csv": "text/csv",
}

# A valid sweep body that stays small (under the 2 KiB body limit of the app fixture).
SMALL_SWEEP = """\
name: quick
dataset: digits
ood_dataset: digits-ood
search: {preset: cpu-tiny}
evaluation: {mode: proxy, preset: cpu-tiny}
grid: {L: [0.02, 0.07, 0.15], F: [0.3, 0.9, 2.0], seed: [0]}
resources: {gpu: 0, cpu: 1}
max_trials: 9
"""


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A real database for the service: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'api.db').resolve()}"
    # Requested here, not as an argument: the SQLite variant starts no PostgreSQL server.
    url: str = request.getfixturevalue("postgres_db_url")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    for name in list(os.environ):
        if name.startswith("E2RNAS_") and name != "E2RNAS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    return load_settings(
        storage=tmp_path / "storage",
        database_url=database_url,
        api_token=TOKEN,
        poll_seconds=0.2,
        max_trials=4,
        max_body_bytes=2048,
    )


def _store(client: TestClient) -> ResultStore:
    store: ResultStore = client.app.state.manager.store  # type: ignore[attr-defined]
    return store


# -- synthetic sweep -----------------------------------------------------------------------


def _genotypes() -> list[Genotype]:
    """Eight distinct genotypes: the bundled four and four derived from seeded alphas."""
    found = [BUNDLED[name] for name in ("darts_v1", "darts_v2", "pc_darts", "pdarts")]
    generator = torch.Generator().manual_seed(7)
    while len(found) < 8:
        g = derive_genotype(
            torch.randn(14, 8, generator=generator), torch.randn(14, 8, generator=generator)
        )
        if g.genotype_hash() not in {f.genotype_hash() for f in found}:
            found.append(g)
    return found


def _row(index: int, genotype: Genotype | None, status: str, **metrics: float) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update(
        sweep_id=SWEEP_ID,
        trial_id=f"F={0.3 * (index % 3 + 1):.1f}_L={0.01 * (index + 1):.2f}_seed=0",
        status=status,
        # The synthetic sweep spans the three backbones, so that its fronts by backbone draw.
        backbone=("darts", "pc_darts", "pdarts")[index % 3],
        evaluation="none",
        versions=package_versions(),
        L=round(0.01 * (index + 1), 2),
        F=round(0.3 * (index % 3 + 1), 1),
        seed=0,
    )
    if genotype is not None:
        row.update(
            val_loss=0.5 + index / 10,
            ood_loss=0.25,
            adv_loss=1.5,
            nop_loss=0.125,
            flops_loss=0.0625,
            mgda_weights=json.dumps([0.2] * 5),
            latency_ms=4.5,
            evaluation="proxy",
            genotype=genotype.dumps(),
            genotype_hash=genotype.genotype_hash(),
            search_seconds=100.0 + index,
            eval_seconds=10.0 + index,
            device="cpu",
        )
    row.update(metrics)
    return row


def synthetic_rows() -> list[dict[str, Any]]:
    """14 trials: 10 done with all five metrics, 1 done without pgd_acc/ood_aupr (rank -1 on
    the default objectives), 3 failed (two with NaN metrics, one with finite metrics that
    would dominate everything were failed trials not left out)."""
    genotypes = _genotypes()
    rng = np.random.default_rng(3)
    rows = []
    for k in range(10):
        rows.append(
            _row(
                k,
                genotypes[k % 8],  # rows k and k+8 share a genotype
                "done",
                test_error=float(np.round(rng.uniform(2.0, 20.0), 3)),
                params_m=float(np.round(rng.uniform(0.01, 0.2), 4)),
                flops_m=float(np.round(rng.uniform(0.2, 2.5), 3)),
                pgd_acc=float(np.round(rng.uniform(10.0, 60.0), 2)),
                ood_aupr=float(np.round(rng.uniform(50.0, 95.0), 2)),
            )
        )
    # Two rows with the same test_error/params_m as row 0: duplicates share a rank.
    rows.append(_row(10, genotypes[3], "done", test_error=1.5, params_m=0.5, flops_m=3.0))
    rows.append(_row(11, None, "failed"))
    rows.append(_row(12, genotypes[5], "failed", params_m=0.02, flops_m=0.3))
    rows.append(
        _row(
            13,
            genotypes[6],
            "failed",
            test_error=0.1,
            params_m=0.001,
            flops_m=0.01,
            pgd_acc=99.0,
            ood_aupr=99.0,
        )
    )
    return rows


def spec_mapping() -> dict[str, Any]:
    text = QUICKSTART.read_text(encoding="utf-8")
    spec: dict[str, Any] = parse_sweep(text).model_dump(mode="json")
    return spec


@pytest.fixture
def finished(client: TestClient, tmp_path: Path) -> pd.DataFrame:
    """A finished sweep ``SWEEP_ID`` written straight into the service's store; its frame."""
    store = _store(client)
    store.upsert_sweep(SWEEP_ID, "quickstart", "done", spec_mapping())
    progress = {"total": 14, "pending": 0, "running": 0, "done": 11, "failed": 3, "epochs": 70}
    store.update_sweep(SWEEP_ID, run_dir=str(tmp_path / "run"), progress=progress, status="done")
    frame = results_frame(synthetic_rows())
    assert store.ingest(frame) == 14
    return frame.sort_values("trial_id").reset_index(drop=True)


# -- independent checks --------------------------------------------------------------------


def brute_front(frame: pd.DataFrame, objectives: dict[str, str]) -> set[str]:
    """The trial ids of the done rows with every objective that no other such row dominates."""
    done = frame[(frame["status"] == "done")].dropna(subset=list(objectives))
    points = [
        (
            trial_id,
            [
                (-1.0 if objectives[name] == "max" else 1.0) * float(row[name])
                for name in objectives
            ],
        )
        for trial_id, (_, row) in zip(done["trial_id"], done.iterrows(), strict=True)
    ]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x <= y for x, y in zip(a, b, strict=True)) and any(
            x < y for x, y in zip(a, b, strict=True)
        )

    return {t for t, p in points if not any(dominates(q, p) for _, q in points)}


def staircase_area(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The 2-D hypervolume (both objectives minimised) of ``points`` against ``reference``:
    the area of the union of the rectangles [x, rx] x [y, ry], summed strip by strip."""
    rx, ry = reference
    inside = sorted((x, y) for x, y in points if x < rx and y < ry)
    area, best_y = 0.0, ry
    for k, (x, y) in enumerate(inside):
        best_y = min(best_y, y)
        next_x = inside[k + 1][0] if k + 1 < len(inside) else rx
        area += (next_x - x) * (ry - best_y)
    return area


def _detail(response: Any) -> str:
    """The one-line ``detail`` of an error answer, which must be an RFC 9457 problem."""
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body = response.json()
    assert set(body) == {"type", "title", "status", "detail", "instance"}, body
    assert body["status"] == response.status_code
    assert isinstance(body["detail"], str)
    return str(body["detail"])


# -- health, list, bad bodies, auth --------------------------------------------------------


def test_health(client: TestClient, settings: ServiceSettings) -> None:
    response = client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["detail"] is None
    expected = "sqlite" if settings.resolved_database_url().startswith("sqlite") else "postgresql"
    assert body["database"] == {"ok": True, "dialect": expected, "detail": None}
    assert body["ray"]["reachable"] is None and "embedded" in body["ray"]["address"]
    assert body["loop"]["ok"] and body["loop"]["alive"]
    assert body["version"]


def test_list_is_empty_at_first(client: TestClient) -> None:
    response = client.get("/api/sweeps")
    assert response.status_code == 200
    assert response.json() == {"data": [], "count": 0, "total": 0}


@pytest.mark.parametrize("scheduler", ["", "scheduler: {kind: mo_asha, grace_period: 1}\n"])
def test_validate_answers_the_name_without_submitting(client: TestClient, scheduler: str) -> None:
    body = SMALL_SWEEP.replace("F: [0.3, 0.9, 2.0]", "F: [0.3]")  # 3 trials: under the cap
    response = client.post("/api/sweeps/validate", content=body + scheduler, headers=YAML)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "name": "quick",
        "trials": 3,
        "objectives": {
            "test_error": "min",
            "params_m": "min",
            "flops_m": "min",
            "pgd_acc": "max",
            "ood_aupr": "max",
        },
    }
    assert client.get("/api/sweeps").json()["count"] == 0


@pytest.mark.parametrize(
    ("body", "headers", "code", "named"),
    [
        pytest.param("name: [unclosed", YAML, 400, "malformed YAML", id="malformed-yaml"),
        pytest.param(SMALL_SWEEP + "bogus_key: 1\n", YAML, 422, "bogus_key", id="unknown-key"),
        pytest.param(
            SMALL_SWEEP.replace("L: [0.02, 0.07, 0.15]", "L: [-1]"),
            YAML,
            422,
            "grid.L",
            id="negative-bound",
        ),
        pytest.param(SMALL_SWEEP, YAML, 422, "cap of 4", id="over-the-cap"),
        pytest.param(
            SMALL_SWEEP.replace("F: [0.3, 0.9, 2.0]", "F: [0.3]")
            + "scheduler: {kind: mo_asha, reduction_factor: 1}\n",
            YAML,
            422,
            "scheduler.reduction_factor",
            id="early-stopping-factor",
        ),
        pytest.param(
            "[1, 2, 3]", {"Content-Type": "application/json"}, 422, "JSON object", id="json-list"
        ),
        pytest.param(
            '{"name": ', {"Content-Type": "application/json"}, 400, "malformed JSON", id="bad-json"
        ),
        pytest.param(
            SMALL_SWEEP, {"Content-Type": "application/xml"}, 415, "Content-Type", id="xml"
        ),
        pytest.param("name: x\n" + "#" * 4096 + "\n", YAML, 413, "2048 bytes", id="too-large"),
    ],
)
def test_bad_bodies_are_refused_naming_the_problem(
    client: TestClient, body: str, headers: dict[str, str], code: int, named: str
) -> None:
    for path in ("/api/sweeps", "/api/sweeps/validate"):
        response = client.post(path, content=body, headers={**headers, **AUTH})
        assert response.status_code == code, (path, response.text)
        assert named in _detail(response)
    # Nothing was recorded (and no Ray was started).
    assert client.get("/api/sweeps").json()["count"] == 0
    assert client.app.state.manager.jobs._client is None  # type: ignore[attr-defined]


def test_the_cap_message_names_grid_and_the_setting(client: TestClient) -> None:
    response = client.post("/api/sweeps", content=SMALL_SWEEP, headers={**YAML, **AUTH})
    assert response.status_code == 422
    detail = _detail(response)
    # Checked with the file's own checks, before any config is built: "body: " like them.
    assert detail.startswith("body: grid:") and "9 trials" in detail
    assert "E2RNAS_MAX_TRIALS" in detail


def test_a_json_object_body_is_validated_like_yaml(client: TestClient) -> None:
    import yaml

    data = yaml.safe_load(SMALL_SWEEP)
    data["grid"]["L"] = [-1]
    response = client.post("/api/sweeps", json=data, headers=AUTH)
    assert response.status_code == 422
    assert "grid.L" in _detail(response)


def test_a_missing_token_is_401_with_www_authenticate(client: TestClient) -> None:
    for path in ("/api/sweeps", f"/api/sweeps/{UNKNOWN_ID}/cancel"):
        response = client.post(path, content=SMALL_SWEEP, headers=YAML)
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization" in _detail(response) and "bearer" in _detail(response).lower()
    basic = client.post(
        "/api/sweeps", content=SMALL_SWEEP, headers={**YAML, "Authorization": "Basic eDp5"}
    )
    assert basic.status_code == 401


def test_a_wrong_token_is_403(client: TestClient) -> None:
    for path in ("/api/sweeps", f"/api/sweeps/{UNKNOWN_ID}/cancel"):
        response = client.post(
            path, content=SMALL_SWEEP, headers={**YAML, "Authorization": "Bearer wrong"}
        )
        assert response.status_code == 403, response.text
        assert "E2RNAS_API_TOKEN" in _detail(response)
    assert client.get("/api/sweeps").json()["count"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/sweeps/{id}"),
        ("post", "/api/sweeps/{id}/cancel"),
        ("get", "/api/sweeps/{id}/results"),
        ("get", "/api/sweeps/{id}/results?format=csv"),
        ("get", "/api/sweeps/{id}/results?format=parquet"),
        ("get", "/api/sweeps/{id}/pareto"),
        ("get", "/api/sweeps/{id}/pareto?objectives=test_error,params_m"),
        ("get", "/api/sweeps/{id}/export/genotypes.json"),
        ("get", "/api/sweeps/{id}/export/genotypes.py"),
        ("get", "/api/sweeps/{id}/export/front.csv"),
        ("get", "/api/sweeps/{id}/export/front.parquet"),
        ("get", "/api/sweeps/{id}/genotypes/abcdef0123/cells"),
        ("get", "/api/sweeps/{id}/figures"),
        ("get", "/api/sweeps/{id}/figures/scatter_matrix"),
        ("get", "/api/sweeps/{id}/figures/projection_2d?x=L"),
    ],
)
def test_an_unknown_sweep_is_404_naming_it(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path.format(id=UNKNOWN_ID), headers=AUTH)
    assert response.status_code == 404, response.text
    assert repr(UNKNOWN_ID) in _detail(response)


# -- a finished sweep ----------------------------------------------------------------------


def test_list_and_read_a_finished_sweep(client: TestClient, finished: pd.DataFrame) -> None:
    listed = client.get("/api/sweeps").json()
    assert listed["count"] == 1 and [s["id"] for s in listed["data"]] == [SWEEP_ID]
    one = client.get(f"/api/sweeps/{SWEEP_ID}")
    assert one.status_code == 200
    body = one.json()
    assert body == listed["data"][0]
    assert body["name"] == "quickstart" and body["status"] == "done"
    assert body["progress"] == {
        "total": 14,
        "pending": 0,
        "running": 0,
        "done": 11,
        "stopped": 0,  # a progress stored before early stopping existed
        "failed": 3,
        "epochs": 70,
    }
    assert body["spec"] == spec_mapping()
    assert body["created_at"] <= body["updated_at"]


def test_cancel_of_a_finished_sweep_is_409(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.post(f"/api/sweeps/{SWEEP_ID}/cancel", headers=AUTH)
    assert response.status_code == 409
    assert SWEEP_ID in _detail(response) and "already done" in _detail(response)
    assert client.get(f"/api/sweeps/{SWEEP_ID}").json()["status"] == "done"


def test_cancel_of_a_pending_sweep_without_a_job(client: TestClient) -> None:
    store = _store(client)
    store.upsert_sweep("waiting-1", "quickstart", "pending", spec_mapping())
    response = client.post("/api/sweeps/waiting-1/cancel", headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    again = client.post("/api/sweeps/waiting-1/cancel", headers=AUTH)
    assert again.status_code == 409 and "already cancelled" in _detail(again)


def _expected_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records = []
    for record in frame.to_dict(orient="records"):
        clean = {}
        for key, value in record.items():
            if hasattr(value, "item"):
                value = value.item()
            if isinstance(value, float) and math.isnan(value):
                value = None
            clean[key] = value
        records.append(clean)
    return records


def test_results_as_json(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/results")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["count"] == 14 == len(body["data"])
    assert body["columns"] == [*RESULT_COLUMNS, *SWEPT]
    assert "NaN" not in response.text
    assert body["data"] == _expected_records(finished)
    nan_row = next(r for r in body["data"] if r["status"] == "failed" and r["genotype"] is None)
    assert all(nan_row[name] is None for name in FLOAT_COLUMNS)


def test_results_as_csv(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/results", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    read = pd.read_csv(io.StringIO(response.text), dtype={"trial_id": str})
    assert list(read.columns) == [*RESULT_COLUMNS, *SWEPT]
    assert len(read) == 14
    assert read["trial_id"].tolist() == finished["trial_id"].tolist()
    assert read["status"].tolist() == finished["status"].tolist()
    for name in [*FLOAT_COLUMNS, "L", "F", "seed"]:
        np.testing.assert_allclose(
            read[name].to_numpy(dtype=float), finished[name].to_numpy(dtype=float), equal_nan=True
        )
    assert (
        read["genotype_hash"].fillna("").tolist() == finished["genotype_hash"].fillna("").tolist()
    )


def test_results_as_parquet(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/results", params={"format": "parquet"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    read = pd.read_parquet(io.BytesIO(response.content))
    assert list(read.columns) == [*RESULT_COLUMNS, *SWEPT]
    pd.testing.assert_frame_equal(read, finished, check_dtype=False)


def test_results_format_must_be_known(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/results", params={"format": "xlsx"})
    assert response.status_code == 422
    assert "format" in _detail(response)


def test_pareto_with_the_default_objectives(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/pareto")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["objectives"] == OBJECTIVES5
    expected = brute_front(finished, OBJECTIVES5)
    front_ids = [r["trial_id"] for r in body["front"]]
    assert len(front_ids) == len(set(front_ids))
    assert set(front_ids) == expected
    assert all(r["status"] == "done" for r in body["front"])
    ranks = body["ranks"]
    for trial_id in expected:
        assert ranks[trial_id] == 0
    done_with_all = finished[finished["status"] == "done"].dropna(subset=list(OBJECTIVES5))
    for trial_id in set(done_with_all["trial_id"]) - expected:
        assert ranks[trial_id] >= 1
    # Rows missing a metric and failed rows (even the one with finite, dominating metrics).
    missing = set(finished["trial_id"]) - set(done_with_all["trial_id"])
    assert len(missing) == 4
    for trial_id in missing:
        assert ranks.get(trial_id, -1) == -1 and trial_id not in front_ids
    assert body["hypervolume"] > 0
    assert body["reference"] is not None and len(body["reference"]) == 5
    assert body["knee"] in expected


def test_failed_trials_have_rank_minus_one(client: TestClient, finished: pd.DataFrame) -> None:
    """Every trial of the sweep is in ``ranks``; failed ones (and done ones missing a metric)
    rank -1."""
    ranks = client.get(f"/api/sweeps/{SWEEP_ID}/pareto").json()["ranks"]
    failed = finished[finished["status"] == "failed"]["trial_id"]
    assert {t: ranks.get(t) for t in failed} == dict.fromkeys(failed, -1)
    assert set(ranks) == set(finished["trial_id"])


def test_pareto_over_two_objectives(client: TestClient, finished: pd.DataFrame) -> None:
    response = client.get(
        f"/api/sweeps/{SWEEP_ID}/pareto", params={"objectives": "test_error,params_m"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    objectives = {"test_error": "min", "params_m": "min"}
    assert body["objectives"] == objectives
    expected = brute_front(finished, objectives)
    assert {r["trial_id"] for r in body["front"]} == expected
    done = finished[finished["status"] == "done"]
    points = {
        t: (float(e), float(p))
        for t, e, p in zip(done["trial_id"], done["test_error"], done["params_m"], strict=True)
    }
    # The default reference: the front's nadir plus 10 % of the front's range.
    front_points = np.array([points[t] for t in expected])
    nadir, ideal = front_points.max(axis=0), front_points.min(axis=0)
    reference = nadir + 0.1 * (nadir - ideal)
    assert body["reference"] == pytest.approx(reference.tolist())
    area = staircase_area(list(points.values()), (float(reference[0]), float(reference[1])))
    assert area > 0
    assert body["hypervolume"] == pytest.approx(area, rel=1e-9)
    for trial_id in expected:
        assert body["ranks"][trial_id] == 0


@pytest.mark.parametrize(
    "objectives", ["test_error,accuracy", "test_error,test_error", "params_m,,flops_m", ""]
)
def test_bad_objectives_are_422_naming_objectives(
    client: TestClient, finished: pd.DataFrame, objectives: str
) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/pareto", params={"objectives": objectives})
    if objectives == "":
        assert response.status_code == 200  # empty: the sweep's own objectives
        return
    assert response.status_code == 422, response.text
    assert _detail(response).startswith("objectives")


def test_the_four_exports(client: TestClient, finished: pd.DataFrame) -> None:
    front = client.get(f"/api/sweeps/{SWEEP_ID}/pareto").json()["front"]
    hashes = {r["genotype_hash"] for r in front if r["genotype_hash"]}
    responses = {}
    for name, kind in EXPORT_TYPES.items():
        response = client.get(f"/api/sweeps/{SWEEP_ID}/export/{name}")
        assert response.status_code == 200, (name, response.text)
        assert response.headers["content-type"].startswith(kind)
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment") and f"{SWEEP_ID}-{name}" in disposition
        responses[name] = response
    entries = json.loads(responses["genotypes.json"].content)
    assert [e["genotype_hash"] for e in entries] == list(
        dict.fromkeys(e["genotype_hash"] for e in entries)
    )
    assert {e["genotype_hash"] for e in entries} == hashes
    tree = ast.parse(responses["genotypes.py"].text)
    assigned = {
        node.targets[0].id
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "Genotype"
    }
    assert assigned == {f"E2RNAS_{h}" for h in hashes}
    namespace: dict[str, Any] = {}
    exec(compile(tree, "genotypes.py", "exec"), namespace)
    assert len(namespace["GENOTYPES"]) == len(hashes)
    csv = pd.read_csv(io.StringIO(responses["front.csv"].text), dtype={"trial_id": str})
    assert len(csv) == len(front)
    assert set(csv["trial_id"]) == {r["trial_id"] for r in front}
    parquet = pd.read_parquet(io.BytesIO(responses["front.parquet"].content))
    assert len(parquet) == len(front)
    assert set(parquet["trial_id"]) == {r["trial_id"] for r in front}


@pytest.mark.parametrize(
    "name",
    [
        "results.db",
        "report.html",
        "genotypes.txt",
        "..%2F..%2Fetc%2Fpasswd",
        "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "..%2Fapi.db",
        "../results.db",
        "../../api.db",
        "%2Fetc%2Fpasswd",
        "front.csv%00.db",
    ],
)
def test_no_other_file_is_exported(client: TestClient, finished: pd.DataFrame, name: str) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/export/{name}")
    assert response.status_code in (404, 422), (name, response.status_code)
    assert b"root:" not in response.content
    assert b"SQLite format 3" not in response.content
    assert response.headers["content-type"] == "application/problem+json"


def test_cell_diagrams(client: TestClient, finished: pd.DataFrame) -> None:
    genotype_hash = str(finished["genotype_hash"].dropna().iloc[0])
    response = client.get(f"/api/sweeps/{SWEEP_ID}/genotypes/{genotype_hash}/cells")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["genotype_hash"] == genotype_hash
    assert Genotype.loads(json.dumps(body["genotype"])).genotype_hash() == genotype_hash
    for which in ("normal", "reduce"):
        assert isinstance(body[which]["data"], list) and body[which]["data"]
        assert "layout" in body[which]
    missing = client.get(f"/api/sweeps/{SWEEP_ID}/genotypes/feedbeef/cells")
    assert missing.status_code == 404
    assert "genotype_hash" in _detail(missing) and "feedbeef" in _detail(missing)


# -- OpenAPI -------------------------------------------------------------------------------


def test_openapi_has_the_contract_paths(client: TestClient) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    paths = schema["paths"]
    for path, methods in CONTRACT_PATHS.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    schemes = schema["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s == {**s, "type": "http", "scheme": "bearer"}]
    assert bearer, schemes
    for path, method in (("/api/sweeps", "post"), ("/api/sweeps/{sweep_id}/cancel", "post")):
        security = paths[path][method].get("security", [])
        assert any(set(entry) & set(bearer) for entry in security), (path, security)
    for path, methods in CONTRACT_PATHS.items():
        if "get" in methods:
            assert not paths[path]["get"].get("security"), path
    export = paths["/api/sweeps/{sweep_id}/export/{file_name}"]["get"]
    (parameter,) = [p for p in export["parameters"] if p["name"] == "file_name"]
    assert set(parameter["schema"]["enum"]) == set(EXPORT_TYPES)
    figure = paths["/api/sweeps/{sweep_id}/figures/{name}"]["get"]
    (parameter,) = [p for p in figure["parameters"] if p["name"] == "name"]
    assert parameter["schema"]["enum"] == list(FIGURE_NAMES)
    assert client.get("/docs").status_code == 200


# -- objectives, figures, comparison ------------------------------------------------------


def test_objectives_are_the_registry(client: TestClient) -> None:
    response = client.get("/api/objectives")
    assert response.status_code == 200
    assert response.json() == {"data": registry(), "count": len(registry())}


def _done(client: TestClient, sweep_id: str) -> pd.DataFrame:
    """The finished trials of a stored sweep, as the store gives them to the API."""
    frame = _store(client).trials_frame(sweep_id)
    return frame[frame["status"] == "done"].reset_index(drop=True)


NOT_TWO_STAGE = "Not a two-stage sweep, or no trial retrained yet: no proxy front to compare."
ONE_SEED = (
    "No configuration has finished runs under two seeds yet: no seed spread to show (sweep "
    "several seeds, grid: seed: [0, 1, 2])."
)


def _json(figure: Any) -> Any:
    return json.loads(figure.to_json(remove_uids=False))


def test_api_figures_are_the_python_builders_figures(
    client: TestClient, finished: pd.DataFrame
) -> None:
    """Each figure the API answers with is the drawing step's figure of the same table."""
    ranked = rank_table(_done(client, SWEEP_ID), OBJECTIVES5)
    everything = client.get(f"/api/sweeps/{SWEEP_ID}/figures")
    assert everything.status_code == 200, everything.text
    body = everything.json()
    drawn = [
        n for n in FIGURE_NAMES if n not in ("two_stage", "seed_robustness")
    ]  # one stage, seed
    assert list(body["figures"]) == drawn
    assert body["notes"] == {"two_stage": NOT_TWO_STAGE, "robust": ONE_SEED}
    assert body["objectives"] == OBJECTIVES5
    assert (body["projection_2d"], body["projection_3d"]) == (
        ["test_error", "params_m"],
        ["test_error", "params_m", "pgd_acc"],
    )
    for name in drawn:
        expected = _json(sweep_figure(ranked, name))
        one = client.get(f"/api/sweeps/{SWEEP_ID}/figures/{name}")
        assert one.status_code == 200, (name, one.text)
        assert one.json() == expected == body["figures"][name], name
    two_stage = client.get(f"/api/sweeps/{SWEEP_ID}/figures/two_stage")
    assert two_stage.status_code == 409 and NOT_TWO_STAGE in _detail(two_stage)
    # The public drawing steps give them too.
    assert body["figures"]["scatter_matrix"] == _json(scatter_matrix(ranked.table, OBJECTIVES5))
    chosen = client.get(f"/api/sweeps/{SWEEP_ID}/figures/projection_2d?x=L&y=flops_m")
    assert chosen.json() == _json(projection(ranked.table, "L", "flops_m", None, ranked.front))


def test_api_figures_take_axes_and_objectives(client: TestClient, finished: pd.DataFrame) -> None:
    ranked = rank_table(_done(client, SWEEP_ID), ["test_error", "params_m"])
    query = {
        "objectives": "test_error,params_m",
        "projection_2d": "seed,F",
        "projection_3d": "L,F,val_loss",
    }
    body = client.get(f"/api/sweeps/{SWEEP_ID}/figures", params=query).json()
    assert body["objectives"] == {"test_error": "min", "params_m": "min"}
    assert (body["projection_2d"], body["projection_3d"]) == (["seed", "F"], ["L", "F", "val_loss"])
    axes = ("seed", "F"), ("L", "F", "val_loss")
    skipped = ("fronts_by_backbone", "two_stage", "seed_robustness")
    for name in (n for n in FIGURE_NAMES if n not in skipped):
        assert body["figures"][name] == _json(sweep_figure(ranked, name, *axes)), name
    # The fronts by backbone follow the 2-D projection's axes, which must then be metrics.
    assert "fronts_by_backbone" not in body["figures"]
    assert body["notes"] == {
        "backbones": why_not(ranked, "fronts_by_backbone", *axes),
        "two_stage": why_not(ranked, "two_stage", *axes),
        "robust": why_not(ranked, "seed_robustness", *axes),
    }
    assert body["notes"]["two_stage"].endswith("seed and F are none.")
    assert body["notes"]["backbones"].endswith("seed and F are no metric.")
    by_backbone = client.get(
        f"/api/sweeps/{SWEEP_ID}/figures/fronts_by_backbone", params={"x": "pgd_acc"}
    )
    assert by_backbone.status_code == 200, by_backbone.text
    expected_by_backbone = sweep_figure(ranked, "fronts_by_backbone", ("pgd_acc", "params_m"))
    assert by_backbone.json() == _json(expected_by_backbone)
    assert len(by_backbone.json()["data"]) == 6  # every trial and the front, per backbone
    three = client.get(
        f"/api/sweeps/{SWEEP_ID}/figures/projection_3d",
        params={"x": "L", "z": "val_loss", "objectives": "test_error,params_m"},
    )
    # y: the sweep's own choice, params_m.
    expected = sweep_figure(ranked, "projection_3d", projection_3d=("L", "params_m", "val_loss"))
    assert three.json() == _json(expected)
    # The projections' choices: plottable columns with a value in some finished trial.
    assert {"test_error", "params_m", "L", "F", "seed", "front_rank"} <= set(body["axes"])
    assert "epochs" not in body["axes"]  # no trial has it


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("figures/nope", "name"),
        ("figures/projection_2d?x=nope", "x: unknown column 'nope'"),
        ("figures/projection_2d?x=params_m", "y: 'params_m' is already the x axis"),
        ("figures/projection_3d?z=trial_id", "z: unknown column"),
        ("figures/projection_2d?z=L", "z: projection_2d takes no z axis"),
        ("figures/scatter_matrix?x=L", "x: scatter_matrix takes no x axis"),
        ("figures/parallel?objectives=test_error,nope", "objectives: got"),
        ("figures?projection_2d=L", "projection_2d: expected 2 column names"),
        ("figures?projection_3d=L,L,F", "projection_3d[1]: 'L' is repeated"),
        ("figures?projection_3d=L,F,bogus", "projection_3d[2]: unknown column 'bogus'"),
        ("figures?objectives=test_error,test_error", "objectives: got"),
    ],
)
def test_bad_figure_requests_are_422_naming_the_parameter(
    client: TestClient, finished: pd.DataFrame, path: str, named: str
) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/{path}")
    assert response.status_code == 422, response.text
    assert _detail(response).startswith(named), _detail(response)


def test_figures_of_a_sweep_without_finished_trials(client: TestClient) -> None:
    _store(client).upsert_sweep("waiting-1", "quickstart", "pending", spec_mapping())
    body = client.get("/api/sweeps/waiting-1/figures").json()
    assert set(body["figures"]) == {"scatter_matrix", "projection_2d", "projection_3d", "parallel"}
    # Without a trial, the results table has no swept columns at all.
    assert body["notes"] == {
        "heatmaps": "Heatmaps skipped: the results have no L or F column.",
        "backbones": "Skipped: no finished trial names its backbone.",
        "two_stage": NOT_TWO_STAGE,
        "robust": "No finished trial yet: no seed spread to show.",
    }
    assert body["axes"] == ["test_error", "params_m", "pgd_acc"]  # the chosen ones only
    heatmap = client.get("/api/sweeps/waiting-1/figures/heatmap_rank")
    assert heatmap.status_code == 409
    assert _detail(heatmap).startswith("name: heatmap_rank") and "no L or F" in _detail(heatmap)


# -- seed robustness -----------------------------------------------------------------------


def _seeded_sweep(client: TestClient, finished: pd.DataFrame) -> str:
    """The finished sweep under seeds 0 and 1: seed 1's test_error moved by seeded noise."""
    store = _store(client)
    other = "seeded-0123abcd"
    store.upsert_sweep(other, "seeded", "done", spec_mapping())
    noise = np.random.default_rng(5).uniform(-4.0, 4.0, len(finished))
    second = finished.assign(
        seed=1,
        trial_id=finished["trial_id"].str.replace("seed=0", "seed=1"),
        test_error=finished["test_error"] + noise,
    )
    store.ingest(pd.concat([finished, second], ignore_index=True).assign(sweep_id=other))
    return other


def test_robust_answers_the_analysis_of_every_stored_trial(
    client: TestClient, finished: pd.DataFrame
) -> None:
    """``/robust`` is `robust_info` and `attainment_surfaces` of the stored trials, and its
    probabilities are those of a brute-force enumeration of every pair of seeds."""
    from service.analysis.attainment import attainment_surfaces
    from service.analysis.pareto import nondominated_mask
    from service.analysis.robust import robust_info
    from service.analysis.robustview import robust_record

    other = _seeded_sweep(client, finished)
    answer = client.get(f"/api/sweeps/{other}/robust", params={"resamples": 300, "random_seed": 4})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    frame = _store(client).trials_frame(other)
    info = robust_info(frame, OBJECTIVES5, resamples=300, random_seed=4)
    attainment = attainment_surfaces(frame, {"test_error": "min", "params_m": "min"})
    assert body == json.loads(json.dumps(robust_record(info, attainment)))
    assert (body["method"], body["random_seed"], body["runs"]) == ("exact", 4, {"min": 2, "max": 2})
    assert body["note"] is None and body["keys"] == ["backbone", "F", "L"]
    # Brute force: the valid rows of each configuration, every combination, moocore's front.
    valid = frame[(frame["status"] == "done") & frame[list(OBJECTIVES5)].notna().all(axis=1)]
    keys = ["backbone", "F", "L"]
    groups = {label: g[list(OBJECTIVES5)].to_numpy() for label, g in valid.groupby(keys)}
    labels = list(groups)
    counts = dict.fromkeys(labels, 0)
    combinations = list(itertools.product(*(groups[label] for label in labels)))
    for points in combinations:
        for label, flag in zip(labels, nondominated_mask(points, OBJECTIVES5), strict=True):
            counts[label] += int(flag)
    assert body["combinations"] == len(combinations) == 2 ** len(labels)
    expected = {
        f"F={f}_L={bound}_backbone={b}": counts[(b, f, bound)] / len(combinations)
        for b, f, bound in labels
    }
    got = {row["configuration"]: row["dominance_probability"] for row in body["configurations"]}
    assert {k: got[k] for k in expected} == pytest.approx(expected)
    assert all(got[k] is None for k in set(got) - set(expected))  # no valid run: no probability


def test_robust_of_one_seed_says_so(client: TestClient, finished: pd.DataFrame) -> None:
    """One run per configuration: a note, and probabilities 0 or 1 that are the front."""
    body = client.get(f"/api/sweeps/{SWEEP_ID}/robust").json()
    assert "one run" in body["note"] and body["runs"] == {"min": 1, "max": 1}
    pareto = client.get(f"/api/sweeps/{SWEEP_ID}/pareto").json()
    front = {f"F={row['F']}_L={row['L']}_backbone={row['backbone']}" for row in pareto["front"]}
    on = {r["configuration"] for r in body["configurations"] if r["dominance_probability"] == 1}
    assert on == front
    hv = body["hypervolume"]
    assert hv["low"] == hv["high"] == hv["mean"] == pytest.approx(hv["pooled"])
    assert body["duplicates"] and all(len(g["trials"]) == 2 for g in body["duplicates"])


def test_robust_of_tiny_and_failed_sweeps(client: TestClient, finished: pd.DataFrame) -> None:
    """Nothing crashes on a sweep of one trial, nor on one whose trials all failed."""
    store = _store(client)
    rows = results_frame(synthetic_rows())
    for sweep_id, kept in (("one-trial", rows.iloc[:1]), ("all-failed", rows.iloc[-2:])):
        store.upsert_sweep(sweep_id, sweep_id, "done", spec_mapping())
        store.ingest(kept.assign(sweep_id=sweep_id))
        answer = client.get(f"/api/sweeps/{sweep_id}/robust")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        if sweep_id == "one-trial":
            assert [r["dominance_probability"] for r in body["configurations"]] == [1.0]
        else:
            assert body["note"].startswith("No trial has every objective")
            assert body["hypervolume"]["reference"] is None
        figures = client.get(f"/api/sweeps/{sweep_id}/figures")
        assert figures.status_code == 200 and "robust" in figures.json()["notes"]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("resamples=0", "resamples: "),
        ("resamples=10001", "resamples: "),
        ("x=L", "x: 'L' is no metric"),
        ("y=test_error", "y: 'test_error' is x too"),
        ("objectives=test_error,nope", "objectives: got"),
    ],
)
def test_bad_robust_requests_are_422_naming_the_parameter(
    client: TestClient, finished: pd.DataFrame, query: str, named: str
) -> None:
    response = client.get(f"/api/sweeps/{SWEEP_ID}/robust?{query}")
    assert response.status_code == 422, response.text
    assert named in _detail(response), _detail(response)
    assert client.get("/api/sweeps/nope/robust").status_code == 404


def test_robust_csv_is_the_ranked_configurations(
    client: TestClient, finished: pd.DataFrame
) -> None:
    from service.analysis.robust import robust_info
    from service.analysis.robustview import robust_csv_frame

    other = _seeded_sweep(client, finished)
    answer = client.get(f"/api/sweeps/{other}/export/robust.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    got = pd.read_csv(io.StringIO(answer.text))
    expected = robust_csv_frame(robust_info(_store(client).trials_frame(other), OBJECTIVES5))
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert list(got["dominance_probability"].dropna()) == sorted(
        got["dominance_probability"].dropna(), reverse=True
    )


def _second_sweep(client: TestClient, finished: pd.DataFrame) -> str:
    """A copy of the finished sweep, 0.5 worse in test_error and 5 in pgd_acc."""
    store = _store(client)
    other = "synthetic-b"
    store.upsert_sweep(other, "other", "done", spec_mapping())
    rows = finished.assign(
        sweep_id=other, test_error=finished["test_error"] + 0.5, pgd_acc=finished["pgd_acc"] - 5
    )
    store.ingest(rows)
    return other


@pytest.mark.parametrize("y", ["params_m", "pgd_acc"])
def test_compare_measures_both_fronts_against_one_reference(
    client: TestClient, finished: pd.DataFrame, y: str
) -> None:
    other = _second_sweep(client, finished)
    query = {"a": SWEEP_ID, "b": other, "x": "test_error", "y": y}
    response = client.get("/api/compare", params=query)
    assert response.status_code == 200, response.text
    body = response.json()
    objectives = directions(["test_error", y])
    assert body["objectives"] == objectives
    own = [
        client.get(f"/api/sweeps/{sweep_id}/pareto", params={"objectives": f"test_error,{y}"})
        for sweep_id in (SWEEP_ID, other)
    ]
    signs = [-1.0 if d == "max" else 1.0 for d in objectives.values()]
    references = [answer.json()["reference"] for answer in own]
    shared = [
        s * max(s * ref[k] for ref in references) for k, s in enumerate(signs)
    ]  # the worse of the two in each objective
    assert body["shared_reference"] == pytest.approx(shared)
    for sweep, answer, sweep_id in zip(body["sweeps"], own, (SWEEP_ID, other), strict=True):
        pareto = answer.json()
        assert sweep["id"] == sweep_id
        assert sweep["hypervolume"] == pytest.approx(pareto["hypervolume"])
        assert sweep["reference"] == pytest.approx(pareto["reference"])
        assert sweep["front_size"] == len(pareto["front"])
        done = _done(client, sweep_id).dropna(subset=["test_error", y])
        assert sweep["finished"] == len(_done(client, sweep_id))
        points = [
            (signs[0] * float(a), signs[1] * float(b))
            for a, b in zip(done["test_error"], done[y], strict=True)
        ]
        area = staircase_area(points, (signs[0] * shared[0], signs[1] * shared[1]))
        assert area > 0
        assert sweep["shared_hypervolume"] == pytest.approx(area, rel=1e-9)
        # One seed per configuration: the one-seed hypervolume is every run's, no width.
        seed = sweep["seed_hypervolume"]
        assert seed["mean"] == seed["low"] == seed["high"] == pytest.approx(area, rel=1e-9)
        assert seed["reference"] == pytest.approx(shared) and "one run" in sweep["seed_note"]
    assert body["sweeps"][0]["shared_hypervolume"] > body["sweeps"][1]["shared_hypervolume"]
    tables = [(f"A: {SWEEP_ID}", _done(client, SWEEP_ID)), (f"B: {other}", _done(client, other))]
    assert body["figure"] == _json(compare_fronts(compare_info(tables, "test_error", y)))


def test_compare_defaults_to_the_default_projection(
    client: TestClient, finished: pd.DataFrame
) -> None:
    body = client.get("/api/compare", params={"a": SWEEP_ID, "b": SWEEP_ID}).json()
    assert list(body["objectives"]) == ["test_error", "params_m"]
    assert body["sweeps"][0]["shared_hypervolume"] == body["sweeps"][0]["hypervolume"]


@pytest.mark.parametrize(
    ("query", "code", "named"),
    [
        ({"a": SWEEP_ID, "b": UNKNOWN_ID}, 404, f"b: no sweep {UNKNOWN_ID!r}"),
        ({"a": UNKNOWN_ID, "b": SWEEP_ID}, 404, f"a: no sweep {UNKNOWN_ID!r}"),
        ({"a": SWEEP_ID}, 422, "b: "),
        ({"a": SWEEP_ID, "b": SWEEP_ID, "x": "L"}, 422, "x: unknown objective 'L'"),
        ({"a": SWEEP_ID, "b": SWEEP_ID, "y": "test_error"}, 422, "y: 'test_error' is x too"),
    ],
)
def test_bad_comparisons_name_the_parameter(
    client: TestClient, finished: pd.DataFrame, query: dict[str, str], code: int, named: str
) -> None:
    response = client.get("/api/compare", params=query)
    assert response.status_code == code, response.text
    assert _detail(response).startswith(named), _detail(response)


# -- settings and serve --------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith("E2RNAS_") and name != "E2RNAS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def test_a_public_host_needs_a_token(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(host="0.0.0.0")
    assert "host" in str(info.value) and "E2RNAS_API_TOKEN" in str(info.value)
    assert load_settings(host="0.0.0.0", api_token="t" * 24).host == "0.0.0.0"
    assert load_settings(host="127.0.0.1").token() is None
    assert load_settings(host="localhost").host == "localhost"
    clean_env.setenv("E2RNAS_API_TOKEN", "from-env-" + "x" * 15)
    assert load_settings(host="0.0.0.0").token() == "from-env-" + "x" * 15


def test_settings_come_from_the_environment(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("E2RNAS_DATABASE_URL", "postgresql+psycopg://u@db:5432/sweeps")
    clean_env.setenv("E2RNAS_RAY_ADDRESS", "http://head:8265")
    clean_env.setenv("E2RNAS_STORAGE", str(tmp_path / "store"))
    clean_env.setenv("E2RNAS_MAX_TRIALS", "7")
    clean_env.setenv("E2RNAS_PORT", "9000")
    found = load_settings()
    assert found.database_url == "postgresql+psycopg://u@db:5432/sweeps"
    assert found.resolved_database_url() == "postgresql+psycopg://u@db:5432/sweeps"
    assert found.ray_address == "http://head:8265"
    assert found.storage == tmp_path / "store"
    assert found.max_trials == 7 and found.port == 9000
    # Flags win over the environment; None flags leave it.
    assert load_settings(max_trials=3, port=None).max_trials == 3
    clean_env.delenv("E2RNAS_DATABASE_URL")
    assert load_settings().resolved_database_url() == (
        f"sqlite:///{(tmp_path / 'store' / 'service.db').resolve()}"
    )
    clean_env.setenv("E2RNAS_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="port") as info:
        load_settings()
    assert "E2RNAS_PORT" in str(info.value)


def test_serve_on_a_public_host_without_a_token_exits_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["serve", "--host", "0.0.0.0"])
    assert code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "host" in lines[0] and "E2RNAS_API_TOKEN" in lines[0]


# -- end to end: a real sweep, a restart in the middle, a cancel --------------------------


def _e2e_body(name: str) -> str:
    """The session's reference sweep (tests/sweepkit.py) under another name."""
    return sweep_text(name)


def _ray_processes(temp_dir: Path) -> str:
    """The processes of the embedded Ray whose temp dir is ``temp_dir`` (its command lines
    name it), as pgrep lists them; other Rays on the machine do not count."""
    done = subprocess.run(
        ["pgrep", "-af", str(temp_dir)], capture_output=True, text=True, check=False
    )
    return "\n".join(line for line in done.stdout.splitlines() if "pgrep" not in line)


def _wait(
    client: TestClient, sweep_id: str, until: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen: list[tuple[str, dict[str, int]]] = []
    while True:
        body: dict[str, Any] = client.get(f"/api/sweeps/{sweep_id}").json()
        if not seen or seen[-1] != (body["status"], body["progress"]):
            seen.append((body["status"], body["progress"]))
        if until(body):
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"sweep {sweep_id}: timed out; states seen: {seen}; last: {body}")
        time.sleep(1.0)


def _trial_files(storage: Path) -> dict[str, dict[str, Any]]:
    return {
        path.parent.name: json.loads(path.read_text(encoding="utf-8"))
        for path in storage.glob("e2e-*/trials/*/trial.json")
    }


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_sweep_survives_a_restart_and_can_be_cancelled(
    tmp_path: Path,
    clean_env: pytest.MonkeyPatch,
    reference_sweep: SharedRun,
    fault: Callable[[str], dict[str, Any]],
) -> None:
    # A clean restart stops the embedded Ray and its job: the new service finds the job lost
    # and resubmits the sweep as a resume, which must end with the undisturbed rows.
    lost_job = fault("Ray job lost (service restarted)")
    clean_env.setenv("OMP_NUM_THREADS", "1")
    clean_env.setenv("RAY_AUTH_MODE", "disabled")
    storage = tmp_path / "storage"
    settings = load_settings(storage=storage, api_token=TOKEN, poll_seconds=1.0, ray_num_cpus=2)
    # 1. Submit, and stop the service once a search epoch is done.
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        created = client.post("/api/sweeps", content=_e2e_body("e2e"), headers={**YAML, **AUTH})
        assert created.status_code == 201, created.text
        sweep_id = created.json()["id"]
        assert created.headers["location"] == f"/api/sweeps/{sweep_id}"
        assert client.get(created.headers["location"]).json()["id"] == sweep_id
        running = _wait(
            client,
            sweep_id,
            lambda b: (
                (
                    b["status"] == "running"
                    and (b["progress"]["epochs"] >= 1 or b["progress"]["done"] >= 1)
                )
                or b["status"] in ("done", "failed", "cancelled")
            ),
            timeout=900,
        )
        assert running["status"] == "running", running
        assert running["progress"]["total"] == 2
        first_job = running["job_id"]
        assert first_job == f"{sweep_id}-0"
        first_ray = client.app.state.manager.jobs._temp_dir  # type: ignore[attr-defined]
        assert first_ray is not None
    # The lifespan closed the manager, which stopped the embedded Ray and the job with it.
    assert not _ray_processes(first_ray), _ray_processes(first_ray)
    lost_job["injected"] = True
    before_restart = _trial_files(storage)
    assert before_restart, "no trial directory before the restart"
    finished_before = {k for k, v in before_restart.items() if v["status"] == "done"}
    run_dirs = list(storage.glob("e2e-*"))
    assert len(run_dirs) == 1
    from service.orchestration.rundir import trial_states

    epochs_before = {Path(s["dir"]).name: int(s["epochs"]) for s in trial_states(run_dirs[0])}
    # No process of the first job is left to write into the run directory.
    leftover = subprocess.run(
        ["pgrep", "-af", f"service.cli sweep run {run_dirs[0]}"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    assert not leftover.strip(), leftover
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        row = client.get(f"/api/sweeps/{sweep_id}").json()
        assert row["status"] in ("running", "pending")  # as the first service left it
        done = _wait(
            client, sweep_id, lambda b: b["status"] in ("done", "failed", "cancelled"), 1200
        )
        assert done["status"] == "done", (done, done.get("message"))
        assert done["job_id"] == f"{sweep_id}-1"  # resubmitted once
        results = client.get(f"/api/sweeps/{sweep_id}/results").json()
        assert results["count"] == 2
        assert {r["status"] for r in results["data"]} == {"done"}
        assert all(r["test_error"] is not None for r in results["data"])
        table = pd.read_parquet(run_dirs[0] / "results.parquet")
        counts = compare_rows(table, reference_sweep.frame())
        lost_job["rows_lost"], lost_job["rows_duplicated"] = counts
        assert counts == (0, 0)
        after = _trial_files(storage)
        assert set(after) == set(before_restart) | set(after)
        assert len(after) == 2
        for key, info in after.items():
            attempts = info["attempts"]
            if key in finished_before:
                assert len(attempts) == 1, (key, attempts)  # not redone
            else:
                assert len(attempts) >= 2, (key, attempts)
                if epochs_before.get(key, 0) > 0:
                    assert attempts[-1]["epochs_before"] > 0, (key, attempts, epochs_before)
        # 3. Cancel a running sweep: its job stops and its status is cancelled.
        created = client.post(
            "/api/sweeps", content=_e2e_body("e2e-cancel"), headers={**YAML, **AUTH}
        )
        assert created.status_code == 201, created.text
        other = created.json()["id"]
        _wait(client, other, lambda b: b["status"] in ("running", "done", "failed"), 300)
        cancelled = client.post(f"/api/sweeps/{other}/cancel", headers=AUTH)
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        jobs = client.app.state.manager.jobs  # type: ignore[attr-defined]
        deadline = time.monotonic() + 60
        while jobs.status(f"{other}-0") not in ("STOPPED", "FAILED", "SUCCEEDED"):
            assert time.monotonic() < deadline, jobs.status(f"{other}-0")
            time.sleep(1)
        assert jobs.status(f"{other}-0") == "STOPPED"
        time.sleep(3)  # a refresh later, the status stays cancelled
        assert client.get(f"/api/sweeps/{other}").json()["status"] == "cancelled"
        again = client.post(f"/api/sweeps/{other}/cancel", headers=AUTH)
        assert again.status_code == 409
        final = client.get(f"/api/sweeps/{sweep_id}").json()
        second_ray = client.app.state.manager.jobs._temp_dir  # type: ignore[attr-defined]
    # Closing the app stopped the embedded Ray: none of its processes is left.
    assert not _ray_processes(second_ray), _ray_processes(second_ray)
    # The finished sweep's progress is that of its end, not of a refresh before it.
    assert final["progress"] == {
        "total": 2,
        "pending": 0,
        "running": 0,
        "done": 2,
        "stopped": 0,
        "failed": 0,
        "epochs": 8,
    }, final
