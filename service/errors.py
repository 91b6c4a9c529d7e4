"""The service's exceptions, and the one table that maps each to an exit code and an HTTP status.

Every exception the service raises on purpose derives from
:class:`search_core.errors.E2RNASError` and carries one line that names the field or file,
the bad value and what was expected. The command line turns it into ``e2rnas: error: ...``
and the exit code of :data:`ERRORS`; the REST API into an RFC 9457 problem
(``application/problem+json``, the message in ``detail``) with the HTTP status of the same
table. Nothing else decides either number.

:data:`EXIT_STATUSES` gives each exit code the command line can end with one meaning, in the
words every ``e2rnas ... --help`` prints: a script can then tell a bad argument from failed
trials, a full disk or Ctrl-C by the code alone.
"""

from __future__ import annotations

import importlib.util

from search_core.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    E2RNASError,
    GenotypeError,
)

__all__ = [
    "ERRORS",
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OS_ERROR",
    "EXIT_STATUSES",
    "CheckpointError",
    "CommandLineError",
    "ConfigError",
    "DatasetError",
    "E2RNASError",
    "GenotypeError",
    "HostNotAllowedError",
    "JobError",
    "MediaTypeError",
    "ObjectiveError",
    "OriginNotAllowedError",
    "RayAddressError",
    "RunDirLockedError",
    "StorageError",
    "StoreError",
    "SweepConflictError",
    "SweepStateError",
    "SweepSyntaxError",
    "TrialResultError",
    "UnknownSweepError",
    "exit_code",
    "http_status",
    "require_package",
]

EXIT_FAILED = 1  # the command ran, but what it ran failed: a sweep's trials, a Ray Job
# Every E2RNASError: the input is wrong, the message says how; argparse's usage error is 2 too.
EXIT_BAD_INPUT = 2
EXIT_OS_ERROR = 74  # sysexits.h's EX_IOERR: a file could not be read or written (a full disk)
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

# (exit code, meaning): every code the command line ends with, once; its --help prints them.
EXIT_STATUSES: tuple[tuple[int, str], ...] = (
    (0, "success"),
    (
        EXIT_FAILED,
        "failed: trials of 'sweep run' or 'sweep resume' failed, or 'sweep status' found "
        "the sweep or its Ray Job failed",
    ),
    (
        EXIT_BAD_INPUT,
        "usage error: a bad argument, file or value; one line 'e2rnas: error: ...' names it",
    ),
    (
        EXIT_OS_ERROR,
        "OS error: a file could not be read or written (a full disk, a read-only directory)",
    ),
    (
        EXIT_INTERRUPTED,
        "interrupted: Ctrl-C, or a sweep stopped before its end; 'sweep resume' or "
        "--resume continues it",
    ),
)


class SweepSyntaxError(ConfigError):
    """The sweep file is not YAML at all (as opposed to YAML with a bad field)."""


class ObjectiveError(ConfigError):
    """An objective name is unknown or repeated, or a direction is not min or max."""


class CommandLineError(E2RNASError, ValueError):
    """An argument or a file named on the command line is malformed."""


class RayAddressError(E2RNASError, ValueError):
    """A Ray address is malformed or nothing answers there."""


class SweepStateError(E2RNASError, ValueError):
    """A run directory does not hold a sweep, or holds one in a state that forbids the action."""


class StorageError(E2RNASError, ValueError):
    """The sweep's storage URI cannot be reached or read."""


class TrialResultError(E2RNASError, ValueError):
    """A trial's metrics file exists but cannot be read, or does not hold what it should."""


class JobError(E2RNASError):
    """Ray refused a job request; the message carries Ray's reason."""


class StoreError(E2RNASError):
    """The database refused a write or a read; the message carries the database's reason."""


class UnknownSweepError(E2RNASError, KeyError):
    """No sweep has the given id (``sweep_id``)."""

    def __init__(self, message: str, sweep_id: str | None = None) -> None:
        super().__init__(message)
        self.sweep_id = sweep_id

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; this error's argument is a sentence.
        return str(self.args[0]) if self.args else ""


class SweepConflictError(E2RNASError):
    """The request does not fit the sweep's state (e.g. cancelling a finished sweep)."""


class RunDirLockedError(E2RNASError):
    """Another driver (``sweep run``/``resume``) holds the run directory's lock."""


class HostNotAllowedError(E2RNASError):
    """The request's Host header names no host the service answers for (DNS rebinding)."""


class OriginNotAllowedError(E2RNASError):
    """A state-changing request came from a page of another origin (cross-site submission)."""


class MediaTypeError(E2RNASError):
    """A request body's Content-Type is missing or not one the API reads."""


ERRORS: tuple[tuple[type[E2RNASError], int, int], ...] = (
    # (exception, exit code of the command line, HTTP status of the API); the first match wins.
    (UnknownSweepError, EXIT_BAD_INPUT, 404),
    (SweepConflictError, EXIT_BAD_INPUT, 409),
    (RunDirLockedError, EXIT_BAD_INPUT, 409),
    (HostNotAllowedError, EXIT_BAD_INPUT, 400),
    (OriginNotAllowedError, EXIT_BAD_INPUT, 403),
    (MediaTypeError, EXIT_BAD_INPUT, 415),
    (SweepSyntaxError, EXIT_BAD_INPUT, 400),
    (ConfigError, EXIT_BAD_INPUT, 422),
    (GenotypeError, EXIT_BAD_INPUT, 422),
    (JobError, EXIT_BAD_INPUT, 503),
    (StoreError, EXIT_BAD_INPUT, 503),
    (E2RNASError, EXIT_BAD_INPUT, 500),
)


def _row(error: E2RNASError) -> tuple[int, int]:
    for kind, code, status in ERRORS:
        if isinstance(error, kind):
            return code, status
    raise AssertionError(f"{type(error).__name__} is an E2RNASError, so ERRORS matches it")


def exit_code(error: E2RNASError) -> int:
    """The command line's exit code for ``error``."""
    return _row(error)[0]


def http_status(error: E2RNASError) -> int:
    """The REST API's HTTP status for ``error``."""
    return _row(error)[1]


def require_package(field: str, module: str, extra: str) -> None:
    """ConfigError naming ``field`` and the install fix when ``module``, which only the
    project's optional ``extra`` installs, is missing (``pip install e2rnas-sweeps`` alone
    searches and sweeps; the web service, PostgreSQL and the trackers are extras)."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"{field}: needs the Python package {module!r}, which is not installed here; "
            f"pip install 'e2rnas-sweeps[{extra}]'"
        )
