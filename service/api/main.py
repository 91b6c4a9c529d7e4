"""The FastAPI app: routers, error answers, the request guard (`service.api.guard`) and the
manager's lifetime. Nothing runs at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from service.api.guard import RequestGuard
from service.api.manager import SweepManager
from service.api.routes import (
    compare,
    docs,
    examples,
    figures,
    health,
    objectives,
    pages,
    robust,
    sweeps,
)
from service.api.settings import ServiceSettings
from service.errors import E2RNASError, UnknownSweepError, http_status


def _problem(code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code)


def create_app(settings: ServiceSettings, manager: SweepManager | None = None) -> FastAPI:
    """The service over ``settings``; ``manager`` (default: one built from the settings) is
    started with the app and closed when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = app.state.manager
        owned.start()
        try:
            yield
        finally:
            owned.close()

    app = FastAPI(
        title="e2rnas-sweeps",
        summary="Sweeps of E2RNAS architecture searches over lower bounds on size, on Ray.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from local files
        redoc_url=None,  # CDN-only: off
    )
    app.state.settings = settings
    app.state.manager = manager or SweepManager(settings)

    async def sweep_layer_error(_: Request, error: Exception) -> JSONResponse:
        if isinstance(error, UnknownSweepError) and error.sweep_id is not None:
            # The store's message names the database; an API client needs only the id.
            return _problem(
                status.HTTP_404_NOT_FOUND,
                f"sweep_id: no sweep {error.sweep_id!r} on this service; GET /api/sweeps "
                "lists them",
            )
        assert isinstance(error, E2RNASError)
        return _problem(http_status(error), str(error))

    async def request_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        parts = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"] if p not in ("query", "path", "body"))
            parts.append(f"{where or 'request'}: {item['msg']}")
        return _problem(status.HTTP_422_UNPROCESSABLE_CONTENT, "; ".join(parts))

    app.add_exception_handler(E2RNASError, sweep_layer_error)
    app.add_exception_handler(RequestValidationError, request_error)
    app.include_router(health.router)
    app.include_router(sweeps.router)
    app.include_router(figures.router)
    app.include_router(robust.router)
    app.include_router(compare.router)
    app.include_router(objectives.router)
    app.include_router(examples.router)
    app.include_router(pages.router)
    app.include_router(docs.router)
    # The longer prefix first: a mount answers every path under it.
    app.mount(docs.ASSETS_PATH, StaticFiles(directory=docs.assets()), name="docs-assets")
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.add_middleware(RequestGuard, settings=settings)
    return app
