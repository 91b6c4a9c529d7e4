"""Search configuration: one frozen dataclass, the presets, and checked overrides.

Defaults are the paper's search settings (section IV-B-2, the ``paper`` preset); ``cpu-tiny``
shrinks everything for the embedded digits dataset so a search runs in about a minute on two
CPU cores. Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` naming
the key, the value (cut to an excerpt) and what was expected. Every count and size has an upper
bound too (:data:`INT_LIMITS`, :data:`MAX_CHANNELS`, :data:`BOUND_LIMITS`), the datasets are
checked by name and the device by form, so a value that cannot run fails here, not in a trial.

The backbone (``darts``, ``pc_darts``, ``pdarts``; Table IV) is a key like any other. E2RNAS
runs on PC-DARTS and P-DARTS "following their experimental settings" (IV-D-1), so a preset
brings each backbone's own schedule with it (:data:`BACKBONE_PRESETS`): resolving a preset
layers the dataclass defaults, the preset, the backbone's settings for that preset, then the
overrides; sweeping ``backbone`` in a grid therefore switches schedules too, and any key the
sweep sets still wins. ``paper`` is the papers' way (E2RNAS's eq. 9 on every backbone, each
backbone with its own paper's schedule); ``authors`` is the E2RNAS authors' code for each
backbone (PC-DARTS on DARTS's schedule, both first order).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, TypeVar, get_args, get_type_hints

from search_core.config_checks import BACKBONES as BACKBONES
from search_core.config_checks import BOUND_LIMITS as BOUND_LIMITS
from search_core.config_checks import CHOICES as CHOICES
from search_core.config_checks import DATASET_NAMES as DATASET_NAMES
from search_core.config_checks import INT_LIMITS as INT_LIMITS
from search_core.config_checks import MAX_CHANNELS as MAX_CHANNELS
from search_core.config_checks import MAX_SEED as MAX_SEED
from search_core.config_checks import OBJECTIVES as OBJECTIVES
from search_core.config_checks import shown as shown
from search_core.config_checks import validate
from search_core.datapaths import IMAGEFOLDER_PREFIX as IMAGEFOLDER_PREFIX
from search_core.errors import ConfigError


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


ConfigT = TypeVar("ConfigT", bound=_Dataclass)


@dataclass(frozen=True)
class SearchConfig:
    """Every setting of one E2RNAS search. Units: L in M params, F in M multiply-adds."""

    # Backbone of Table IV: the DARTS supernet, PC-DARTS's partially connected one with edge
    # normalisation, or P-DARTS's progressively deeper one (see BACKBONE_PRESETS).
    backbone: str = "darts"
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
    # Schedule. P-DARTS runs `epochs` in each of its stages.
    epochs: int = 50
    arch_warmup_epochs: int = 0  # epochs (of each stage) that train θ alone before α moves
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
    arch_grad_clip: float = 0.0  # max norm of α's update direction; 0: unclipped
    # PC-DARTS: 1/pc_k of each edge's channels go through its mixed op, the rest bypass it.
    pc_k: int = 4
    # P-DARTS: cells and candidate ops per edge in each stage (the last stage searches at
    # `layers` cells), the initial skip-connect dropout of each stage, and the most
    # skip-connects the derived normal cell may keep.
    pdarts_stage_layers: tuple[int, ...] = (5, 11, 17)
    pdarts_stage_ops: tuple[int, ...] = (8, 5, 3)
    pdarts_stage_dropout: tuple[float, ...] = (0.0, 0.4, 0.7)
    pdarts_skip_limit: int = 2
    # Method.
    objectives: tuple[str, ...] = OBJECTIVES
    order: str = "second"  # eq. (9); "first" drops the unrolled step
    hessian: str = "finite_difference"  # central differences, or "exact" double backward
    fd_epsilon: float = 0.01  # finite-difference step, divided by ‖v‖
    # The 2K shifted networks of the finite differences one after another ("loop": one
    # network's activations in memory), or in one vmapped call ("vmap": 2K at once); "auto"
    # vmaps the two networks of a single vector (mgda_on=direct) and loops over more.
    fd_batch: str = "auto"
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
    # The E2RNAS authors' code's choices (yuezhixiong/NAS-Benchmark, DARTS/architect.py and
    # train_search.py), each an option whose default is the paper's text (preset
    # "paper-authors" sets them as their code did):
    cost_scale: float = 1.0  # a factor on the (normalised) cost losses of eqs. (5), (6)
    ood_upper_scale: float = 1.0  # a factor on L_ood in the upper level (eq. 7)
    # Eq. (3) as written ("full": KL summed over the classes), or KL/k ("per_class": what
    # PyTorch's kl_div with its mean reduction computes), in both levels.
    kl_reduction: str = "full"
    # Eq. (1) on the hypergradients G_k ("hypergradient", the paper's text), or on the direct
    # gradients ∇α L_k(θ') with the second-order term added once, to the weighted sum
    # ("direct": one Hessian-vector product on Σγ_k v_k instead of one per data objective).
    mgda_on: str = "hypergradient"
    # With adv_train_in_lower: L_tr on FGSM inputs ("fgsm"), or CE(clean) + CE(FGSM)
    # ("clean_and_adversarial", the authors' form).
    adv_lower_form: str = "fgsm"
    # Run.
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    # The network's 4-d weights in channels-last memory, so that convolutions, pooling and
    # batch norm run on NHWC activations: the same arithmetic in another memory order.
    channels_last: bool = False
    # "bf16": the supernet's forward (and so its backward) under bfloat16 autocast; losses,
    # α's gradients, MGDA, the costs and both optimisers stay float32. It changes what is
    # computed (bf16 rounds at 3 digits, which eq. (9)'s central differences feel).
    autocast: str = "none"

    def __post_init__(self) -> None:
        validate(self)

    @property
    def steps(self) -> int:
        return self.nodes

    @property
    def stages(self) -> int:
        """Search stages: P-DARTS's, else one."""
        return len(self.pdarts_stage_layers) if self.backbone == "pdarts" else 1

    @property
    def total_epochs(self) -> int:
        """Epochs of the whole search, every stage included."""
        return self.stages * self.epochs

    def replace(self, **changes: Any) -> SearchConfig:
        return from_mapping(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
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
    # The E2RNAS authors' code (yuezhixiong/NAS-Benchmark) for each backbone; see
    # BACKBONE_PRESETS. Their DARTS search is the paper's.
    "authors": {},
    # The paper's setting as the authors' code ran it: the backbones of "authors", L_ood as
    # KL/k (kl_div's mean) scaled by 50 in the upper level, cost losses pulling about 7.5x
    # harder than "start" normalisation alone (their hand-set factors measured 6-9x), eq. (1)
    # solved on the direct gradients with one Hessian-vector product, and adversarial
    # training in the lower level (when switched on) as CE(clean) + CE(FGSM).
    "paper-authors": {
        "cost_scale": 7.5,
        "ood_upper_scale": 50.0,
        "kl_reduction": "per_class",
        "mgda_on": "direct",
        "adv_lower_form": "clean_and_adversarial",
    },
}

