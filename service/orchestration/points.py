"""What a checked sweep spec means for its trials: grid points, configs, resources, objectives.

One trial's search config is layered, preset < ``search.overrides`` < top-level ``dataset`` and
``ood_dataset`` < the grid point (:func:`search_config_for`); its evaluation follows from the
search config and the ``evaluation`` section (:func:`eval_config_for`). The objectives of a
sweep's front (:func:`sweep_objectives`) and the columns its report may plot
(:func:`plottable_columns`) come from the registry of :mod:`service.objectives`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from search_core.config import SearchConfig, preset
from search_core.eval_config import EVAL_PRESETS, EvalConfig, proxy_config, retrain_config
from service.errors import ConfigError
from service.objectives import (
    DEFAULT_PROJECTION_2D,
    DEFAULT_PROJECTION_3D,
    FRONT_METRICS,
    PAPER_METRICS,
    SEARCH_OBJECTIVES,
    UNEVALUATED_OBJECTIVES,
    Direction,
    directions,
)
from service.orchestration.spec import BOUND_KEYS, SweepSpec
from service.yamltext import excerpt

__all__ = [
    "PLOTTABLE",
    "VARIANT",
    "base_overrides",
    "check_axes",
    "check_local_gpu",
    "eval_config_for",
    "evaluation_preset",
    "grid_points",
    "plottable_columns",
    "point_overrides",
    "retrain_config_for",
    "retrain_preset",
    "search_config_for",
    "search_epochs",
    "sweep_objectives",
    "trial_count",
    "trial_resources",
]

PLOTTABLE = (
    *FRONT_METRICS,
    *SEARCH_OBJECTIVES,
    "L",
    "F",
    "seed",
    "epochs",
    "latency_ms",
    "search_epochs",
    "search_seconds",
    "eval_seconds",
    *PAPER_METRICS,
    "front_rank",
)
"""Results columns a projection may plot in any sweep; numeric grid keys are added per sweep."""


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid's values: the first key varies slowest, each key's
    values in the file's order. An empty grid has one point, ``{}``."""
    keys = list(spec.grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec.grid[k] for k in keys))
    ]


def trial_count(spec: SweepSpec) -> int:
    """How many trials the sweep runs: the grid size, times ``num_samples`` under optuna."""
    size = math.prod(len(values) for values in spec.grid.values())
    return size * (spec.strategy.num_samples or 1) if spec.strategy.kind == "optuna" else size


VARIANT = "variant"
"""The grid key that sweeps the spec's named ``variants``."""


def point_overrides(spec: SweepSpec, point: Mapping[str, Any]) -> dict[str, Any]:
    """A grid point as search overrides: its variant's overrides, then its other keys."""
    values = {key: value for key, value in point.items() if key != VARIANT}
    if VARIANT not in point:
        return values
    return {**spec.variants[str(point[VARIANT])], **values}


def search_config_for(spec: SweepSpec, point: Mapping[str, Any]) -> SearchConfig:
    """The search config of one trial: preset < overrides < dataset keys < the point's
    variant < the point's other values."""
    return preset(spec.search.preset, {**base_overrides(spec), **point_overrides(spec, point)})


def evaluation_preset(spec: SweepSpec) -> str:
    """The evaluation preset: as given, else the search preset's name if it has one."""
    if spec.evaluation.preset is not None:
        return spec.evaluation.preset
    return spec.search.preset if spec.search.preset in EVAL_PRESETS else "paper"


def retrain_preset(spec: SweepSpec) -> str:
    """A two-stage evaluation's retrain preset: as given, else as :func:`evaluation_preset`
    (a two-stage section has no top-level preset)."""
    retrain = spec.evaluation.retrain
    if retrain is not None and retrain.preset is not None:
        return retrain.preset
    return evaluation_preset(spec)


def eval_config_for(spec: SweepSpec, search: SearchConfig) -> EvalConfig | None:
    """The evaluation after ``search``'s trial, with the evaluation overrides (a two-stage
    evaluation's proxy, with its proxy overrides); None for ``mode: none``."""
    evaluation = spec.evaluation
    if evaluation.mode == "none":
        return None
    if evaluation.mode == "two_stage":
        overrides = evaluation.proxy.overrides if evaluation.proxy is not None else {}
        return proxy_config(search).replace(**overrides)
    if evaluation.mode == "proxy":
        base = proxy_config(search)
    else:
        base = retrain_config(search, evaluation_preset(spec))
    return base.replace(**evaluation.overrides)


