"""Schema-driven fuzzing of the REST API with schemathesis: every operation of /openapi.json,
with requests that fit its schema (positive) and requests that break it (negative), against
the real app over a real SQLite store holding one finished synthetic sweep. No answer may be
a server error (5xx), and every answer must match the response schema the operation declares.

Besides schemathesis's own values, part of the cases aim at the stored sweep: its real id, its
real genotype hashes, comma lists of real objective names for ``/pareto`` and ``/figures``,
real column names as the figures' axes, the stored sweep on both sides of ``/api/compare``,
and for ``/validate`` a valid sweep file with one key changed, so that the handlers behind a
404 or 422 get fuzzed too. Explicit negative cases (bad tokens, bad bodies, unknown ids) are
tests/service/test_api.py's.

No fuzzed request may start a sweep. The app's token is set, and ``POST /api/sweeps`` is
fuzzed with the token only in negative mode (bodies that break its schema, which cannot be
sweep files) and in every mode without the token or with a wrong one (answered 401 or 403
before the body is read); submitting a real sweep is left to the tests that run one. As a
second guard the manager's Ray is a job-server address nobody listens on, so a body that
slipped through would fail (a 503 after the job client's minute of retries, which this test
reports) instead of starting Ray.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from service.analysis.gallery import FIGURE_NAMES
from service.api import create_app
from service.api.manager import SweepManager
from service.api.settings import ServiceSettings
from service.objectives import FRONT_METRICS, METRICS, directions
from service.orchestration.jobs import RayJobs
from service.orchestration.points import PLOTTABLE
from service.orchestration.spec import parse_sweep
from service.results.store import ResultStore

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from synthetic import build_sweep, sweep_yaml

OBJECTIVES = directions(FRONT_METRICS)

TOKEN = "fuzz-secret-token"
TRIALS = 24
# Examples per operation: 40 in `make test`; the full run of issue 10 sets 1000 (README).
EXAMPLES = int(os.environ.get("E2RNAS_FUZZ_EXAMPLES", "40"))
NOBODY = "http://127.0.0.1:9"  # the discard port: no Ray job server answers there
CHECKS = [not_a_server_error, response_schema_conformance]

CREATE = "POST /api/sweeps"
CANCEL = "POST /api/sweeps/{sweep_id}/cancel"
READS = (
    "GET /api/health",
    "GET /api/sweeps",
    "POST /api/sweeps/validate",
    "GET /api/sweeps/{sweep_id}",
    "GET /api/sweeps/{sweep_id}/results",
    "GET /api/sweeps/{sweep_id}/pareto",
    "GET /api/sweeps/{sweep_id}/robust",
    "GET /api/sweeps/{sweep_id}/export/{file_name}",
    "GET /api/sweeps/{sweep_id}/genotypes/{genotype_hash}/cells",
    "GET /api/examples",
    "GET /api/examples/{name}",
    "GET /api/objectives",
    "GET /api/sweeps/{sweep_id}/figures",
    "GET /api/sweeps/{sweep_id}/figures/{name}",
    "GET /api/compare",
)
COMPARE = "GET /api/compare"
AUTH = {
    "token": {"Authorization": f"Bearer {TOKEN}"},
    "no-token": {},
    "wrong-token": {"Authorization": "Bearer not-the-token"},
}
# Reads answer alike with and without a token; the mutating operations get all three.
CASES = [
    *((label, "token") for label in READS),
    *((label, auth) for label in (CREATE, CANCEL) for auth in AUTH),
]


class Stored:
    """The database with the synthetic sweep, shared by the module's tests (none writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"sqlite:///{root / 'service.db'}"
        self.sweep_id = build_sweep(self.url, TRIALS)
        store = ResultStore(self.url)
        try:
            frame = store.trials_frame(self.sweep_id)
        finally:
            store.close()
        self.hashes = sorted(set(frame["genotype_hash"]))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Stored:
    return Stored(tmp_path_factory.mktemp("fuzz"))


@pytest.fixture
def schema(stored: Stored) -> Iterator[Any]:
    settings_ = ServiceSettings(
        storage=stored.root / "storage",
        database_url=stored.url,
        api_token=TOKEN,
        allowed_hosts=("testserver",),  # the Host schemathesis's ASGI client sends
    )
    manager = SweepManager(settings_, jobs=RayJobs(NOBODY))
    app = create_app(settings_, manager)
    # Loading the schema starts the app's lifespan (the manager's refresh loop); the
    # schemathesis pytest plugin ends it when the test ends.
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    manager.store.close()


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    )
    scalars |= st.text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=12,
    )


