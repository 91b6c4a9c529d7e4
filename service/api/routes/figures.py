"""``/api/sweeps/{sweep_id}/figures``: the sweep page's plotly figures, as JSON.

The figures are those of :mod:`service.analysis.figures`, the same the offline report embeds,
drawn over the sweep's finished trials with the front and the ranks of
`service.analysis.pareto.pareto_info` over the chosen objectives (default: the sweep's). The
page only hands each one to ``Plotly.react(div, figure.data, figure.layout, config)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, Query

from service.analysis.gallery import FigureName, sweep_figure, sweep_figures, why_not
from service.analysis.plotdata import rank_table
from service.api.deps import Manager
from service.api.etag import RevalidatedRoute
from service.api.reads import chosen_objectives, comma_list, finished_trials, sweep_spec
from service.api.schemas import PROBLEMS, FigurePublic, SweepFiguresPublic
from service.errors import ConfigError, SweepConflictError
from service.orchestration.points import check_axes, plottable_columns
from service.orchestration.spec import SweepSpec

router = APIRouter(
    prefix="/api/sweeps/{sweep_id}/figures", tags=["figures"], route_class=RevalidatedRoute
)

ObjectivesQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="The objectives of the front and ranks, comma-separated registry names "
        "(GET /api/objectives); default: the sweep's.",
    ),
]
AxisQuery = Annotated[
    str | None,
    Query(
        max_length=100,
        description="A column of the results to plot; default: the sweep's report: choice.",
    ),
]
AxesQuery = Annotated[
    str | None,
    Query(
        max_length=200,
        description="Comma-separated columns of the results to plot, x,y for projection_2d and "
        "x,y,z for projection_3d; default: the sweep's report: choice.",
    ),
]


def _axes_choices(table: pd.DataFrame, spec: SweepSpec, chosen: Sequence[str]) -> list[str]:
    """The columns a projection may plot that are chosen or that some row has a number in."""

    def has_numbers(column: str) -> bool:
        if column not in table.columns:
            return False
        values = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        return bool(np.isfinite(values).any())

    return [c for c in plottable_columns(spec) if c in chosen or has_numbers(c)]


@router.get("", response_model=SweepFiguresPublic, responses=PROBLEMS)
def all_figures(
    sweep_id: str,
    manager: Manager,
    objectives: ObjectivesQuery = None,
    projection_2d: AxesQuery = None,
    projection_3d: AxesQuery = None,
) -> SweepFiguresPublic:
    """Every figure of the sweep page in one answer, and the columns a projection may plot.

    ``projection_2d`` (``x,y``) and ``projection_3d`` (``x,y,z``) choose the projections'
    columns, by default the sweep's ``report:`` choice. A figure the finished trials cannot
    give yet (the heatmaps before a trial with L and F has finished) is left out, and its
    section has a note in ``notes`` instead.
    """
    spec = sweep_spec(manager, sweep_id)
    choices = plottable_columns(spec)
    axes_2d, axes_3d = spec.report.projection_2d, spec.report.projection_3d
    if projection_2d:
        axes_2d = check_axes(comma_list(projection_2d), 2, "projection_2d", choices)
    if projection_3d:
        axes_3d = check_axes(comma_list(projection_3d), 3, "projection_3d", choices)
    ranked = rank_table(finished_trials(manager, sweep_id), chosen_objectives(objectives, spec))
    drawn = sweep_figures(ranked, axes_2d, axes_3d)
    return SweepFiguresPublic(
        objectives=ranked.objectives,
        axes=_axes_choices(ranked.table, spec, (*axes_2d, *axes_3d)),
        projection_2d=list(axes_2d),
        projection_3d=list(axes_3d),
        figures={name: FigurePublic.of(fig) for name, fig in drawn.figures.items()},
        notes=drawn.notes,
    )


def _projection_axes(
    name: FigureName, given: dict[str, str | None], spec: SweepSpec
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The projections' columns for one figure: ``given`` (query ``x``, ``y``, ``z``) where
    set, else the sweep's ``report:`` choice; only a projection takes them."""
    default_2d, default_3d = spec.report.projection_2d, spec.report.projection_3d
    params = {
        "projection_2d": ("x", "y"),
        "fronts_by_backbone": ("x", "y"),
        "two_stage": ("x", "y"),
        "seed_robustness": ("x", "y"),
        "projection_3d": ("x", "y", "z"),
    }.get(name, ())
    for param, value in given.items():
        if value is not None and param not in params:
            raise ConfigError(
                f"{param}: {name} takes no {param} axis; only projection_2d, "
                "fronts_by_backbone, two_stage and seed_robustness (x, y) and projection_3d "
                "(x, y, z) do"
            )
    if not params:
        return default_2d, default_3d
    default = default_3d if name == "projection_3d" else default_2d
    axes = tuple(given[param] or column for param, column in zip(params, default, strict=True))
    choices = plottable_columns(spec)
    for i, (param, column) in enumerate(zip(params, axes, strict=True)):
        if column not in choices:
            raise ConfigError(
                f"{param}: unknown column {column!r}; expected one of {', '.join(choices)}"
            )
        if column in axes[:i]:
            raise ConfigError(
                f"{param}: {column!r} is already the {params[axes.index(column)]} axis; "
                f"choose {len(params)} different columns"
            )
    return (default_2d, axes) if name == "projection_3d" else (axes, default_3d)


@router.get("/{name}", response_model=FigurePublic, responses=PROBLEMS)
def one_figure(
    sweep_id: str,
    name: FigureName,
    manager: Manager,
    x: AxisQuery = None,
    y: AxisQuery = None,
    z: AxisQuery = None,
    objectives: ObjectivesQuery = None,
) -> FigurePublic:
    """One figure of the sweep page (see ``GET /api/sweeps/{sweep_id}/figures``).

    ``x``, ``y`` and, for ``projection_3d``, ``z`` choose a projection's columns, each by
    default the sweep's ``report:`` choice (``fronts_by_backbone``, ``two_stage`` and
    ``seed_robustness`` take the 2-D projection's ``x`` and ``y``); the other figures take no
    axes. 409 when the finished trials cannot give the figure yet.
    """
    spec = sweep_spec(manager, sweep_id)
    axes_2d, axes_3d = _projection_axes(name, {"x": x, "y": y, "z": z}, spec)
    ranked = rank_table(finished_trials(manager, sweep_id), chosen_objectives(objectives, spec))
    reason = why_not(ranked, name, axes_2d, axes_3d)
    if reason is not None:
        raise SweepConflictError(
            f"name: {name} of sweep {sweep_id!r} cannot be drawn from its finished trials "
            f"({reason})"
        )
    return FigurePublic.of(sweep_figure(ranked, name, axes_2d, axes_3d))
