"""Settings of an evaluation (sections IV-B-3, IV-B-4): one frozen dataclass and its presets.

Defaults are the paper's retrain (the ``paper`` preset): DARTS's CIFAR evaluation network of
20 cells and 36 initial channels, 600 epochs of SGD in batches of 96 with a cosine schedule,
Cutout 16, drop-path 0.2, auxiliary towers weighted 0.4; PGD of 10 steps with ε = 2/255 and
step 2.5ε/10; CIFAR-10 with SVHN as the OoD set. ``cpu-tiny`` shrinks everything to the
embedded digits so that a whole evaluation takes about a minute on two CPU cores.
``imagenet`` is the transfer of section IV-D-2 (Table V), DARTS's ImageNet recipe
(quark0/darts ``cnn/train_imagenet.py`` with its paper's mobile setting): its ImageNet network
of 14 cells, C=48, on 224x224 images; 250 epochs of SGD in batches of 128, lr 0.1 multiplied
by 0.97 after each epoch, momentum 0.9, weight decay 3e-5, label smoothing 0.1, auxiliary
weight 0.4, gradient clipping at 5, no Cutout nor drop-path; the images of
``imagefolder:imagenet`` (train/ and test/ under data_root) as :mod:`search_core.imagenet`
loads them.
:func:`retrain_config` and :func:`proxy_config` derive the evaluation that follows a search.

This module needs no torch, so that the command line can check settings at once; bad values
raise :class:`ConfigError` naming the key, the value and what was expected, as
:mod:`search_core.config` does.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search_core.config import SearchConfig, checked_replace
from search_core.errors import ConfigError
from search_core.layout import MIN_IMAGENET_INPUT_SIZE

if TYPE_CHECKING:
    from search_core.genotypes import Genotype
    from search_core.model_eval import EvalNetwork, ImageNetNetwork

PROXY_EPOCHS = 10
NETWORKS = ("cifar", "imagenet")


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of one evaluation; defaults are the paper's retrain (IV-B-3, IV-B-4)."""

    # Data: the in-distribution set, and the OoD set whose test split scores ood_aupr.
    dataset: str = "cifar10"
    ood_dataset: str = "svhn"
    data_root: str = "data"
    download: bool = False
    # Evaluation network (auxiliary head after the 2/3 reduction, training only): DARTS's
    # CIFAR network at the dataset's own image size, or its ImageNet network ("imagenet",
    # whose stem has no multiplier) on images of image_size pixels (search_core.imagenet).
    network: str = "cifar"
    image_size: int = 0  # 0 with the cifar network; the imagenet network's input size
    layers: int = 20
    init_channels: int = 36
    stem_multiplier: int = 3
    # Training, as DARTS: SGD with a cosine schedule from lr to lr_min over the epochs.
    epochs: int = 600
    batch_size: int = 96
    steps_per_epoch: int = 0  # 0: a full pass over the training set per epoch
    lr: float = 0.025
    lr_min: float = 0.0
    lr_gamma: float = 0.0  # > 0: lr times lr_gamma after each epoch instead of the cosine
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0  # 0 turns clipping off
    cutout: int = 16  # side of the Cutout square in pixels; 0 turns it off
    drop_path: float = 0.2  # reached at the last epoch, ramped linearly from 0
    auxiliary: bool = True
    auxiliary_weight: float = 0.4
    label_smoothing: float = 0.0  # of the training loss (and the auxiliary one)
    # Measurement (IV-B-4).
    pgd_steps: int = 10
    epsilon: float = 2.0 / 255.0  # PGD radius in pixel units
    pgd_step_scale: float = 2.5  # each step moves step_scale·ε/pgd_steps
    eval_batch_size: int = 256
    latency_repeats: int = 50
    # Run.
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # CPU threads for torch; 0 keeps torch's default
    channels_last: bool = False  # NHWC activations, as SearchConfig.channels_last

    def __post_init__(self) -> None:
        _validate(self)

    def replace(self, **changes: Any) -> EvalConfig:
        return eval_from_mapping(changes, base=self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


EVAL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    # The cpu-tiny search's evaluation network (eval_layers=6, eval_init_channels=8) on the
    # 8x8 digits: the whole evaluate, PGD on the ~180 test images included, takes about a
    # minute on two cores.
    "cpu-tiny": {
        "dataset": "digits",
        "ood_dataset": "digits-ood",
        "layers": 6,
        "init_channels": 8,
        "epochs": 12,
        "batch_size": 32,
        "lr": 0.05,
        "cutout": 4,  # a quarter of an 8x8 digit, as 16 is of a 32x32 image
        "eval_batch_size": 200,
        "latency_repeats": 20,
    },
    # The ImageNet transfer of Table V, DARTS's recipe (the module's docstring).
    "imagenet": {
        "dataset": "imagefolder:imagenet",
        "network": "imagenet",
        "image_size": 224,
        "layers": 14,
        "init_channels": 48,
        "epochs": 250,
        "batch_size": 128,
        "lr": 0.1,
        "lr_gamma": 0.97,
        "weight_decay": 3e-5,
        "label_smoothing": 0.1,
        "cutout": 0,
        "drop_path": 0.0,
    },
}


