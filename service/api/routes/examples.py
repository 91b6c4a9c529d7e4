"""``/api/examples``: the example sweep files (``sweeps/*.yaml``), for the submit page's "load
example" button.

They are read as package data of ``service.api`` (``examples/``), so an installed wheel serves
them as a checkout does. In git ``service/api/examples`` is a link to the top-level ``sweeps/``,
where the README's commands find them, so each file is written once; building the wheel copies
the files behind the link (pyproject.toml's package data ``api/examples/*.yaml``).
"""

from __future__ import annotations

import re
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from service.api.schemas import Problem

router = APIRouter(prefix="/api/examples", tags=["examples"])

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


class ExamplesPublic(BaseModel):
    data: list[str]  # names, without ".yaml"
    count: int


def examples() -> dict[str, Traversable]:
    """The example sweep files by name (without ``.yaml``); none when the package has none."""
    folder = files("service.api") / "examples"
    if not folder.is_dir():
        return {}
    found = {
        entry.name.removesuffix(".yaml"): entry
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml") and entry.is_file()
    }
    return {name: found[name] for name in sorted(found) if _NAME.fullmatch(name)}


@router.get("", response_model=ExamplesPublic)
def list_examples() -> ExamplesPublic:
    """The names of the example sweep files."""
    names = list(examples())
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
    # Only files listed from the directory are read, so the path cannot leave it.
    found = examples()
    if name not in found:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"name: no example sweep {name!r}; the examples are {', '.join(found) or 'none'}",
        )
    text = found[name].read_text(encoding="utf-8")
    return PlainTextResponse(text, media_type="application/yaml; charset=utf-8")
