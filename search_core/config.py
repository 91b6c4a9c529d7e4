"""Search configuration: one frozen dataclass, the presets, and checked overrides.

Defaults are the paper's search settings (section IV-B-2, the ``paper`` preset); ``cpu-tiny``
shrinks everything for the embedded digits dataset so a search runs in about a minute on two
CPU cores. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the key, the value (cut to an excerpt) and what was expected. Every count and size has an upper
bound too (:data:`INT_LIMITS`, :data:`MAX_CHANNELS`, :data:`BOUND_LIMITS`), the datasets are
checked by name and the device by form, so a value that cannot run fails here, not in a trial.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, get_type_hints

from search_core.errors import ConfigError


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


ConfigT = TypeVar("ConfigT", bound=_Dataclass)

OBJECTIVES = ("val", "ood", "adv", "nop", "flops")
DATASET_NAMES: tuple[str, ...] = ("digits", "digits-ood", "cifar10", "cifar100", "svhn")
IMAGEFOLDER_PREFIX = "imagefolder:"
DEVICE_PATTERN = re.compile(r"cpu|mps|cuda(?::[0-9]{1,3})?")
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds are 32-bit
BOUND_LIMITS: dict[str, float] = {"L": 1e4, "F": 1e5}
"""Largest lower bounds, in M params and M multiply-adds: far above any network the search
space builds, low enough that the cost losses stay finite."""
INT_LIMITS: dict[str, tuple[int, int, str]] = {
    # key: (smallest, largest, what it counts); the upper ends keep a typo from running for ever.
    "epochs": (1, 10_000, "epochs"),
    "layers": (3, 100, "cells (reductions sit at 1/3 and 2/3)"),
    "eval_layers": (3, 100, "cells (reductions sit at 1/3 and 2/3)"),
    "nodes": (1, 16, "intermediate nodes"),
    "stem_multiplier": (1, 16, "times init_channels"),
    "batch_size": (2, 65_536, "samples (batch norm needs two)"),
    "steps_per_epoch": (0, 1_000_000, "steps (0: a full pass)"),
    "fw_max_iter": (1, 1_000_000, "iterations"),
    "threads": (0, 1024, "CPU threads (0: torch's default)"),
    "seed": (0, MAX_SEED, "(a 32-bit seed)"),
}
MAX_CHANNELS = 1024
CHOICES: dict[str, tuple[str, ...]] = {
    "order": ("first", "second"),
    "hessian": ("exact", "finite_difference"),
    "weighting": ("mgda", "equal"),
    "mgda_normalization": ("l2", "loss", "none"),
    "cost_estimate": ("expected", "derived"),
    "cost_normalization": ("none", "start"),
}


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of one E2RNAS search. Units: L in M params, F in M multiply-adds."""

    # Data: in-distribution and OoD sets (C_in ∩ C_out = ∅), DARTS's half/half split.
    dataset: str = "cifar10"
    ood_dataset: str = "svhn"
    data_root: str = "data"
    download: bool = False
    train_portion: float = 0.5
    augment: bool = True  # random crop (+ flip, except for digits), on the device
    # Search network (the supernet).
    layers: int = 8
    init_channels: int = 16
    nodes: int = 4  # intermediate nodes per cell
    stem_multiplier: int = 3
    # Evaluation network: what L and F are measured on (auxiliary head excluded).
    eval_layers: int = 20
    eval_init_channels: int = 36
    # Lower bounds of eqs. (5) and (6).
    L: float = 2.5
    F: float = 425.0
    # Schedule.
    epochs: int = 50
    batch_size: int = 64
    steps_per_epoch: int = 0  # 0: one pass over the weight half per epoch
    # θ (lower level): SGD, cosine schedule from lr to lr_min, as DARTS.
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # α (upper level): Adam.
    arch_lr: float = 3e-4
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    # Method.
    objectives: tuple[str, ...] = OBJECTIVES
    order: str = "second"  # eq. (9); "first" drops the unrolled step
    hessian: str = "finite_difference"  # batched central differences, or "exact" double backward
    fd_epsilon: float = 0.01  # finite-difference step, divided by ‖v‖
    weighting: str = "mgda"  # eq. (1) by Frank-Wolfe, or "equal" (Table VI: w/o MGDA)
    mgda_normalization: str = "l2"
    fw_max_iter: int = 250
    fw_tol: float = 1e-6
    ood_in_lower: bool = True  # eq. (8); False is Table VI's "w/o OoD in LL"
    adv_train_in_lower: bool = False  # Table VI's "w/ AT in LL"
    epsilon: float = 2.0 / 255.0  # FGSM radius in pixel units
    fgsm_step_scale: float = 1.25
    ood_loss_scale: float = 1.0
    # N̂/F̂ of eqs. (5), (6) over the whole supernet ("expected"), or of the network the
    # derivation keeps ("derived", see search_core.cost.derived_weights).
    cost_estimate: str = "expected"
    # The cost losses |N̂ - L|, |F̂ - F| in M params and M MACs ("none", eqs. 5-7 as written),
    # or divided by the estimates at uniform α ("start": unit-free, see search_core.bilevel).
    cost_normalization: str = "start"
    # Run.
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def steps(self) -> int:
        return self.nodes

    def replace(self, **changes: Any) -> SearchConfig:
        return from_mapping(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["objectives"] = list(self.objectives)
        return out


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu-tiny": {
        "dataset": "digits",
        "ood_dataset": "digits-ood",
        "layers": 3,
        "init_channels": 4,
        "nodes": 4,
        "eval_layers": 6,
        "eval_init_channels": 8,
        "L": 0.05,
        "F": 0.6,
        "epochs": 5,
        "batch_size": 32,
        "steps_per_epoch": 6,
        "lr": 0.05,
        # 30 α steps in all: a larger step lets the bounds move α visibly in that budget.
        "arch_lr": 0.03,
    },
}


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that echo input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


