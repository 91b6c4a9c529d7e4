"""The data steps of the figures: a results table turned into NamedTuples of plain values.

As in Optuna's visualisation module, every figure of :mod:`~service.analysis.figures` is built
in two stages: a data step here, which the tests compare with hand-worked values, and a
drawing step there, which alone touches plotly. Row indices are positions (``df.iloc``).

The front defaults to :func:`service.analysis.pareto.pareto_info` over the chosen objectives
(the five front metrics by default); a caller may pass its own ``front_mask`` and ``ranks``
(e.g. of a front over a subset of the metrics). Rows with a missing metric (failed trials,
``evaluation == "none"``) are plotted where they have values and are never on the front.

Every point carries its ``trial_id`` and ``genotype_hash`` (empty where the table has none),
which the drawing steps put in plotly's ``customdata``: the web pages select the trial of a
clicked point, the offline report scrolls to the cells of its genotype.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from service.analysis.pareto import Objectives, directions, hypervolume, pareto_info
from service.errors import ConfigError
from service.objectives import FRONT_METRICS, METRICS

__all__ = [
    "FRONT_RANK",
    "Aggregate",
    "CompareInfo",
    "FrontSummary",
    "HeatmapInfo",
    "ParallelInfo",
    "ProjectionInfo",
    "RankedTable",
    "ScatterInfo",
    "compare_info",
    "grid_note",
    "heatmap_info",
    "parallel_info",
    "projection_info",
    "rank_table",
    "scatter_info",
]

FRONT_RANK = "front_rank"
"""The column :func:`rank_table` adds for the nondomination rank (NaN for rows without one)."""

_HOVER_COLUMNS = ("trial_id", "backbone", "L", "F", "seed")
Aggregate = Literal["mean", "min", "max"]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


class RankedTable(NamedTuple):
    """A results table with its front and ranks over ``objectives``, ready for the figures."""

    table: pd.DataFrame  # index reset; FRONT_RANK added (NaN without a rank)
    objectives: dict[str, str]  # name → "min" or "max"
    front: BoolArray  # one flag per row
    ranks: IntArray  # one per row; -1 for rows without a rank


class ScatterInfo(NamedTuple):
    """The points of a scatter plot over some columns."""

    objectives: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # one tuple per column, one value per row
    front: tuple[bool, ...]  # one flag per row
    hover: tuple[str, ...]  # one HTML-escaped text per row: trial_id, L, F, seed, hash, values
    trial_ids: tuple[str, ...]  # one trial_id per row ("" where missing)
    hashes: tuple[str, ...]  # one genotype_hash per row ("" where missing)


class ProjectionInfo(NamedTuple):
    """A 2-D or 3-D projection: its points and, in 2-D, the front of the two plotted columns."""

    points: ScatterInfo  # over (x, y) or (x, y, z); its front is the highlighted one
    line: tuple[int, ...]  # 2-D: the rows on the front of x and y in order of x; 3-D: ()


class ParallelInfo(NamedTuple):
    """One line per row across the objectives, with the row's nondomination rank."""

    objectives: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]  # one tuple per objective, one value per row
    ranks: tuple[int, ...]  # one per row; -1 without a rank


class HeatmapInfo(NamedTuple):
    """A value over the L×F grid: ``z[i][j]`` aggregates the rows with L[i] and F[j]."""

    value: str
    aggregate: str
    L: tuple[float, ...]  # ascending
    F: tuple[float, ...]  # ascending
    z: tuple[tuple[float, ...], ...]  # NaN where no row (or no value) has that pair
    counts: tuple[tuple[int, ...], ...]  # rows per cell, values missing included


class FrontSummary(NamedTuple):
    """One sweep of a comparison: its rows over the two objectives and its front of them."""

    label: str
    points: ScatterInfo  # every row; front: on the front of the two objectives
    line: tuple[int, ...]  # the front's rows in order of the first objective (its staircase)
    hypervolume: float  # against ``reference``; 0.0 without a front
    reference: tuple[float, ...] | None  # the sweep's default reference; None without a front
    shared_hypervolume: float | None  # against CompareInfo.reference


