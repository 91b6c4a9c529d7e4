"""``limit``/``offset`` paging of the list answers (``GET /api/sweeps``, ``.../results``), with a
``Link`` header to the next and previous pages as GitHub's API gives.

Without ``limit`` a list answers every row from ``offset`` on, as it did before paging
existed: the pages and the scripts written then read whole lists, and a results download
(CSV, Parquet) is the whole table. ``limit`` is 1 to `MAX_LIMIT`. The body carries ``count``
(rows in this answer) and ``total`` (rows in the list); the links are relative to the
service, so they hold behind a proxy that rewrites the host.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request, Response

__all__ = ["MAX_LIMIT", "Page", "Paging", "set_links"]

MAX_LIMIT = 1000


@dataclass(frozen=True)
class Page:
    """Rows ``offset`` to ``offset + limit`` of a list; every row from ``offset`` on when
    ``limit`` is None."""

    limit: int | None
    offset: int

    def rows(self) -> slice:
        return slice(self.offset, None if self.limit is None else self.offset + self.limit)


def _page(
    limit: Annotated[
        int | None,
        Query(ge=1, le=MAX_LIMIT, description="Rows to answer at most; default: all of them."),
    ] = None,
    offset: Annotated[int, Query(ge=0, description="Rows to skip first.")] = 0,
) -> Page:
    return Page(limit=limit, offset=offset)


Paging = Annotated[Page, Depends(_page)]


def set_links(request: Request, response: Response, page: Page, total: int) -> None:
    """Set ``response``'s Link header to the pages after and before ``page`` of ``total`` rows,
    where there are such pages (none without a limit)."""
    if page.limit is None:
        return
    offsets = []
    if page.offset + page.limit < total:
        offsets.append((page.offset + page.limit, "next"))
    if page.offset > 0:
        # From past the end, the previous page is the last one.
        offsets.append((max(0, min(page.offset, total) - page.limit), "prev"))
    path = urllib.parse.quote(request.scope["path"])  # percent-encoded again, for the header
    links = []
    for offset, relation in offsets:
        query = request.url.include_query_params(limit=page.limit, offset=offset).query
        links.append(f'<{path}?{query}>; rel="{relation}"')
    if links:
        response.headers["Link"] = ", ".join(links)
