"""The views of a sweep's seed robustness (:mod:`~service.analysis.robust`): its JSON answer
(the API's ``/robust`` and ``e2rnas robust --json`` alike), its text table, and its figure.

The figure is built in two stages like the others (:mod:`~service.analysis.plotdata`): a data
step, :func:`robust_projection`, and a drawing step, :func:`robust_figure`. Over the 2-D
projection's two columns it shows each configuration at the mean of its valid runs with its
seeds' range (min to max) as error bars, coloured by its dominance probability over the
sweep's objectives; every run as a small grey point (clicking one selects its trial); and the
seeds' 25/50/75 % attainment surfaces as staircases.
"""

from __future__ import annotations

import html
import math
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]

from service.analysis.attainment import Attainment, attainment_surfaces
from service.analysis.robust import (
    HypervolumeInterval,
    RobustInfo,
    configuration_labels,
    valid_rows,
)
from service.objectives import axis_label
from service.results.table import frame_records

__all__ = [
    "RobustProjection",
    "count_text",
    "robust_csv_frame",
    "robust_figure",
    "robust_projection",
    "robust_record",
    "robust_text",
    "spread_text",
]

_DASHES = ("dot", "solid", "dash", "longdash", "dashdot")


def _number(value: float) -> float | None:
    return None if math.isnan(value) or math.isinf(value) else float(value)


def robust_record(info: RobustInfo, attainment: Attainment | None = None) -> dict[str, Any]:
    """The robustness as plain JSON values: the settings of the draws, the hypervolume
    interval, the configurations ranked by dominance probability, the duplicate groups and,
    when given, the attainment surfaces."""
    hv = info.hypervolume
    record: dict[str, Any] = {
        "objectives": info.objectives,
        "seed_key": info.seed_key,
        "keys": list(info.keys),
        "method": info.method,
        # JSON readers hold numbers as doubles: the count only where it is exact there.
        "combinations": info.combinations if info.combinations <= 2**53 else None,
        "log10_combinations": _log10(info.combinations),
        "resamples": info.resamples,
        "random_seed": info.random_seed,
        "runs": {"min": info.runs[0], "max": info.runs[1]},
        "note": info.note,
        "hypervolume": _interval_record(hv),
        "hypervolume_by_backbone": {
            name: _interval_record(interval) for name, interval in info.by_backbone.items()
        },
        "configurations": frame_records(info.table),
        "duplicates": [
            {
                "genotype_hash": group.genotype_hash,
                "trials": list(group.trials),
                "configurations": list(group.configurations),
            }
            for group in info.duplicates
        ],
        "twins": [list(group) for group in info.twins],
        "attainment": None,
    }
    if attainment is not None:
        record["attainment"] = {
            "x": attainment.x,
            "y": attainment.y,
            "sets": list(attainment.sets),
            "surfaces": [
                {"percentile": p, "points": [list(point) for point in points]}
                for p, points in attainment.surfaces.items()
            ],
        }
    return record


def _interval_record(hv: HypervolumeInterval) -> dict[str, Any]:
    return {**hv._asdict(), "reference": None if hv.reference is None else list(hv.reference)}


def robust_csv_frame(info: RobustInfo) -> pd.DataFrame:
    """The configurations table of ``robust.csv``: ranked by dominance probability, with the
    draws behind it on every row (``method``, ``draws``, ``random_seed``), so that the file
    says how its probabilities were computed."""
    return info.table.assign(method=info.method, draws=info.resamples, random_seed=info.random_seed)


def robust_text(info: RobustInfo, limit: int | None = None) -> str:
    """The robustness as text for a terminal: the draws, the hypervolume interval, the
    configurations ranked by dominance probability with their spreads (mean ± std of each
    objective), and the duplicate groups."""
    hv = info.hypervolume
    draws = (
        f"exact over all {count_text(info.combinations)} combinations"
        if info.method == "exact"
        else f"bootstrap of {info.resamples} draws (random_seed {info.random_seed}) "
        f"of {count_text(info.combinations)} combinations"
    )
    lines = [
        f"{len(info.table)} configurations over {', '.join(info.objectives)}; "
        f"{_runs(info.runs)} valid runs each; dominance probability {draws}",
        f"hypervolume of one seed per configuration: mean {hv.mean:.6g}, "
        f"{hv.confidence:.0%} interval [{hv.low:.6g}, {hv.high:.6g}] ({hv.method}, {hv.draws} "
        f"draws); all seeds pooled {hv.pooled:.6g}; reference {hv.reference}",
    ]
    for name, interval in info.by_backbone.items():
        lines.append(
            f"  {name}: mean {interval.mean:.6g}, interval [{interval.low:.6g}, "
            f"{interval.high:.6g}] ({interval.method}, {interval.draws} draws); pooled "
            f"{interval.pooled:.6g}"
        )
    if info.note:
        lines.append(f"note: {info.note}")
    shown = info.table if limit is None else info.table.head(limit)
    columns: dict[str, object] = {
        "configuration": shown["configuration"],
        "P(front)": shown["dominance_probability"].map(lambda v: "-" if pd.isna(v) else f"{v:.3f}"),
        "runs": shown["valid_runs"].astype(str) + "/" + shown["runs"].astype(str),
        "genotypes": shown["genotypes"],
    }
    for name in info.objectives:
        mean, std = shown[f"{name}_mean"], shown[f"{name}_std"]
        columns[name] = [spread_text(m, s) for m, s in zip(mean, std, strict=True)]
    lines.append(pd.DataFrame(columns).to_string(index=False))
    if limit is not None and len(info.table) > limit:
        lines.append(f"... {len(info.table) - limit} more (--limit)")
    for twins in info.twins:
        lines.append(f"same genotype under every seed: {' = '.join(twins)}")
    if info.duplicates:
        lines.append("duplicate genotypes (one architecture from several trials):")
        for group in info.duplicates:
            lines.append(
                f"  {group.genotype_hash}: {len(group.trials)} trials from "
                f"{len(group.configurations)} configuration(s) ({', '.join(group.configurations)})"
            )
    return "\n".join(lines)


