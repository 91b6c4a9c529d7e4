"""The drawing steps: the plotly figures of a sweep, shared by the web pages and the report.

Every figure is built here, once: the offline report (:mod:`~service.analysis.report`) embeds
them, and the web pages fetch the same figures as JSON from the REST API and only hand them
to ``Plotly.react``. Each drawing step takes the data step of :mod:`~service.analysis.plotdata`
and turns it into a ``plotly.graph_objects.Figure``; nothing else here computes.

The figures of a sweep (:mod:`~service.analysis.gallery` names and groups them):

- ``scatter_matrix``: a scatter matrix of the objectives, the front highlighted;
- ``projection_2d``, ``projection_3d``: two or three chosen columns, the front highlighted,
  and in 2-D the front of the two plotted columns alone as a dotted staircase;
- ``parallel``: parallel coordinates of the objectives, coloured by nondomination rank;
- ``heatmap_params``, ``heatmap_flops``, ``heatmap_rank``: over the L×F grid, the mean
  ``params_m``, the mean ``flops_m`` and the best (lowest) ``front_rank`` of each cell.

Besides them, :func:`compare_fronts` draws the fronts of two sweeps over two objectives
(:mod:`~service.analysis.cells` draws a genotype's cells). Markers carry
``[trial_id, genotype_hash]`` as ``customdata``; traces have fixed ``uid`` values, so that
``Plotly.react`` matches the traces of a refreshed figure with the drawn ones.
"""

from __future__ import annotations

import html
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]

from service.analysis.pareto import Objectives
from service.analysis.plotdata import (
    FRONT_RANK,
    Aggregate,
    CompareInfo,
    ScatterInfo,
    heatmap_info,
    parallel_info,
    projection_info,
    scatter_info,
)
from service.objectives import axis_label

__all__ = [
    "PLOT_CONFIG",
    "compare_fronts",
    "grid_heatmap",
    "parallel_coordinates",
    "projection",
    "scatter_matrix",
]

PLOT_CONFIG: dict[str, Any] = {"displaylogo": False, "responsive": True}
"""plotly.js's config of the report's figures; the pages' app.js passes the same."""

_FRONT_COLOUR = "#d62728"
_OTHER_COLOUR = "#9aa5b1"
_NO_RANK_COLOUR = "#d0d4d9"
_WORST_RANK_COLOUR = "#1f77b4"
_COMPARE_STYLES = (
    ("#1f77b4", "diamond"),
    ("#ff7f0e", "square"),
    ("#2ca02c", "triangle-up"),
    ("#9467bd", "cross"),
)
_MARGIN = {"l": 70, "r": 20, "t": 40, "b": 60}
# (trace name, uid, colour, symbol, whether its rows are the front's)
_GROUPS = (
    ("other trials", "others", _OTHER_COLOUR, "circle", False),
    ("Pareto front", "front", _FRONT_COLOUR, "diamond", True),
)


def _pick(values: Sequence[Any], rows: Sequence[int]) -> list[Any]:
    return [values[i] for i in rows]


def _customdata(info: ScatterInfo, rows: Sequence[int]) -> list[list[str]]:
    return [[info.trial_ids[i], info.hashes[i]] for i in rows]


def _groups(info: ScatterInfo, size: int) -> Iterator[tuple[list[int], dict[str, Any]]]:
    """The other rows, then the front's, each with the settings of its marker trace."""
    for name, uid, colour, symbol, on_front in _GROUPS:
        rows = [i for i, flag in enumerate(info.front) if flag == on_front]
        yield (
            rows,
            {
                "name": name,
                "uid": uid,
                "text": _pick(info.hover, rows),
                "customdata": _customdata(info, rows),
                "hovertemplate": "%{text}<extra>" + name + "</extra>",
                "marker": {
                    "color": colour,
                    "symbol": symbol,
                    "size": size,
                    "line": {"width": 1 if on_front else 0, "color": "#5a0d0d"},
                },
            },
        )


# -- figures of a results table ------------------------------------------------------------


