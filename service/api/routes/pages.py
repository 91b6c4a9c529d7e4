"""The web pages: sweep list, sweep page, submit page and front comparison, plus their static
files. Pages are static HTML whose scripts read the REST API; plotly.js is served from the
installed plotly package, so nothing comes from a CDN and the pages work offline."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"


def _plotly_js() -> Path:
    import plotly  # type: ignore[import-untyped, unused-ignore]

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC / name, media_type="text/html; charset=utf-8")


@router.get("/")
def sweep_list_page() -> FileResponse:
    return _page("index.html")


@router.get("/submit")
def submit_page() -> FileResponse:
    return _page("submit.html")


@router.get("/compare")
def compare_page() -> FileResponse:
    return _page("compare.html")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> FileResponse:
    return _page("sweep.html")


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(_plotly_js(), media_type="text/javascript; charset=utf-8")
