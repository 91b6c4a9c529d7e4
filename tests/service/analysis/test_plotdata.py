"""Tests of the figures' data steps against hand-worked values and independent references
(brute-force dominance, a staircase area for 2-D hypervolumes)."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED
from service.analysis.cells import CellDiagramInfo, DiagramEdge, DiagramNode, cell_diagram_info
from service.analysis.pareto import pareto_info
from service.analysis.plotdata import (
    FRONT_RANK,
    HeatmapInfo,
    compare_info,
    grid_note,
    heatmap_info,
    parallel_info,
    projection_info,
    rank_table,
    scatter_info,
)
from service.objectives import directions

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_front import (
    FRONT,
    GRID_F,
    GRID_L,
    METRICS,
    OBJECTIVES,
    brute_force_front,
    sweep_frame,
)


def staircase_area(points: list[tuple[float, float]], reference: tuple[float, float]) -> float:
    """The 2-D hypervolume of ``points`` (both minimised) against ``reference``: the area of
    the union of the rectangles [x, rx] x [y, ry], summed strip by strip in order of x."""
    rx, ry = reference
    inside = sorted((x, y) for x, y in points if x < rx and y < ry)
    area, best_y = 0.0, ry
    for k, (x, y) in enumerate(inside):
        best_y = min(best_y, y)
        next_x = inside[k + 1][0] if k + 1 < len(inside) else rx
        area += (next_x - x) * (ry - best_y)
    return area


def test_synthetic_front_matches_brute_force() -> None:
    signs = np.array([-1.0 if d == "max" else 1.0 for d in OBJECTIVES.values()])
    assert brute_force_front(np.array(METRICS) * signs) == list(FRONT)


# -- ranked table --------------------------------------------------------------------------


def test_rank_table_adds_the_ranks_of_pareto_info() -> None:
    df = sweep_frame()
    df.loc[3, "pgd_acc"] = math.nan  # a row without a rank
    ranked = rank_table(df.set_index(df.index + 100))
    info = pareto_info(df)
    assert ranked.objectives == OBJECTIVES
    assert list(ranked.table.index) == list(range(9))
    assert np.flatnonzero(ranked.front).tolist() == list(info.front)
    np.testing.assert_array_equal(ranked.ranks, info.ranks)
    assert ranked.ranks[3] == -1 and math.isnan(ranked.table[FRONT_RANK][3])
    expected = [float(r) for i, r in enumerate(info.ranks) if i != 3]
    assert [r for i, r in enumerate(ranked.table[FRONT_RANK]) if i != 3] == expected


def test_rank_table_takes_a_given_front_and_ranks() -> None:
    mask = np.zeros(9, dtype=bool)
    mask[2] = True
    ranked = rank_table(sweep_frame(), ["test_error", "params_m"], mask, np.where(mask, 0, 1))
    assert ranked.objectives == {"test_error": "min", "params_m": "min"}
    assert ranked.front.tolist() == mask.tolist()
    assert ranked.table[FRONT_RANK].tolist() == [0.0 if i == 2 else 1.0 for i in range(9)]


@pytest.mark.parametrize("ranks", [np.zeros(3, dtype=int), np.zeros(9), [0.5] * 9])
def test_rank_table_rejects_ranks_that_are_not_one_integer_per_row(ranks: Any) -> None:
    with pytest.raises(ConfigError, match=r"ranks: .* expected 9 integers"):
        rank_table(sweep_frame(), ranks=ranks)


# -- scatter points ------------------------------------------------------------------------


def test_scatter_info_values_front_and_hover() -> None:
    df = sweep_frame()
    info = scatter_info(df)
    assert info.objectives == tuple(OBJECTIVES)
    assert info.values == tuple(zip(*METRICS, strict=True))
    assert info.front == tuple(i in FRONT for i in range(9))
    assert info.hashes == tuple(df["genotype_hash"])
    assert info.trial_ids == ("",) * 9  # the table has no trial_id column
    assert info.hover[4].split("<br>")[:4] == [
        "L=2",
        "F=200",
        "seed=0",
        f"genotype_hash={BUNDLED['pc_darts'].genotype_hash()}",
    ]


def test_scatter_info_names_the_trial_and_escapes_the_hover_text() -> None:
    df = sweep_frame().assign(trial_id=[f"t<{i}>" for i in range(9)])
    df.loc[1, "genotype_hash"] = None
    info = scatter_info(df)
    assert info.trial_ids == tuple(f"t<{i}>" for i in range(9))
    assert info.hashes[1] == ""
    assert info.hover[0].split("<br>")[0] == "trial_id=t&lt;0&gt;"
    assert "genotype_hash=-" in info.hover[1].split("<br>")


def test_scatter_info_takes_a_given_mask_and_a_subset_of_objectives() -> None:
    mask = np.zeros(9, dtype=bool)
    mask[[1, 2]] = True
    info = scatter_info(sweep_frame(), ["test_error", "params_m"], mask)
    assert info.objectives == ("test_error", "params_m")
    assert info.front == tuple(i in (1, 2) for i in range(9))
    # Over test_error and params_m alone the front is rows 0, 4 and 8 too.
    assert scatter_info(sweep_frame(), ["test_error", "params_m"]).front == tuple(
        i in FRONT for i in range(9)
    )


def test_scatter_info_rejects_a_mask_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="front_mask"):
        scatter_info(sweep_frame(), None, np.ones(3, dtype=bool))


def test_projection_info_line_is_the_front_of_the_two_columns_in_order_of_x() -> None:
    df = sweep_frame()
    info = projection_info(df, "flops_m", "pgd_acc")
    # Brute force over the two columns, pgd_acc maximised.
    points = [(x, -y) for x, y in zip(df["flops_m"], df["pgd_acc"], strict=True)]
    front = brute_force_front(np.array(points))
    assert sorted(info.line) == front
    assert [df["flops_m"][i] for i in info.line] == sorted(df["flops_m"][i] for i in front)
    # The highlighted front stays that of the five metrics.
    assert info.points.front == tuple(i in FRONT for i in range(9))
    assert projection_info(df, "flops_m", "pgd_acc", "L").line == ()
    with pytest.raises(ConfigError, match=r"projection axes: .* expected distinct columns"):
        projection_info(df, "L", "F", "L")


def test_parallel_info_values_and_ranks() -> None:
    df = sweep_frame()
    info = parallel_info(df, ["test_error", "params_m"])
    assert info.objectives == ("test_error", "params_m")
    assert info.values == (tuple(df["test_error"]), tuple(df["params_m"]))
    assert info.ranks == tuple(int(r) for r in pareto_info(df, ["test_error", "params_m"]).ranks)
    assert parallel_info(df, ranks=np.arange(9)).ranks == tuple(range(9))


# -- heatmaps ------------------------------------------------------------------------------


def test_heatmap_info_is_the_grid_pivot() -> None:
    info = heatmap_info(sweep_frame(), "params_m")
    assert info == HeatmapInfo(
        value="params_m",
        aggregate="mean",
        L=GRID_L,
        F=GRID_F,
        z=((1.0, 1.5, 1.5), (2.0, 2.0, 2.5), (3.0, 3.0, 3.5)),
        counts=((1, 1, 1), (1, 1, 1), (1, 1, 1)),
    )


def test_heatmap_info_means_over_seeds_and_leaves_holes_nan() -> None:
    first = sweep_frame()
    second = first.assign(seed=1, flops_m=first["flops_m"] + 10.0)
    df = pd.concat([first, second.iloc[:8]], ignore_index=True)
    df.loc[len(df) - 1, "flops_m"] = math.nan  # (3, 200) seed 1: no value
    df = df[~((df["L"] == 1.0) & (df["F"] == 300.0))]  # a hole in the grid
    info = heatmap_info(df, "flops_m")
    assert info.counts == ((2, 2, 0), (2, 2, 2), (2, 2, 1))
    expected = ((105.0, 205.0, math.nan), (155.0, 205.0, 255.0), (305.0, 300.0, 400.0))
    np.testing.assert_array_equal(np.array(info.z), np.array(expected))


def test_heatmap_info_needs_l_and_f() -> None:
    with pytest.raises(ConfigError, match="'L'"):
        heatmap_info(sweep_frame().drop(columns="L"), "params_m")


def test_grid_note_says_why_there_is_no_grid() -> None:
    assert grid_note(sweep_frame()) is None
    assert grid_note(sweep_frame().drop(columns=["L", "F"])) == (
        "Heatmaps skipped: the results have no L or F column."
    )
    assert grid_note(sweep_frame().assign(F=math.nan)) == (
        "Heatmaps skipped: no trial has both L and F."
    )
    assert grid_note(sweep_frame().iloc[:0]) == "Heatmaps skipped: no trial has both L and F."


# -- cells ---------------------------------------------------------------------------------


def test_cell_diagram_info_of_darts_v2() -> None:
    info = cell_diagram_info(BUNDLED["darts_v2"].dumps(), "normal")
    assert info == CellDiagramInfo(
        which="normal",
        nodes=(
            DiagramNode("c_{k-2}", 0.0, 1.0),
            DiagramNode("c_{k-1}", 0.0, -1.0),
            DiagramNode("0", 1.0, 0.35),
            DiagramNode("1", 2.0, -0.35),
            DiagramNode("2", 3.0, 0.35),
            DiagramNode("3", 4.0, -0.35),
            DiagramNode("c_{k}", 5.0, 0.0),
        ),
        edges=(
            DiagramEdge("c_{k-2}", "0", "sep_conv_3x3"),
            DiagramEdge("c_{k-1}", "0", "sep_conv_3x3"),
            DiagramEdge("c_{k-2}", "1", "sep_conv_3x3"),
            DiagramEdge("c_{k-1}", "1", "sep_conv_3x3"),
            DiagramEdge("c_{k-1}", "2", "sep_conv_3x3"),
            DiagramEdge("c_{k-2}", "2", "skip_connect"),
            DiagramEdge("c_{k-2}", "3", "skip_connect"),
            DiagramEdge("0", "3", "dil_conv_3x3"),
        ),
        outputs=tuple(DiagramEdge(n, "c_{k}", "") for n in ("0", "1", "2", "3")),
    )


def test_cell_diagram_info_reduce_cell_and_inputs() -> None:
    genotype = BUNDLED["darts_v2"]
    info = cell_diagram_info(genotype.to_json(), "reduce")
    assert len(info.edges) == 8
    assert [n.name for n in info.nodes if n.name.isdigit()] == ["0", "1", "2", "3"]
    assert [e.op for e in info.edges] == [op for op, _ in genotype.reduce]
    assert info.edges[2] == DiagramEdge("0", "1", "skip_connect")
    with pytest.raises(ConfigError, match="which"):
        cell_diagram_info(genotype, "other")


# -- comparison ----------------------------------------------------------------------------


def _two_sweeps() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The synthetic sweep, and a copy 0.5 worse in test_error and 3 worse in pgd_acc whose
    row 6 is missing pgd_acc."""
    first = sweep_frame()
    second = first.assign(test_error=first["test_error"] + 0.5, pgd_acc=first["pgd_acc"] - 3)
    second.loc[6, "pgd_acc"] = math.nan
    return first, second


