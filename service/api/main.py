"""The FastAPI app: routers, error answers, the request guard (`service.api.guard`) and the
manager's lifetime. Nothing runs at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from service.api import problems
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


class _Service(FastAPI):
    """FastAPI whose OpenAPI document declares the error answers as they are sent:
    ``application/problem+json`` (`service.api.problems`)."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = problems.problem_openapi(super().openapi())
        return self.openapi_schema


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

    app = _Service(
        title="e2rnas-sweeps",
        summary="Sweeps of E2RNAS architecture searches over lower bounds on size, on Ray.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py from local files
        redoc_url=None,  # CDN-only: off
    )
    app.state.settings = settings
    app.state.manager = manager or SweepManager(settings)

    problems.install(app)
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