def scatter_matrix(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> go.Figure:
    """A scatter matrix (SPLOM) of the objectives: two traces, the other rows and the front."""
    info = scatter_info(df, objectives, front_mask)
    fig = go.Figure()
    for rows, common in _groups(info, size=7):
        dimensions = [
            {"label": axis_label(name), "values": _pick(values, rows)}
            for name, values in zip(info.objectives, info.values, strict=True)
        ]
        fig.add_trace(
            go.Splom(dimensions=dimensions, diagonal_visible=False, showupperhalf=False, **common)
        )
    fig.update_layout(
        height=max(500, 170 * len(info.objectives)),
        dragmode="select",
        hovermode="closest",
        margin=_MARGIN,
        legend={"orientation": "h", "y": 1.04},
    )
    return fig


def projection(
    df: pd.DataFrame,
    x: str,
    y: str,
    z: str | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> go.Figure:
    """A 2-D (or, with ``z``, 3-D) scatter of two (three) columns with the front highlighted.

    In 2-D a third trace draws the front of the two plotted columns alone (the trade-off
    curve this view shows), as a dotted staircase in order of ``x``. Without ``front_mask``
    the highlighted front is that of all five front metrics where the table has them, else
    of the plotted columns.
    """
    info = projection_info(df, x, y, z, front_mask)
    points = info.points
    fig = go.Figure()
    for rows, common in _groups(points, size=5 if z else 10):
        coords = {k: _pick(v, rows) for k, v in zip("xyz", points.values, strict=False)}
        trace_type = go.Scatter3d if z else go.Scatter
        fig.add_trace(trace_type(mode="markers", **coords, **common))
    if z is None:
        fig.add_trace(
            go.Scatter(
                name=f"front of {x} and {y}",
                uid="front-line",
                x=_pick(points.values[0], info.line),
                y=_pick(points.values[1], info.line),
                mode="lines",
                line={"color": _FRONT_COLOUR, "width": 1, "dash": "dot", "shape": "hv"},
                hoverinfo="skip",
            )
        )
        fig.update_layout(
            xaxis_title=axis_label(x), yaxis_title=axis_label(y), height=480, margin=_MARGIN
        )
    else:
        fig.update_layout(
            scene={
                "xaxis_title": axis_label(x),
                "yaxis_title": axis_label(y),
                "zaxis_title": axis_label(z),
            },
            height=600,
            margin={"l": 0, "r": 0, "t": 30, "b": 0},
        )
    fig.update_layout(hovermode="closest")
    return fig


def parallel_coordinates(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    ranks: npt.ArrayLike | None = None,
) -> go.Figure:
    """One line per row across the objectives, coloured by nondomination rank (0 = front).

    Rows without a rank (``-1``, a missing metric) are drawn grey.
    """
    info = parallel_info(df, objectives, ranks)
    colour = np.asarray(info.ranks, dtype=np.float64)
    cmax = max(float(colour.max(initial=0.0)), 1.0)
    # Normalised over [-1, cmax]: grey up to halfway to rank 0, the front colour at rank 0,
    # then a gradient towards the worst rank.
    front_at = 1.0 / (cmax + 1.0)
    return go.Figure(
        go.Parcoords(
            dimensions=[
                {"label": axis_label(name), "values": list(values)}
                for name, values in zip(info.objectives, info.values, strict=True)
            ],
            line={
                "color": colour.tolist(),
                "colorscale": [
                    [0.0, _NO_RANK_COLOUR],
                    [front_at / 2, _NO_RANK_COLOUR],
                    [front_at / 2, _FRONT_COLOUR],
                    [front_at, _FRONT_COLOUR],
                    [1.0, _WORST_RANK_COLOUR],
                ],
                "cmin": -1.0,
                "cmax": cmax,
                "showscale": True,
                "colorbar": {"title": {"text": "front rank"}},
            },
        ),
        layout={"height": 440, "margin": {"l": 70, "r": 70, "t": 70, "b": 30}},
    )


def grid_heatmap(df: pd.DataFrame, value: str, aggregate: Aggregate = "mean") -> go.Figure:
    """``value`` aggregated over the seeds of each (L, F) cell: rows L, columns F.

    Ranks are drawn in reds, darkest at rank 0 (the front); other values in Viridis.
    """
    info = heatmap_info(df, value, aggregate)
    z = [[None if np.isnan(v) else v for v in row] for row in info.z]
    fig = go.Figure(
        go.Heatmap(
            x=[f"{f:g}" for f in info.F],
            y=[f"{v:g}" for v in info.L],
            z=z,
            customdata=[list(row) for row in info.counts],
            colorscale="Reds" if value == FRONT_RANK else "Viridis",
            reversescale=value == FRONT_RANK,
            texttemplate="%{z:.3g}",
            hovertemplate=(
                "L=%{y}<br>F=%{x}<br>" + aggregate + " " + value + "=%{z}"
                "<br>trials=%{customdata}<extra></extra>"
            ),
            colorbar={"title": {"text": value}},
        )
    )
    fig.update_layout(
        title=f"{value} ({aggregate} over seeds)",
        xaxis={"title": "F (M FLOPs)", "type": "category"},
        yaxis={"title": "L (M params)", "type": "category"},
        height=360,
        margin={"l": 70, "r": 20, "t": 50, "b": 60},
    )
    return fig


def compare_fronts(info: CompareInfo) -> go.Figure:
    """Each sweep of ``info``: its rows as faint markers and its front as a staircase."""
    x, y = info.objectives
    fig = go.Figure()
    for k, sweep in enumerate(info.sweeps):
        colour, symbol = _COMPARE_STYLES[k % len(_COMPARE_STYLES)]
        points = sweep.points
        every = range(len(points.front))
        fig.add_trace(
            go.Scatter(
                name=f"{sweep.label} (all trials)",
                uid=f"sweep-{k}",
                mode="markers",
                x=list(points.values[0]),
                y=list(points.values[1]),
                text=list(points.hover),
                customdata=_customdata(points, every),
                hovertemplate="%{text}<extra></extra>",
                marker={"color": colour, "opacity": 0.25, "size": 7},
            )
        )
        fig.add_trace(
            go.Scatter(
                name=f"{sweep.label} front",
                uid=f"sweep-{k}-front",
                mode="lines+markers",
                x=_pick(points.values[0], sweep.line),
                y=_pick(points.values[1], sweep.line),
                text=_pick(points.hover, sweep.line),
                customdata=_customdata(points, sweep.line),
                hovertemplate="%{text}<extra>" + html.escape(sweep.label) + "</extra>",
                line={"color": colour, "shape": "hv", "width": 2},
                marker={"color": colour, "size": 10, "symbol": symbol},
            )
        )
    fig.update_layout(
        xaxis_title=axis_label(x),
        yaxis_title=axis_label(y),
        height=520,
        hovermode="closest",
        margin=_MARGIN,
    )
    return fig