# The P-DARTS schedule (Chen et al. 2019, section 4.1; chenxin061/pdarts train_search.py):
# three stages of 25 epochs at 5, 11 and 17 cells searching 8, 5 and 3 ops per edge, each stage
# a new supernet whose first 10 epochs train θ alone; skip-connect dropout starting at 0.0, 0.4
# and 0.7 (CIFAR-10); batch 96, θ's lr 0.025 annealed to 0, α's Adam at 6e-4 with its gradient
# clipped at norm 5; at most 2 skip-connects in the derived normal cell.
_PDARTS = {
    "layers": 17,
    "pdarts_stage_layers": (5, 11, 17),
    "pdarts_stage_ops": (8, 5, 3),
    "pdarts_stage_dropout": (0.0, 0.4, 0.7),
    "pdarts_skip_limit": 2,
    "epochs": 25,
    "arch_warmup_epochs": 10,
    "batch_size": 96,
    "lr": 0.025,
    "lr_min": 0.0,
    "arch_lr": 6e-4,
    "arch_grad_clip": 5.0,
}

BACKBONE_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        # PC-DARTS (Xu et al. 2020, section 4.2; yuhuixu1993/PC-DARTS train_search.py): K = 4,
        # batch 256 with θ's lr raised to 0.1 and annealed to 0, α's Adam at 6e-4, and α
        # frozen for the first 15 of the 50 epochs.
        "pc_darts": {
            "pc_k": 4,
            "batch_size": 256,
            "lr": 0.1,
            "lr_min": 0.0,
            "arch_lr": 6e-4,
            "arch_warmup_epochs": 15,
        },
        "pdarts": _PDARTS,
    },
    "authors": {
        # PC-DARTS/train_search.py of the E2RNAS code: DARTS's schedule (batch 64, lr 0.025
        # to 0.001, α's lr 3e-4, no warm-up) and the first-order step.
        "pc_darts": {
            "pc_k": 4,
            "batch_size": 64,
            "lr": 0.025,
            "lr_min": 0.001,
            "arch_lr": 3e-4,
            "arch_warmup_epochs": 0,
            "order": "first",
        },
        # PDARTS/train_search.py of the E2RNAS code: P-DARTS's schedule, the objectives taken
        # in the training loop at the current θ, which is the first-order step.
        "pdarts": {**_PDARTS, "order": "first"},
    },
    # The same shapes scaled to the digits: PC-DARTS's wider supernet (8 channels, so that
    # K = 4 leaves 2 per mixed op) at twice the batch and learning rates, α frozen for the
    # first epoch; P-DARTS's three stages at 3, 4 and 5 cells, two epochs each, the first
    # without α steps.
    "cpu-tiny": {
        "pc_darts": {
            "pc_k": 4,
            "init_channels": 8,
            "batch_size": 64,
            "lr": 0.1,
            "lr_min": 0.0,
            "arch_lr": 0.06,
            "arch_warmup_epochs": 1,
        },
        "pdarts": {
            "layers": 5,
            "pdarts_stage_layers": (3, 4, 5),
            "pdarts_stage_ops": (8, 5, 3),
            "pdarts_stage_dropout": (0.0, 0.4, 0.7),
            "pdarts_skip_limit": 2,
            "epochs": 2,
            "arch_warmup_epochs": 1,
            "lr_min": 0.0,
            "arch_lr": 0.06,
            "arch_grad_clip": 5.0,
        },
    },
}
"""Each preset's settings per backbone, applied over the preset (see the module docstring)."""
BACKBONE_PRESETS["paper-authors"] = BACKBONE_PRESETS["authors"]  # the authors' schedules

