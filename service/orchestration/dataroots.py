"""The allowed data roots: the folders a sweep's datasets may be read from, when restricted.

A dataset named by path (``data_root`` for CIFAR and SVHN, ``imagefolder:<dir>``) is read by
the service's processes, and CIFAR's files are pickles: a sweep that points at a folder another
user can write makes the service read what they put there. The web service therefore reads
data only under the roots its operator lists (``E2RNAS_DATA_ROOTS``, paths separated by
``:``; none by default, so only the built-in ``digits`` sets run until roots are set); the
command line, run by the user themself, accepts any path unless the same variable is set.

A path is allowed when, with symbolic links resolved, it lies under one of the roots; with
roots set, a relative path is refused, since the folder it names depends on the current
directory of whichever process reads it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from search_core.datapaths import dataset_path, reads_data_root
from service.errors import ConfigError
from service.orchestration.points import (
    eval_config_for,
    grid_points,
    retrain_config_for,
    search_config_for,
)
from service.orchestration.spec import SweepSpec

__all__ = [
    "ROOTS_VARIABLE",
    "check_config_paths",
    "check_data_roots",
    "parse_roots",
    "roots_from_env",
]

ROOTS_VARIABLE = "E2RNAS_DATA_ROOTS"


def parse_roots(text: str) -> tuple[Path, ...]:
    """``/srv/data:/scratch/sets`` as resolved absolute paths (empty items skipped)."""
    return tuple(Path(item).expanduser().resolve() for item in text.split(os.pathsep) if item)


def roots_from_env(environ: Mapping[str, str] | None = None) -> tuple[Path, ...] | None:
    """The roots ``E2RNAS_DATA_ROOTS`` lists, or None when it is unset or empty (any path)."""
    text = (os.environ if environ is None else environ).get(ROOTS_VARIABLE, "").strip()
    return parse_roots(text) if text else None


def _check_path(field: str, path: Path, roots: Sequence[Path]) -> None:
    allowed = ", ".join(str(root) for root in roots) or "none"
    fix = f"the operator lists the allowed folders in {ROOTS_VARIABLE}"
    if not roots:
        raise ConfigError(
            f"{field}: {path} is a data folder, and no data roots are allowed here "
            f"(allowed data roots: none); only digits and digits-ood run until {fix}"
        )
    if not path.is_absolute():
        raise ConfigError(
            f"{field}: {str(path)!r} is a relative path; give an absolute path under one of "
            f"the allowed data roots ({allowed})"
        )
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        shown = path if resolved == path else f"{path} (that is, {resolved})"
        raise ConfigError(
            f"{field}: {shown} is outside the allowed data roots ({allowed}); put the data "
            f"under one of them, or {fix}"
        )


def check_config_paths(configs: Iterable[Any], roots: Sequence[Path]) -> None:
    """Raise ConfigError, naming ``data_root``, ``dataset`` or ``ood_dataset``, when a search
    or evaluation config would read a data folder outside every one of ``roots``."""
    for config in configs:
        for field in ("dataset", "ood_dataset"):
            name = getattr(config, field)
            path = dataset_path(name, config.data_root)
            if path is not None:
                _check_path("data_root" if reads_data_root(name) else field, path, roots)


def check_data_roots(spec: SweepSpec, roots: Sequence[Path]) -> None:
    """:func:`check_config_paths` for every trial of ``spec``: each grid point's search, its
    evaluation and a two-stage sweep's retrain (overrides may name other data, and an
    ``imagenet`` retrain reads ImageNet under the search's data_root)."""
    for point in grid_points(spec):
        search = search_config_for(spec, point)
        configs: list[Any] = [search]
        evaluation = eval_config_for(spec, search)
        if evaluation is not None:
            configs.append(evaluation)
        if spec.evaluation.retrain is not None:
            configs.append(retrain_config_for(spec, search))
        check_config_paths(configs, roots)