def retrain_config_for(spec: SweepSpec, search: SearchConfig) -> EvalConfig:
    """The second stage of a two-stage evaluation: the full retrain of ``search``'s genotype,
    with the retrain section's preset and overrides."""
    retrain = spec.evaluation.retrain
    if retrain is None:
        raise ConfigError("evaluation.retrain: missing; only mode two_stage has a second stage")
    return retrain_config(search, retrain_preset(spec)).replace(**retrain.overrides)


def trial_resources(spec: SweepSpec, cuda_available: bool | None = None) -> dict[str, float]:
    """Ray resources of one trial; ``gpu`` unset means 1 if CUDA is available, else 0.

    CUDA is probed here, when asked, never at import.
    """
    gpu = spec.resources.gpu
    if gpu is None:
        if cuda_available is None:
            import torch

            cuda_available = bool(torch.cuda.is_available())
        gpu = 1.0 if cuda_available else 0.0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def check_local_gpu(spec: SweepSpec, cuda_available: bool | None = None) -> None:
    """For a sweep on an embedded local Ray: ConfigError when it asks for GPUs this machine
    does not have (every trial would wait or fail). A cluster checks its own GPUs when Ray
    places the trials, so a sweep with a Ray address is not checked here."""
    gpu = spec.resources.gpu
    if not gpu:
        return
    if cuda_available is None:
        import torch

        cuda_available = bool(torch.cuda.is_available())
    if not cuda_available:
        raise ConfigError(
            f"resources.gpu: {gpu:g} GPU per trial, but this machine has no CUDA GPU for the "
            "embedded local Ray; set resources.gpu: 0, or run on a cluster with GPUs "
            "(ray.address; Ray checks the cluster's GPUs when it places the trials)"
        )


def plottable_columns(spec: SweepSpec) -> tuple[str, ...]:
    """The results columns a report projection of this sweep may plot: :data:`PLOTTABLE` and
    every grid key whose values are all numbers."""
    numeric = [
        key
        for key, values in spec.grid.items()
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ]
    return tuple(dict.fromkeys((*PLOTTABLE, *numeric)))


def check_axes(
    names: Sequence[str], size: int, field: str, choices: tuple[str, ...]
) -> tuple[str, ...]:
    """``names`` as a projection's axes: ``size`` distinct names among ``choices``; the
    ConfigError names ``field`` (and the index of a bad name) and lists the choices."""
    if len(names) != size:
        example = ",".join(DEFAULT_PROJECTION_2D if size == 2 else DEFAULT_PROJECTION_3D)
        raise ConfigError(
            f"{field}: expected {size} column names, got {len(names)} ({list(names)}); "
            f"e.g. {example}"
        )
    for i, name in enumerate(names):
        if name not in choices:
            raise ConfigError(
                f"{field}[{i}]: unknown column {excerpt(name)}; expected one of "
                + ", ".join(choices)
            )
        if name in names[:i]:
            raise ConfigError(
                f"{field}[{i}]: {excerpt(name)} is repeated; choose {size} different columns"
            )
    return tuple(names)


def base_overrides(spec: SweepSpec) -> dict[str, Any]:
    """The search overrides with the top-level ``dataset`` and ``ood_dataset`` on top."""
    data = {"dataset": spec.dataset, "ood_dataset": spec.ood_dataset}
    return {**spec.search.overrides, **{k: v for k, v in data.items() if v is not None}}


def search_epochs(spec: SweepSpec, point: Mapping[str, Any] | None = None) -> int:
    """The number of search epochs of the trial at ``point``, every stage included; without a
    point, the most over the grid's points (their backbones may run different numbers)."""
    bounds: dict[str, Any] = {}
    if spec.strategy.kind == "optuna":
        bounds = {key: getattr(spec.strategy, key).low for key in BOUND_KEYS}
    points = grid_points(spec) if point is None else [point]
    return max(search_config_for(spec, {**bounds, **p}).total_epochs for p in points)


def sweep_objectives(spec: SweepSpec) -> dict[str, Direction]:
    """The objectives of the sweep's Pareto front, with their directions.

    The strategy's objectives (all five front metrics by default; the paper-protocol
    measures of :data:`service.objectives.PAPER_METRICS` only where it names them); a sweep
    without an evaluation has only the search's losses and the exact sizes.
    """
    if spec.evaluation.mode == "none":
        return directions(UNEVALUATED_OBJECTIVES)
    return directions(spec.strategy.objectives or FRONT_METRICS)
