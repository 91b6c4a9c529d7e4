"""The sweep report: one self-contained, offline HTML page to browse the empirical Pareto front.

The page holds the figures of :mod:`~service.analysis.figures` (the same the web pages show),
one section per entry of :data:`~service.analysis.figures.SECTIONS`, then the normal and
reduction cells of every distinct front genotype. A click on a point scrolls to the cells of
its genotype.

It is rendered from the Jinja2 template ``templates/report.html.j2`` with autoescaping: every
text goes in escaped, except plotly's own output (plotly.js, inline once so that the page
opens offline, and each figure's div and script, whose data plotly writes as escaped JSON).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jinja2
import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]
import plotly.offline  # type: ignore[import-untyped, unused-ignore]

from search_core.genotypes import Genotype
from service.analysis.cells import cell_diagram
from service.analysis.figures import PLOT_CONFIG
from service.analysis.gallery import SECTIONS, sweep_figures
from service.analysis.pareto import Objectives
from service.analysis.plotdata import RankedTable, rank_table
from service.analysis.robust import robust_info
from service.analysis.robustview import spread_text
from service.errors import ConfigError, GenotypeError
from service.files import replace_atomically
from service.objectives import DEFAULT_PROJECTION_2D, DEFAULT_PROJECTION_3D
from service.results.table import STOPPED

__all__ = ["SECTION_TITLES", "write_report"]

TEMPLATES = Path(__file__).resolve().parent / "templates"

SECTION_TITLES: dict[str, str] = {
    "scatter": "Scatter matrix of the front metrics",
    "projection_2d": "Projection: test_error vs params_m",
    "projection_3d": "Projection: test_error, params_m, pgd_acc",
    "parallel": "Parallel coordinates",
    "heatmaps": "L×F grid heatmaps",
    "backbones": "Fronts by backbone",
    "two_stage": "Two-stage fronts: proxy and retrain",
    "robust": "Seed robustness: spreads, dominance probability, attainment, duplicates",
    "cells": "Cells of the front genotypes",
}
"""The title of each section of the page, by section id (the projections' titles name their
axes, these with the default axes)."""


class _Table(NamedTuple):
    caption: str
    columns: list[str]
    rows: list[list[str]]


class _Section(NamedTuple):
    key: str
    title: str
    intro: str
    note: str  # why some of its figures are missing; "" when none is
    figures: list[str]  # plotly's HTML of each figure
    tables: list[_Table]


_ROBUST_ROWS = 20  # configurations listed in the report (the CLI and the API list them all)


def _robust_tables(ranked: RankedTable) -> list[_Table]:
    """The configurations most often on the front, with their seeds' spreads, when some has
    several runs; and the duplicate genotypes (one architecture from several trials)."""
    info = robust_info(ranked.table, ranked.objectives)
    tables: list[_Table] = []
    if info.runs[1] > 1:
        top = info.table.head(_ROBUST_ROWS)
        rows = [
            [
                str(row["configuration"]),
                "-"
                if pd.isna(row["dominance_probability"])
                else f"{row['dominance_probability']:.3f}",
                f"{row['valid_runs']}/{row['runs']}",
                str(row["genotypes"]),
                *(spread_text(row[f"{n}_mean"], row[f"{n}_std"]) for n in info.objectives),
            ]
            for _, row in top.iterrows()
        ]
        hv = info.hypervolume
        caption = (
            f"Configurations by dominance probability ({info.method}, {info.resamples} draws, "
            f"random_seed {info.random_seed}); hypervolume of one seed per configuration "
            f"{hv.mean:.4g}, {hv.confidence:.0%} interval [{hv.low:.4g}, {hv.high:.4g}], all "
            f"seeds pooled {hv.pooled:.4g}"
        )
        columns = ["configuration", "P(front)", "valid/runs", "genotypes", *info.objectives]
        tables.append(_Table(caption, columns, rows))
    if info.twins:
        rows = [[" = ".join(group)] for group in info.twins]
        caption = "Configurations that found the same genotype under every seed"
        tables.append(_Table(caption, ["configurations"], rows))
    if info.duplicates:
        rows = [
            [group.genotype_hash, str(len(group.trials)), ", ".join(group.configurations)]
            for group in info.duplicates
        ]
        caption = "Duplicate genotypes: one architecture reached by several trials"
        tables.append(_Table(caption, ["genotype_hash", "trials", "configurations"], rows))
    return tables


class _Cell(NamedTuple):
    genotype_hash: str
    json: str
    figures: list[str]  # plotly's HTML of the normal and the reduction cell


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    return environment.get_template("report.html.j2")


class _Divs:
    """plotly's HTML of each figure of the page, with the page's own div ids."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure) -> str:
        text: str = fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=f"figure-{self.count}",
            config=PLOT_CONFIG,
        )
        self.count += 1
        return text


def _front_cells(df: pd.DataFrame, mask: npt.NDArray[np.bool_]) -> list[tuple[str, Genotype]]:
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


def _stopped_note(table: pd.DataFrame) -> str:
    """`` (N stopped early by the scheduler, never evaluated)`` when the sweep has such."""
    if "status" not in table.columns:
        return ""
    stopped = table[table["status"] == STOPPED]
    if not len(stopped):
        return ""
    epochs = stopped["search_epochs"] if "search_epochs" in stopped.columns else None
    at = ""
    if epochs is not None and epochs.notna().any():
        at = f" after {', '.join(sorted({f'{e:g}' for e in epochs.dropna()}, key=float))} epochs"
    return f" ({len(stopped)} stopped early by the scheduler{at}, never evaluated)"


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
    ranks default to those of `service.analysis.pareto.pareto_info` over ``objectives``. The
    2-D and 3-D projections plot the columns ``projection_2d`` (x, y) and ``projection_3d``
    (x, y, z); one the table lacks is noted on the page instead of its figure.
    """
    ranked = rank_table(df, objectives, front_mask, ranks)
    drawn = sweep_figures(ranked, projection_2d, projection_3d)
    titles = {
        **SECTION_TITLES,
        "projection_2d": f"Projection: {' vs '.join(projection_2d)}",
        "projection_3d": f"Projection: {', '.join(projection_3d)}",
    }
    intro = (
        f"{len(ranked.table)} trials{_stopped_note(ranked.table)}, {int(ranked.front.sum())} on "
        f"the Pareto front of {', '.join(ranked.objectives)} (highlighted). Click a front "
        "point to see its cells."
    )
    divs = _Divs()
    sections = [
        _Section(
            key=key,
            title=titles[key],
            intro=intro if key == "scatter" else "",
            note=drawn.notes.get(key, ""),
            figures=[divs.html(drawn.figures[name]) for name in names if name in drawn.figures],
            tables=_robust_tables(ranked) if key == "robust" else [],
        )
        for key, names in SECTIONS.items()
    ]
    cells = [
        _Cell(
            genotype_hash=genotype_hash,
            json=genotype.dumps(),
            figures=[divs.html(cell_diagram(genotype, which)) for which in ("normal", "reduce")],
        )
        for genotype_hash, genotype in _front_cells(ranked.table, ranked.front)
    ]
    document = _template().render(
        title=title,
        plotly_js=plotly.offline.get_plotlyjs(),
        sections=sections,
        cells=cells,
        cells_title=SECTION_TITLES["cells"],
    )
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda p: p.write_text(document, encoding="utf-8"))
    return path