def test_compare_info_measures_both_fronts_against_the_worse_reference() -> None:
    first, second = _two_sweeps()
    info = compare_info([("A", first), ("B", second)], "test_error", "pgd_acc")
    assert info.objectives == directions(["test_error", "pgd_acc"])
    assert [s.label for s in info.sweeps] == ["A", "B"]
    own = [pareto_info(df, ["test_error", "pgd_acc"]) for df in (first, second)]
    references = [p.reference for p in own]
    assert [s.reference for s in info.sweeps] == references
    assert [s.hypervolume for s in info.sweeps] == [p.hypervolume for p in own]
    assert all(ref is not None for ref in references)
    # The worse of the two: the larger test_error, the smaller pgd_acc.
    assert info.reference == (
        max(r[0] for r in references if r is not None),
        min(r[1] for r in references if r is not None),
    )
    assert info.reference is not None
    shared = (info.reference[0], -info.reference[1])
    for summary, df in zip(info.sweeps, (first, second), strict=True):
        rows = df.dropna(subset=["test_error", "pgd_acc"])
        points = list(zip(rows["test_error"], -rows["pgd_acc"], strict=True))
        assert summary.shared_hypervolume == pytest.approx(staircase_area(points, shared))
        front = brute_force_front(np.array(points))
        assert sorted(summary.line) == sorted(rows.index[front])
        xs = [df["test_error"][i] for i in summary.line]
        assert xs == sorted(xs)
        assert summary.points.front == tuple(i in summary.line for i in range(9))
    a, b = (s.shared_hypervolume for s in info.sweeps)
    assert a is not None and b is not None and a > b > 0


def test_compare_info_without_a_front_has_no_shared_reference() -> None:
    first, second = _two_sweeps()
    info = compare_info(
        [("A", first), ("B", second.assign(pgd_acc=math.nan))], "test_error", "pgd_acc"
    )
    assert info.reference is None
    assert [s.shared_hypervolume for s in info.sweeps] == [None, None]
    assert info.sweeps[1].reference is None and info.sweeps[1].line == ()
    assert info.sweeps[0].hypervolume > 0