def _coerce(key: str, value: Any, kind: Any) -> Any:
    expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if value is None:
        raise ConfigError(f"{key}: missing value; expected {expected.get(kind, str(kind))}")
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{key}: got {shown(value)}; expected true or false")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {shown(value)}; expected an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and len(value) <= 40:
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: got {shown(value)}; expected an integer")
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: got {shown(value)}; expected a number")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{key}: got {shown(value)}; expected a number") from None
        if not math.isfinite(number):
            raise ConfigError(f"{key}: got {shown(value)}; expected a finite number")
        return number
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: got {shown(value)}; expected a string")
        return value
    # tuple[str, ...]: a list, or a comma-separated string
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{key}: got {shown(value)}; expected a list of names")
    return tuple(i.strip() for i in items)


@functools.cache
def _field_types(cls: type) -> dict[str, Any]:
    # Resolving the string annotations costs more than building the config: once per class.
    return get_type_hints(cls)


def checked_replace(base: ConfigT, values: Mapping[str, Any]) -> ConfigT:
    """``base`` (a frozen config dataclass) with checked, coerced overrides.

    Shared by every config of the core: an unknown key names the closest valid one, a value is
    coerced to its field's type (strings from the command line included), and the dataclass's
    own ``__post_init__`` then checks the ranges.
    """
    types = _field_types(type(base))
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in types:
            near = difflib.get_close_matches(key, list(types), n=1)
            hint = f"; did you mean '{near[0]}'?" if near else ""
            raise ConfigError(f"unknown config key '{key}'{hint} Valid keys: {', '.join(types)}")
        changes[key] = _coerce(key, value, types[key])
    return dataclasses.replace(base, **changes)


def from_mapping(values: Mapping[str, Any], base: SearchConfig | None = None) -> SearchConfig:
    """A config from ``base`` (default: the paper's) with checked, coerced overrides."""
    return checked_replace(base or SearchConfig(), values)


def preset(name: str, overrides: Mapping[str, Any] | None = None) -> SearchConfig:
    """A named preset with overrides applied."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset '{name}'; expected one of {', '.join(PRESETS)}")
    config = from_mapping(PRESETS[name])
    return from_mapping(overrides or {}, base=config)


def _validate(c: SearchConfig) -> None:
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: got {shown(getattr(c, key))}; expected {expected}")

    need(0 <= c.L <= BOUND_LIMITS["L"], "L", _bound_expected("L", "parameters", "L=2.5"))
    need(0 <= c.F <= BOUND_LIMITS["F"], "F", _bound_expected("F", "FLOPs (multiply-adds)", "F=400"))
    _validate_data(c)
    for key, (low, high, unit) in INT_LIMITS.items():
        need(low <= getattr(c, key) <= high, key, f"{low} to {high} {unit}")
    for key in ("init_channels", "eval_init_channels"):
        value = getattr(c, key)
        need(
            2 <= value <= MAX_CHANNELS and value % 2 == 0,
            key,
            f"an even number 2 to {MAX_CHANNELS}",
        )
    need(0.0 < c.train_portion < 1.0, "train_portion", "a fraction strictly between 0 and 1")
    for key in ("lr", "arch_lr"):
        need(getattr(c, key) > 0, key, "a positive learning rate")
    need(0 <= c.lr_min <= c.lr, "lr_min", f"between 0 and lr ({c.lr})")
    for key in ("momentum", "arch_beta1", "arch_beta2"):
        need(0 <= getattr(c, key) < 1, key, "a value in [0, 1)")
    for key in ("weight_decay", "arch_weight_decay", "grad_clip", "epsilon", "fw_tol"):
        need(getattr(c, key) >= 0, key, "a value >= 0")
    need(c.fd_epsilon > 0, "fd_epsilon", "a positive step")
    need(c.ood_loss_scale >= 0, "ood_loss_scale", "a value >= 0")
    for key, choices in CHOICES.items():
        need(getattr(c, key) in choices, key, "one of " + ", ".join(choices))
    unknown = [o for o in c.objectives if o not in OBJECTIVES]
    need(
        not unknown and len(c.objectives) > 0,
        "objectives",
        "a non-empty subset of " + ", ".join(OBJECTIVES),
    )
    need(len(set(c.objectives)) == len(c.objectives), "objectives", "no repeated objective")
    need(DEVICE_PATTERN.fullmatch(c.device) is not None, "device", "cpu, cuda, cuda:N or mps")


def _bound_expected(key: str, what: str, example: str) -> str:
    return (
        f"a lower bound >= 0 and <= {BOUND_LIMITS[key]:g} on {what}, in millions (e.g. {example})"
    )


def _validate_data(c: SearchConfig) -> None:
    for key in ("dataset", "ood_dataset"):
        name = getattr(c, key)
        folder = name.removeprefix(IMAGEFOLDER_PREFIX)
        if name in DATASET_NAMES or (name.startswith(IMAGEFOLDER_PREFIX) and folder.strip()):
            continue
        near = difflib.get_close_matches(name, DATASET_NAMES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ConfigError(
            f"{key}: got {shown(name)}; expected one of {', '.join(DATASET_NAMES)} or "
            f"{IMAGEFOLDER_PREFIX}<dir>{hint}"
        )
    if c.ood_dataset == c.dataset:
        raise ConfigError(
            f"ood_dataset: got {shown(c.ood_dataset)}, the in-distribution set itself; expected "
            "a set with other classes (e.g. svhn for cifar10, digits-ood for digits)"
        )
