"""The sweep report: one self-contained, offline HTML page to browse the empirical Pareto front.

The page holds a scatter matrix of the front metrics with
the front highlighted, a 2-D and a 3-D projection (test_error, params_m and pgd_acc unless the
caller chooses other columns), parallel coordinates coloured by
nondomination rank, heatmaps over the L×F grid of what each pair of bounds achieved, and the
normal and reduction cell of every distinct front genotype.

As in Optuna's visualisation module, every plot is built in two stages: a data step
(``_scatter_info``, ``_heatmap_info``, ``_cell_diagram_info``) that turns the results table into
a NamedTuple of plain values, which the tests compare, and a drawing step that turns that into a
``plotly.graph_objects.Figure``. Only the drawing steps touch plotly.

The front defaults to :func:`service.pareto.pareto_info` over the chosen objectives; a caller
may pass its own ``front_mask`` and ``ranks`` (e.g. of a front over a subset of the metrics).
Rows with a missing metric (failed trials, ``evaluation == "none"``) are drawn where they have
values and are never on the front.

Every front point carries its ``genotype_hash`` as plotly ``customdata``; in the page, a click
on a point scrolls to that genotype's cell diagrams.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]

from search_core.genotypes import Genotype
from service.analysis.pareto import Objectives, directions, pareto_info
from service.errors import ConfigError, GenotypeError
from service.files import replace_atomically
from service.objectives import (
    DEFAULT_PROJECTION_2D,
    DEFAULT_PROJECTION_3D,
    FRONT_METRICS,
    METRICS,
    axis_label,
)

__all__ = [
    "DEFAULT_PROJECTION_2D",
    "DEFAULT_PROJECTION_3D",
    "FRONT_RANK",
    "SECTION_TITLES",
    "CellDiagramInfo",
    "DiagramEdge",
    "DiagramNode",
    "HeatmapInfo",
    "ScatterInfo",
    "cell_diagram",
    "grid_heatmap",
    "parallel_coordinates",
    "projection",
    "scatter_matrix",
    "write_report",
]

FRONT_RANK = "front_rank"
"""The column `write_report` adds for the nondomination rank (NaN for rows without one)."""

_FRONT_COLOUR = "#d62728"
_OTHER_COLOUR = "#9aa5b1"
_HOVER_COLUMNS = ("L", "F", "seed")
Aggregate = Literal["mean", "min", "max"]
BoolArray = npt.NDArray[np.bool_]


# -- data steps ----------------------------------------------------------------------------


class ScatterInfo(NamedTuple):
    """The points of a scatter plot; row indices are positions (``df.iloc``)."""

    objectives: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # one tuple per objective, one value per row
    front: tuple[bool, ...]  # one flag per row
    hover: tuple[str, ...]  # one text per row: L, F, seed, genotype_hash and the metrics
    hashes: tuple[str, ...]  # one genotype_hash per row ("" where missing)


class HeatmapInfo(NamedTuple):
    """A value over the L×F grid: ``z[i][j]`` aggregates the rows with L[i] and F[j]."""

    value: str
    aggregate: str
    L: tuple[float, ...]  # ascending
    F: tuple[float, ...]  # ascending
    z: tuple[tuple[float, ...], ...]  # NaN where no row (or no value) has that pair
    counts: tuple[tuple[int, ...], ...]  # rows per cell, values missing included


class DiagramNode(NamedTuple):
    name: str  # "c_{k-2}", "c_{k-1}", "0", "1", ..., "c_{k}"
    x: float
    y: float


class DiagramEdge(NamedTuple):
    source: str
    target: str
    op: str  # "" for the edges into the concatenated output c_{k}


class CellDiagramInfo(NamedTuple):
    """One cell as a DAG: inputs left, intermediate nodes in the middle, the output right."""

    which: str  # "normal" or "reduce"
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]  # the kept operations, two per intermediate node
    outputs: tuple[DiagramEdge, ...]  # the concatenated nodes into c_{k}


def _chosen(objectives: Objectives | None) -> dict[str, str]:
    return directions(FRONT_METRICS if objectives is None else objectives)


def _require_columns(df: pd.DataFrame, columns: Sequence[str], argument: str) -> None:
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"df: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(
            f"{argument}: column(s) {', '.join(map(repr, missing))} not in the results; "
            f"its columns are {', '.join(map(str, df.columns))}"
        )


def _as_mask(front_mask: npt.ArrayLike, rows: int) -> BoolArray:
    mask = np.asarray(front_mask)
    if mask.shape != (rows,) or mask.dtype != np.bool_:
        raise ConfigError(
            f"front_mask: got an array of shape {mask.shape} and dtype {mask.dtype}; "
            f"expected {rows} booleans, one per row"
        )
    return mask


def _front_mask(df: pd.DataFrame, objectives: Objectives | None) -> BoolArray:
    """The rows on the Pareto front of ``objectives`` (all five metrics by default)."""
    mask = np.zeros(len(df), dtype=bool)
    mask[list(pareto_info(df, _chosen(objectives)).front)] = True
    return mask


def _numbers(df: pd.DataFrame, column: str) -> tuple[float, ...]:
    try:
        values = pd.to_numeric(df[column], errors="raise").to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{column}: expected numbers ({error})") from None
    return tuple(float(v) for v in values)


def _text(value: Any) -> str:
    """A cell as short text: numbers with ``:g``, missing values as "-"."""
    if value is None or value is pd.NA:
        return "-"
    if isinstance(value, float | np.floating):
        return "-" if math.isnan(value) else f"{value:g}"
    return str(value)


def _scatter_info(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> ScatterInfo:
    """The points of each row over ``objectives``, their front flags and hover texts.

    Without ``front_mask`` the front is that of ``objectives`` (`service.pareto.pareto_info`).
    """
    names = tuple(_chosen(objectives))
    _require_columns(df, names, "objectives")
    mask = _front_mask(df, names) if front_mask is None else _as_mask(front_mask, len(df))
    hashes = (
        tuple("" if _text(h) == "-" else str(h) for h in df["genotype_hash"])
        if "genotype_hash" in df.columns
        else ("",) * len(df)
    )
    hover_columns = [c for c in _HOVER_COLUMNS if c in df.columns]
    hover: list[str] = []
    for position in range(len(df)):
        row = df.iloc[position]
        parts = [f"{c}={_text(row[c])}" for c in hover_columns]
        parts.append(f"genotype_hash={hashes[position] or '-'}")
        parts.extend(f"{name}={_text(row[name])}" for name in names)
        hover.append("<br>".join(parts))
    return ScatterInfo(
        objectives=names,
        values=tuple(_numbers(df, name) for name in names),
        front=tuple(bool(flag) for flag in mask),
        hover=tuple(hover),
        hashes=hashes,
    )


def _heatmap_info(
    df: pd.DataFrame, value_column: str, aggregate: Aggregate = "mean"
) -> HeatmapInfo:
    """``value_column`` over the L×F grid, aggregated over the rows of each cell (the seeds).

    Rows without L or F take no part; missing values are skipped by the aggregate.
    """
    _require_columns(df, ("L", "F", value_column), "value_column")
    if aggregate not in ("mean", "min", "max"):
        raise ConfigError(f"aggregate: got {aggregate!r}; expected 'mean', 'min' or 'max'")
    table = pd.DataFrame(
        {
            "L": _numbers(df, "L"),
            "F": _numbers(df, "F"),
            "value": _numbers(df, value_column),
        }
    ).dropna(subset=["L", "F"])
    L = tuple(sorted(float(v) for v in table["L"].unique()))
    F = tuple(sorted(float(v) for v in table["F"].unique()))
    groups = table.groupby(["L", "F"])["value"]
    z = groups.agg(aggregate).unstack("F").reindex(index=list(L), columns=list(F))
    counts = groups.size().unstack("F").reindex(index=list(L), columns=list(F)).fillna(0)
    return HeatmapInfo(
        value=value_column,
        aggregate=aggregate,
        L=L,
        F=F,
        z=tuple(tuple(float(v) for v in row) for row in z.to_numpy(dtype=np.float64)),
        counts=tuple(tuple(int(v) for v in row) for row in counts.to_numpy()),
    )


def _as_genotype(genotype: Genotype | Mapping[str, Any] | str) -> Genotype:
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, str):
        return Genotype.loads(genotype)
    return Genotype.from_json(dict(genotype))


def _node_name(index: int) -> str:
    """Cell node ``index``: 0 and 1 are the two previous cells, 2.. the intermediate nodes."""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def _cell_diagram_info(
    genotype: Genotype | Mapping[str, Any] | str, which: str = "normal"
) -> CellDiagramInfo:
    """The nodes (with positions) and labelled edges of the normal or the reduction cell.

    ``genotype`` is a `Genotype`, its JSON object or its JSON text.
    """
    if which not in ("normal", "reduce"):
        raise ConfigError(f"which: got {which!r}; expected 'normal' or 'reduce'")
    cell = _as_genotype(genotype)
    edges = cell.normal if which == "normal" else cell.reduce
    concat = cell.normal_concat if which == "normal" else cell.reduce_concat
    steps = cell.steps
    # Intermediate nodes zig-zag so that edges skipping a node do not run through it.
    nodes = [DiagramNode("c_{k-2}", 0.0, 1.0), DiagramNode("c_{k-1}", 0.0, -1.0)]
    nodes += [DiagramNode(str(i), i + 1.0, 0.35 * (-1) ** i) for i in range(steps)]
    nodes.append(DiagramNode("c_{k}", float(steps + 1), 0.0))
    return CellDiagramInfo(
        which=which,
        nodes=tuple(nodes),
        edges=tuple(
            DiagramEdge(_node_name(index), str(k // 2), op) for k, (op, index) in enumerate(edges)
        ),
        outputs=tuple(DiagramEdge(_node_name(index), "c_{k}", "") for index in concat),
    )


# -- drawing steps -------------------------------------------------------------------------


def _label(name: str) -> str:
    return axis_label(name)


def _split(info: ScatterInfo) -> tuple[list[int], list[int]]:
    front = [i for i, flag in enumerate(info.front) if flag]
    others = [i for i, flag in enumerate(info.front) if not flag]
    return others, front


def _pick(values: Sequence[Any], rows: Sequence[int]) -> list[Any]:
    return [values[i] for i in rows]


def scatter_matrix(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> go.Figure:
    """A scatter matrix (SPLOM) of the objectives: two traces, the other rows and the front."""
    info = _scatter_info(df, objectives, front_mask)
    others, front = _split(info)
    fig = go.Figure()
    for name, rows, colour, symbol in (
        ("other trials", others, _OTHER_COLOUR, "circle"),
        ("Pareto front", front, _FRONT_COLOUR, "diamond"),
    ):
        fig.add_trace(
            go.Splom(
                name=name,
                dimensions=[
                    {"label": _label(obj), "values": _pick(values, rows)}
                    for obj, values in zip(info.objectives, info.values, strict=True)
                ],
                text=_pick(info.hover, rows),
                customdata=_pick(info.hashes, rows),
                hovertemplate="%{text}<extra>" + name + "</extra>",
                marker={"color": colour, "symbol": symbol, "size": 7},
                diagonal_visible=False,
                showupperhalf=False,
            )
        )
    fig.update_layout(
        height=max(500, 170 * len(info.objectives)), dragmode="select", hovermode="closest"
    )
    return fig


def projection(
    df: pd.DataFrame,
    x: str,
    y: str,
    z: str | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> go.Figure:
    """A 2-D (or, with ``z``, 3-D) scatter of two (three) metrics with the front highlighted.

    In 2-D a third trace draws the front of the two plotted metrics alone (the trade-off
    curve this view shows), as a staircase in order of ``x``. Without ``front_mask`` the
    highlighted front is that of all five metrics where the table has them, else of the
    plotted ones.
    """
    axes = tuple(a for a in (x, y, z) if a is not None)
    _require_columns(df, axes, "projection axes")
    plotted = {a: METRICS[a].direction if a in METRICS else "min" for a in axes}
    if front_mask is None:
        every = all(c in df.columns for c in FRONT_METRICS)
        front_mask = _front_mask(df, FRONT_METRICS if every else plotted)
    info = _scatter_info(df, plotted, front_mask)
    others, front = _split(info)
    fig = go.Figure()
    for name, rows, colour, symbol in (
        ("other trials", others, _OTHER_COLOUR, "circle"),
        ("Pareto front", front, _FRONT_COLOUR, "diamond"),
    ):
        coords = {k: _pick(v, rows) for k, v in zip(("x", "y", "z"), info.values, strict=False)}
        common: dict[str, Any] = {
            "name": name,
            "mode": "markers",
            "text": _pick(info.hover, rows),
            "customdata": _pick(info.hashes, rows),
            "hovertemplate": "%{text}<extra>" + name + "</extra>",
            "marker": {"color": colour, "symbol": symbol, "size": 5 if z else 9},
        }
        fig.add_trace(go.Scatter3d(**coords, **common) if z else go.Scatter(**coords, **common))
    if z is None:
        xs, ys = info.values[0], info.values[1]
        front_2d = np.flatnonzero(np.asarray(_front_mask(df, plotted), dtype=bool))
        line = sorted(
            (int(i) for i in front_2d if not (math.isnan(xs[i]) or math.isnan(ys[i]))),
            key=lambda i: (xs[i], ys[i]),
        )
        fig.add_trace(
            go.Scatter(
                name=f"front of {x} and {y}",
                x=_pick(xs, line),
                y=_pick(ys, line),
                mode="lines",
                line={"color": _FRONT_COLOUR, "width": 1, "dash": "dot", "shape": "hv"},
                hoverinfo="skip",
            )
        )
        fig.update_layout(xaxis_title=_label(x), yaxis_title=_label(y))
    else:
        fig.update_layout(
            scene={
                "xaxis_title": _label(x),
                "yaxis_title": _label(y),
                "zaxis_title": _label(z),
            },
            height=650,
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
    names = tuple(_chosen(objectives))
    _require_columns(df, names, "objectives")
    rank = (
        pareto_info(df, _chosen(objectives)).ranks
        if ranks is None
        else np.asarray(ranks, dtype=np.float64)
    )
    if rank.shape != (len(df),):
        raise ConfigError(f"ranks: got shape {rank.shape}; expected ({len(df)},), one per row")
    colour = np.where(rank < 0, -1.0, rank).astype(np.float64)
    cmax = max(float(colour.max(initial=0.0)), 1.0)
    # Normalised over [-1, cmax]: grey up to halfway to rank 0, the front colour at rank 0,
    # then a gradient towards the worst rank.
    front_at = 1.0 / (cmax + 1.0)
    fig = go.Figure(
        go.Parcoords(
            dimensions=[{"label": _label(n), "values": list(_numbers(df, n))} for n in names],
            line={
                "color": colour.tolist(),
                "colorscale": [
                    [0.0, "#d0d4d9"],
                    [front_at / 2, "#d0d4d9"],
                    [front_at / 2, _FRONT_COLOUR],
                    [front_at, _FRONT_COLOUR],
                    [1.0, "#1f77b4"],
                ],
                "cmin": -1.0,
                "cmax": cmax,
                "showscale": True,
                "colorbar": {"title": {"text": "front rank"}},
            },
        )
    )
    return fig


def grid_heatmap(df: pd.DataFrame, value: str, aggregate: Aggregate = "mean") -> go.Figure:
    """``value`` aggregated over the seeds of each (L, F) cell: rows L, columns F."""
    info = _heatmap_info(df, value, aggregate)
    z = [[None if math.isnan(v) else v for v in row] for row in info.z]
    fig = go.Figure(
        go.Heatmap(
            x=[f"{f:g}" for f in info.F],
            y=[f"{v:g}" for v in info.L],
            z=z,
            customdata=[list(row) for row in info.counts],
            colorscale="Viridis",
            texttemplate="%{z:.3g}",
            hovertemplate=(
                "L=%{y}<br>F=%{x}<br>" + aggregate + " " + value + "=%{z}"
                "<br>rows=%{customdata}<extra></extra>"
            ),
            colorbar={"title": {"text": value}},
        )
    )
    fig.update_layout(
        title=f"{value} ({aggregate} over seeds)",
        xaxis={"title": "F (M FLOPs)", "type": "category"},
        yaxis={"title": "L (M params)", "type": "category"},
    )
    return fig


def cell_diagram(genotype: Genotype | Mapping[str, Any] | str, which: str = "normal") -> go.Figure:
    """The normal or reduction cell as a DAG of plotly shapes and annotations, one arrow per
    edge labelled with its operation."""
    info = _cell_diagram_info(genotype, which)
    where = {node.name: (node.x, node.y) for node in info.nodes}
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[node.x for node in info.nodes],
            y=[node.y for node in info.nodes],
            mode="markers",
            marker={"size": 1, "opacity": 0},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for edge in (*info.edges, *info.outputs):
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            text="", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.4,
            standoff=18, startstandoff=18,
            arrowcolor=_OTHER_COLOUR if not edge.op else "#444",
        )  # fmt: skip
        if edge.op:
            fig.add_annotation(
                x=x0 + 0.55 * (x1 - x0), y=y0 + 0.55 * (y1 - y0), text=edge.op, showarrow=False,
                font={"size": 10, "color": "#1f3b73"}, bgcolor="rgba(255,255,255,0.85)",
            )  # fmt: skip
    for node in info.nodes:
        is_cell = node.name.startswith("c_")
        fig.add_shape(
            type="rect" if is_cell else "circle",
            x0=node.x - 0.22, x1=node.x + 0.22, y0=node.y - 0.14, y1=node.y + 0.14,
            fillcolor="#cfe3f7" if is_cell else "#fde8c8", line={"color": "#555"},
        )  # fmt: skip
        fig.add_annotation(x=node.x, y=node.y, text=node.name, showarrow=False)
    fig.update_layout(
        title=f"{which} cell",
        xaxis={"visible": False, "range": [-0.5, len(info.nodes) - 1.5]},
        yaxis={"visible": False, "range": [-1.4, 1.4]},
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        plot_bgcolor="white",
    )
    return fig


# -- the page ------------------------------------------------------------------------------

_CLICK_SCRIPT = """<script>
window.addEventListener("load", function () {
  document.querySelectorAll(".js-plotly-plot").forEach(function (div) {
    if (!div.on) { return; }
    div.on("plotly_click", function (event) {
      var hash = event.points && event.points[0] && event.points[0].customdata;
      var target = hash && document.getElementById("cell-" + hash);
      if (target) { target.scrollIntoView({behavior: "smooth"}); }
    });
  });
});
</script>"""

_STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1200px; color: #222; }
section { margin-bottom: 2.5em; } .note { color: #8a5a00; } code { font-size: 0.95em; }
.cells { display: flex; flex-wrap: wrap; gap: 1em; } .cells > div { flex: 1 1 480px; }
</style>"""