def _log10(count: int) -> float:
    """log10 of a count of any size (math.log10 takes Python's big ints; a float would
    overflow past 1e308, and str() refuses past 4300 digits)."""
    return math.log10(count)


def count_text(count: int) -> str:
    """A count of combinations as text: in full up to 10^15, else as a power of ten."""
    return str(count) if count < 10**15 else f"about 10^{_log10(count):.1f}"


def _runs(runs: tuple[int, int]) -> str:
    return str(runs[0]) if runs[0] == runs[1] else f"{runs[0]}-{runs[1]}"


def spread_text(mean: float, std: float) -> str:
    """``mean ± std``; the mean alone where the std is unknown (one run); ``-`` without."""
    if pd.isna(mean):
        return "-"
    return f"{mean:.4g}" if pd.isna(std) else f"{mean:.4g} ± {std:.2g}"


class RobustProjection(NamedTuple):
    """The points of the robustness figure over columns ``x`` and ``y``."""

    x: str
    y: str
    labels: tuple[str, ...]  # one per configuration with a valid run
    mean: tuple[tuple[float, ...], tuple[float, ...]]  # x means, y means
    low: tuple[tuple[float, ...], tuple[float, ...]]  # the seeds' minimum of x, of y
    high: tuple[tuple[float, ...], tuple[float, ...]]
    probability: tuple[float | None, ...]  # dominance probability over the sweep's objectives
    hover: tuple[str, ...]  # HTML-escaped
    first: tuple[tuple[str, str], ...]  # each configuration's first run: trial_id, hash
    runs: tuple[tuple[float, ...], tuple[float, ...], tuple[tuple[str, str], ...]]  # x, y, ids
    surfaces: dict[float, tuple[tuple[float, ...], tuple[float, ...]]]  # staircase x, y
    title: str