# P-DARTS's initial skip-connect dropout on CIFAR-100 (its section 4.1): 0.1, 0.2, 0.3.
DATASET_PRESETS: dict[tuple[str, str], dict[str, Any]] = {
    ("pdarts", "cifar100"): {"pdarts_stage_dropout": (0.1, 0.2, 0.3)},
}


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
    # tuple[X, ...]: a list, or a comma-separated string
    item_kind = get_args(kind)[0]
    items = value.split(",") if isinstance(value, str) else value
    if item_kind is str:
        if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"{key}: got {shown(value)}; expected a list of names")
        return tuple(i.strip() for i in items)
    if not isinstance(items, list | tuple):
        plural = "integers" if item_kind is int else "numbers"
        raise ConfigError(f"{key}: got {shown(value)}; expected a list of {plural}")
    return tuple(
        _coerce(f"{key}[{i}]", i_value.strip() if isinstance(i_value, str) else i_value, item_kind)
        for i, i_value in enumerate(items)
    )


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
    """A named preset with overrides applied, over the settings of the backbone they choose
    (the preset's own, for the backbone and dataset that ``overrides`` or the preset name)."""
    if name not in PRESETS:
        raise ConfigError(f"preset: unknown preset '{name}'; expected one of {', '.join(PRESETS)}")
    overrides = overrides or {}
    base = PRESETS[name]
    backbone = str(overrides.get("backbone", base.get("backbone", SearchConfig.backbone)))
    dataset = str(overrides.get("dataset", base.get("dataset", SearchConfig.dataset)))
    return from_mapping(overrides, base=_layered(name, backbone, dataset))


@functools.lru_cache(maxsize=64)
def _layered(name: str, backbone: str, dataset: str) -> SearchConfig:
    """The preset under its backbone's and dataset's settings: built once per triple, since a
    sweep's checks build a config per grid value and per point over few distinct triples."""
    return from_mapping(
        {
            **PRESETS[name],
            **BACKBONE_PRESETS.get(name, {}).get(backbone, {}),
            **DATASET_PRESETS.get((backbone, dataset), {}),
        }
    )
