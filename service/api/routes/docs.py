"""``/docs``: Swagger UI over ``/openapi.json``, its files served by the service itself.

FastAPI's own ``/docs`` loads Swagger UI's script from a CDN into the service's origin, where
the pages keep the API token (localStorage): whoever serves that script could read the token.
The same files come from the ``fastapi-offline`` package here (Swagger UI 5, which reads
OpenAPI 3.1), under ``/static/docs/``, so the page loads nothing from elsewhere. FastAPI's
``/redoc``, CDN-only, is off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

__all__ = ["ASSETS_PATH", "assets", "router"]

ASSETS_PATH = "/static/docs"

router = APIRouter(include_in_schema=False)


def assets() -> Path:
    """The directory of Swagger UI's script, style sheet and icon."""
    import fastapi_offline  # type: ignore[import-untyped, unused-ignore]

    return Path(fastapi_offline.__file__).resolve().parent / "static"


@router.get("/docs")
def swagger_ui() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="e2rnas-sweeps API",
        swagger_js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PATH}/favicon.png",
    )
