"""Checks on every request before any route runs: its Host, and for state-changing requests its
Origin and its body's Content-Type.

Without a token (the default, loopback only) any page open in the user's browser could
otherwise drive the service: a plain HTML form posts ``text/plain`` to ``/api/sweeps`` across
sites without a preflight, and a site that rebinds its own DNS name to 127.0.0.1 reads the
answers as same-origin. So:

- **Host** must be one the service answers for (`ServiceSettings.hosts`): a rebound name
  arrives as the attacker's name and is refused (400).
- **Origin**, when a browser sends one with a POST, PUT, PATCH or DELETE, must be the
  service's own (the Host it was sent to) or one of ``allowed_origins`` (403). Clients that
  are no browser send none and pass.
- **Content-Type** of such a request's body must be JSON or one of the YAML types the API
  documents (415); the types a form can send (``text/plain``, form encodings) never pass.

A pure ASGI middleware, so that it runs before routing and answers in the API's error form
(`service.api.problems`: ``detail`` is "Header: what was wrong"), with the status of
``service.errors.ERRORS``.
"""

from __future__ import annotations

import urllib.parse

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.problems import error_problem
from service.api.settings import ServiceSettings
from service.errors import (
    E2RNASError,
    HostNotAllowedError,
    MediaTypeError,
    OriginNotAllowedError,
)

__all__ = ["BODY_TYPES", "YAML_TYPES", "RequestGuard", "media_type"]

YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")
BODY_TYPES = ("application/json", *YAML_TYPES)
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def media_type(headers: Headers) -> str | None:
    """The Content-Type's media type, lower case, without parameters; None when absent."""
    given = headers.get("content-type")
    return None if given is None else given.split(";")[0].strip().lower()


def _host_name(host: str) -> str:
    """``example.org:8000`` -> ``example.org``; ``[::1]:8000`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RequestGuard:
    """Refuses requests whose Host, Origin or Content-Type the module docstring rules out."""

    def __init__(self, app: ASGIApp, settings: ServiceSettings) -> None:
        self.app = app
        self.hosts = settings.hosts()
        self.origins = frozenset(origin.rstrip("/").lower() for origin in settings.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.check(scope["method"], Headers(scope=scope))
        except E2RNASError as error:
            await error_problem(error, scope["path"])(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def check(self, method: str, headers: Headers) -> None:
        host = headers.get("host", "")
        if "*" not in self.hosts and _host_name(host) not in self.hosts:
            raise HostNotAllowedError(
                f"Host: {host[:100]!r} is not a name this service answers for; reach it as "
                f"one of {', '.join(sorted(self.hosts))} or add the name to E2RNAS_ALLOWED_HOSTS"
            )
        if method.upper() not in UNSAFE_METHODS:
            return
        origin = headers.get("origin")
        if origin is not None and not self._same_or_allowed(origin, host):
            raise OriginNotAllowedError(
                f"Origin: a page of {origin[:100]!r} may not send {method.upper()} requests "
                "to this service; add it to E2RNAS_ALLOWED_ORIGINS if it should"
            )
        kind = media_type(headers)
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if (kind is None and has_body) or (kind is not None and kind not in BODY_TYPES):
            raise MediaTypeError(
                f"Content-Type: {kind or 'missing'}; send the body as application/json or "
                "application/yaml"
            )

    def _same_or_allowed(self, origin: str, host: str) -> bool:
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        parts = urllib.parse.urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()
