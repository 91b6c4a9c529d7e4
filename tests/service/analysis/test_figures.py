"""Tests of the drawing steps: the traces of each figure, and the figures of a sweep that the
report and the web pages share."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import plotly.graph_objects as go
import pytest

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED
from service.analysis.cells import cell_diagram
from service.analysis.figures import (
    compare_fronts,
    grid_heatmap,
    parallel_coordinates,
    projection,
    scatter_matrix,
)
from service.analysis.gallery import (
    FIGURE_NAMES,
    SECTIONS,
    fronts_by_backbone,
    sweep_figure,
    sweep_figures,
    two_stage_fronts,
    why_not,
)
from service.analysis.plotdata import FRONT_RANK, compare_info, rank_table
from service.objectives import FRONT_METRICS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_front import FRONT, METRICS, brute_force_front, sweep_frame

BACKBONES = ["darts", "pc_darts", "pdarts"] * 3

_NODE_NAMES = ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}")


def as_json(fig: go.Figure) -> object:
    return json.loads(fig.to_json(remove_uids=False))


def test_scatter_matrix_highlights_exactly_the_front() -> None:
    df = sweep_frame().assign(trial_id=[f"{i:04d}" for i in range(9)])
    fig = scatter_matrix(df)
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["splom", "splom"]
    others, front = fig.data
    assert [others.uid, front.uid] == ["others", "front"]
    assert len(others.customdata) + len(front.customdata) == len(df)
    # customdata: [trial_id, genotype_hash], for the page's selection and the report's cells.
    assert [list(c) for c in front.customdata] == [
        [df["trial_id"][i], df["genotype_hash"][i]] for i in FRONT
    ]
    assert list(front.dimensions[0]["values"]) == [METRICS[i][0] for i in FRONT]
    assert len(front.dimensions) == 5
    assert front.marker.color != others.marker.color
    assert front.marker.symbol != others.marker.symbol


def test_projection_2d_draws_the_front_of_the_two_plotted_metrics() -> None:
    df = sweep_frame()
    fig = projection(df, "params_m", "test_error")
    assert [t.type for t in fig.data] == ["scatter", "scatter", "scatter"]
    others, front, line = fig.data
    assert len(others.x) + len(front.x) == 9
    assert list(front.x) == [METRICS[i][1] for i in FRONT]
    assert [c[1] for c in front.customdata] == [df["genotype_hash"][i] for i in FRONT]
    # the line is the 2-D front, by a brute-force dominance check on the two columns
    pts = list(zip(df["params_m"], df["test_error"], strict=True))
    front_2d = [p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)]
    assert sorted(zip(line.x, line.y, strict=True)) == sorted(front_2d)
    assert list(line.x) == sorted(line.x)
    assert line.mode == "lines"
    assert line.name == "front of params_m and test_error"
    assert fig.layout.xaxis.title.text == "params_m (min)"


def test_projection_3d() -> None:
    fig = projection(sweep_frame(), "test_error", "params_m", "pgd_acc")
    assert [t.type for t in fig.data] == ["scatter3d", "scatter3d"]
    assert list(fig.data[1].z) == [METRICS[i][3] for i in FRONT]
    assert len(fig.data[0].z) + len(fig.data[1].z) == 9
    assert fig.layout.scene.zaxis.title.text == "pgd_acc (max)"


def test_parallel_coordinates_colours_by_rank() -> None:
    fig = parallel_coordinates(sweep_frame())
    (trace,) = fig.data
    assert trace.type == "parcoords"
    assert len(trace.dimensions) == 5
    ranks = list(trace.line.color)
    assert [i for i, r in enumerate(ranks) if r == 0] == list(FRONT)
    assert len(ranks) == 9


def test_grid_heatmap_draws_the_pivot() -> None:
    fig = grid_heatmap(sweep_frame(), "params_m")
    (trace,) = fig.data
    assert trace.type == "heatmap"
    assert list(trace.x) == ["100", "200", "300"]
    assert list(trace.y) == ["1", "2", "3"]
    assert [list(row) for row in trace.z] == [[1.0, 1.5, 1.5], [2.0, 2.0, 2.5], [3.0, 3.0, 3.5]]
    assert [list(row) for row in trace.customdata] == [[1, 1, 1]] * 3


def test_grid_heatmap_of_ranks_is_darkest_at_the_front() -> None:
    ranked = rank_table(sweep_frame())
    (trace,) = grid_heatmap(ranked.table, FRONT_RANK, "min").data
    assert trace.reversescale is True
    assert trace.z[0][0] == 0.0  # row 0, (L, F) = (1, 100), is on the front


def test_cell_diagram_has_one_labelled_arrow_per_edge() -> None:
    genotype = BUNDLED["pc_darts"]
    fig = cell_diagram(genotype.dumps(), "normal")
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    labels = [a.text for a in fig.layout.annotations if not a.showarrow]
    assert len(arrows) == 8 + 4  # the kept edges, then the concatenated nodes into c_{k}
    assert sorted(labels) == sorted([op for op, _ in genotype.normal] + list(_NODE_NAMES))
    assert len(fig.layout.shapes) == 7


def test_compare_fronts_draws_each_sweep_and_its_staircase() -> None:
    first = sweep_frame()
    second = first.assign(test_error=first["test_error"] + 0.5)
    info = compare_info([("A: a", first), ("B: b", second)], "test_error", "params_m")
    fig = compare_fronts(info)
    assert [t.name for t in fig.data] == [
        "A: a (all trials)",
        "A: a front",
        "B: b (all trials)",
        "B: b front",
    ]
    for k, sweep in enumerate(info.sweeps):
        every, front = fig.data[2 * k], fig.data[2 * k + 1]
        assert len(every.x) == 9 and every.mode == "markers"
        assert list(front.x) == [sweep.points.values[0][i] for i in sweep.line]
        assert list(front.x) == sorted(front.x) and front.line.shape == "hv"
    assert fig.data[1].marker.color != fig.data[3].marker.color
    assert fig.layout.yaxis.title.text == "params_m (min)"


def test_fronts_by_backbone_draw_each_backbones_own_front() -> None:
    """Each backbone's front trace holds exactly the rows of that backbone that no other row
    of the same backbone dominates (brute force over the two plotted metrics)."""
    df = sweep_frame().assign(trial_id=[f"{i:04d}" for i in range(9)], backbone=BACKBONES)
    fig = fronts_by_backbone(rank_table(df), "pgd_acc", "params_m")
    assert [t.name for t in fig.data] == [
        f"{b} {part}" for b in ("darts", "pc_darts", "pdarts") for part in ("(all trials)", "front")
    ]
    for k, backbone in enumerate(("darts", "pc_darts", "pdarts")):
        rows = df[df["backbone"] == backbone].reset_index(drop=True)
        minimised = np.column_stack([-rows["pgd_acc"], rows["params_m"]]).astype(np.float64)
        expected = {rows["trial_id"][i] for i in brute_force_front(minimised)}
        every, front = fig.data[2 * k], fig.data[2 * k + 1]
        assert {c[0] for c in every.customdata} == set(rows["trial_id"])
        assert {c[0] for c in front.customdata} == expected
    assert len({t.marker.color for t in fig.data[1::2]}) == 3


def test_fronts_by_backbone_need_two_backbones_and_two_metrics() -> None:
    one = rank_table(sweep_frame().assign(backbone="pc_darts"))
    assert why_not(one, "fronts_by_backbone") == (
        "All trials searched on one backbone (pc_darts): no fronts to compare."
    )
    three = rank_table(sweep_frame().assign(backbone=BACKBONES))
    assert why_not(three, "fronts_by_backbone") is None
    assert why_not(three, "fronts_by_backbone", ("L", "test_error")) == (
        "Skipped: fronts by backbone are drawn over two metrics of the 2-D projection; "
        "L is no metric."
    )


# -- the figures of a sweep ----------------------------------------------------------------

NOT_TWO_STAGE = "Not a two-stage sweep, or no trial retrained yet: no proxy front to compare."
ONE_SEED = (
    "No configuration has finished runs under two seeds yet: no seed spread to show (sweep "
    "several seeds, grid: seed: [0, 1, 2])."
)


def test_two_stage_fronts_draw_both_fronts_and_link_each_retrained_point() -> None:
    table = _two_staged(sweep_frame())
    fig = two_stage_fronts(rank_table(table), "test_error", "params_m")
    traces = {t.name: t for t in fig.data}
    assert list(traces["proxy (all trials)"].x) == list(table["proxy_test_error"])
    retrained = table[table["evaluation"] == "retrain"]
    assert list(traces["retrain (all trials)"].x) == list(retrained["test_error"])
    links = traces["retrained point and its proxy"]
    assert list(links.x) == [
        v for r in retrained.itertuples() for v in (r.proxy_test_error, r.test_error, None)
    ]
    assert why_not(rank_table(table), "two_stage", ("L", "params_m")) == (
        "Skipped: the fronts of two stages are drawn over two front metrics of the 2-D "
        "projection; L is none."
    )


def _two_staged(df: pd.DataFrame) -> pd.DataFrame:
    """A results table as a two-stage sweep's: proxy measures beside the front metrics, the
    first six trials retrained."""
    proxies = {f"proxy_{name}": df[name] * 1.1 for name in FRONT_METRICS}
    evaluation = ["retrain" if i < 6 else "proxy" for i in range(len(df))]
    return df.assign(**proxies, evaluation=evaluation)


def _two_seeds(df: pd.DataFrame) -> pd.DataFrame:
    """The table, then the same trials under seed 1 with every front metric 5 % higher."""
    again = df.assign(seed=1, **{name: df[name] * 1.05 for name in FRONT_METRICS})
    return pd.concat([df, again], ignore_index=True)


def test_sweep_figures_draws_every_figure_of_the_ranked_table() -> None:
    table = _two_seeds(sweep_frame().assign(backbone=BACKBONES))
    ranked = rank_table(_two_staged(table))
    drawn = sweep_figures(ranked, ("flops_m", "test_error"), ("seed", "F", "ood_aupr"))
    assert tuple(drawn.figures) == FIGURE_NAMES and drawn.notes == {}
    assert [name for names in SECTIONS.values() for name in names] == list(FIGURE_NAMES)
    for name, fig in drawn.figures.items():
        alone = sweep_figure(ranked, name, ("flops_m", "test_error"), ("seed", "F", "ood_aupr"))
        assert as_json(fig) == as_json(alone), name
    assert as_json(drawn.figures["scatter_matrix"]) == as_json(scatter_matrix(table))
    assert as_json(drawn.figures["projection_2d"]) == as_json(
        projection(table, "flops_m", "test_error")
    )
    assert drawn.figures["heatmap_rank"].data[0].colorbar.title.text == FRONT_RANK


def test_sweep_figures_notes_what_the_table_cannot_give() -> None:
    ranked = rank_table(sweep_frame().drop(columns=["L", "F"]))
    drawn = sweep_figures(ranked, ("latency_ms", "params_m"))
    assert set(drawn.figures) == {"scatter_matrix", "projection_3d", "parallel"}
    assert drawn.notes == {
        "projection_2d": "Skipped: the results have no latency_ms column.",
        "heatmaps": "Heatmaps skipped: the results have no L or F column.",
        "backbones": "Skipped: the results have no latency_ms column.",
        "two_stage": "Skipped: the results have no latency_ms column.",
        "robust": "Skipped: the results have no latency_ms column.",
    }
    assert why_not(ranked, "heatmap_flops") == drawn.notes["heatmaps"]
    no_flops = rank_table(sweep_frame().drop(columns="flops_m"), ["test_error"])
    assert why_not(no_flops, "heatmap_flops") == "Skipped: the results have no flops_m column."


def test_sweep_figures_of_no_finished_trial_yet() -> None:
    """A running sweep's page before its first trial finishes: empty figures, no heatmaps."""
    drawn = sweep_figures(rank_table(sweep_frame().iloc[:0]))
    assert set(drawn.figures) == {"scatter_matrix", "projection_2d", "projection_3d", "parallel"}
    assert drawn.notes == {
        "heatmaps": "Heatmaps skipped: no trial has both L and F.",
        "backbones": "Skipped: no finished trial names its backbone.",
        "two_stage": NOT_TWO_STAGE,
        "robust": "No finished trial yet: no seed spread to show.",
    }
    assert all(len(trace.x) == 0 for trace in drawn.figures["projection_2d"].data)


