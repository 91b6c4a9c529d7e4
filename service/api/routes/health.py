"""``GET /api/health``: the service's database, its Ray and its refresh loop, in one answer.

503 when the database does not answer or the refresh loop is down (its thread gone, or
several passes in a row failed), so that a load balancer or an orchestrator stops sending
traffic or restarts the service; an unreachable Ray is reported but keeps 200, since every
read still works and the loop retries.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from service.api.deps import Manager
from service.api.schemas import DatabaseHealth, Health, LoopHealth, RayHealth
from service.errors import StoreError

router = APIRouter(tags=["health"])


@router.get("/api/health", response_model=Health, responses={503: {"model": Health}})
def health(manager: Manager) -> JSONResponse:
    try:
        package = version("e2rnas-sweeps")
    except PackageNotFoundError:
        package = "unknown"
    database = DatabaseHealth(ok=True, dialect=manager.store.engine.dialect.name)
    try:
        manager.store.ping()
    except StoreError as error:
        database = database.model_copy(update={"ok": False, "detail": str(error)})
    reachable, where = manager.jobs.reachable()
    state = manager.loop_state()
    loop = LoopHealth(
        ok=not state.down,
        alive=state.alive,
        last_success=state.last_success,
        consecutive_failures=state.consecutive_failures,
        failing_sweeps=state.failing_sweeps,
        last_error=state.last_error,
    )
    down = [] if database.ok else [database.detail or "database: down"]
    if not state.alive:
        down.append("loop: the refresh thread is not running; restart the service")
    elif not loop.ok:
        down.append(
            f"loop: {state.consecutive_failures} refresh passes failed in a row "
            f"({state.last_error})"
        )
    answer = Health(
        status="unavailable" if down else "ok",
        detail="; ".join(down) or None,
        database=database,
        ray=RayHealth(reachable=reachable, address=where),
        loop=loop,
        version=package,
    )
    code = status.HTTP_503_SERVICE_UNAVAILABLE if down else status.HTTP_200_OK
    return JSONResponse(answer.model_dump(mode="json"), status_code=code)
