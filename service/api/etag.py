"""Conditional GETs: a strong ``ETag`` on every successful GET of a router, and 304 Not Modified
to an ``If-None-Match`` that names it.

The pages poll a sweep's results, front and figures while it runs; most polls find nothing new,
and a figure's JSON is large. The tag is a hash of the answer's media type and body, so it
changes whenever what a client would read changes (a trial stored, another page of rows,
another format) and never otherwise, with no bookkeeping of the sweep's state; the answer is
still computed, only its transfer is saved. ``Cache-Control: no-cache`` lets a browser keep the
answer but makes it ask again each time, so a page never shows a stale front.

A router opts in with ``APIRouter(route_class=RevalidatedRoute)``; its GET operations then
declare the ``If-None-Match`` header and the 304 answer in the OpenAPI document.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.routing import APIRoute

__all__ = ["RevalidatedRoute", "entity_tag", "revalidated"]

# RFC 9110 §15.4.5: a 304 carries the headers a 200 would have had among these.
_KEPT = ("cache-control", "content-location", "etag", "expires", "vary")

_OPENAPI_HEADER = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "description": "The ETag of an earlier answer: 304 without a body while it is current.",
    "schema": {"type": "string", "maxLength": 1000},
}
_NOT_MODIFIED = {
    "description": "Not Modified: the answer is the one whose ETag was sent in If-None-Match.",
    "headers": {"ETag": {"schema": {"type": "string"}}},
}


def entity_tag(media_type: str, body: bytes | memoryview) -> str:
    """The strong ETag of an answer: quoted, 128 bits of SHA-256 of its media type and body."""
    digest = hashlib.sha256(media_type.encode() + b"\n")
    digest.update(body)
    return f'"{digest.hexdigest()[:32]}"'


def _matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 §13.1.2: ``*``, or ``tag`` among the listed tags by weak comparison (``W/``
    ignored). Tags that are no tags of this service simply do not match."""
    if if_none_match is None:
        return False
    listed = [item.strip() for item in if_none_match.split(",")]
    return "*" in listed or tag in (item.removeprefix("W/") for item in listed)


def revalidated(request: Request, response: Response) -> Response:
    """``response`` with its ETag and ``Cache-Control: no-cache``, or 304 in its place when
    ``request``'s If-None-Match names that tag; other than a GET's 200 with a body in memory,
    ``response`` unchanged."""
    if (
        request.method != "GET"
        or response.status_code != 200
        or isinstance(response, StreamingResponse | FileResponse)
    ):
        return response
    response.headers["ETag"] = entity_tag(response.headers.get("content-type", ""), response.body)
    response.headers["Cache-Control"] = "no-cache"
    if not _matches(request.headers.get("if-none-match"), response.headers["ETag"]):
        return response
    kept = {name: value for name, value in response.headers.items() if name in _KEPT}
    return Response(status_code=304, headers=kept)


class RevalidatedRoute(APIRoute):
    """A route whose GET answers go through `revalidated`, and say so in the OpenAPI document."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        if "GET" in {method.upper() for method in kwargs.get("methods") or ()}:
            kwargs["responses"] = {304: _NOT_MODIFIED, **(kwargs.get("responses") or {})}
            extra = dict(kwargs.get("openapi_extra") or {})
            # include_router builds the route again from this one's responses and extra.
            others = [p for p in extra.get("parameters", []) if p != _OPENAPI_HEADER]
            kwargs["openapi_extra"] = {**extra, "parameters": [*others, _OPENAPI_HEADER]}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        answer = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return revalidated(request, await answer(request))

        return handler
