"""What the ``e2rnas`` subcommands share: the parser class whose help ends with the exit
statuses, settings layered preset < ``--config`` < ``--set``, the
``--preset/--config/--set/--out`` arguments, progress bars, and messages for Ctrl-C.

A search's or an evaluation's configuration is layered, preset < ``--config`` file <
``--set KEY=VALUE``; the layers are merged into one mapping and checked as a whole by
:func:`search_core.config.preset` or :func:`search_core.eval_config.eval_preset`, and both read
their data before they create the output directory, so bad input leaves nothing behind.
"""

from __future__ import annotations

import argparse
import functools
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import shtab
import yaml
from tqdm import tqdm

from search_core.config import PRESETS, SearchConfig, preset
from search_core.eval_config import EVAL_PRESETS, EvalConfig, eval_preset
from service.errors import EXIT_INTERRUPTED, EXIT_STATUSES, CommandLineError
from service.orchestration.dataroots import check_config_paths, roots_from_env
from service.yamltext import read_yaml, yaml_problem

__all__ = [
    "DEFAULT_PRESET",
    "PROG",
    "CommandLineError",
    "Commands",
    "Handler",
    "HelpFormatter",
    "Parser",
    "SearchProgress",
    "add_settings_arguments",
    "check_env_roots",
    "check_out",
    "config_layers",
    "exit_status_help",
    "interrupted",
    "load_eval_config",
    "load_search_config",
    "objectives_arg",
    "parse_setting",
    "read_config_file",
    "removed_on_failure",
]

PROG = "e2rnas"
DEFAULT_PRESET = "paper"

Handler = Callable[[argparse.Namespace], int]
# argparse's subparsers type is private and generic only in its stubs, so it is named by string.
Commands: TypeAlias = "argparse._SubParsersAction[Parser]"


# -- the parser: exit statuses in every --help, paths completed by the shell ---------------


@functools.cache
def exit_status_help() -> str:
    """The epilog of every ``--help``: one row per code of :data:`service.errors.EXIT_STATUSES`."""
    rows = "\n".join(f"  {code:<5}{meaning}" for code, meaning in EXIT_STATUSES)
    return f"exit status:\n{rows}"


