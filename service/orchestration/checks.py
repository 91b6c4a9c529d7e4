"""The checks of a sweep spec that need the search core, run when the spec is built.

Every grid point must build a valid search config, every override must be a known key with a
good value, the evaluation must fit the strategy, the trial count must fit ``max_trials`` and
the report's axes must be plottable columns. Each failure is one
:class:`~search_core.errors.ConfigError` naming the dotted path of the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search_core.config import PRESETS, SearchConfig, preset
from search_core.eval_config import EVAL_PRESETS, eval_preset
from service.errors import ConfigError
from service.orchestration.points import (
    base_overrides,
    check_axes,
    evaluation_preset,
    grid_points,
    plottable_columns,
    search_config_for,
    trial_count,
)
from service.orchestration.spec import BOUND_KEYS
from service.yamltext import excerpt

if TYPE_CHECKING:
    from service.orchestration.spec import SweepSpec

__all__ = ["check_spec"]


def _relative(message: str, key: str) -> str:
    """A core error message without its leading ``key:``, to sit under a longer path."""
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def check_spec(spec: SweepSpec) -> None:
    """Raise ConfigError, naming the field, for the first problem of ``spec``."""
    search_preset = spec.search.preset
    if search_preset not in PRESETS:
        raise ConfigError(
            f"search.preset: unknown preset {excerpt(search_preset)}; expected one of "
            + ", ".join(PRESETS)
        )
    for key in ("dataset", "ood_dataset"):
        if getattr(spec, key) is not None and key in spec.search.overrides:
            raise ConfigError(
                f"search.overrides.{key}: also set at the top level ({key}: "
                f"{getattr(spec, key)}); set it in one place"
            )
    for key, value in spec.search.overrides.items():
        _check_value(f"search.overrides.{key}", search_preset, {}, key, value)
    for key in ("dataset", "ood_dataset"):
        if getattr(spec, key) is not None:
            _check_value(key, search_preset, {}, key, getattr(spec, key))
    base = base_overrides(spec)
    try:
        preset(search_preset, base)
    except ConfigError as error:
        raise ConfigError(f"search.overrides: {error}") from None

    _check_evaluation(spec)
    _check_grid(spec, base)

    count = trial_count(spec)
    if count > spec.max_trials:
        per_point = (
            f" ({spec.strategy.num_samples} samples per grid point)"
            if spec.strategy.kind == "optuna"
            else ""
        )
        raise ConfigError(
            f"max_trials: the sweep has {count} trials{per_point}, over max_trials = "
            f"{spec.max_trials}; shrink the grid or raise max_trials"
        )
    for point in grid_points(spec):
        try:
            search_config_for(spec, point)
        except ConfigError as error:
            raise ConfigError(f"grid: the point {point}: {error}") from None
    choices = plottable_columns(spec)
    check_axes(spec.report.projection_2d, 2, "report.projection_2d", choices)
    check_axes(spec.report.projection_3d, 3, "report.projection_3d", choices)


def _check_value(path: str, name: str, base: Mapping[str, Any], key: str, value: Any) -> None:
    try:
        preset(name, {**base, key: value})
    except ConfigError as error:
        raise ConfigError(f"{path}: {_relative(str(error), key)}") from None


def _check_evaluation(spec: SweepSpec) -> None:
    evaluation = spec.evaluation
    if evaluation.preset is not None and evaluation.preset not in EVAL_PRESETS:
        raise ConfigError(
            f"evaluation.preset: unknown preset {excerpt(evaluation.preset)}; expected one of "
            + ", ".join(EVAL_PRESETS)
        )
    name = evaluation_preset(spec)
    for key, value in evaluation.overrides.items():
        try:
            eval_preset(name, {key: value})
        except ConfigError as error:
            raise ConfigError(f"evaluation.overrides.{key}: {_relative(str(error), key)}") from None
    if evaluation.mode == "none" and spec.strategy.kind == "optuna":
        raise ConfigError(
            "strategy.kind: optuna improves the front metrics, which evaluation.mode none "
            "does not measure; choose proxy or retrain"
        )


def _check_grid(spec: SweepSpec, base: Mapping[str, Any]) -> None:
    fields = set(SearchConfig.__dataclass_fields__)
    if spec.strategy.kind == "grid":
        missing = [key for key in BOUND_KEYS if key not in spec.grid]
        if missing:
            raise ConfigError(
                f"grid: no {' or '.join(missing)}; a grid sweep lists the lower bounds it tries, "
                "e.g. L: [2.5, 3.5]"
            )
    for key, values in spec.grid.items():
        path = f"grid.{key}"
        if key not in fields:
            _check_value(path, spec.search.preset, base, key, None)
        if spec.strategy.kind == "optuna" and key in BOUND_KEYS:
            raise ConfigError(
                f"{path}: optuna samples {key} in strategy.{key}; leave it out of the grid"
            )
        if not values:
            raise ConfigError(f"{path}: expected at least one value, got []")
        for i, value in enumerate(values):
            if not isinstance(value, bool | int | float | str):
                raise ConfigError(
                    f"{path}[{i}]: expected a number, string or boolean, got {excerpt(value)}"
                )
            if key in BOUND_KEYS and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"{path}[{i}]: expected a bound >= 0, got {excerpt(value)}")
            _check_value(f"{path}[{i}]", spec.search.preset, base, key, value)
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ConfigError(
                f"{path}: repeated value {excerpt(repeated[0])}; list each value once"
            )
