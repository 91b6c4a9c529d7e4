"""Tests of the sweep report: the HTML page (plotly.js inline once, no CDN, every section and
figure, parseable, escaped), and that it embeds the very figures the web pages get.

The synthetic sweep (``synthetic_front.py``) is a 3×3 grid over L and F, one seed, with
bundled genotypes; its front (rows 0, 4 and 8) is worked out by hand.
"""

from __future__ import annotations

import math
import re
import sys
import tomllib
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import plotly.offline
import pytest

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED
from service.analysis.figures import PLOT_CONFIG
from service.analysis.gallery import sweep_figures
from service.analysis.plotdata import rank_table
from service.analysis.report import SECTION_TITLES, TEMPLATES, write_report

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synthetic_front import FRONT, GENOTYPE_NAMES, sweep_frame

REPO = Path(__file__).resolve().parents[3]
# The library's banner, once per copy of plotly.js.
PLOTLY_SIGNATURE = "* plotly.js v"


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


# -- one set of figures, escaped text, shipped templates -------------------------------------


def test_report_embeds_the_figures_the_web_pages_get(report: tuple[Path, str]) -> None:
    """Each figure of the page is plotly's own HTML of `sweep_figures`' figure, the one the
    API's ``/figures`` answers with, in the order of the sections."""
    _, text = report
    drawn = sweep_figures(rank_table(sweep_frame()))
    for index, fig in enumerate(drawn.figures.values()):
        html = fig.to_html(
            full_html=False, include_plotlyjs=False, div_id=f"figure-{index}", config=PLOT_CONFIG
        )
        assert html in text, index


def test_report_escapes_every_text_but_plotly_s_own(tmp_path: Path) -> None:
    df = sweep_frame().assign(trial_id=[f"<b>{i}</b>" for i in range(9)])
    text = write_report(
        df, tmp_path / "r.html", title='<script>alert("x")</script>', projection_2d=("L", "F")
    ).read_text(encoding="utf-8")
    assert "<script>alert" not in text
    assert "<title>&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;</title>" in text
    # Hover texts are HTML-escaped, then plotly writes them as JSON (which escapes "/").
    assert "<b>0</b>" not in text
    assert r"trial_id=&lt;b&gt;0&lt;\u002fb&gt;" in text


def test_report_template_is_package_data() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    templates = [p.relative_to(REPO / "service").as_posix() for p in TEMPLATES.iterdir()]
    assert templates == ["analysis/templates/report.html.j2"]
    assert all(any(fnmatch(t, pattern) for pattern in patterns) for t in templates)
