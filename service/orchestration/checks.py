"""The checks of a sweep spec that need the search core, run when the spec is built.

Every grid point must build a valid search config, every override must be a known key with a
good value, the evaluation must fit the strategy, the trial count must fit ``max_trials`` and
the report's axes must be plottable columns. Each failure is one
:class:`~search_core.errors.ConfigError` naming the dotted path of the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from search_core.config import BOUND_LIMITS, PRESETS, SearchConfig, preset
from search_core.eval_config import EVAL_PRESETS, eval_preset
from service.errors import ConfigError
from service.objectives import PAPER_METRICS, SEARCH_OBJECTIVES
from service.orchestration.points import (
    VARIANT,
    base_overrides,
    check_axes,
    evaluation_preset,
    grid_points,
    plottable_columns,
    retrain_preset,
    search_config_for,
    search_epochs,
    trial_count,
)
from service.orchestration.spec import BOUND_KEYS, NAME_PATTERN, is_uri
from service.yamltext import excerpt

if TYPE_CHECKING:
    from service.orchestration.spec import SweepSpec

__all__ = ["check_spec", "check_trial_count"]


def _relative(message: str, key: str) -> str:
    """A core error message without its leading ``key:``, to sit under a longer path."""
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def check_spec(spec: SweepSpec, service_cap: int | None = None) -> None:
    """Raise ConfigError, naming the field, for the first problem of ``spec``.

    The cheap checks come first: the trial count (a product of list lengths) against the
    file's ``max_trials`` and ``service_cap``, then each grid list's values and repeats in
    linear time; search configs are built last, one per distinct grid value and one per
    point, so their number is bounded by the caps.
    """
    check_trial_count(spec, service_cap)
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
                f"{excerpt(getattr(spec, key))}); set it in one place"
            )
    for key, value in spec.search.overrides.items():
        _check_value(f"search.overrides.{key}", search_preset, {}, key, value)
    top = {key: getattr(spec, key) for key in ("dataset", "ood_dataset")}
    # Checked as a pair: the core's message names the top-level key itself.
    preset(search_preset, {key: value for key, value in top.items() if value is not None})
    base = base_overrides(spec)
    try:
        preset(search_preset, base)
    except ConfigError as error:
        raise ConfigError(f"search.overrides: {error}") from None

    _check_evaluation(spec)
    _check_grid(spec, base)
    for point in grid_points(spec):
        try:
            search_config_for(spec, point)
        except ConfigError as error:
            raise ConfigError(f"grid: the point {excerpt(point)}: {error}") from None
    _check_scheduler(spec)
    choices = plottable_columns(spec)
    check_axes(spec.report.projection_2d, 2, "report.projection_2d", choices)
    check_axes(spec.report.projection_3d, 3, "report.projection_3d", choices)


def check_trial_count(spec: SweepSpec, service_cap: int | None = None) -> None:
    """The sweep's trial count, counted without expanding the grid, within its own
    ``max_trials`` and a service's ``service_cap``."""
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
    if service_cap is not None and count > service_cap:
        raise ConfigError(
            f"grid: {count} trials exceed this service's cap of {service_cap} "
            "(E2RNAS_MAX_TRIALS); split the sweep or ask the operator to raise the cap"
        )


def _check_value(
    path: str, preset_name: str, base: Mapping[str, Any], key: str, value: Any
) -> None:
    """``key: value`` over the preset and the ``base`` overrides, built as a trial's config is
    (a ``backbone`` brings its own schedule), its error relative to ``path``."""
    try:
        preset(preset_name, {**base, key: value})
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
    if evaluation.mode == "two_stage":
        _check_two_stage(spec)
    if evaluation.mode == "none" and spec.strategy.kind == "optuna":
        raise ConfigError(
            "strategy.kind: optuna improves the front metrics, which evaluation.mode none "
            "does not measure; choose proxy or retrain"
        )


def _check_scheduler(spec: SweepSpec) -> None:
    """A rung must fall inside the search (after its first epoch that measures what it
    ranks), or the scheduler could never stop a trial, or would rank trials on nothing."""
    scheduler = spec.scheduler
    if scheduler.kind == "fifo":
        return
    epochs = search_epochs(spec)
    if scheduler.grace >= epochs:
        raise ConfigError(
            f"scheduler.grace_period: {scheduler.grace} is not below the search's {epochs} "
            f"epochs, so no trial could be stopped; expected 1 to {epochs - 1}"
            if epochs > 1
            else "scheduler.grace_period: the search runs 1 epoch, so no trial could be "
            "stopped; use kind fifo or search for more epochs"
        )
    losses = [name for name in scheduler.ranked if name in SEARCH_OBJECTIVES]
    if not losses:
        return
    bounds: dict[str, Any] = {}
    if spec.strategy.kind == "optuna":
        bounds = {key: getattr(spec.strategy, key).low for key in BOUND_KEYS}
    configs = [search_config_for(spec, {**bounds, **point}) for point in grid_points(spec)]
    for name in losses:
        if any(name.removesuffix("_loss") not in config.objectives for config in configs):
            raise ConfigError(
                f"scheduler.metrics: {name} is not among the search's objectives (its "
                f"'objectives' leave out {name.removesuffix('_loss')}), so no epoch reports "
                "it; rank on the objectives the search has"
            )
    warmup = max(config.arch_warmup_epochs for config in configs)
    if scheduler.grace <= warmup:
        raise ConfigError(
            f"scheduler.grace_period: {scheduler.grace} falls in the search's warm-up "
            f"(arch_warmup_epochs {warmup}), whose epochs measure no {losses[0]}; expected "
            f"a grace period above {warmup}, or rank on params_m and flops_m alone"
        )