def eval_from_mapping(values: Mapping[str, Any], base: EvalConfig | None = None) -> EvalConfig:
    """An evaluation config from ``base`` (default: the paper's) with checked overrides."""
    return checked_replace(base or EvalConfig(), values)


def eval_preset(name: str, overrides: Mapping[str, Any] | None = None) -> EvalConfig:
    """A named evaluation preset with overrides applied."""
    if name not in EVAL_PRESETS:
        raise ConfigError(
            f"preset: unknown preset '{name}'; expected one of {', '.join(EVAL_PRESETS)}"
        )
    return eval_from_mapping(overrides or {}, base=eval_from_mapping(EVAL_PRESETS[name]))


def retrain_config(search: SearchConfig, preset_name: str) -> EvalConfig:
    """The retrain after a search: the evaluation preset of the same name, on the search's
    data, seed and device, for the evaluation network that its L and F describe.

    A preset of the ImageNet network (``imagenet``: Table V's transfer) keeps its own data,
    network and attack radius: the genotype is carried to another dataset and another
    network, and only where to find the data and how to run come from the search."""
    run = _run_settings(search)
    base = eval_preset(preset_name)
    if base.network == "imagenet":
        return base.replace(**run)
    return base.replace(
        **run,
        dataset=search.dataset,
        ood_dataset=search.ood_dataset,
        layers=search.eval_layers,
        init_channels=search.eval_init_channels,
        stem_multiplier=search.stem_multiplier,
        epsilon=search.epsilon,
    )


def _run_settings(search: SearchConfig) -> dict[str, Any]:
    """What an evaluation after a search takes from it whatever it trains: where the data
    lies, the seed, and how to run."""
    return {
        "data_root": search.data_root,
        "download": search.download,
        "seed": search.seed,
        "device": search.device,
        "threads": search.threads,
        "channels_last": search.channels_last,
    }


def proxy_config(search: SearchConfig, epochs: int = PROXY_EPOCHS) -> EvalConfig:
    """The proxy after a search: the derived network at the search's size, trained for a few
    full passes over the whole training set with the search's optimiser settings (starting
    from the supernet's weights when :func:`~search_core.evaluate.run_proxy` is given them),
    without the regularisers of a long retrain (Cutout, drop-path, auxiliary head), which
    only pay off over hundreds of epochs."""
    return EvalConfig(
        **_run_settings(search),
        dataset=search.dataset,
        ood_dataset=search.ood_dataset,
        layers=search.layers,
        init_channels=search.init_channels,
        stem_multiplier=search.stem_multiplier,
        epochs=epochs,
        batch_size=search.batch_size,
        steps_per_epoch=0,
        lr=search.lr,
        lr_min=search.lr_min,
        momentum=search.momentum,
        weight_decay=search.weight_decay,
        grad_clip=search.grad_clip,
        cutout=0,
        drop_path=0.0,
        auxiliary=False,
        epsilon=search.epsilon,
    )


