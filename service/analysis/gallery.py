"""A sweep's gallery: which figures its web page and its report show, in which sections, and
why one cannot be drawn from a table.

The figures (:data:`FIGURE_NAMES`, grouped in :data:`SECTIONS`) are drawn by
:mod:`~service.analysis.figures` from a table ranked by
:func:`~service.analysis.plotdata.rank_table`; a figure that the table does not allow (no
``L``×``F`` grid for the heatmaps, a projected column missing) gets a note instead.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple, get_args

import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]

from service.analysis.figures import (
    compare_fronts,
    grid_heatmap,
    parallel_coordinates,
    projection,
    scatter_matrix,
)
from service.analysis.plotdata import FRONT_RANK, Aggregate, RankedTable, compare_info, grid_note
from service.analysis.robust import (
    SEED,
    configuration_keys,
    configuration_labels,
    robust_info,
    valid_rows,
)
from service.analysis.robustview import robust_figure, robust_projection
from service.errors import ConfigError
from service.objectives import DEFAULT_PROJECTION_2D, DEFAULT_PROJECTION_3D, FRONT_METRICS, METRICS
from service.objectives import directions as registry_directions

BACKBONE = "backbone"
"""The results column naming each trial's search backbone (darts, pc_darts, pdarts)."""

__all__ = [
    "BACKBONE",
    "FIGURE_NAMES",
    "HEATMAPS",
    "SECTIONS",
    "FigureName",
    "SweepFigures",
    "fronts_by_backbone",
    "proxy_agreement",
    "seed_robustness",
    "sweep_figure",
    "sweep_figures",
    "two_stage_fronts",
    "why_not",
]

FigureName = Literal[
    "scatter_matrix",
    "projection_2d",
    "projection_3d",
    "parallel",
    "heatmap_params",
    "heatmap_flops",
    "heatmap_rank",
    "fronts_by_backbone",
    "two_stage",
    "seed_robustness",
]
FIGURE_NAMES: tuple[FigureName, ...] = get_args(FigureName)
"""The figures of a sweep, in the order of the page."""

HEATMAPS: dict[FigureName, tuple[str, Aggregate]] = {
    "heatmap_params": ("params_m", "mean"),
    "heatmap_flops": ("flops_m", "mean"),
    # The best rank any seed reached says more about a bound than the mean rank.
    "heatmap_rank": (FRONT_RANK, "min"),
}
"""The heatmaps: the value each one shows and its aggregate over the seeds of a cell."""

SECTIONS: dict[str, tuple[FigureName, ...]] = {
    "scatter": ("scatter_matrix",),
    "projection_2d": ("projection_2d",),
    "projection_3d": ("projection_3d",),
    "parallel": ("parallel",),
    "heatmaps": tuple(HEATMAPS),
    "backbones": ("fronts_by_backbone",),
    "two_stage": ("two_stage",),
    "robust": ("seed_robustness",),
}
"""The sections of a sweep's figures, on the page and in the report, each with its figures."""


_PROJECTED = (
    "projection_2d",
    "projection_3d",
    "fronts_by_backbone",
    "two_stage",
    "seed_robustness",
)


class SweepFigures(NamedTuple):
    """A sweep's figures, and for each section missing some, why."""

    figures: dict[FigureName, go.Figure]  # those that can be drawn, in FIGURE_NAMES order
    notes: dict[str, str]  # section of SECTIONS → why some of its figures are not drawn


def _axes(
    name: FigureName, projection_2d: Sequence[str], projection_3d: Sequence[str]
) -> tuple[str, ...]:
    """The columns a projection plots, checked; () for the other figures."""
    if name not in _PROJECTED:
        return ()
    axes, size = (projection_3d, 3) if name == "projection_3d" else (projection_2d, 2)
    if len(axes) != size or len(set(axes)) != size:
        raise ConfigError(f"{name}: expected {size} distinct column names, got {list(axes)}")
    return tuple(axes)


