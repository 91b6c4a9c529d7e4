"""The REST API's conventions, through FastAPI's TestClient over a real SQLite store holding
synthetic sweeps (`bench/synthetic.py`): ``limit``/``offset`` paging with ``total`` and
``Link``, ``ETag``/``If-None-Match`` revalidation, and RFC 9457 problems for every error.

The conventions are the API layer's: the database under it only orders the rows, which
tests/service/api/test_api.py checks on SQLite and PostgreSQL alike. ``Location`` on a 201 is
checked by test_api.py's end-to-end sweep (it needs a real Ray to accept a sweep), and
``/validate``'s own answer by its validate tests.
"""

from __future__ import annotations

import http.client
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.api.settings import ServiceSettings, load_settings
from service.results.store import ResultStore
from service.results.table import results_frame

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from synthetic import build_sweep

TOKEN = "conventions-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
YAML = {"Content-Type": "application/yaml"}
TRIALS = 12
PROBLEM = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "instance"}
TYPE_PREFIX = "tag:e2rnas-sweeps,2026:"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    for name in list(os.environ):
        if name.startswith("E2RNAS_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{(tmp_path / 'api.db').resolve()}"
    build_sweep(url, TRIALS)
    return load_settings(storage=tmp_path / "storage", database_url=url, api_token=TOKEN)


def _store(client: TestClient) -> ResultStore:
    store: ResultStore = client.app.state.manager.store  # type: ignore[attr-defined]
    return store


def _sweep_id(client: TestClient) -> str:
    (sweep,) = client.get("/api/sweeps").json()["data"]
    return str(sweep["id"])


def _problem(response: Any, status: int, path: str) -> dict[str, Any]:
    """The body of ``response``, checked to be an RFC 9457 problem for ``status`` at ``path``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_FIELDS, body
    assert body["status"] == status and body["instance"] == path
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# -- paging ----------------------------------------------------------------------------------


def _more_sweeps(client: TestClient, count: int) -> None:
    store = _store(client)
    spec = store.get_sweep(_sweep_id(client))["spec"]
    for k in range(count):
        store.upsert_sweep(f"extra-{k:02d}", f"extra{k}", "done", spec)


def test_the_sweeps_list_pages_with_total_and_links(client: TestClient) -> None:
    _more_sweeps(client, 4)
    whole = client.get("/api/sweeps")
    assert "link" not in whole.headers  # no limit: every sweep, as before paging
    everything = whole.json()
    assert everything["count"] == everything["total"] == 5 == len(everything["data"])
    ids = [sweep["id"] for sweep in everything["data"]]
    first = client.get("/api/sweeps", params={"limit": 2})
    assert first.json()["total"] == 5 and first.json()["count"] == 2
    assert set(first.links) == {"next"}
    seen, page = [], first
    while True:
        seen += [sweep["id"] for sweep in page.json()["data"]]
        if "next" not in page.links:
            break
        page = client.get(page.links["next"]["url"])
    assert seen == ids
    assert set(page.links) == {"prev"} and page.links["prev"]["url"].endswith("limit=2&offset=2")
    middle = client.get("/api/sweeps", params={"limit": 2, "offset": 1})
    assert [sweep["id"] for sweep in middle.json()["data"]] == ids[1:3]
    assert middle.links["prev"]["url"].endswith("offset=0")
    assert middle.links["next"]["url"].endswith("offset=3")
    past = client.get("/api/sweeps", params={"limit": 2, "offset": 9})
    assert past.json() == {"data": [], "count": 0, "total": 5}
    assert past.links["prev"]["url"].endswith("offset=3")  # the last page


def test_the_results_page_with_total_and_links(client: TestClient) -> None:
    path = f"/api/sweeps/{_sweep_id(client)}/results"
    whole = client.get(path).json()
    assert whole["count"] == whole["total"] == TRIALS
    page = client.get(path, params={"limit": 5, "offset": 3})
    body = page.json()
    assert body["count"] == 5 and body["total"] == TRIALS
    assert body["data"] == whole["data"][3:8] and body["columns"] == whole["columns"]
    assert page.links["next"]["url"] == f"{path}?limit=5&offset=8"
    assert page.links["prev"]["url"] == f"{path}?limit=5&offset=0"
    csv = client.get(path, params={"format": "csv", "limit": 5, "offset": 10})
    assert csv.status_code == 200 and len(csv.text.splitlines()) == 1 + 2
    assert csv.links["prev"]["url"] == f"{path}?format=csv&limit=5&offset=5"
    assert "next" not in csv.links


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=-3", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("offset=1.5", "offset"),
        ("limit=10&offset=x", "offset"),
    ],
)
@pytest.mark.parametrize("listing", ["sweeps", "results"])
def test_bad_paging_is_422_naming_the_parameter(
    client: TestClient, listing: str, query: str, parameter: str
) -> None:
    path = "/api/sweeps" if listing == "sweeps" else f"/api/sweeps/{_sweep_id(client)}/results"
    body = _problem(client.get(f"{path}?{query}"), 422, path)
    assert body["detail"].startswith(f"{parameter}: "), body
    assert body["type"] == "about:blank"


# -- ETag and 304 ----------------------------------------------------------------------------


REVALIDATED = [
    "results",
    "results?format=csv",
    "results?format=parquet",
    "results?limit=3",
    "pareto",
    "pareto?objectives=test_error,params_m",
    "figures",
    "figures/scatter_matrix",
    "figures/projection_2d?x=L&y=test_error",
    "robust",
]


def _new_trial(client: TestClient, sweep_id: str) -> None:
    """Store a trial better than all the others at every objective: a new front."""
    frame = _store(client).trials_frame(sweep_id)
    row = frame.iloc[0].to_dict()
    row.update(trial_id="F=0.2_L=0.01_seed=9", seed=9, test_error=0.5, params_m=0.001)
    row.update(flops_m=0.01, pgd_acc=99.0, ood_aupr=99.0)
    assert _store(client).ingest(results_frame([row])) == 1


@pytest.mark.parametrize("read", REVALIDATED)
def test_an_unchanged_answer_is_304_and_a_changed_one_is_not(client: TestClient, read: str) -> None:
    sweep_id = _sweep_id(client)
    path = f"/api/sweeps/{sweep_id}/{read}"
    first = client.get(path)
    assert first.status_code == 200, first.text
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"') and len(tag) == 34  # strong
    assert first.headers["cache-control"] == "no-cache"
    assert client.get(path).headers["etag"] == tag  # the same answer, the same tag
    for sent in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = client.get(path, headers={"If-None-Match": sent})
        assert again.status_code == 304, (sent, again.status_code)
        assert again.content == b"" and again.headers["etag"] == tag
        assert again.headers["cache-control"] == "no-cache"
    for sent in ('"other"', "not a tag", tag[:-2] + '"'):
        assert client.get(path, headers={"If-None-Match": sent}).status_code == 200
    _new_trial(client, sweep_id)
    changed = client.get(path, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.content
    assert changed.headers["etag"] != tag


def test_errors_carry_no_etag(client: TestClient) -> None:
    answer = client.get("/api/sweeps/no-such-sweep/pareto", headers={"If-None-Match": "*"})
    assert answer.status_code == 404 and "etag" not in answer.headers


# -- problems --------------------------------------------------------------------------------


def test_an_unknown_path_is_a_404_problem(client: TestClient) -> None:
    body = _problem(client.get("/api/nothing-here"), 404, "/api/nothing-here")
    assert body["type"] == "about:blank" and body["title"] == "Not Found"
    assert body["detail"].startswith("path: ")


def test_a_method_a_path_does_not_take_is_a_405_problem(client: TestClient) -> None:
    answer = client.delete("/api/sweeps", headers=AUTH)
    body = _problem(answer, 405, "/api/sweeps")
    assert body["type"] == "about:blank" and body["title"] == http.client.responses[405]
    assert body["detail"].startswith("method: DELETE ") and answer.headers["allow"] == "GET, POST"


def test_a_validation_error_is_a_422_problem(client: TestClient) -> None:
    path = f"/api/sweeps/{_sweep_id(client)}/results"
    body = _problem(client.get(path, params={"format": "xlsx"}), 422, path)
    assert body["type"] == "about:blank" and body["detail"].startswith("format: ")


@pytest.mark.parametrize(
    ("method", "path", "status", "kind"),
    [
        ("get", "/api/sweeps/no-such-sweep", 404, "unknown-sweep"),
        ("post", "/api/sweeps/{id}/cancel", 409, "sweep-conflict"),
        ("get", "/api/sweeps/{id}/pareto?objectives=accuracy", 422, "config"),
        ("get", "/api/sweeps/{id}/figures/heatmap_params?x=L", 422, "config"),
    ],
)
def test_the_projects_errors_are_problems_of_their_kind(
    client: TestClient, method: str, path: str, status: int, kind: str
) -> None:
    path = path.format(id=_sweep_id(client))
    answer = client.request(method, path, headers=AUTH)
    body = _problem(answer, status, path.split("?")[0])
    assert body["type"] == TYPE_PREFIX + kind
    assert body["title"].endswith(" error")


def test_the_request_guards_refusals_are_problems(client: TestClient) -> None:
    refused = client.post(
        "/api/sweeps", content="x", headers={**AUTH, "Content-Type": "text/plain"}
    )
    body = _problem(refused, 415, "/api/sweeps")
    assert body["type"] == TYPE_PREFIX + "media-type" and body["detail"].startswith("Content-Type:")
    host = client.get("/api/sweeps", headers={"Host": "evil.example"})
    assert _problem(host, 400, "/api/sweeps")["type"] == TYPE_PREFIX + "host-not-allowed"


def test_a_routes_httpexception_is_a_problem_with_its_headers(client: TestClient) -> None:
    answer = client.post("/api/sweeps", content="name: x\n", headers=YAML)
    body = _problem(answer, 401, "/api/sweeps")
    assert body["type"] == "about:blank" and body["detail"].startswith("Authorization: ")
    assert answer.headers["www-authenticate"] == "Bearer"


def test_the_openapi_document_declares_problems_and_revalidation(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == PROBLEM_FIELDS == set(problem["properties"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            for code, response in operation["responses"].items():
                if code.startswith("4"):
                    assert set(response["content"]) == {PROBLEM}, (method, path, code)
    for read in ("results", "pareto", "figures", "figures/{name}", "robust"):
        operation = schema["paths"][f"/api/sweeps/{{sweep_id}}/{read}"]["get"]
        assert "304" in operation["responses"], read
        assert "If-None-Match" in [p["name"] for p in operation["parameters"]], read
    listing = schema["paths"]["/api/sweeps"]["get"]["parameters"]
    limit = next(p for p in listing if p["name"] == "limit")["schema"]["anyOf"][0]
    assert (limit["minimum"], limit["maximum"]) == (1, 1000)


def test_the_lists_keep_their_fields_and_add_the_total(client: TestClient) -> None:
    listed = client.get("/api/sweeps").json()
    assert set(listed) == {"data", "count", "total"}
    body = client.get(f"/api/sweeps/{_sweep_id(client)}/results").json()
    assert set(body) == {"columns", "data", "count", "total"}