SECTION_TITLES: dict[str, str] = {
    "scatter": "Scatter matrix of the front metrics",
    "projection_2d": "Projection: test_error vs params_m",
    "projection_3d": "Projection: test_error, params_m, pgd_acc",
    "parallel": "Parallel coordinates",
    "heatmaps": "L×F grid heatmaps",
    "cells": "Cells of the front genotypes",
}
"""The title of each section of the page, by section id (the projections' titles name their
axes, these with the default axes)."""


class _Page:
    """The page's parts in order; plotly.js goes inline with the first figure only."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._figures = 0

    def figure(self, fig: go.Figure) -> None:
        self.parts.append(
            fig.to_html(
                full_html=False,
                include_plotlyjs=self._figures == 0,
                div_id=f"figure-{self._figures}",
                config={"displaylogo": False, "responsive": True},
            )
        )
        self._figures += 1

    def section(self, key: str, title: str | None = None) -> None:
        if len(self.parts) > 0:
            self.parts.append("</section>")
        heading = html.escape(title or SECTION_TITLES[key])
        self.parts.append(f'<section id="{key}"><h2>{heading}</h2>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')


def _has_grid(df: pd.DataFrame) -> str | None:
    """Why the L×F heatmaps cannot be drawn, or None when they can."""
    missing = [c for c in ("L", "F") if c not in df.columns]
    if missing:
        return f"Heatmaps skipped: the results have no {' or '.join(missing)} column."
    if not (df["L"].notna() & df["F"].notna()).any():
        return "Heatmaps skipped: no trial has both L and F."
    return None


def _front_cells(df: pd.DataFrame, mask: BoolArray) -> list[tuple[str, Genotype]]:
    """Each distinct genotype of the front rows (first row per hash), with its hash."""
    if "genotype" not in df.columns:
        return []
    seen: set[str] = set()
    cells: list[tuple[str, Genotype]] = []
    for position in np.flatnonzero(mask):
        text = df["genotype"].iloc[position]
        if not isinstance(text, str) or not text:
            continue
        try:
            genotype = Genotype.loads(text, source=f"row {position}: genotype")
        except GenotypeError as err:
            raise ConfigError(str(err)) from None
        genotype_hash = genotype.genotype_hash()
        if genotype_hash not in seen:
            seen.add(genotype_hash)
            cells.append((genotype_hash, genotype))
    return cells


def write_report(
    df: pd.DataFrame,
    out_path: Path | str,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
    ranks: npt.ArrayLike | None = None,
    title: str = "E2RNAS sweep: empirical Pareto front",
    projection_2d: Sequence[str] = DEFAULT_PROJECTION_2D,
    projection_3d: Sequence[str] = DEFAULT_PROJECTION_3D,
) -> Path:
    """Write the report page of a results table to ``out_path``, atomically; returns the path.

    The page is one HTML file with plotly.js inline, so it opens offline. The front and the
    ranks default to those of `service.pareto.pareto_info` over ``objectives``. The 2-D and
    3-D projections plot the columns ``projection_2d`` (x, y) and ``projection_3d`` (x, y, z);
    one the table lacks is noted on the page instead of its figure.
    """
    for argument, axes_given, size in (
        ("projection_2d", projection_2d, 2),
        ("projection_3d", projection_3d, 3),
    ):
        if len(axes_given) != size or len(set(axes_given)) != size:
            raise ConfigError(
                f"{argument}: expected {size} distinct column names, got {list(axes_given)}"
            )
    names = tuple(_chosen(objectives))
    _require_columns(df, names, "objectives")
    pareto = pareto_info(df, names) if front_mask is None or ranks is None else None
    if front_mask is None:
        assert pareto is not None
        mask = np.zeros(len(df), dtype=bool)
        mask[list(pareto.front)] = True
    else:
        mask = _as_mask(front_mask, len(df))
    if ranks is None:
        assert pareto is not None
        rank = pareto.ranks
    else:
        rank = np.asarray(ranks)
    if rank.shape != (len(df),):
        raise ConfigError(f"ranks: got shape {rank.shape}; expected ({len(df)},), one per row")
    table = df.reset_index(drop=True).assign(
        **{FRONT_RANK: np.where(rank < 0, np.nan, rank).astype(np.float64)}
    )

    page = _Page()
    page.section("scatter")
    page.parts.append(
        f"<p>{len(table)} trials, {int(mask.sum())} on the Pareto front of "
        f"{html.escape(', '.join(names))} (highlighted). Click a front point to see its cells.</p>"
    )
    page.figure(scatter_matrix(table, names, mask))
    x2, y2 = projection_2d
    x3, y3, z3 = projection_3d
    projections: tuple[tuple[str, str, tuple[str, str, str | None]], ...] = (
        ("projection_2d", f"Projection: {x2} vs {y2}", (x2, y2, None)),
        ("projection_3d", f"Projection: {x3}, {y3}, {z3}", (x3, y3, z3)),
    )
    for key, heading, axes in projections:
        page.section(key, heading)
        absent = [a for a in axes if a is not None and a not in table.columns]
        if absent:
            page.note(f"Skipped: the results have no {', '.join(absent)} column.")
        else:
            page.figure(projection(table, axes[0] or "", axes[1] or "", axes[2], mask))
    page.section("parallel")
    page.figure(parallel_coordinates(table, names, rank))
    page.section("heatmaps")
    why_not = _has_grid(table)
    if why_not:
        page.note(why_not)
    else:
        # The best rank any seed reached says more about a bound than the mean rank.
        heatmaps: tuple[tuple[str, Aggregate], ...] = (
            ("params_m", "mean"),
            ("flops_m", "mean"),
            (FRONT_RANK, "min"),
        )
        for value, aggregate in heatmaps:
            if value in table.columns:
                page.figure(grid_heatmap(table, value, aggregate))
    page.section("cells")
    cells = _front_cells(table, mask)
    if not cells:
        page.note("No front genotype to draw (empty front or no genotype column).")
    for genotype_hash, genotype in cells:
        page.parts.append(
            f'<div id="cell-{html.escape(genotype_hash)}"><h3>genotype '
            f"<code>{html.escape(genotype_hash)}</code></h3>"
            f"<details><summary>JSON</summary><pre>{html.escape(genotype.dumps())}</pre>"
            '</details><div class="cells">'
        )
        for which in ("normal", "reduce"):
            page.parts.append("<div>")
            page.figure(cell_diagram(genotype, which))
            page.parts.append("</div>")
        page.parts.append("</div></div>")
    page.parts.append("</section>")

    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n{_STYLE}\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n" + "\n".join(page.parts) + f"\n{_CLICK_SCRIPT}\n"
        "</body>\n</html>\n"
    )
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda p: p.write_text(document, encoding="utf-8"))
    return path
