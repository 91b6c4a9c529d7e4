"""``GET /api/health``: the service, its database and its Ray, in one answer."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from service.api.deps import Manager
from service.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Health)
def health(manager: Manager) -> Health:
    try:
        package = version("e2rnas-sweeps")
    except PackageNotFoundError:
        package = "unknown"
    jobs = manager.jobs
    ray = jobs.given_address or "embedded local Ray (starts with the first sweep)"
    return Health(
        status="ok",
        database=manager.store.engine.dialect.name,
        ray=ray,
        version=package,
    )