class CompareInfo(NamedTuple):
    """Fronts of several sweeps over the same two objectives, measured against one reference.

    The shared reference is the worst of the sweeps' own references in each objective, so
    every front's hypervolume is measured over the same region and the numbers compare.
    """

    objectives: dict[str, str]  # the two objectives, name → "min" or "max"
    sweeps: tuple[FrontSummary, ...]
    reference: tuple[float, ...] | None  # None when a sweep has no front


# -- checks --------------------------------------------------------------------------------


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


def _as_ranks(ranks: npt.ArrayLike, rows: int) -> IntArray:
    rank = np.asarray(ranks)
    if rank.shape != (rows,) or not np.issubdtype(rank.dtype, np.integer):
        raise ConfigError(
            f"ranks: got an array of shape {rank.shape} and dtype {rank.dtype}; expected "
            f"{rows} integers, one per row (-1 for a row without a rank)"
        )
    return rank.astype(np.int64)


def _mask(rows: Sequence[int], size: int) -> BoolArray:
    mask = np.zeros(size, dtype=bool)
    mask[list(rows)] = True
    return mask


def _front_mask(df: pd.DataFrame, objectives: Objectives) -> BoolArray:
    """The rows on the Pareto front of ``objectives``."""
    return _mask(pareto_info(df, objectives).front, len(df))


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


def _labels(df: pd.DataFrame, column: str) -> tuple[str, ...]:
    if column not in df.columns:
        return ("",) * len(df)
    return tuple("" if _text(v) == "-" else str(v) for v in df[column])


def _plotted(axes: Sequence[str]) -> dict[str, str]:
    """Directions of plotted columns: a metric's own, "min" for other columns (L, seed)."""
    return {a: METRICS[a].direction if a in METRICS else "min" for a in axes}


# -- data steps ----------------------------------------------------------------------------


def rank_table(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
    ranks: npt.ArrayLike | None = None,
) -> RankedTable:
    """``df`` with its front and ranks over ``objectives`` (each by default that of
    `pareto_info`), and the ranks as the :data:`FRONT_RANK` column."""
    chosen = _chosen(objectives)
    _require_columns(df, tuple(chosen), "objectives")
    if front_mask is None or ranks is None:
        pareto = pareto_info(df, chosen)
        front_mask = _mask(pareto.front, len(df)) if front_mask is None else front_mask
        ranks = pareto.ranks if ranks is None else ranks
    mask, rank = _as_mask(front_mask, len(df)), _as_ranks(ranks, len(df))
    table = df.reset_index(drop=True).assign(
        **{FRONT_RANK: np.where(rank < 0, np.nan, rank).astype(np.float64)}
    )
    return RankedTable(table=table, objectives=chosen, front=mask, ranks=rank)


