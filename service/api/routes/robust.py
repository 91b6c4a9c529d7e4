"""``GET /api/sweeps/{sweep_id}/robust``: which configurations stay on the front when the seed
changes (:mod:`service.analysis.robust`), with the seeds' attainment surfaces.

Every trial of the sweep counts in its configuration's ``runs``; only those that take part in
a front (finished, every objective present) are drawn. A sweep with one run per configuration
answers 200 with a ``note`` that says so (its probabilities are 0 or 1).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from service.analysis.attainment import attainment_surfaces
from service.analysis.robust import (
    DEFAULT_RANDOM_SEED,
    DEFAULT_RESAMPLES,
    MAX_RESAMPLES,
    robust_info,
)
from service.analysis.robustview import robust_record
from service.api.deps import Manager
from service.api.etag import RevalidatedRoute
from service.api.reads import chosen_objectives, sweep_spec
from service.api.schemas import PROBLEMS, RobustPublic
from service.errors import ObjectiveError
from service.objectives import METRICS

router = APIRouter(
    prefix="/api/sweeps/{sweep_id}/robust", tags=["robust"], route_class=RevalidatedRoute
)

AxisQuery = Annotated[
    str | None,
    Query(
        max_length=100,
        description="A metric (GET /api/objectives) of the attainment surfaces' projection; "
        "default: the sweep's 2-D projection.",
    ),
]


def _axes(x: str | None, y: str | None, default: tuple[str, ...]) -> dict[str, str] | None:
    """The attainment surfaces' two metrics with their directions; None when neither is given
    and the sweep's 2-D projection plots a column that is no metric."""
    if x is None and y is None and any(name not in METRICS for name in default):
        return None
    chosen = (x or default[0], y or default[1])
    for parameter, name in zip(("x", "y"), chosen, strict=True):
        if name not in METRICS:
            raise ObjectiveError(
                f"{parameter}: {name!r} is no metric; attainment surfaces need a direction, "
                f"expected one of {', '.join(METRICS)}"
            )
    if chosen[0] == chosen[1]:
        raise ObjectiveError(f"y: {chosen[1]!r} is x too; choose two different metrics")
    return {name: METRICS[name].direction for name in chosen}


@router.get("", response_model=RobustPublic, responses=PROBLEMS)
async def sweep_robust(
    sweep_id: str,
    manager: Manager,
    objectives: Annotated[str | None, Query(max_length=200)] = None,
    resamples: Annotated[int | None, Query(ge=1, le=MAX_RESAMPLES)] = None,
    random_seed: Annotated[int, Query(ge=0, le=2**63 - 1)] = DEFAULT_RANDOM_SEED,
    x: AxisQuery = None,
    y: AxisQuery = None,
) -> RobustPublic:
    """Per configuration (a trial's swept values without the seed): its runs, the spread of
    each front metric over its seeds (mean, std, min, max), its distinct genotypes and its
    dominance probability (exact over every combination of one seed per configuration when
    there are few enough, else from ``resamples`` draws, 1000 by default, of
    ``random_seed``'s stream); the hypervolume of one seed per configuration with its 95 %
    interval; the duplicate genotypes; the seeds' 25/50/75 % attainment surfaces over ``x``
    and ``y``. Draws past the service's budget of look-ups are refused (422) when
    ``resamples`` is given, and fewer are made (and said) by default."""

    def compute() -> RobustPublic:
        spec = sweep_spec(manager, sweep_id)
        chosen = chosen_objectives(objectives, spec)
        axes = _axes(x, y, tuple(spec.report.projection_2d))
        frame = manager.store.trials_frame(sweep_id)
        info = robust_info(
            frame,
            chosen,
            resamples=DEFAULT_RESAMPLES if resamples is None else resamples,
            random_seed=random_seed,
            strict=resamples is not None,
        )
        attainment = None if axes is None else attainment_surfaces(frame, axes)
        return RobustPublic.model_validate(robust_record(info, attainment))

    # The database reads and thousands of draws: off the event loop.
    return await run_in_threadpool(compute)
