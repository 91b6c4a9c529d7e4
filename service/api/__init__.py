"""The web service: a FastAPI app over the sweep layer (REST API under ``/api``, web pages)."""

from __future__ import annotations

from service.api.main import create_app

__all__ = ["create_app"]