def _staircase(
    points: tuple[tuple[float, float], ...], worst: tuple[float, float]
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The surface's boundary through its points (ordered from the best x to the worst),
    from the worst y of the runs down to the first point, across to each next point's x and
    down to it, then across to the worst x of the runs: the edge of the attained region, so
    that a surface of one point shows too."""
    if not points:
        return (), ()
    xs, ys = [points[0][0]], [worst[1]]
    for number, (a, b) in enumerate(points):
        if number:
            xs.append(a)
            ys.append(ys[-1])
        xs.append(a)
        ys.append(b)
    xs.append(worst[0])
    ys.append(ys[-1])
    return tuple(xs), tuple(ys)


def robust_projection(
    table: pd.DataFrame, info: RobustInfo, x: str, y: str, directions: dict[str, str]
) -> RobustProjection:
    """The data step of the figure over ``x`` and ``y`` (with their ``directions``)."""
    frame = table.reset_index(drop=True)
    # The runs the table and the probabilities count: valid over every objective (and x, y).
    valid = valid_rows(frame, list(dict.fromkeys([*info.objectives, x, y])))
    rows = frame[valid].reset_index(drop=True)
    labels = np.asarray(configuration_labels(rows, info.keys), dtype=object)
    values = rows[[x, y]].astype(np.float64)
    grouped = values.groupby(labels, sort=False)
    stats = {stat: grouped.agg(stat) for stat in ("mean", "std", "min", "max")}
    count = grouped.size()
    chance = dict(
        zip(info.table["configuration"], info.table["dominance_probability"], strict=True)
    )
    order = list(stats["mean"].index)
    ids = rows["trial_id"].astype(str).tolist() if "trial_id" in rows else [""] * len(rows)
    hashes = (
        rows["genotype_hash"].astype(str).tolist() if "genotype_hash" in rows else [""] * len(rows)
    )
    first = {label: i for i, label in reversed(list(enumerate(labels)))}
    attainment = attainment_surfaces(rows, {x: directions[x], y: directions[y]})

    def worst_of(axis: str) -> float:
        column = values[axis]
        return float(column.max() if directions[axis] == "min" else column.min())

    worst = (worst_of(x), worst_of(y))

    def column(stat: str, name: str) -> tuple[float, ...]:
        return tuple(float(stats[stat].loc[label, name]) for label in order)

    return RobustProjection(
        x=x,
        y=y,
        labels=tuple(str(label) for label in order),
        mean=(column("mean", x), column("mean", y)),
        low=(column("min", x), column("min", y)),
        high=(column("max", x), column("max", y)),
        probability=tuple(_optional(chance.get(label)) for label in order),
        hover=tuple(_hover(label, chance, count, stats, (x, y)) for label in order),
        first=tuple((ids[first[label]], hashes[first[label]]) for label in order),
        runs=(
            tuple(values[x].tolist()),
            tuple(values[y].tolist()),
            tuple(zip(ids, hashes, strict=True)),
        ),
        surfaces={p: _staircase(points, worst) for p, points in attainment.surfaces.items()},
        title=_title(info),
    )


def _hover(
    label: str,
    chance: dict[str, float],
    count: pd.Series,
    stats: dict[str, pd.DataFrame],
    axes: tuple[str, str],
) -> str:
    """A configuration's hover text: label, probability, runs, each axis's mean ± std."""
    p = chance.get(label, float("nan"))
    parts = [f"<b>{html.escape(label)}</b>", f"P(front) {'-' if pd.isna(p) else f'{p:.3f}'}"]
    parts.append(f"{count[label]} runs")
    for axis in axes:
        # A cell of a numeric aggregate; pandas-stubs type .loc's scalar as any cell type.
        mean, std = (cast(float, stats[stat].loc[label, axis]) for stat in ("mean", "std"))
        parts.append(f"{html.escape(axis)} {spread_text(mean, std)}")
    return "<br>".join(parts)


def _title(info: RobustInfo) -> str:
    hv = info.hypervolume
    return (
        f"Dominance probability over {', '.join(info.objectives)} "
        f"({info.method}, {info.resamples} draws); hypervolume of one seed per configuration "
        f"{hv.mean:.4g} [{hv.low:.4g}, {hv.high:.4g}] at {hv.confidence:.0%}"
    )


def _optional(value: float | None) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def robust_figure(data: RobustProjection) -> go.Figure:
    """The drawing step: runs, attainment surfaces, then the configurations on top."""
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            name="runs (one per seed)",
            uid="robust-runs",
            mode="markers",
            x=list(data.runs[0]),
            y=list(data.runs[1]),
            customdata=[list(pair) for pair in data.runs[2]],
            marker={"color": "#b0b7bf", "size": 5},
            hovertemplate="trial %{customdata[0]}<extra></extra>",
        )
    )
    for number, (percentile, (xs, ys)) in enumerate(sorted(data.surfaces.items())):
        fig.add_trace(
            go.Scatter(
                name=f"{percentile:g} % attainment surface",
                uid=f"robust-eaf-{percentile:g}",
                mode="lines",
                x=list(xs),
                y=list(ys),
                hoverinfo="skip",
                line={"color": "#444444", "dash": _DASHES[number % len(_DASHES)], "width": 1.5},
            )
        )
    mean_x, mean_y = data.mean
    fig.add_trace(
        go.Scatter(
            name="configurations (mean, seeds' range)",
            uid="robust-configurations",
            mode="markers",
            x=list(mean_x),
            y=list(mean_y),
            error_x=_bars(mean_x, data.low[0], data.high[0]),
            error_y=_bars(mean_y, data.low[1], data.high[1]),
            customdata=[list(pair) for pair in data.first],
            text=list(data.hover),
            hovertemplate="%{text}<extra></extra>",
            marker={
                "size": 11,
                "color": [math.nan if p is None else p for p in data.probability],
                "cmin": 0.0,
                "cmax": 1.0,
                "colorscale": "Viridis",
                "colorbar": {"title": {"text": "P(front)"}},
                "line": {"color": "#222222", "width": 1},
            },
        )
    )
    fig.update_layout(
        title={"text": data.title, "font": {"size": 13}},
        xaxis_title=axis_label(data.x),
        yaxis_title=axis_label(data.y),
        margin={"l": 70, "r": 20, "t": 50, "b": 60},
        legend={"orientation": "h", "y": -0.2},
        height=520,
    )
    return fig


def _bars(
    mean: tuple[float, ...], low: tuple[float, ...], high: tuple[float, ...]
) -> dict[str, Any]:
    return {
        "type": "data",
        "symmetric": False,
        "array": [h - m for m, h in zip(mean, high, strict=True)],
        "arrayminus": [m - lo for m, lo in zip(mean, low, strict=True)],
        "color": "#555555",
        "thickness": 1,
        "width": 3,
    }
