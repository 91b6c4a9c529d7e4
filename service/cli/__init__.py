"""The ``e2rnas`` command line: one parser, one module per command group, one handler each.

``search``, ``evaluate`` and ``count`` (:mod:`service.cli.search`) run the search core on one
configuration; ``sweep run|resume|status|submit`` (:mod:`service.cli.sweep`) run a sweep file on
Ray Tune or submit it as a Ray Job; ``pareto``, ``export`` and ``report``
(:mod:`service.cli.results`) read a finished sweep, ``replay`` (:mod:`service.cli.replay`)
replays one through an early-stopping scheduler; ``serve`` (:mod:`service.cli.serve`) starts
the web service; ``completion`` (:mod:`service.cli.completion`) prints the shell's completion
script. Every error the project raises on purpose
(:class:`~search_core.errors.E2RNASError`) ends the command with one line
``e2rnas: error: ...`` on stderr and the exit code of :data:`service.errors.ERRORS`, never a
traceback; an OSError exits with :data:`~service.errors.EXIT_OS_ERROR` and Ctrl-C with
:data:`~service.errors.EXIT_INTERRUPTED`. Every ``--help`` ends with the table of exit codes,
:data:`service.errors.EXIT_STATUSES`. ``--log-level`` sets how much the command logs on
stderr (one line per event).

A new subcommand adds an ``add_<name>`` parser builder to :data:`COMMANDS` and a handler it
sets as the parser's default.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from collections.abc import Callable

from service.cli.common import (
    PROG,
    Commands,
    Handler,
    Parser,
    SearchProgress,
    config_layers,
    load_eval_config,
    load_search_config,
    parse_setting,
    read_config_file,
)
from service.cli.completion import add_completion
from service.cli.replay import add_replay
from service.cli.results import add_export, add_pareto, add_report, add_robust
from service.cli.search import add_count, add_evaluate, add_search
from service.cli.serve import add_serve
from service.cli.sweep import add_sweep
from service.errors import EXIT_INTERRUPTED, EXIT_OS_ERROR, E2RNASError, exit_code
from service.logs import LEVELS, configure_logging

__all__ = [
    "COMMANDS",
    "PROG",
    "SearchProgress",
    "build_parser",
    "config_layers",
    "load_eval_config",
    "load_search_config",
    "main",
    "parse_setting",
    "read_config_file",
]

COMMANDS: tuple[Callable[[Commands], None], ...] = (
    add_search,
    add_evaluate,
    add_count,
    add_sweep,
    add_pareto,
    add_export,
    add_robust,
    add_report,
    add_replay,
    add_serve,
    add_completion,
)


def _version() -> str:
    try:
        return importlib.metadata.version("e2rnas-sweeps")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog=PROG,
        description="E2RNAS: search for accurate, small and robust architectures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--log-level",
        choices=LEVELS,
        default="info",
        help="how much to log on stderr, one line per event (default: info)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(commands)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one ``e2rnas`` command; the exit code is returned, never raised, except by argparse."""
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level)
    handler: Handler = args.handler
    try:
        return handler(args)
    except E2RNASError as exc:
        return _fail(str(exc), exit_code(exc))
    except OSError as exc:  # writing the outputs: a full disk, a read-only directory
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_OS_ERROR)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
