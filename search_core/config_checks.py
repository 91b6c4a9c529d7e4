"""The range checks of a search config: each bad value is one ConfigError naming the key, the
value (cut to an excerpt) and what was expected (`search_core.config` runs them on every
config it builds). Counts and sizes have upper bounds, datasets are checked by name and the
device by form, so that a value that cannot run fails here rather than in a trial.

Beyond the paper's settings (section IV-B-2) they check the backbones' (Table IV): PC-DARTS's K
must divide the channels of every cell, and P-DARTS's stage layout must fit: one entry per
stage in each list, depths of at least 3 cells that never shrink and end at ``layers``,
candidate ops that start from all of ``PRIMITIVES`` and shrink to at least 3 (a non-``none``
op must remain to stand in for a skip-connect the final limit removes).
"""

from __future__ import annotations

import difflib
import itertools
import re
from typing import TYPE_CHECKING, Any

from search_core.datapaths import IMAGEFOLDER_PREFIX
from search_core.errors import ConfigError

if TYPE_CHECKING:
    from search_core.config import SearchConfig

OBJECTIVES = ("val", "ood", "adv", "nop", "flops")
BACKBONES = ("darts", "pc_darts", "pdarts")
N_PRIMITIVES = 8  # len(search_core.genotypes.PRIMITIVES), without importing torch here
DATASET_NAMES: tuple[str, ...] = ("digits", "digits-ood", "cifar10", "cifar100", "svhn")
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
    "backbone": BACKBONES,
    "order": ("first", "second"),
    "hessian": ("exact", "finite_difference"),
    "fd_batch": ("auto", "loop", "vmap"),
    "autocast": ("none", "bf16"),
    "weighting": ("mgda", "equal"),
    "mgda_normalization": ("l2", "loss", "none"),
    "cost_estimate": ("expected", "derived"),
    "cost_normalization": ("none", "start"),
    "kl_reduction": ("full", "per_class"),
    "mgda_on": ("hypergradient", "direct"),
    "adv_lower_form": ("fgsm", "clean_and_adversarial"),
}


def validate(c: SearchConfig) -> None:
    """Raise ConfigError, naming the key, for the first setting of ``c`` out of range."""

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
    for key in ("ood_loss_scale", "ood_upper_scale", "cost_scale"):
        need(0 <= getattr(c, key) <= 1e6, key, "a value from 0 to 1e6")
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
    need(c.arch_grad_clip >= 0, "arch_grad_clip", "a value >= 0 (0: unclipped)")
    need(
        0 <= c.arch_warmup_epochs < c.epochs,
        "arch_warmup_epochs",
        f"0 or more epochs, fewer than epochs ({c.epochs}) so that α moves",
    )
    need(c.pc_k >= 1, "pc_k", "an integer >= 1 (PC-DARTS's K; 1 keeps every channel)")
    if c.backbone == "pc_darts":
        need(
            c.init_channels % c.pc_k == 0,
            "pc_k",
            f"a divisor of init_channels ({c.init_channels}), so that 1/K of every cell's "
            "channels go through the mixed ops (reduction cells have 2x and 4x as many)",
        )
    need(c.pdarts_skip_limit >= 0, "pdarts_skip_limit", "an integer >= 0")
    if c.backbone == "pdarts":
        _validate_stages(c)


def shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for messages that echo input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"


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


def _validate_stages(c: SearchConfig) -> None:
    """P-DARTS's stage layout: one entry per stage in each list, depths that grow to `layers`,
    candidate ops that start from all of them and shrink, keeping a non-``none`` op and a
    replacement for a skip-connect the final limit removes."""
    depths, ops, dropout = c.pdarts_stage_layers, c.pdarts_stage_ops, c.pdarts_stage_dropout

    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: got {shown(getattr(c, key))}; expected {expected}")

    need(len(depths) >= 1, "pdarts_stage_layers", "the cells of at least one stage")
    for key, values in (("pdarts_stage_ops", ops), ("pdarts_stage_dropout", dropout)):
        need(
            len(values) == len(depths),
            key,
            f"one entry per stage of pdarts_stage_layers ({len(depths)} stages)",
        )
    need(
        all(d >= 3 for d in depths) and all(a <= b for a, b in itertools.pairwise(depths)),
        "pdarts_stage_layers",
        "stages of at least 3 cells each (reductions sit at 1/3 and 2/3), never shallower "
        "than the stage before",
    )
    need(
        depths[-1] == c.layers,
        "pdarts_stage_layers",
        f"its last stage at layers={c.layers} cells, the depth the search ends at (set both)",
    )
    need(
        ops[0] == N_PRIMITIVES and all(a > b for a, b in itertools.pairwise(ops)) and ops[-1] >= 3,
        "pdarts_stage_ops",
        f"{N_PRIMITIVES} ops in the first stage, fewer in each stage after, and at least 3 "
        "in the last (a non-none op must stand in for a skip-connect the limit removes)",
    )
    need(
        all(0 <= p < 1 for p in dropout),
        "pdarts_stage_dropout",
        "dropout rates in [0, 1)",
    )
