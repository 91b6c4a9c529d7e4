"""``e2rnas serve``: the web service (REST API and pages) under uvicorn, logging in the
project's format at the command's ``--log-level`` (access lines at ``info``)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from service.cli.common import Commands
from service.errors import require_package

__all__ = ["add_serve"]

logger = logging.getLogger(__name__)


def add_serve(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the web service (REST API and web pages)",
        description=(
            "Serve the REST API (/api, schema at /docs) and the web pages. Flags override the "
            "E2RNAS_* environment variables (E2RNAS_DATABASE_URL, E2RNAS_RAY_ADDRESS, "
            "E2RNAS_STORAGE, E2RNAS_API_TOKEN, ...). Without E2RNAS_API_TOKEN only loopback "
            "addresses may be bound."
        ),
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in --storage)")
    parser.add_argument(
        "--ray-address", help="a cluster's job server, http://HEAD:8265 (default: embedded Ray)"
    )
    parser.add_argument("--storage", type=Path, help="run directories (default runs/service)")
    parser.set_defaults(handler=_serve)


# The web stack is the [web] extra: without it, one line that says how to install it.
WEB_PACKAGES = ("fastapi", "uvicorn", "pydantic_settings", "fastapi_offline")


def _serve(args: argparse.Namespace) -> int:
    for module in WEB_PACKAGES:
        require_package("serve", module, "web")
    from service.api.settings import load_settings

    settings = load_settings(
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        ray_address=args.ray_address,
        storage=args.storage,
    )
    import uvicorn

    from service.api import create_app
    from service.logs import uvicorn_log_config

    app = create_app(settings)
    logger.info("e2rnas service on http://%s:%s/", settings.host, settings.port)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(args.log_level),
        log_level=args.log_level,
    )
    return 0