class HelpFormatter(argparse.HelpFormatter):
    """argparse's own, except that a text of several lines (the exit statuses) keeps its lines,
    each wrapped to the terminal under its own indentation, so the table stays a table; the
    one-line descriptions are wrapped as argparse wraps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        lines = []
        for line in text.splitlines():
            # A row's continuation lines start under its meaning, past the code.
            hanging = re.match(r"\s*(\d+\s+)?", line)
            under = " " * (hanging.end() if hanging else 0)
            lines.append(
                textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + under)
            )
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """The ``e2rnas`` parser: its help ends with the exit statuses, and an argument of
    ``type=Path`` completes file names in the shell (shtab's ``complete`` hook).

    argparse makes a subcommand's parser of its parent's class, so every subcommand's
    ``--help`` and arguments get the same without a word in its module.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("epilog", exit_status_help())
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if kwargs.get("type") is Path:
            action.complete = shtab.FILE  # type: ignore[attr-defined]
        return action


# -- configuration: preset < --config file < --set ----------------------------------------


def parse_setting(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, value); VALUE is read as YAML and an empty VALUE is None."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CommandLineError(f"--set {item!r}: expected KEY=VALUE, e.g. --set L=2.5")
    try:
        value = read_yaml(text)
    except yaml.YAMLError as exc:
        raise CommandLineError(
            f"--set {key}: cannot read {text!r} as a YAML value ({yaml_problem(exc)}); "
            "expected a number, true/false or a string (quote it)"
        ) from None
    return key, value


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of config keys in a YAML file (an empty file is an empty mapping)."""
    expected = "expected a YAML mapping of config keys, e.g. 'L: 2.5'"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandLineError(
            f"--config {path}: cannot read the file ({reason}); {expected}"
        ) from None
    try:
        values = read_yaml(text)
    except yaml.YAMLError as exc:
        raise CommandLineError(
            f"--config {path}: malformed YAML at {yaml_problem(exc)}; {expected}"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CommandLineError(f"--config {path}: got a {type(values).__name__}; {expected}")
    for key in values:
        if not isinstance(key, str):
            raise CommandLineError(f"--config {path}: key {key!r} is not a name; {expected}")
    return values


def config_layers(
    preset_name: str | None,
    config_file: Path | None,
    settings: Sequence[str],
    presets: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """The preset's name and the overrides on it: the config file's keys, then ``--set``.

    The preset is ``preset_name``, else the file's ``preset:`` key, else ``paper``.
    """
    values = read_config_file(config_file) if config_file is not None else {}
    file_preset = values.pop("preset", None)
    if file_preset is not None and not isinstance(file_preset, str):
        raise CommandLineError(
            f"--config {config_file}: preset: got {file_preset!r}; "
            f"expected one of {', '.join(presets)}"
        )
    if preset_name is None:
        preset_name = file_preset if file_preset is not None else DEFAULT_PRESET
    for item in settings:
        key, value = parse_setting(item)
        values[key] = value
    return preset_name, values


def load_search_config(
    preset_name: str | None, config_file: Path | None, settings: Sequence[str]
) -> SearchConfig:
    """The checked search configuration: a preset, then the config file, then ``--set``."""
    return preset(*config_layers(preset_name, config_file, settings, list(PRESETS)))


def load_eval_config(
    preset_name: str | None, config_file: Path | None, settings: Sequence[str]
) -> EvalConfig:
    """The checked evaluation configuration: a preset, then the config file, then ``--set``."""
    return eval_preset(*config_layers(preset_name, config_file, settings, list(EVAL_PRESETS)))


def check_env_roots(configs: Iterable[Any]) -> None:
    """With ``E2RNAS_DATA_ROOTS`` set, refuse configs whose data lies outside those roots;
    unset, the user's own command reads any path."""
    roots = roots_from_env()
    if roots is not None:
        check_config_paths(configs, roots)


def check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CommandLineError(f"--out {out}: is a file; expected a directory for the outputs")


@contextmanager
def removed_on_failure(directory: Path, keeps: str) -> Iterator[None]:
    """Remove ``directory`` when the body fails (a full disk, bad data), if this command made
    it and left no ``keeps`` file in it: a failed first start leaves nothing behind, while a
    directory with something to resume, or one the user made, stays."""
    made = not directory.exists()
    try:
        yield
    except Exception:
        if made and not (directory / keeps).exists():
            shutil.rmtree(directory, ignore_errors=True)
        raise


def interrupted(checkpoint: Path) -> int:
    if checkpoint.exists():
        kept = f"the last checkpoint {checkpoint} is kept"
    else:
        kept = "no epoch had finished, so there is no checkpoint yet"
    print(
        f"{PROG}: interrupted; {kept}; run the same command with --resume to continue",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


# -- arguments and progress --------------------------------------------------------------


def add_settings_arguments(
    parser: argparse.ArgumentParser, presets: Iterable[str], example: str
) -> None:
    """--preset, --config, --set and --out, shared by the commands that take settings."""
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help=f"base settings: {', '.join(presets)} (default: the config file's preset:, "
        f"else {DEFAULT_PRESET})",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML mapping of config keys")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="KEY=VALUE",
        help=f"override one config key, VALUE read as YAML (repeatable), e.g. --set {example}",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")


def objectives_arg(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CommandLineError(f"--objectives {text!r}: expected names separated by commas")
    return names


class SearchProgress:
    """A tqdm bar on stderr over every step of a search or a retrain, and the size after each
    epoch of a search.

    The bar is created at the first step, when the number of steps per epoch is known (and the
    data has loaded), so an error before the training starts prints nothing but itself.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.bar: Any = None  # tqdm ships no type hints

    def __call__(self, epoch: int, step: int, steps_per_epoch: int) -> None:
        done = epoch * steps_per_epoch + step
        if self.bar is None:
            self.bar = tqdm(
                total=self.epochs * steps_per_epoch,
                initial=done - 1,  # a resumed search starts part of the way
                file=sys.stderr,
                unit="step",
                dynamic_ncols=True,
            )
        self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)
        self.bar.update(done - self.bar.n)

    def report(self, record: dict[str, Any], checkpoint_dir: Path) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                params_m=f"{record['params_m']:.4g}", flops_m=f"{record['flops_m']:.4g}"
            )

    def __enter__(self) -> SearchProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()
