"""Database URLs: a secret kept out of files, pages and logs.

A database URL may carry a password (``postgresql+psycopg://user:PASSWORD@host/db``). Whatever
holds a URL for longer than a connection takes (a sweep file, ``sweep.json``, the ``sweeps``
table's stored spec, an API answer, a log line) holds either the URL with its password masked,
for people to read, or a reference to an environment variable, ``env:E2RNAS_DATABASE_URL``,
for programs to resolve when they connect. The web service submits its sweeps that way: the
URL travels in the job's environment, never in its spec, so ``GET /api/sweeps`` and the run
directory's files have nothing to leak.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from service.errors import ConfigError
from service.yamltext import excerpt

__all__ = [
    "DATABASE_URL_ENV",
    "ENV_PREFIX",
    "check_file_uri",
    "env_reference",
    "has_password",
    "masked_url",
    "resolve_url",
    "split_uri",
]

DATABASE_URL_ENV = "E2RNAS_DATABASE_URL"
ENV_PREFIX = "env:"
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def env_reference(variable: str = DATABASE_URL_ENV, field: str = "storage.database_url") -> str:
    """``env:VARIABLE``: a URL that is read from the environment when a store opens."""
    if not _VARIABLE.match(variable):
        raise ConfigError(
            f"{field}: {variable!r} is not an environment variable name; "
            "expected letters, digits and '_', e.g. env:E2RNAS_DATABASE_URL"
        )
    return f"{ENV_PREFIX}{variable}"


def resolve_url(
    url: str, field: str = "storage.database_url", what: str = "the database's SQLAlchemy URL"
) -> str:
    """The URL to connect to: ``url`` itself, or the value of the variable it references
    (ConfigError naming ``field`` when that variable is not set)."""
    if not url.startswith(ENV_PREFIX):
        return url
    variable = url.removeprefix(ENV_PREFIX)
    env_reference(variable, field)  # checks the name
    value = os.environ.get(variable, "").strip()
    if not value:
        raise ConfigError(
            f"{field}: {url} names the environment variable {variable!r}, which is not set "
            f"here; set it to {what}"
        )
    return value


def masked_url(url: str) -> str:
    """``url`` fit to show: its password replaced by ``***``; a reference as it is; text that
    is no URL at all as a placeholder, since it may hold a secret in a form nobody parses."""
    if url.startswith(ENV_PREFIX):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<a database URL that does not parse>"


def has_password(url: str) -> bool:
    """Whether ``url`` itself (not a reference) carries a password."""
    if url.startswith(ENV_PREFIX):
        return False
    try:
        return make_url(url).password is not None
    except (ArgumentError, ValueError):
        return True  # unknown form: treat it as secret


def split_uri(uri: str, fix: str, spaces: str = "holds spaces") -> urllib.parse.SplitResult:
    """``uri`` in its parts, or ValueError naming it and ending in ``fix``: white space (which
    ``urlsplit`` lets through) or a form ``urlsplit`` refuses."""
    if any(c.isspace() for c in uri):
        raise ValueError(f"{excerpt(uri)} {spaces}; {fix}")
    try:
        return urllib.parse.urlsplit(uri)
    except ValueError as error:
        raise ValueError(f"{excerpt(uri)} is not a valid URI ({error}); {fix}") from None


def check_file_uri(uri: str, parts: urllib.parse.SplitResult) -> None:
    """A ``file:`` URI names an absolute local path (ValueError otherwise)."""
    if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
        raise ValueError(f"{excerpt(uri)}: a file URI needs an absolute path, file:///abs/path")
