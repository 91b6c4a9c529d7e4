"""``GET /api/compare``: the fronts of two sweeps over the same two objectives.

The figure comes from :func:`service.analysis.figures.compare_fronts`; the numbers beside it
(front sizes, hypervolumes against each sweep's own reference and against one reference shared
by both) from :func:`service.analysis.plotdata.compare_info`, and the hypervolume of one seed
per configuration with its interval, against the shared reference, from
:func:`service.analysis.robust.robust_info`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, HTTPException, Query, status

from service.analysis.figures import compare_fronts
from service.analysis.plotdata import compare_info
from service.analysis.robust import robust_info
from service.analysis.robustview import robust_record
from service.api.deps import Manager
from service.api.etag import RevalidatedRoute
from service.api.reads import finished_trials
from service.api.schemas import (
    PROBLEMS,
    ComparePublic,
    CompareSweep,
    FigurePublic,
    RobustHypervolume,
)
from service.errors import ObjectiveError, UnknownSweepError
from service.objectives import DEFAULT_PROJECTION_2D, METRICS

router = APIRouter(prefix="/api/compare", tags=["compare"], route_class=RevalidatedRoute)

SweepQuery = Annotated[str, Query(max_length=200, description="A sweep id (GET /api/sweeps).")]
ObjectiveQuery = Annotated[
    str | None, Query(max_length=100, description="A registry name (GET /api/objectives).")
]


def _sweep(manager: Manager, parameter: str, sweep_id: str) -> dict[str, Any]:
    try:
        return manager.store.get_sweep(sweep_id)
    except UnknownSweepError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"{parameter}: no sweep {sweep_id!r} on this service; GET /api/sweeps lists them",
        ) from None


def _objectives(x: str | None, y: str | None) -> tuple[str, str]:
    """``x`` and ``y``, each by default the default 2-D projection's, checked."""
    chosen = (x or DEFAULT_PROJECTION_2D[0], y or DEFAULT_PROJECTION_2D[1])
    for parameter, name in zip(("x", "y"), chosen, strict=True):
        if name not in METRICS:
            raise ObjectiveError(
                f"{parameter}: unknown objective {name!r}; expected one of {', '.join(METRICS)}"
            )
    if chosen[0] == chosen[1]:
        raise ObjectiveError(f"y: {chosen[1]!r} is x too; choose two different objectives")
    return chosen


def _seed_interval(
    table: pd.DataFrame, objectives: dict[str, str], reference: Sequence[float] | None
) -> tuple[RobustHypervolume | None, str | None]:
    """The hypervolume of one seed per configuration against the shared reference, with its
    95 % interval over the draws, and the robustness's note."""
    if reference is None:
        return None, None
    info = robust_info(table, objectives, reference=list(reference))
    interval = RobustHypervolume.model_validate(robust_record(info)["hypervolume"])
    return interval, info.note


@router.get("", response_model=ComparePublic, responses=PROBLEMS)
def compare(
    manager: Manager,
    a: SweepQuery,
    b: SweepQuery,
    x: ObjectiveQuery = None,
    y: ObjectiveQuery = None,
) -> ComparePublic:
    """The fronts of the finished trials of sweeps ``a`` and ``b`` over the objectives ``x``
    and ``y`` (default: test_error and params_m), as one figure, with each front's size and
    hypervolume against its own reference and against one shared reference, the worse of
    the two in each objective, which makes the two hypervolumes comparable."""
    x, y = _objectives(x, y)
    rows = {"a": _sweep(manager, "a", a), "b": _sweep(manager, "b", b)}
    labels = {"a": f"A: {a}", "b": f"B: {b}"}
    tables = {key: finished_trials(manager, row["sweep_id"]) for key, row in rows.items()}
    info = compare_info([(labels[key], tables[key]) for key in rows], x, y)
    seeds = {key: _seed_interval(tables[key], info.objectives, info.reference) for key in rows}
    return ComparePublic(
        objectives=info.objectives,
        sweeps=[
            CompareSweep(
                id=row["sweep_id"],
                name=row["name"],
                label=summary.label,
                finished=len(tables[key]),
                front_size=sum(summary.points.front),
                hypervolume=summary.hypervolume,
                reference=None if summary.reference is None else list(summary.reference),
                shared_hypervolume=summary.shared_hypervolume,
                seed_hypervolume=seeds[key][0],
                seed_note=seeds[key][1],
            )
            for (key, row), summary in zip(rows.items(), info.sweeps, strict=True)
        ],
        shared_reference=None if info.reference is None else list(info.reference),
        figure=FigurePublic.of(compare_fronts(info)),
    )
