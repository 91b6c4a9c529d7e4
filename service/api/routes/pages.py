"""The web pages: sweep list, sweep page, submit page and front comparison, plus their static
files. Each page is a Jinja2 template (``templates/<page>.html``, extending ``layout.html``)
rendered with autoescaping; its script (``static/app.js``) reads the REST API, and draws the
figures the API builds. plotly.js is served from the installed plotly package, so nothing
comes from a CDN and the pages work offline."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from service.api.routes.sweeps import EXPORT_TYPES

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).resolve().parent.parent / "static"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

DOWNLOADS = (
    *((name, f"export/{name}") for name in EXPORT_TYPES),
    ("results.csv", "results?format=csv"),
    ("results.parquet", "results?format=parquet"),
)
"""The sweep page's downloads: file name, and its path under ``/api/sweeps/{id}/``."""


def _plotly_js() -> Path:
    import plotly  # type: ignore[import-untyped, unused-ignore]

    return Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


def _page(page: str, **context: Any) -> HTMLResponse:
    """``templates/<page>.html``; ``page`` also names the page for app.js (``data-page``)."""
    return HTMLResponse(_environment().get_template(f"{page}.html").render(page=page, **context))


@router.get("/")
def sweep_list_page() -> HTMLResponse:
    return _page("index")


@router.get("/submit")
def submit_page() -> HTMLResponse:
    return _page("submit")


@router.get("/compare")
def compare_page() -> HTMLResponse:
    return _page("compare")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str) -> HTMLResponse:
    return _page("sweep", sweep_id=sweep_id, downloads=DOWNLOADS)


@router.get("/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(_plotly_js(), media_type="text/javascript; charset=utf-8")