def why_not(
    ranked: RankedTable,
    name: FigureName,
    projection_2d: Sequence[str] = DEFAULT_PROJECTION_2D,
    projection_3d: Sequence[str] = DEFAULT_PROJECTION_3D,
) -> str | None:
    """Why the figure ``name`` cannot be drawn from the table, or None when it can."""
    columns = ranked.table.columns
    if name in HEATMAPS:
        value = HEATMAPS[name][0]
        missing = None if value in columns else f"Skipped: the results have no {value} column."
        return grid_note(ranked.table) or missing
    axes = _axes(name, projection_2d, projection_3d)
    absent = [a for a in axes if a not in columns]
    if absent:
        return f"Skipped: the results have no {', '.join(absent)} column."
    if name == "fronts_by_backbone":
        return _why_not_by_backbone(ranked, axes)
    if name == "two_stage":
        return _why_not_two_stage(ranked, axes)
    if name == "seed_robustness":
        return _why_not_robust(ranked, axes)
    return None


def _why_not_robust(ranked: RankedTable, axes: Sequence[str]) -> str | None:
    others = [a for a in axes if a not in METRICS]
    if others:
        return (
            "Skipped: seed spreads and attainment surfaces are drawn over two metrics of the "
            f"2-D projection; {' and '.join(others)} {'is' if len(others) == 1 else 'are'} "
            "no metric."
        )
    table = ranked.table
    if table.empty:
        return "No finished trial yet: no seed spread to show."
    if SEED not in table.columns:
        return "Skipped: the results have no seed column: no seed spread to show."
    runs = table[valid_rows(table, list(ranked.objectives))]
    labels = configuration_labels(runs, configuration_keys(table))
    seeds = pd.Series(runs[SEED].to_numpy()).groupby(labels).nunique()
    if seeds.empty or seeds.max() < 2:
        return (
            "No configuration has finished runs under two seeds yet: no seed spread to show "
            "(sweep several seeds, grid: seed: [0, 1, 2])."
        )
    return None


def seed_robustness(ranked: RankedTable, x: str, y: str) -> go.Figure:
    """Seed spreads, dominance probability and attainment surfaces over ``x`` and ``y`` (the
    2-D projection's axes), the probability over the sweep's objectives."""
    info = robust_info(ranked.table, ranked.objectives)
    axes = registry_directions((x, y))
    return robust_figure(robust_projection(ranked.table, info, x, y, dict(axes)))


def _why_not_two_stage(ranked: RankedTable, axes: Sequence[str]) -> str | None:
    others = [a for a in axes if a not in FRONT_METRICS]
    if others:
        return (
            "Skipped: the fronts of two stages are drawn over two front metrics of the 2-D "
            f"projection; {' and '.join(others)} {'is' if len(others) == 1 else 'are'} none."
        )
    table, proxies = ranked.table, [f"proxy_{a}" for a in axes]
    retrained = "evaluation" in table.columns and (table["evaluation"] == "retrain").any()
    if not retrained or any(p not in table.columns for p in proxies):
        return "Not a two-stage sweep, or no trial retrained yet: no proxy front to compare."
    return None


def _why_not_by_backbone(ranked: RankedTable, axes: Sequence[str]) -> str | None:
    backbones = _backbones(ranked)
    if not backbones:
        return "Skipped: no finished trial names its backbone."
    if len(backbones) == 1:
        return f"All trials searched on one backbone ({backbones[0]}): no fronts to compare."
    others = [a for a in axes if a not in METRICS]
    if others:
        return (
            f"Skipped: fronts by backbone are drawn over two metrics of the 2-D projection; "
            f"{' and '.join(others)} {'is' if len(others) == 1 else 'are'} no metric."
        )
    return None


def _backbones(ranked: RankedTable) -> list[str]:
    """The backbones of the table's trials, sorted; [] without a backbone column."""
    if BACKBONE not in ranked.table.columns:
        return []
    return sorted({str(b) for b in ranked.table[BACKBONE].dropna()})


def fronts_by_backbone(ranked: RankedTable, x: str, y: str) -> go.Figure:
    """The front of each backbone's trials over ``x`` and ``y`` (the 2-D projection's axes),
    one colour per backbone, as in the comparison of two sweeps (Table IV's question: which
    backbone reaches which part of the front)."""
    table = ranked.table
    groups = [(b, table[table[BACKBONE].astype(str) == b]) for b in _backbones(ranked)]
    return compare_fronts(compare_info(groups, x, y))


