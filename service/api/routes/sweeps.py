"""``/api/sweeps``: create, list, read and cancel sweeps; their results, front and exports.

The paths are a contract (docs/ARCHITECTURE.md). Reads come from the database, which the
manager keeps up to date; a sweep's results hold the trials finished so far. Every GET answer
carries an ETag (`service.api.etag`); the lists page with ``limit``/``offset``
(`service.api.paging`).
"""

from __future__ import annotations

import io
import json
import tempfile
import urllib.parse
from pathlib import Path
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool

from service.analysis.pareto import pareto_answer
from service.api.deps import Manager, Settings, Token
from service.api.etag import RevalidatedRoute
from service.api.guard import BODY_TYPES, YAML_TYPES, media_type
from service.api.manager import STATUSES
from service.api.paging import Paging, set_links
from service.api.reads import chosen_objectives, finished_trials, sweep_spec
from service.api.schemas import (
    PROBLEMS,
    ParetoPublic,
    Progress,
    ResultsPublic,
    Status,
    SweepCreated,
    SweepPublic,
    SweepsPublic,
    SweepValidated,
)
from service.errors import MediaTypeError
from service.orchestration.points import sweep_objectives, trial_count
from service.results.table import frame_records
from service.results.urls import masked_url
from service.yamltext import load_json

router = APIRouter(prefix="/api/sweeps", tags=["sweeps"], route_class=RevalidatedRoute)

EXPORT_TYPES = {
    "genotypes.json": "application/json",
    "genotypes.py": "text/x-python; charset=utf-8",
    "front.csv": "text/csv; charset=utf-8",
    "front.parquet": "application/vnd.apache.parquet",
    "robust.csv": "text/csv; charset=utf-8",
}
ExportFile = Literal["genotypes.json", "genotypes.py", "front.csv", "front.parquet", "robust.csv"]