def _validate(c: EvalConfig) -> None:
    def need(ok: bool, key: str, expected: str) -> None:
        if not ok:
            raise ConfigError(f"{key}: got {getattr(c, key)!r}; expected {expected}")

    need(c.network in NETWORKS, "network", " or ".join(repr(n) for n in NETWORKS))
    if c.network == "imagenet":
        low = MIN_IMAGENET_INPUT_SIZE
        need(low <= c.image_size <= 1024, "image_size", f"{low} to 1024 pixels")
    else:
        need(c.image_size == 0, "image_size", "0 (the dataset's own size) with network 'cifar'")
    need(c.layers >= 3, "layers", "at least 3 cells (reductions sit at 1/3 and 2/3)")
    need(c.init_channels >= 2 and c.init_channels % 2 == 0, "init_channels", "an even number >= 2")
    need(c.stem_multiplier >= 1, "stem_multiplier", "an integer >= 1")
    need(c.epochs >= 1, "epochs", "at least 1")
    need(c.batch_size >= 2, "batch_size", "at least 2 (batch norm needs two samples)")
    need(c.steps_per_epoch >= 0, "steps_per_epoch", "0 (a full pass) or a positive count")
    need(c.lr > 0, "lr", "a positive learning rate")
    need(0 <= c.lr_min <= c.lr, "lr_min", f"between 0 and lr ({c.lr})")
    need(0 <= c.lr_gamma <= 1, "lr_gamma", "0 (the cosine schedule) or a factor in (0, 1]")
    need(0 <= c.label_smoothing < 1, "label_smoothing", "a value in [0, 1)")
    need(0 <= c.momentum < 1, "momentum", "a value in [0, 1)")
    for key in ("weight_decay", "grad_clip", "auxiliary_weight", "epsilon", "pgd_step_scale"):
        need(getattr(c, key) >= 0, key, "a value >= 0")
    need(c.cutout >= 0, "cutout", "0 (off) or a side in pixels")
    need(0 <= c.drop_path < 1, "drop_path", "a probability in [0, 1)")
    need(c.pgd_steps >= 1, "pgd_steps", "at least 1 step")
    for key in ("eval_batch_size", "latency_repeats"):
        need(getattr(c, key) >= 1, key, "at least 1")
    need(c.threads >= 0, "threads", "0 (torch's default) or a positive count")
    need(
        c.device == "cpu" or c.device.startswith(("cuda", "mps")),
        "device",
        "cpu, cuda, cuda:N or mps",
    )


# -- the network the settings describe -----------------------------------------------------


def build_network(
    genotype: Genotype, config: EvalConfig, num_classes: int, input_size: int, in_channels: int
) -> EvalNetwork | ImageNetNetwork:
    """The evaluation network of ``genotype`` with the config's cells, channels and head."""
    # torch loads here, not at import
    from search_core.model_eval import EvalNetwork, ImageNetNetwork

    shared: dict[str, Any] = {
        "num_classes": num_classes,
        "layers": config.layers,
        "init_channels": config.init_channels,
        "input_size": input_size,
        "in_channels": in_channels,
        "auxiliary": config.auxiliary,
    }
    if config.network == "imagenet":
        return ImageNetNetwork(genotype, **shared)
    return EvalNetwork(genotype, stem_multiplier=config.stem_multiplier, **shared)


def check_genotype(genotype: Genotype, config: EvalConfig) -> None:
    """Raise :class:`~search_core.errors.GenotypeError` if the genotype's cells cannot form
    the network the config describes, before any data is read.

    The network is built on the meta device: every check of its construction runs, and no
    memory is used.
    """
    import torch

    with torch.device("meta"):
        size = config.image_size or 32
        build_network(genotype, config, num_classes=10, input_size=size, in_channels=3)
