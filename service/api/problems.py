"""Every error answer of the service as an RFC 9457 problem (``application/problem+json``).

One place for all of them, whoever raises: the project's errors (the status from
`service.errors.ERRORS`), FastAPI's and Starlette's ``HTTPException`` (the routes' own, 404 for
a path nothing answers, 405 for a method a path does not take), request validation (422), an
unexpected exception (500) and the request guard's refusals (`service.api.guard`). The body
keeps ``detail``, the one line naming the field that the pages and clients read, and adds
``type``, ``title``, ``status`` and ``instance`` (the request's path).

``type`` is ``about:blank`` for plain HTTP errors, whose ``title`` is then the status phrase as
the RFC asks. A project error gets one tag URI per row of ``ERRORS`` (``...:unknown-sweep``,
``...:sweep-conflict``), so a client tells a sweep in the wrong state from a locked run
directory, both 409, without parsing ``detail``; a tag URI names a kind without promising a
page behind it.

`problem_openapi` makes the OpenAPI document say the same: the error answers the routes
declare with `service.api.schemas.Problem` are ``application/problem+json``.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match, Mount

from service.api.schemas import Problem
from service.errors import ERRORS, E2RNASError, UnknownSweepError

__all__ = ["PROBLEM_MEDIA_TYPE", "TYPE_PREFIX", "error_problem", "install", "problem_openapi"]

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "tag:e2rnas-sweeps,2026:"
_WORDS = re.compile(r"[A-Z0-9]+(?![a-z])|[A-Z][a-z0-9]*")
_SCHEMAS = "#/components/schemas/"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem(
    status: int,
    detail: str,
    instance: str,
    *,
    kind: str = "about:blank",
    title: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> ProblemResponse:
    """The answer ``status`` with ``detail``; ``title`` defaults to the status phrase."""
    body = Problem(
        type=kind,
        title=title or http.client.responses.get(status, "Error"),
        status=status,
        detail=detail,
        instance=instance,
    )
    return ProblemResponse(body.model_dump(), status_code=status, headers=headers)


def _error_kind(row: type[E2RNASError]) -> tuple[str, str]:
    """The problem type and title of a row of ``ERRORS``, from its exception's name."""
    words = _WORDS.findall(row.__name__.removesuffix("Error"))  # ["Run", "Dir", "Locked"]
    slug = "-".join(word.lower() for word in words)  # run-dir-locked
    title = " ".join([words[0], *(word.lower() for word in words[1:]), "error"])
    return TYPE_PREFIX + slug, title


# Each row of ``ERRORS`` (in its order: the first match wins): type, title and HTTP status,
# worked out once rather than per error answered.
_ERROR_KINDS = {row: (*_error_kind(row), status) for row, _, status in ERRORS}


def error_problem(error: E2RNASError, instance: str) -> ProblemResponse:
    """A project error's answer: its type and title are those of its row of ``ERRORS``."""
    kind, title, status = next(
        answer for row, answer in _ERROR_KINDS.items() if isinstance(error, row)
    )
    detail = str(error)
    if isinstance(error, UnknownSweepError) and error.sweep_id is not None:
        # The store's message names the database; an API client needs only the id.
        detail = (
            f"sweep_id: no sweep {error.sweep_id!r} on this service; GET /api/sweeps lists them"
        )
    return problem(status, detail, instance, kind=kind, title=title)


async def _project_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, E2RNASError)
    return error_problem(error, request.url.path)


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code in (204, 304):  # no body allowed, as Starlette's own handler does
        return Response(status_code=error.status_code, headers=error.headers)
    path = request.url.path
    detail = error.detail if isinstance(error.detail, str) else repr(error.detail)
    headers = dict(error.headers or {})
    if detail == http.client.responses.get(error.status_code):
        # Starlette's bare phrases (an unknown path, a method the path does not take).
        if error.status_code == 404:
            detail = f"path: nothing at {path[:200]!r}; /docs lists the API's paths"
        elif error.status_code == 405:
            headers.update(_allowed(request))
            detail = f"method: {request.method} is not allowed on {path[:200]!r}" + (
                f"; it takes {headers['Allow']}" if headers.get("Allow") else ""
            )
    return problem(error.status_code, detail, path, headers=headers)


def _allowed(request: Request) -> dict[str, str]:
    """``Allow`` with every method the request's path takes: Starlette's lists only those of
    the first route on the path (``GET /api/sweeps`` and ``POST /api/sweeps`` are two)."""
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    methods = [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] == Match.FULL for route in routes
        )
    ]
    return {"Allow": ", ".join(methods)} if methods else {}


async def _request_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    parts = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if p not in ("query", "path", "body"))
        parts.append(f"{where or 'request'}: {item['msg']}")
    return problem(422, "; ".join(parts), request.url.path)


async def _server_error(request: Request, _: Exception) -> Response:
    # Starlette logs the exception and re-raises it after this answer is sent.
    return problem(
        500, "server: an unexpected error; the service's log has its traceback", request.url.path
    )


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` as a problem (the module docstring says which)."""
    app.add_exception_handler(E2RNASError, _project_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(Exception, _server_error)


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's OpenAPI document) with every error answer that FastAPI declared as
    ``Problem`` or as its own ``HTTPValidationError`` (which this service never sends) declared
    as ``application/problem+json`` of ``Problem``; changed in place and returned."""
    replaced = {_SCHEMAS + "Problem", _SCHEMAS + "HTTPValidationError"}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                refs = {entry.get("schema", {}).get("$ref") for entry in content.values()}
                if code[:1] in ("4", "5") and refs & replaced:
                    ref = {"$ref": _SCHEMAS + "Problem"}
                    response["content"] = {PROBLEM_MEDIA_TYPE: {"schema": ref}}
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.setdefault("Problem", Problem.model_json_schema())
    if _SCHEMAS + "HTTPValidationError" not in repr(schema.get("paths")):
        components.pop("HTTPValidationError", None)
        components.pop("ValidationError", None)
    return schema