_SWEEP_BODY = {
    "requestBody": {
        "required": True,
        "description": "A sweep file (see sweeps/*.yaml), as YAML or as JSON.",
        "content": {
            **{kind: {"schema": {"type": "string"}} for kind in YAML_TYPES},
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


def _status(stored: str) -> Status:
    # A sweep run from the CLI into the same database may be "interrupted" (Ctrl-C, resumable
    # with `e2rnas sweep resume`): of the API's five states, it has failed to finish.
    return cast(Status, stored) if stored in STATUSES else "failed"


def _public_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The stored spec with its database URL masked: the service's own sweeps name theirs by
    reference, but a sweep run from the CLI into this database may carry its password."""
    storage = spec.get("storage")
    if not isinstance(storage, dict) or not storage.get("database_url"):
        return spec
    shown = {**storage, "database_url": masked_url(str(storage["database_url"]))}
    return {**spec, "storage": shown}


def _public(row: dict[str, Any]) -> SweepPublic:
    return SweepPublic(
        id=row["sweep_id"],
        name=row["name"],
        status=_status(row["status"]),
        progress=Progress(**(row.get("progress") or {})),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        job_id=row.get("job_id"),
        message=row.get("message"),
        spec=_public_spec(row["spec"]),
    )


async def _sweep_body(request: Request, limit: int) -> str | dict[str, Any]:
    """The request body as YAML text or a JSON object, no larger than ``limit`` bytes.

    A Content-Type is required (the request guard refuses the types a form can send): a
    body without one could come from any page through ``fetch`` with ``no-cors``."""
    kind = media_type(request.headers)
    if kind not in BODY_TYPES:
        raise MediaTypeError(
            f"Content-Type: {kind or 'missing'} is not a sweep file; send application/yaml "
            "or application/json"
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                f"body: larger than this service's limit of {limit} bytes "
                "(E2RNAS_MAX_BODY_BYTES); a sweep file is a few kB",
            )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body: not UTF-8 text") from None
    if kind != "application/json":
        return text
    data = load_json(text, "body")
    if not isinstance(data, dict):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"body: expected a JSON object (a sweep file), got {type(data).__name__}",
        )
    return data


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=SweepCreated,
    dependencies=[Token],
    responses=PROBLEMS,
    openapi_extra=_SWEEP_BODY,
)
async def create_sweep(
    request: Request, response: Response, manager: Manager, settings: Settings
) -> SweepCreated:
    """Validate the sweep exactly as ``e2rnas sweep run`` does, record it and submit it to Ray
    as a Ray Job; answers its id, and its URL in ``Location``."""
    data = await _sweep_body(request, settings.max_body_bytes)
    # Submitting may start the embedded Ray and waits on HTTP: not on the event loop.
    sweep_id = await run_in_threadpool(manager.create, data)
    response.headers["Location"] = f"/api/sweeps/{urllib.parse.quote(sweep_id, safe='')}"
    return SweepCreated(id=sweep_id)


@router.post(
    "/validate",
    response_model=SweepValidated,
    responses=PROBLEMS,
    openapi_extra=_SWEEP_BODY,
)
async def validate_sweep(request: Request, manager: Manager, settings: Settings) -> SweepValidated:
    """Check a sweep file without submitting it (the submit page's inline errors); answers
    the name it would run under, its trial count and its front's objectives."""
    data = await _sweep_body(request, settings.max_body_bytes)
    spec = await run_in_threadpool(manager.validate, data)
    return SweepValidated(
        name=spec.name, trials=trial_count(spec), objectives=dict(sweep_objectives(spec))
    )


@router.get("", response_model=SweepsPublic, responses=PROBLEMS)
def list_sweeps(
    request: Request, response: Response, manager: Manager, page: Paging
) -> SweepsPublic:
    """The sweeps, newest first, with status and progress: all of them, or a page of
    ``limit`` from ``offset`` with ``Link`` to the next and previous pages."""
    rows = sorted(
        manager.store.sweeps(), key=lambda r: (r["created_at"], r["sweep_id"]), reverse=True
    )
    shown = rows[page.rows()]
    set_links(request, response, page, len(rows))
    return SweepsPublic(data=[_public(row) for row in shown], count=len(shown), total=len(rows))


@router.get("/{sweep_id}", response_model=SweepPublic, responses=PROBLEMS)
def get_sweep(sweep_id: str, manager: Manager) -> SweepPublic:
    return _public(manager.store.get_sweep(sweep_id))


@router.post(
    "/{sweep_id}/cancel", response_model=SweepPublic, dependencies=[Token], responses=PROBLEMS
)
def cancel_sweep(sweep_id: str, manager: Manager) -> SweepPublic:
    """Stop a pending or running sweep's job; its finished trials stay in the results."""
    return _public(manager.cancel(sweep_id))


@router.get(
    "/{sweep_id}/results",
    response_model=ResultsPublic,
    responses={
        **PROBLEMS,
        200: {
            "content": {
                "application/json": {},
                "text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            }
        },
    },
)
def sweep_results(
    sweep_id: str,
    request: Request,
    response: Response,
    manager: Manager,
    page: Paging,
    format: Annotated[Literal["json", "csv", "parquet"], Query()] = "json",
) -> Any:
    """The results table, one row per trial by trial id (docs/ARCHITECTURE.md's columns), as
    JSON, CSV or Parquet: all of it, or ``limit`` rows from ``offset`` with ``Link`` to the
    next and previous pages (the JSON says the table's ``total``)."""
    whole = manager.store.trials_frame(sweep_id)
    frame = whole.iloc[page.rows()].reset_index(drop=True)
    set_links(request, response, page, len(whole))
    # A Response returned is sent as it is: the Link header set on ``response`` goes along.
    if format == "csv":
        text = frame.to_csv(index=False)
        return Response(text, media_type="text/csv; charset=utf-8", headers=response.headers)
    if format == "parquet":
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        kind = EXPORT_TYPES["front.parquet"]
        return Response(buffer.getvalue(), media_type=kind, headers=response.headers)
    return ResultsPublic(
        columns=list(frame.columns),
        data=frame_records(frame),
        count=len(frame),
        total=len(whole),
    )


@router.get("/{sweep_id}/pareto", response_model=ParetoPublic, responses=PROBLEMS)
def sweep_pareto(
    sweep_id: str,
    manager: Manager,
    objectives: Annotated[str | None, Query(max_length=200)] = None,
) -> ParetoPublic:
    """The nondominated finished trials over ``objectives`` (comma-separated; default: the
    sweep's), every trial's nondomination rank, the hypervolume and the knee."""
    chosen = chosen_objectives(objectives, sweep_spec(manager, sweep_id))
    # Failed trials take no part, like finished ones missing a metric: rank -1.
    return ParetoPublic.model_validate(pareto_answer(manager.store.trials_frame(sweep_id), chosen))


@router.get(
    "/{sweep_id}/export/{file_name}",
    responses={**PROBLEMS, 200: {"content": {t: {} for t in EXPORT_TYPES.values()}}},
    response_class=Response,
)
def sweep_export(sweep_id: str, file_name: ExportFile, manager: Manager) -> Response:
    """One of the exports of the front's genotypes, deduplicated by genotype hash, or
    ``robust.csv``: the configurations ranked by dominance probability over the seeds."""
    from service.analysis.export import export_front
    from service.analysis.pareto import front_of
    from service.analysis.robust import robust_info
    from service.analysis.robustview import robust_csv_frame

    objectives = sweep_objectives(sweep_spec(manager, sweep_id))
    front = front_of(finished_trials(manager, sweep_id), objectives)
    robust = None
    if file_name == "robust.csv":
        robust = robust_csv_frame(robust_info(manager.store.trials_frame(sweep_id), objectives))
    with tempfile.TemporaryDirectory(prefix="e2rnas-export-") as tmp:
        # The name is one of five literals, so the path cannot leave the directory.
        written = export_front(front, Path(tmp), robust)
        content = written[file_name].read_bytes()
    return Response(
        content,
        media_type=EXPORT_TYPES[file_name],
        headers={"Content-Disposition": f'attachment; filename="{sweep_id}-{file_name}"'},
    )


@router.get("/{sweep_id}/genotypes/{genotype_hash}/cells", responses=PROBLEMS)
def genotype_cells(sweep_id: str, genotype_hash: str, manager: Manager) -> dict[str, Any]:
    """Plotly figures (JSON) of the normal and reduction cells of one of the sweep's genotypes."""
    from service.analysis.cells import cell_diagram

    frame = manager.store.trials_frame(sweep_id)
    found = frame[frame["genotype_hash"] == genotype_hash]["genotype"].dropna()
    if found.empty:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"genotype_hash: no trial of sweep {sweep_id!r} found genotype {genotype_hash!r}",
        )
    genotype = str(found.iloc[0])
    return {
        "genotype_hash": genotype_hash,
        "genotype": json.loads(genotype),
        **{
            which: json.loads(cell_diagram(genotype, which).to_json())
            for which in ("normal", "reduce")
        },
    }