def proxy_agreement(table: pd.DataFrame) -> dict[str, float | None]:
    """Kendall's τ (scipy's tau-b) between each front metric's proxy measure and the retrain's
    over a two-stage sweep's retrained trials: how well the proxy ranked them. None with fewer
    than two such trials, or where one side is constant."""
    from scipy.stats import kendalltau

    retrained = table[table["evaluation"] == "retrain"]
    tau: dict[str, float | None] = {}
    for name in FRONT_METRICS:
        pairs = retrained[[f"proxy_{name}", name]].dropna()
        value = kendalltau(pairs.iloc[:, 0], pairs.iloc[:, 1]).statistic if len(pairs) > 1 else None
        tau[name] = None if value is None or math.isnan(value) else float(value)
    return tau


def two_stage_fronts(ranked: RankedTable, x: str, y: str) -> go.Figure:
    """A two-stage sweep's two fronts over ``x`` and ``y`` (the 2-D projection's axes): the
    proxy's (every trial's proxy measures) and the retrain's (the retrained trials), as in the
    comparison of two sweeps, each retrained point linked to its proxy point by a dotted line
    (how far the retrain moved it)."""
    table = ranked.table
    px, py = f"proxy_{x}", f"proxy_{y}"
    proxy = table.assign(**{x: table[px], y: table[py]}).dropna(subset=[x, y])
    retrained = table[table["evaluation"] == "retrain"]
    fig = compare_fronts(compare_info([("proxy", proxy), ("retrain", retrained)], x, y))
    xs: list[float | None] = []
    ys: list[float | None] = []
    for row in retrained[[px, py, x, y]].dropna().itertuples(index=False):
        xs += [float(row[0]), float(row[2]), None]
        ys += [float(row[1]), float(row[3]), None]
    tau = ", ".join(
        f"{name} {'-' if v is None else f'{v:.2f}'}" for name, v in proxy_agreement(table).items()
    )
    proxied = int(table[px].notna().sum())
    fig.update_layout(
        title={
            "text": f"{len(retrained)} of {proxied} trials retrained; Kendall's τ of proxy "
            f"and retrain: {tau}",
            "font": {"size": 13},
        }
    )
    fig.add_trace(
        go.Scatter(
            name="retrained point and its proxy",
            uid="two-stage-links",
            mode="lines",
            x=xs,
            y=ys,
            hoverinfo="skip",
            line={"color": "#555555", "dash": "dot", "width": 1},
        )
    )
    return fig


def sweep_figure(
    ranked: RankedTable,
    name: FigureName,
    projection_2d: Sequence[str] = DEFAULT_PROJECTION_2D,
    projection_3d: Sequence[str] = DEFAULT_PROJECTION_3D,
) -> go.Figure:
    """The figure ``name`` of a ranked table: its front and ranks highlighted, the
    projections over ``projection_2d`` (x, y) and ``projection_3d`` (x, y, z)."""
    table = ranked.table
    if name == "scatter_matrix":
        return scatter_matrix(table, ranked.objectives, ranked.front)
    if name == "parallel":
        return parallel_coordinates(table, ranked.objectives, ranked.ranks)
    if name in HEATMAPS:
        return grid_heatmap(table, *HEATMAPS[name])
    x, y, *z = _axes(name, projection_2d, projection_3d)
    if name == "fronts_by_backbone":
        return fronts_by_backbone(ranked, x, y)
    if name == "two_stage":
        return two_stage_fronts(ranked, x, y)
    if name == "seed_robustness":
        return seed_robustness(ranked, x, y)
    return projection(table, x, y, z[0] if z else None, ranked.front)


def sweep_figures(
    ranked: RankedTable,
    projection_2d: Sequence[str] = DEFAULT_PROJECTION_2D,
    projection_3d: Sequence[str] = DEFAULT_PROJECTION_3D,
) -> SweepFigures:
    """Every figure of :data:`FIGURE_NAMES` that the table allows, and notes for the rest."""
    figures: dict[FigureName, go.Figure] = {}
    notes: dict[str, str] = {}
    for section, names in SECTIONS.items():
        reasons: list[str] = []
        for name in names:
            reason = why_not(ranked, name, projection_2d, projection_3d)
            if reason is None:
                figures[name] = sweep_figure(ranked, name, projection_2d, projection_3d)
            elif reason not in reasons:
                reasons.append(reason)
        if reasons:
            notes[section] = " ".join(reasons)
    return SweepFigures(figures=figures, notes=notes)