def test_sweep_figures_of_unevaluated_trials() -> None:
    df = sweep_frame().assign(
        test_error=math.nan, pgd_acc=math.nan, ood_aupr=math.nan, backbone=BACKBONES
    )
    drawn = sweep_figures(rank_table(df))
    drawn_names = tuple(n for n in FIGURE_NAMES if n not in ("two_stage", "seed_robustness"))
    assert tuple(drawn.figures) == drawn_names
    assert drawn.notes == {"two_stage": NOT_TWO_STAGE, "robust": ONE_SEED}
    assert not np.any(rank_table(df).front)
    assert list(drawn.figures["parallel"].data[0].line.color) == [-1.0] * 9


@pytest.mark.parametrize(
    ("axes_2d", "axes_3d", "expected"),
    [
        (("test_error",), ("test_error", "params_m", "pgd_acc"), "projection_2d: expected 2"),
        (("L", "L"), ("test_error", "params_m", "pgd_acc"), "projection_2d: expected 2 distinct"),
        (("L", "F"), ("L", "F"), "projection_3d: expected 3"),
    ],
)
def test_sweep_figures_reject_malformed_projections(
    axes_2d: tuple[str, ...], axes_3d: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        sweep_figures(rank_table(sweep_frame()), axes_2d, axes_3d)


def test_seed_robustness_draws_each_configuration_over_its_seeds() -> None:
    """The configurations at their seeds' mean with the seeds' range as error bars (against
    a pandas groupby), coloured by the dominance probability of `robust_info`, every run as a
    point, and one staircase per attainment surface through the surface's points."""
    from service.analysis.attainment import attainment_surfaces
    from service.analysis.robust import robust_info

    table = _two_seeds(sweep_frame())
    ranked = rank_table(table)
    fig = sweep_figure(ranked, "seed_robustness", ("test_error", "params_m"))
    traces = {trace.uid: trace for trace in fig.data}
    runs, configurations = traces["robust-runs"], traces["robust-configurations"]
    assert len(runs.x) == len(table) == 18
    grouped = table.groupby(["F", "L"], sort=False)
    assert list(configurations.x) == pytest.approx(grouped["test_error"].mean().tolist())
    assert list(configurations.y) == pytest.approx(grouped["params_m"].mean().tolist())
    high = grouped["test_error"].max() - grouped["test_error"].mean()
    assert list(configurations.error_x.array) == pytest.approx(high.tolist())
    info = robust_info(table, ranked.objectives)
    chance = dict(
        zip(info.table["configuration"], info.table["dominance_probability"], strict=True)
    )
    labels = [f"F={f}_L={bound}" for (f, bound) in grouped.groups]
    assert list(configurations.marker.color) == pytest.approx([chance[label] for label in labels])
    surfaces = attainment_surfaces(table, {"test_error": "min", "params_m": "min"}).surfaces
    for percentile, points in surfaces.items():
        stair = traces[f"robust-eaf-{percentile:g}"]
        corners = set(zip(stair.x, stair.y, strict=True))
        assert set(points) <= corners and len(stair.x) == 2 * len(points) + 1
        # From the worst params_m of the runs down to the first point; across to the worst
        # test_error after the last.
        assert (stair.x[0], stair.y[0]) == (points[0][0], table["params_m"].max())
        assert (stair.x[-1], stair.y[-1]) == (table["test_error"].max(), points[-1][1])
    assert why_not(ranked, "seed_robustness", ("L", "params_m")) == (
        "Skipped: seed spreads and attainment surfaces are drawn over two metrics of the 2-D "
        "projection; L is no metric."
    )


def test_seed_robustness_staircases_follow_each_axis_direction() -> None:
    """Over test_error (min) and pgd_acc (max): each surface's staircase starts at the runs'
    worst pgd_acc (the lowest) at its first point's x, goes to the first point, across to each
    next point's x and on to it, and ends at the runs' worst test_error, vertex by vertex as
    written out here from the surfaces' points."""
    from service.analysis.attainment import attainment_surfaces

    table = _two_seeds(sweep_frame())
    fig = sweep_figure(rank_table(table), "seed_robustness", ("test_error", "pgd_acc"))
    traces = {trace.uid: trace for trace in fig.data}
    axes = {"test_error": "min", "pgd_acc": "max"}
    surfaces = attainment_surfaces(table, axes).surfaces
    worst_x, worst_y = table["test_error"].max(), table["pgd_acc"].min()
    for percentile, points in surfaces.items():
        xs, ys = [points[0][0]], [worst_y]
        for number, (a, b) in enumerate(points):
            if number:
                xs.append(a)
                ys.append(points[number - 1][1])
            xs.append(a)
            ys.append(b)
        xs.append(worst_x)
        ys.append(points[-1][1])
        stair = traces[f"robust-eaf-{percentile:g}"]
        assert list(stair.x) == xs and list(stair.y) == ys, percentile
        # Best x first: test_error grows along the points, so pgd_acc (max) must grow too.
        assert [p[0] for p in points] == sorted(p[0] for p in points)
        assert [p[1] for p in points] == sorted(p[1] for p in points)
