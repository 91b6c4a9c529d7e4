"""The FastAPI app: routers, error answers and the manager's lifetime. Nothing runs at import."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from search_core.errors import ConfigError, E2RNASError
from service.api.routes import examples, health, pages, sweeps
from service.jobs import JobError
from service.manager import SweepConflictError, SweepManager
from service.settings import ServiceSettings
from service.store import StoreError, UnknownSweepError
from service.sweep_config import SweepSyntaxError

# Exceptions of the sweep layer and the answer each gets; their messages name the field.
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (UnknownSweepError, status.HTTP_404_NOT_FOUND),
    (SweepConflictError, status.HTTP_409_CONFLICT),
    (SweepSyntaxError, status.HTTP_400_BAD_REQUEST),
    (ConfigError, status.HTTP_422_UNPROCESSABLE_CONTENT),
    (JobError, status.HTTP_503_SERVICE_UNAVAILABLE),
    (StoreError, status.HTTP_503_SERVICE_UNAVAILABLE),
)


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
        for kind, code in _STATUS:
            if isinstance(error, kind):
                return _problem(code, str(error))
        return _problem(status.HTTP_500_INTERNAL_SERVER_ERROR, str(error))

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
    app.include_router(examples.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    return app
