"""Dependencies of the routes: the sweep manager, the settings and the bearer-token check."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.api.manager import SweepManager
from service.api.settings import ServiceSettings

_bearer = HTTPBearer(auto_error=False, description="E2RNAS_API_TOKEN of the service")


def get_manager(request: Request) -> SweepManager:
    manager: SweepManager = request.app.state.manager
    return manager


def get_settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


def require_token(
    settings: Annotated[ServiceSettings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating endpoints: the bearer token must match E2RNAS_API_TOKEN, when one is set (a
    service without one binds only loopback, see `service.settings.load_settings`)."""
    expected = settings.token()
    if expected is None:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Authorization: missing bearer token; send 'Authorization: Bearer <token>' with "
            "the service's E2RNAS_API_TOKEN",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Authorization: the bearer token does not match the service's E2RNAS_API_TOKEN",
        )


Manager = Annotated[SweepManager, Depends(get_manager)]
Settings = Annotated[ServiceSettings, Depends(get_settings)]
Token = Depends(require_token)