def scatter_info(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> ScatterInfo:
    """The points of each row over ``objectives``, their front flags and hover texts.

    Without ``front_mask`` the front is that of ``objectives`` (`pareto_info`).
    """
    names = tuple(_chosen(objectives))
    _require_columns(df, names, "objectives")
    mask = _front_mask(df, names) if front_mask is None else _as_mask(front_mask, len(df))
    hashes = _labels(df, "genotype_hash")
    hover_columns = [c for c in _HOVER_COLUMNS if c in df.columns]
    texts = {c: [_text(v) for v in df[c]] for c in (*hover_columns, *names)}
    hover: list[str] = []
    for position in range(len(df)):
        parts = [f"{c}={texts[c][position]}" for c in hover_columns]
        parts.append(f"genotype_hash={hashes[position] or '-'}")
        parts.extend(f"{name}={texts[name][position]}" for name in names)
        # plotly renders hover text as HTML: the values go in as text.
        hover.append("<br>".join(html.escape(part) for part in parts))
    return ScatterInfo(
        objectives=names,
        values=tuple(_numbers(df, name) for name in names),
        front=tuple(bool(flag) for flag in mask),
        hover=tuple(hover),
        trial_ids=_labels(df, "trial_id"),
        hashes=hashes,
    )


def _staircase(values: tuple[tuple[float, ...], ...], front: Iterable[bool]) -> tuple[int, ...]:
    """The front rows with both coordinates, in order of x (then y): a line through them."""
    xs, ys = values[0], values[1]
    rows = (i for i, flag in enumerate(front) if flag)
    inside = (i for i in rows if not (math.isnan(xs[i]) or math.isnan(ys[i])))
    return tuple(sorted(inside, key=lambda i: (xs[i], ys[i])))


def projection_info(
    df: pd.DataFrame,
    x: str,
    y: str,
    z: str | None = None,
    front_mask: npt.ArrayLike | None = None,
) -> ProjectionInfo:
    """The points over (x, y) or (x, y, z) and, in 2-D, the front of x and y as a line.

    Without ``front_mask`` the highlighted front is that of all five front metrics where the
    table has them, else of the plotted columns.
    """
    axes = tuple(a for a in (x, y, z) if a is not None)
    _require_columns(df, axes, "projection axes")
    if len(set(axes)) != len(axes):
        raise ConfigError(f"projection axes: got {list(axes)}; expected distinct columns")
    plotted = _plotted(axes)
    if front_mask is None:
        every = all(c in df.columns for c in FRONT_METRICS)
        front_mask = _front_mask(df, FRONT_METRICS if every else plotted)
    points = scatter_info(df, plotted, front_mask)
    if z is not None:
        return ProjectionInfo(points=points, line=())
    return ProjectionInfo(points=points, line=_staircase(points.values, _front_mask(df, plotted)))


def parallel_info(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    ranks: npt.ArrayLike | None = None,
) -> ParallelInfo:
    """Each row's values over ``objectives`` and its rank (by default that of `pareto_info`)."""
    chosen = _chosen(objectives)
    names = tuple(chosen)
    _require_columns(df, names, "objectives")
    rank = pareto_info(df, chosen).ranks if ranks is None else _as_ranks(ranks, len(df))
    return ParallelInfo(
        objectives=names,
        values=tuple(_numbers(df, name) for name in names),
        ranks=tuple(int(r) for r in rank),
    )


def grid_note(df: pd.DataFrame) -> str | None:
    """Why the L×F heatmaps of ``df`` cannot be drawn, or None when they can."""
    missing = [c for c in ("L", "F") if c not in df.columns]
    if missing:
        return f"Heatmaps skipped: the results have no {' or '.join(missing)} column."
    if not (df["L"].notna() & df["F"].notna()).any():
        return "Heatmaps skipped: no trial has both L and F."
    return None


def heatmap_info(df: pd.DataFrame, value_column: str, aggregate: Aggregate = "mean") -> HeatmapInfo:
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


def compare_info(sweeps: Sequence[tuple[str, pd.DataFrame]], x: str, y: str) -> CompareInfo:
    """The front of each labelled table over the objectives ``x`` and ``y``, its hypervolume
    against its own default reference and against the reference shared by all tables."""
    chosen = directions([x, y])
    measured = []
    for label, df in sweeps:
        _require_columns(df, (x, y), "objectives")
        pareto = pareto_info(df, chosen)
        measured.append((label, scatter_info(df, chosen, _mask(pareto.front, len(df))), pareto))
    shared = _worst(tuple(pareto.reference for _, _, pareto in measured), chosen)
    summaries = []
    for label, points, pareto in measured:
        front = np.array(points.values, dtype=np.float64).T[list(pareto.front)]
        summaries.append(
            FrontSummary(
                label=label,
                points=points,
                line=_staircase(points.values, points.front),
                hypervolume=pareto.hypervolume,
                reference=pareto.reference,
                shared_hypervolume=None if shared is None else hypervolume(front, chosen, shared),
            )
        )
    return CompareInfo(objectives=chosen, sweeps=tuple(summaries), reference=shared)


def _worst(
    references: tuple[tuple[float, ...] | None, ...], objectives: dict[str, str]
) -> tuple[float, ...] | None:
    """The worst of the references in each objective; None if there is none or one is None."""
    if not references or any(ref is None for ref in references):
        return None
    signs = np.array([-1.0 if d == "max" else 1.0 for d in objectives.values()])
    worst = np.max([np.asarray(ref) * signs for ref in references], axis=0) * signs
    return tuple(float(v) for v in worst)
