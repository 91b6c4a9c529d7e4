"""The web service's settings: one pydantic-settings class, from flags and ``E2RNAS_*`` variables.

Precedence: command-line flags, then environment variables (``E2RNAS_DATABASE_URL``,
``E2RNAS_RAY_ADDRESS``, ``E2RNAS_STORAGE``, ``E2RNAS_API_TOKEN``, ``E2RNAS_DATA_ROOTS``, ...),
then the defaults below.
Nothing reads the environment at import time: `load_settings` does, when the service starts.

Lists (``E2RNAS_ALLOWED_HOSTS``, ``E2RNAS_ALLOWED_ORIGINS``) are comma-separated.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.errors import ConfigError
from service.orchestration.dataroots import parse_roots

__all__ = ["MIN_PUBLIC_TOKEN_LENGTH", "ServiceSettings", "is_loopback", "load_settings"]

MIN_PUBLIC_TOKEN_LENGTH = 24  # a token guarding a public bind: ~140 bits as token_urlsafe(24)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("0.0.0.0", "::", "")


class ServiceSettings(BaseSettings):
    """Where the service listens, what it stores where, and which Ray it submits sweeps to."""

    model_config = SettingsConfigDict(env_prefix="E2RNAS_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)  # 0: any free port
    # None: a SQLite file under `storage`; or any SQLAlchemy URL (postgresql+psycopg://...).
    database_url: str | None = None
    # None: an embedded local Ray that the service starts and stops; else a cluster's
    # job-server address (http://HEAD:8265).
    ray_address: str | None = None
    # Run directories of the service's sweeps (a path every Ray node can read when the
    # cluster is not on this machine).
    storage: Path = Path("runs/service")
    # Mutating endpoints need "Authorization: Bearer <token>"; without one the service binds
    # only loopback addresses and accepts any local caller.
    api_token: SecretStr | None = None
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)  # a sweep file is a few kB
    max_trials: int = Field(default=1000, ge=1)  # per sweep submitted through the service
    poll_seconds: float = Field(default=2.0, gt=0)  # how often running sweeps are refreshed
    # A failing refresh is retried after poll_seconds, doubled with each failure in a row, up
    # to this many seconds.
    refresh_backoff_max_seconds: float = Field(default=60.0, gt=0)
    ray_num_cpus: int | None = Field(default=None, ge=1)  # embedded Ray only; None: all cores
    # The folders sweeps may read data from (data_root, imagefolder:); E2RNAS_DATA_ROOTS is
    # a list separated by ':'. None by default: only the built-in digits sets run.
    data_roots: Annotated[tuple[Path, ...], NoDecode] = ()

    @field_validator("data_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        return parse_roots(value) if isinstance(value, str) else value

    @field_validator("data_roots")
    @classmethod
    def _resolve_roots(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        return tuple(path.expanduser().resolve() for path in value)

    # Host headers answered (names or addresses, no port); None: the bind address, the
    # localhost names and, bound to every interface, this machine's host name. A page of
    # another site that rebinds its own name to this address sends its name: refused.
    allowed_hosts: Annotated[tuple[str, ...] | None, NoDecode] = None
    # Origins (scheme://host[:port]) besides the service's own that may send state-changing
    # requests, e.g. a TLS proxy's https://sweeps.example.org.
    allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    def hosts(self) -> frozenset[str]:
        """The Host names answered, lower case (``*`` in allowed_hosts: any)."""
        if self.allowed_hosts is not None:
            return frozenset(host.lower().strip("[]") for host in self.allowed_hosts)
        found = {*LOCAL_NAMES, self.host.lower()}
        if self.host in WILDCARDS:
            found.add(socket.gethostname().lower())
        return frozenset(found)

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.storage / 'service.db').resolve()}"

    def token(self) -> str | None:
        return self.api_token.get_secret_value() if self.api_token else None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(**flags: Any) -> ServiceSettings:
    """Settings from the environment, with the given non-None ``flags`` on top; checks that a
    service without a token binds only loopback."""
    given = {key: value for key, value in flags.items() if value is not None}
    try:
        settings = ServiceSettings(**given)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "settings"
        raise ConfigError(
            f"{field}: {first['msg']} (flag --{field.replace('_', '-')} or variable "
            f"E2RNAS_{field.upper()})"
        ) from None
    if settings.token() == "":
        raise ConfigError("api_token: empty; set E2RNAS_API_TOKEN to a secret or unset it")
    token = settings.token()
    if token is None and not is_loopback(settings.host):
        raise ConfigError(
            f"host: {settings.host!r} is reachable from other machines and no API token is "
            "set; set E2RNAS_API_TOKEN (clients send 'Authorization: Bearer <token>') or bind "
            "127.0.0.1"
        )
    if (
        token is not None
        and len(token) < MIN_PUBLIC_TOKEN_LENGTH
        and not is_loopback(settings.host)
    ):
        raise ConfigError(
            f"api_token: {len(token)} characters guard host {settings.host!r}, which other "
            f"machines reach; set E2RNAS_API_TOKEN to at least {MIN_PUBLIC_TOKEN_LENGTH} "
            "random characters (openssl rand -hex 32)"
        )
    return settings