def _check_two_stage(spec: SweepSpec) -> None:
    """The proxy's and the retrain's overrides are known keys with good values, the retrain's
    preset exists, the objectives have proxy measures to choose the retrains on, and the run
    directory is shared (the second stage reads the first's genotypes there)."""
    evaluation = spec.evaluation
    retrain = evaluation.retrain
    assert retrain is not None  # the schema requires it
    if retrain.preset is not None and retrain.preset not in EVAL_PRESETS:
        raise ConfigError(
            f"evaluation.retrain.preset: unknown preset {excerpt(retrain.preset)}; expected one "
            "of " + ", ".join(EVAL_PRESETS)
        )
    stages = (("proxy", evaluation.proxy), ("retrain", retrain))
    for stage, section in stages:
        name = retrain_preset(spec) if stage == "retrain" else "paper"
        for key, value in (section.overrides if section is not None else {}).items():
            try:
                eval_preset(name, {key: value})
            except ConfigError as error:
                raise ConfigError(
                    f"evaluation.{stage}.overrides.{key}: {_relative(str(error), key)}"
                ) from None
    paper = [name for name in spec.strategy.objectives or () if name in PAPER_METRICS]
    if paper:
        raise ConfigError(
            f"strategy.objectives: {', '.join(paper)}: a two_stage evaluation chooses its "
            "retrains on the proxy's measures of the front metrics (proxy_*), and keeps none "
            "of the paper-protocol ones; use evaluation mode proxy or retrain for them"
        )
    if is_uri(spec.storage.path):
        raise ConfigError(
            f"storage.path {excerpt(spec.storage.path)}: a two_stage evaluation retrains the "
            "genotypes of the run directory, which a storage URI does not share with the "
            "trials; use a shared directory, or evaluation mode proxy or retrain"
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
    _check_variants(spec, base)
    for key, values in spec.grid.items():
        path = f"grid.{key}"
        if key == VARIANT:
            continue
        if key not in fields:
            _check_value(path, spec.search.preset, base, key, None)
        if spec.strategy.kind == "optuna" and key in BOUND_KEYS:
            raise ConfigError(
                f"{path}: optuna samples {key} in strategy.{key}; leave it out of the grid"
            )
        if not values:
            raise ConfigError(f"{path}: expected at least one value, got []")
        for i, value in enumerate(values):
            _check_scalar(path, i, key, value)
        _check_distinct(path, values)
        for i, value in enumerate(values):
            _check_value(f"{path}[{i}]", spec.search.preset, base, key, value)


def _check_variants(spec: SweepSpec, base: Mapping[str, Any]) -> None:
    """Named variants, each a mapping of valid search keys, swept by ``grid.variant`` whose
    values name them all; neither without the other."""
    names = list(spec.variants)
    if names and VARIANT not in spec.grid:
        raise ConfigError(
            f"variants: {', '.join(names)} defined but the grid has no variant key; add "
            f"grid: {{variant: [{', '.join(names)}]}}"
        )
    for name, overrides in spec.variants.items():
        if not NAME_PATTERN.fullmatch(name):
            raise ConfigError(
                f"variants.{excerpt(name)}: expected a name of letters, digits, '_', '-' or "
                "'.' (it becomes part of trial directory names)"
            )
        for key, value in overrides.items():
            if key == VARIANT:
                raise ConfigError(f"variants.{name}.{key}: a variant cannot name a variant")
            _check_value(f"variants.{name}.{key}", spec.search.preset, base, key, value)
    if VARIANT not in spec.grid:
        return
    values = spec.grid[VARIANT]
    if not values:
        raise ConfigError(f"grid.{VARIANT}: expected at least one variant name, got []")
    for i, value in enumerate(values):
        if not isinstance(value, str) or value not in spec.variants:
            raise ConfigError(
                f"grid.{VARIANT}[{i}]: unknown variant {excerpt(value)}; expected one of the "
                f"variants section's names ({', '.join(names) or 'none defined'})"
            )
    _check_distinct(f"grid.{VARIANT}", values)


def _check_scalar(path: str, i: int, key: str, value: Any) -> None:
    if not isinstance(value, bool | int | float | str):
        raise ConfigError(
            f"{path}[{i}]: expected a number, string or boolean, got {excerpt(value)}"
        )
    if key not in BOUND_KEYS:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{path}[{i}]: expected a bound >= 0, got {excerpt(value)}")
    if not value <= BOUND_LIMITS[key]:  # inf too
        raise ConfigError(
            f"{path}[{i}]: expected a bound <= {BOUND_LIMITS[key]:g} (millions), got "
            f"{excerpt(value)}"
        )


def _check_distinct(path: str, values: list[Any]) -> None:
    """Each value once, in linear time: scalars are hashable, and equal numbers (1, 1.0 and
    True) hash alike, so a set finds what pairwise comparison would."""
    seen: set[Any] = set()
    for i, value in enumerate(values):
        if value in seen:
            raise ConfigError(f"{path}[{i}]: repeated value {excerpt(value)}; list each value once")
        seen.add(value)
