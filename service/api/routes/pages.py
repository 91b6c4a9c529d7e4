"""The web pages: sweep list, sweep page, submit page and front comparison, plus their static
files. Pages are static HTML whose scripts read the REST API; plotly.js is served from the
installed plotly package, so nothing comes from a CDN and the pages work offline."""

from __future__ import annotations

import functools
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
PAGES = Path(__file__).resolve().parent.parent / "pages"


def _plotly_js() -> Path:
    import plotly  # type: ignore[import-untyped, unused-ignore]

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@functools.cache
def _render(name: str) -> str:
    """``pages/<name>.html`` (its first line the title, then the page's main part) inside the
    shared layout (head, navigation, token box) of ``pages/layout.html``."""
    title, main = (PAGES / f"{name}.html").read_text(encoding="utf-8").split("\n", 1)
    layout = (PAGES / "layout.html").read_text(encoding="utf-8")
    return (
        layout.replace("<!--title-->", title)
        .replace("<!--page-->", name)
        .replace("<!--main-->", main)
    )


def _page(name: str) -> HTMLResponse:
    return HTMLResponse(_render(name.removesuffix(".html")))


@router.get("/")
def sweep_list_page() -> HTMLResponse:
    return _page("index.html")


@router.get("/submit")
def submit_page() -> HTMLResponse:
    return _page("submit.html")


@router.get("/compare")
def compare_page() -> HTMLResponse:
    return _page("compare.html")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> HTMLResponse:
    return _page("sweep.html")


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(_plotly_js(), media_type="text/javascript; charset=utf-8")
