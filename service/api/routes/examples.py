"""``/api/examples``: the repository's example sweep files (``sweeps/*.yaml``), for the submit
page's "load example" button. Without a ``sweeps`` directory (an installed package) the list is
empty."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from service.api.schemas import Problem

router = APIRouter(prefix="/api/examples", tags=["examples"])

EXAMPLES = Path(__file__).resolve().parents[3] / "sweeps"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class ExamplesPublic(BaseModel):
    data: list[str]  # names, without ".yaml"
    count: int


def _names() -> list[str]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p.stem for p in EXAMPLES.glob("*.yaml") if _NAME.fullmatch(p.stem))


@router.get("", response_model=ExamplesPublic)
def list_examples() -> ExamplesPublic:
    """The names of the example sweep files."""
    names = _names()
    return ExamplesPublic(data=names, count=len(names))


@router.get(
    "/{name}",
    response_class=PlainTextResponse,
    responses={
        # The schema of what the YAML text parses to: a sweep file is a mapping.
        200: {"content": {"application/yaml": {"schema": {"type": "object"}}}},
        404: {"model": Problem},
    },
)
def get_example(name: str) -> PlainTextResponse:
    """One example sweep file, as YAML text."""
    # Only names listed from the directory are read, so the path cannot leave it.
    if name not in _names():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"name: no example sweep {name!r}; the examples are {', '.join(_names()) or 'none'}",
        )
    text = (EXAMPLES / f"{name}.yaml").read_text(encoding="utf-8")
    return PlainTextResponse(text, media_type="application/yaml; charset=utf-8")
