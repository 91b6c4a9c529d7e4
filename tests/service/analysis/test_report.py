"""Tests of the sweep report: the data steps against hand-worked values, the figures' traces,
and the HTML page (plotly.js inline once, no CDN, every section, parseable).

The synthetic sweep is a 3×3 grid over L and F, one seed, with bundled genotypes; its front
(rows 0, 4 and 8) is worked out by hand and checked against a brute-force dominance test.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
import pytest

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED
from service.analysis.report import (
    SECTION_TITLES,
    CellDiagramInfo,
    DiagramEdge,
    DiagramNode,
    HeatmapInfo,
    _cell_diagram_info,
    _heatmap_info,
    _scatter_info,
    cell_diagram,
    grid_heatmap,
    parallel_coordinates,
    projection,
    scatter_matrix,
    write_report,
)
from service.objectives import FRONT_METRICS, directions

# test_error, params_m, flops_m, pgd_acc, ood_aupr; rows 0, 4, 8 are the front.
METRICS = (
    (3.0, 1.0, 100.0, 40.0, 90.0),
    (4.0, 1.5, 200.0, 35.0, 85.0),
    (5.0, 1.5, 300.0, 30.0, 80.0),
    (4.0, 2.0, 150.0, 38.0, 88.0),
    (2.5, 2.0, 200.0, 45.0, 92.0),
    (3.0, 2.5, 250.0, 44.0, 91.0),
    (3.5, 3.0, 300.0, 39.0, 80.0),
    (2.6, 3.0, 300.0, 44.0, 91.0),
    (2.0, 3.5, 400.0, 50.0, 95.0),
)
FRONT = (0, 4, 8)
# Rows 0 and 8 share a genotype, so the front has two distinct ones.
GENOTYPE_NAMES = (
    "darts_v2", "darts_v1", "pdarts", "darts_v1", "pc_darts",
    "pdarts", "darts_v1", "pc_darts", "darts_v2",
)  # fmt: skip
GRID_L = (1.0, 2.0, 3.0)
GRID_F = (100.0, 200.0, 300.0)
# The library's banner, once per copy of plotly.js.
PLOTLY_SIGNATURE = "* plotly.js v"

OBJECTIVES = directions(FRONT_METRICS)


def sweep_frame() -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for i, (metrics, name) in enumerate(zip(METRICS, GENOTYPE_NAMES, strict=True)):
        genotype = BUNDLED[name]
        row: dict[str, Any] = {
            "L": GRID_L[i // 3],
            "F": GRID_F[i % 3],
            "seed": 0,
            "evaluation": "proxy",
            "genotype": genotype.dumps(),
            "genotype_hash": genotype.genotype_hash(),
        }
        row.update(zip(OBJECTIVES, metrics, strict=True))
        rows.append(row)
    return pd.DataFrame(rows)


def brute_force_front(values: npt.NDArray[np.float64]) -> list[int]:
    """Rows no other row dominates, values already in minimisation form."""
    return [
        i for i, a in enumerate(values) if not any((b <= a).all() and (b < a).any() for b in values)
    ]


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.script_srcs: list[str] = []
        self.ids: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "h2":
            self._in_h2 = True
            self.h2.append("")
        if tag == "script" and found.get("src"):
            self.script_srcs.append(str(found["src"]))
        if found.get("id"):
            self.ids.append(str(found["id"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data: str) -> None:
        if self._in_h2:
            self.h2[-1] += data


def parse_page(text: str) -> _PageParser:
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = write_report(sweep_frame(), tmp_path_factory.mktemp("report") / "report.html")
    return path, path.read_text(encoding="utf-8")


# -- data steps ----------------------------------------------------------------------------


def test_synthetic_front_matches_brute_force() -> None:
    signs = np.array([-1.0 if d == "max" else 1.0 for d in OBJECTIVES.values()])
    assert brute_force_front(np.array(METRICS) * signs) == list(FRONT)


def test_scatter_info_values_front_and_hover() -> None:
    df = sweep_frame()
    info = _scatter_info(df)
    assert info.objectives == tuple(OBJECTIVES)
    assert info.values == tuple(zip(*METRICS, strict=True))
    assert info.front == tuple(i in FRONT for i in range(9))
    assert info.hashes == tuple(df["genotype_hash"])
    assert info.hover[4].split("<br>")[:4] == [
        "L=2",
        "F=200",
        "seed=0",
        f"genotype_hash={BUNDLED['pc_darts'].genotype_hash()}",
    ]


def test_scatter_info_takes_a_given_mask_and_a_subset_of_objectives() -> None:
    mask = np.zeros(9, dtype=bool)
    mask[[1, 2]] = True
    info = _scatter_info(sweep_frame(), ["test_error", "params_m"], mask)
    assert info.objectives == ("test_error", "params_m")
    assert info.front == tuple(i in (1, 2) for i in range(9))
    # Over test_error and params_m alone the front is rows 0, 4 and 8 too.
    assert _scatter_info(sweep_frame(), ["test_error", "params_m"]).front == tuple(
        i in FRONT for i in range(9)
    )


def test_scatter_info_rejects_a_mask_of_the_wrong_length() -> None:
    with pytest.raises(ConfigError, match="front_mask"):
        _scatter_info(sweep_frame(), None, np.ones(3, dtype=bool))


def test_heatmap_info_is_the_grid_pivot() -> None:
    info = _heatmap_info(sweep_frame(), "params_m")
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
    info = _heatmap_info(df, "flops_m")
    assert info.counts == ((2, 2, 0), (2, 2, 2), (2, 2, 1))
    expected = ((105.0, 205.0, math.nan), (155.0, 205.0, 255.0), (305.0, 300.0, 400.0))
    np.testing.assert_array_equal(np.array(info.z), np.array(expected))


def test_heatmap_info_needs_l_and_f() -> None:
    with pytest.raises(ConfigError, match="'L'"):
        _heatmap_info(sweep_frame().drop(columns="L"), "params_m")


def test_cell_diagram_info_of_darts_v2() -> None:
    info = _cell_diagram_info(BUNDLED["darts_v2"].dumps(), "normal")
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
    info = _cell_diagram_info(genotype.to_json(), "reduce")
    assert len(info.edges) == 8
    assert [n.name for n in info.nodes if n.name.isdigit()] == ["0", "1", "2", "3"]
    assert [e.op for e in info.edges] == [op for op, _ in genotype.reduce]
    assert info.edges[2] == DiagramEdge("0", "1", "skip_connect")
    with pytest.raises(ConfigError, match="which"):
        _cell_diagram_info(genotype, "other")


# -- figures -------------------------------------------------------------------------------


def test_scatter_matrix_highlights_exactly_the_front() -> None:
    df = sweep_frame()
    fig = scatter_matrix(df)
    assert isinstance(fig, go.Figure)
    assert [t.type for t in fig.data] == ["splom", "splom"]
    others, front = fig.data
    assert len(others.customdata) + len(front.customdata) == len(df)
    assert list(front.customdata) == [df["genotype_hash"][i] for i in FRONT]
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
    # the line is the 2-D front, by a brute-force dominance check on the two columns
    pts = list(zip(df["params_m"], df["test_error"], strict=True))
    front_2d = [p for p in pts if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in pts)]
    assert sorted(zip(line.x, line.y, strict=True)) == sorted(front_2d)
    assert list(line.x) == sorted(line.x)
    assert line.mode == "lines"


def test_projection_3d() -> None:
    fig = projection(sweep_frame(), "test_error", "params_m", "pgd_acc")
    assert [t.type for t in fig.data] == ["scatter3d", "scatter3d"]
    assert list(fig.data[1].z) == [METRICS[i][3] for i in FRONT]
    assert len(fig.data[0].z) + len(fig.data[1].z) == 9


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


def test_cell_diagram_has_one_labelled_arrow_per_edge() -> None:
    genotype = BUNDLED["pc_darts"]
    fig = cell_diagram(genotype.dumps(), "normal")
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    labels = [a.text for a in fig.layout.annotations if not a.showarrow]
    assert len(arrows) == 8 + 4  # the kept edges, then the concatenated nodes into c_{k}
    assert sorted(labels) == sorted([op for op, _ in genotype.normal] + list(_NODE_NAMES))
    assert len(fig.layout.shapes) == 7


_NODE_NAMES = ("c_{k-2}", "c_{k-1}", "0", "1", "2", "3", "c_{k}")


# -- the page ------------------------------------------------------------------------------


def test_report_embeds_plotly_once_and_no_cdn(report: tuple[Path, str]) -> None:
    _, text = report
    assert plotly.offline.get_plotlyjs().count(PLOTLY_SIGNATURE) == 1
    assert text.count(PLOTLY_SIGNATURE) == 1
    assert '<script src="https://' not in text
    assert parse_page(text).script_srcs == []


def test_report_has_every_section_and_figure(report: tuple[Path, str]) -> None:
    path, text = report
    assert path.name == "report.html"
    parser = parse_page(text)
    assert parser.h2 == list(SECTION_TITLES.values())
    # scatter matrix, 2 projections, parallel coordinates, 3 heatmaps, 2 genotypes × 2 cells
    assert text.count('class="plotly-graph-div"') == 1 + 2 + 1 + 3 + 4
    front_hashes = {BUNDLED[GENOTYPE_NAMES[i]].genotype_hash() for i in FRONT}
    assert {i for i in parser.ids if i.startswith("cell-")} == {f"cell-{h}" for h in front_hashes}
    assert "Heatmaps skipped" not in text


def test_report_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "report.html"
    path.write_text("old", encoding="utf-8")
    df = sweep_frame().iloc[:1]
    assert write_report(df, path, title="One <trial>") == path
    text = path.read_text(encoding="utf-8")
    assert "<title>One &lt;trial&gt;</title>" in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_of_unevaluated_trials(tmp_path: Path) -> None:
    df = sweep_frame().assign(
        evaluation="none", test_error=math.nan, pgd_acc=math.nan, ood_aupr=math.nan
    )
    text = write_report(df, tmp_path / "r.html").read_text(encoding="utf-8")
    parser = parse_page(text)
    assert parser.h2 == list(SECTION_TITLES.values())
    assert text.count(PLOTLY_SIGNATURE) == 1
    assert "No front genotype to draw" in text


def test_report_without_a_grid(tmp_path: Path) -> None:
    df = sweep_frame().drop(columns=["L", "F"])
    text = write_report(df, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Heatmaps skipped: the results have no L or F column." in text
    assert parse_page(text).h2 == list(SECTION_TITLES.values())
    assert text.count('class="plotly-graph-div"') == 1 + 2 + 1 + 4


def test_report_of_a_non_grid_sweep_with_a_given_front(tmp_path: Path) -> None:
    df = sweep_frame().assign(L=[float(i) for i in range(9)], F=[10.0 * i for i in range(9)])
    mask = np.zeros(9, dtype=bool)
    mask[2] = True
    ranks = np.where(mask, 0, 1)
    text = write_report(df, tmp_path / "r.html", front_mask=mask, ranks=ranks).read_text(
        encoding="utf-8"
    )
    assert text.count('class="plotly-graph-div"') == 1 + 2 + 1 + 3 + 2
    assert f'id="cell-{BUNDLED["pdarts"].genotype_hash()}"' in text


# -- chosen projections ----------------------------------------------------------------------


def _axis_titles(text: str, section: str) -> list[str]:
    """The axis titles of the figure in one section of the page, x then y (then z)."""
    body = text.split(f'<section id="{section}">')[1].split("</section>")[0]
    return re.findall(r'"[xyz]axis":\{"title":\{"text":"([^"]*)"', body)


def test_report_projections_use_the_chosen_axes(tmp_path: Path) -> None:
    text = write_report(
        sweep_frame(),
        tmp_path / "r.html",
        projection_2d=("L", "flops_m"),
        projection_3d=("seed", "F", "ood_aupr"),
    ).read_text(encoding="utf-8")
    h2 = parse_page(text).h2
    assert h2[1:3] == ["Projection: L vs flops_m", "Projection: seed, F, ood_aupr"]
    assert _axis_titles(text, "projection_2d") == ["L", "flops_m (min)"]
    assert _axis_titles(text, "projection_3d") == ["seed", "F", "ood_aupr (max)"]
    assert 'name":"front of L and flops_m"' in text


def test_report_default_projections_are_unchanged(report: tuple[Path, str]) -> None:
    _, text = report
    assert _axis_titles(text, "projection_2d") == ["test_error (min)", "params_m (min)"]
    assert _axis_titles(text, "projection_3d") == [
        "test_error (min)",
        "params_m (min)",
        "pgd_acc (max)",
    ]


def test_report_notes_a_projection_column_the_results_lack(tmp_path: Path) -> None:
    text = write_report(
        sweep_frame(), tmp_path / "r.html", projection_2d=("latency_ms", "params_m")
    ).read_text(encoding="utf-8")
    assert "Skipped: the results have no latency_ms column." in text
    assert text.count('class="plotly-graph-div"') == 1 + 1 + 1 + 3 + 4


@pytest.mark.parametrize(
    ("axes_2d", "axes_3d", "expected"),
    [
        (("test_error",), ("test_error", "params_m", "pgd_acc"), "projection_2d: expected 2"),
        (("L", "L"), ("test_error", "params_m", "pgd_acc"), "projection_2d: expected 2 distinct"),
        (("L", "F"), ("L", "F"), "projection_3d: expected 3"),
    ],
)
def test_report_rejects_malformed_projections(
    tmp_path: Path, axes_2d: tuple[str, ...], axes_3d: tuple[str, ...], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected):
        write_report(
            sweep_frame(), tmp_path / "r.html", projection_2d=axes_2d, projection_3d=axes_3d
        )
    assert not (tmp_path / "r.html").exists()