def _sweep_files(valid: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The valid sweep file ``valid`` with one key set to an arbitrary JSON value: a key of
    the file or of one of its sections, a grid or override key, at most two levels deep."""
    paths = [(key,) for key in valid]
    paths += [
        (key, sub) for key, section in valid.items() if isinstance(section, dict) for sub in section
    ]
    paths += [("grid", "epochs"), ("grid", "no_ood"), ("search", "overrides", "epochs")]
    values = _json_values() | st.lists(_json_values(), max_size=3)
    values |= st.sampled_from([0, -1, 0.5, 1e308, "", "none", "optuna", [], {}, [0.0, -0.1]])

    def changed(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        body = copy.deepcopy(valid)
        where = body
        for key in path[:-1]:
            if not isinstance(where.get(key), dict):
                where[key] = {}
            where = where[key]
        where[path[-1]] = value
        return body

    return st.builds(changed, st.sampled_from(paths), values)


def _objective_lists() -> st.SearchStrategy[str]:
    names = st.sampled_from([*OBJECTIVES, "val_loss", "nope", ""])
    separators = st.sampled_from([",", ", ", " ,"])
    return st.tuples(st.lists(names, min_size=1, max_size=6), separators).map(
        lambda parts: parts[1].join(parts[0])
    )


def _columns() -> st.SearchStrategy[str]:
    return st.sampled_from([*PLOTTABLE, "trial_id", "nope", ""])


def _axes_queries() -> st.SearchStrategy[dict[str, str]]:
    """Queries of ``/figures``: comma lists of columns for both projections."""
    lists = st.lists(_columns(), min_size=1, max_size=4).map(",".join)
    return st.fixed_dictionaries({}, optional={"projection_2d": lists, "projection_3d": lists})


def _axis_queries() -> st.SearchStrategy[dict[str, str]]:
    """Queries of ``/figures/{name}``: some of x, y and z."""
    return st.fixed_dictionaries({}, optional={"x": _columns(), "y": _columns(), "z": _columns()})


def _sweep_strategies(
    operation: Any, path: str, headers: dict[str, str], stored: Stored
) -> list[st.SearchStrategy[Any]]:
    """Cases aimed at the stored sweep, for an operation with ``{sweep_id}`` in its path."""
    real = {"sweep_id": stored.sweep_id}

    def positive(query: dict[str, str], **path_parameters: str) -> st.SearchStrategy[Any]:
        return operation.as_strategy(  # type: ignore[no-any-return]
            GenerationMode.POSITIVE,
            headers=headers,
            path_parameters={**real, **path_parameters},
            query=query,
        )

    variants = [positive({})]
    if "{genotype_hash}" in path:
        variants.append(
            st.sampled_from(stored.hashes).flatmap(lambda found: positive({}, genotype_hash=found))
        )
    if path.endswith(("/pareto", "/robust", "/figures", "/{name}")):
        variants.append(_objective_lists().flatmap(lambda text: positive({"objectives": text})))
    if path.endswith("/figures"):
        variants.append(_axes_queries().flatmap(positive))
    if path.endswith("/robust"):
        names = st.sampled_from([*METRICS, "L", "nope"])
        small = st.integers(min_value=1, max_value=50).map(str)
        optional = {"x": names, "y": names, "resamples": small}
        variants.append(st.fixed_dictionaries({}, optional=optional).flatmap(positive))
    if path.endswith("/{name}"):
        variants.append(
            st.tuples(st.sampled_from(FIGURE_NAMES), _axis_queries()).flatmap(
                lambda pair: positive(pair[1], name=pair[0])
            )
        )
    return variants


def _strategy(schema: Any, label: str, auth: str, stored: Stored) -> st.SearchStrategy[Any]:
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    headers = AUTH[auth]
    if label == CREATE and auth == "token":
        # Only bodies that break the schema: a valid one may be a sweep file, and a sweep
        # file with the right token is a real sweep.
        return operation.as_strategy(GenerationMode.NEGATIVE, headers=headers)
    variants = [
        operation.as_strategy(GenerationMode.POSITIVE, headers=headers),
        operation.as_strategy(GenerationMode.NEGATIVE, headers=headers),
    ]
    if "{sweep_id}" in path:
        variants.extend(_sweep_strategies(operation, path, headers, stored))
    if label == COMPARE:
        names = st.sampled_from([*METRICS, "L", "nope"])
        variants.append(
            st.fixed_dictionaries({}, optional={"x": names, "y": names}).flatmap(
                lambda axes: operation.as_strategy(
                    GenerationMode.POSITIVE,
                    headers=headers,
                    query={"a": stored.sweep_id, "b": stored.sweep_id, **axes},
                )
            )
        )
    if label == "POST /api/sweeps/validate":
        valid = parse_sweep(sweep_yaml(4)).model_dump(mode="json")
        variants.append(
            _sweep_files(valid).flatmap(
                lambda body: operation.as_strategy(
                    GenerationMode.POSITIVE,
                    headers=headers,
                    body=body,
                    media_type="application/json",
                )
            )
        )
    return st.one_of(variants)


def test_the_fuzzed_operations_are_all_of_the_schema(schema: Any) -> None:
    found = {result.ok().label for result in schema.get_all_operations()}
    assert found == {*READS, CREATE, CANCEL}


@pytest.mark.parametrize(("label", "auth"), CASES, ids=[f"{a}:{o}" for o, a in CASES])
def test_fuzzed_requests_get_no_server_error(
    schema: Any, stored: Stored, label: str, auth: str
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(schema, label, auth, stored))
    def fuzz(case: Any) -> None:
        response = case.call()
        case.validate_response(response, checks=CHECKS)

    fuzz()
