"""Logging: the standard library's, one line per event, each with the sweep it concerns.

Modules log through ``logging.getLogger(__name__)``; nothing here runs at import time.
:func:`configure_logging` (called by the command line with ``--log-level``) installs one
handler on stderr whose lines read::

    2026-11-30 12:00:00,000 INFO service.orchestration.tuner [sweep quickstart-1a2b3c4d] ...

The sweep id comes from :func:`sweep_context` (a context variable, so concurrent requests
and the service's refresh loop each log their own sweep), or ``-`` outside any sweep. The web
service hands :func:`uvicorn_log_config` to uvicorn so that its access and error lines take the
same form and level.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "LEVELS",
    "configure_logging",
    "sweep_context",
    "uvicorn_log_config",
]

LEVELS = ("debug", "info", "warning", "error")
FORMAT = "%(asctime)s %(levelname)s %(name)s [sweep %(sweep_id)s] %(message)s"
_SWEEP_ID: contextvars.ContextVar[str] = contextvars.ContextVar("e2rnas_sweep_id", default="-")


class SweepIdFilter(logging.Filter):
    """Puts the current sweep id on every record as ``sweep_id`` (never filters one out)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "sweep_id"):
            record.sweep_id = _SWEEP_ID.get()
        return True


@contextmanager
def sweep_context(sweep_id: str) -> Iterator[None]:
    """Log lines inside the block name ``sweep_id``."""
    token = _SWEEP_ID.set(sweep_id)
    try:
        yield
    finally:
        _SWEEP_ID.reset(token)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on ``sys.stderr`` as it is when a line is logged, not as it was when logging
    was configured: a caller that replaces stderr afterwards (``contextlib.redirect_stderr``,
    a notebook, pytest's capture) gets the lines, and one that closes its replacement leaves
    no handler writing to a closed file."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> Any:
        return sys.stderr


def _level(level: str | int) -> int:
    if isinstance(level, int):
        return level
    return int(logging.getLevelName(level.upper()))


def configure_logging(level: str | int = "info") -> None:
    """One stderr handler on the root logger at ``level``, in the format above (writing to the
    current ``sys.stderr``); calling it again replaces the handler instead of adding another."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_e2rnas", False):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(SweepIdFilter())
    handler._e2rnas = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(_level(level))
    # Libraries that log a line per request or per poll stay at warning unless asked; Alembic
    # too, whose lines per migration step the store sums up in one.
    quiet = max(_level(level), logging.WARNING)
    for name in ("urllib3", "filelock", "asyncio", "matplotlib", "alembic"):
        logging.getLogger(name).setLevel(quiet)


def uvicorn_log_config(level: str | int = "info") -> dict[str, Any]:
    """uvicorn's ``log_config``: its loggers in the format above, at ``level``."""
    name = logging.getLevelName(_level(level))
    handler = {
        "class": "logging.StreamHandler",
        "formatter": "e2rnas",
        "filters": ["sweep_id"],
        "stream": "ext://sys.stderr",
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"sweep_id": {"()": f"{__name__}.SweepIdFilter"}},
        "formatters": {"e2rnas": {"format": FORMAT}},
        "handlers": {"default": handler},
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": name, "propagate": False},
            "uvicorn.error": {"handlers": ["default"], "level": name, "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": name, "propagate": False},
        },
    }
