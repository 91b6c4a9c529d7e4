"""Evaluation of a genotype (sections IV-B-3 and IV-B-4): retrain it, then measure the front.

A *retrain* trains the genotype's evaluation network from scratch on the whole training set
with the paper's settings (IV-B-3, which are DARTS's: 20 cells, C=36, 600 epochs, batch 96,
SGD with momentum 0.9 and weight decay 3e-4, lr 0.025 annealed by a cosine to 0, gradient
clipping at 5, Cutout 16, drop-path 0.2 ramped linearly over the epochs, auxiliary towers
weighted 0.4). Crop, flip and Cutout run on the device (:mod:`search_core.augment`); Cutout
follows normalisation, as in DARTS, so the square is filled with the mean pixel. A checkpoint
(network, optimiser, schedule and every random generator) is written atomically after each
epoch, and ``resume=True`` ends exactly where an uninterrupted run would.

The front metrics are then measured on the trained network (:mod:`search_core.measure`).

A *proxy* evaluation, for sweeps that cannot afford a retrain, trains the derived network at
the search's size (its cells and channels) for a few epochs with the search's optimiser
settings, and measures the same metrics. ``metrics.json`` always says which (``mode``) and
with what settings.

The ImageNet transfer (IV-D-2, Table V; the ``imagenet`` preset) runs the same loop with
DARTS's ImageNet network and recipe: lr times 0.97 after each epoch instead of the cosine,
label smoothing 0.1, the images as :mod:`search_core.imagenet` reads and crops them (whose
docstring says what of ImageNet-1K fits in memory, and what does not).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F_nn
from torch import nn

from search_core.augment import cutout
from search_core.checkpoint import (
    generator_states,
    load_checkpoint,
    restore_generators,
    save_atomic,
    write_atomic,
)
from search_core.config import SearchConfig
from search_core.data import ImageSet, load_image_set
from search_core.errors import CheckpointError, ConfigError, GenotypeError
from search_core.eval_config import (
    EVAL_PRESETS,
    PROXY_EPOCHS,
    EvalConfig,
    build_network,
    check_genotype,
    eval_from_mapping,
    eval_preset,
    proxy_config,
    retrain_config,
)
from search_core.genotypes import Genotype
from search_core.imagenet import ResizedCropData, load_imagenet_sets
from search_core.measure import FRONT_METRICS, PAPER_METRICS, measure
from search_core.model_eval import (
    EvalNetwork,
    ImageNetNetwork,
    count_flops_m,
    count_params_m,
    inherit_supernet_weights,
)
from search_core.ops import memory_format
from search_core.search import DeviceData, Progress

__all__ = [
    "CHECKPOINT",
    "EVAL_PRESETS",
    "FRONT_METRICS",
    "METRICS_FILE",
    "PAPER_METRICS",
    "PROXY",
    "PROXY_EPOCHS",
    "RETRAIN",
    "EvalConfig",
    "Retrain",
    "build_network",
    "check_genotype",
    "eval_from_mapping",
    "eval_preset",
    "make_optimizer",
    "make_schedule",
    "measure",
    "proxy_config",
    "retrain_config",
    "run_evaluation",
    "run_proxy",
    "train_step",
]

RETRAIN = "retrain"
PROXY = "proxy"
METRICS_FILE = "metrics.json"
CHECKPOINT = "eval_checkpoint.pt"  # beside a search's own checkpoint.pt
TRAIN_LOG = "eval_log.jsonl"


# -- the network and the data ------------------------------------------------------------


def _load_sets(config: EvalConfig) -> tuple[ImageSet, ImageSet, ImageSet]:
    """The training and test splits, and the OoD test split at the test images' size."""
    if config.network == "imagenet":
        train, test, ood = load_imagenet_sets(config)
    else:
        train = load_image_set(config.dataset, "train", config.data_root, config.download)
        test = load_image_set(config.dataset, "test", config.data_root, config.download)
        ood = load_image_set(
            config.ood_dataset, "test", config.data_root, config.download, train.image_size
        )
    if ood.in_channels != train.in_channels:
        raise ConfigError(
            f"ood_dataset: '{config.ood_dataset}' has {ood.in_channels} channels but dataset "
            f"'{config.dataset}' has {train.in_channels}; pick an OoD set of the same kind"
        )
    if len(train) < config.batch_size:
        raise ConfigError(
            f"batch_size: got {config.batch_size} but '{config.dataset}' holds only "
            f"{len(train)} training images"
        )
    return train, test, ood


# -- training ------------------------------------------------------------------------------


def make_optimizer(net: nn.Module, config: EvalConfig) -> torch.optim.SGD:
    """DARTS's optimiser of the weights: SGD with momentum and weight decay."""
    return torch.optim.SGD(
        net.parameters(), config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_schedule(
    optimizer: torch.optim.Optimizer, config: EvalConfig
) -> torch.optim.lr_scheduler.LRScheduler:
    """DARTS's learning rate, stepped after each epoch: a cosine from lr to lr_min over the
    epochs (CIFAR), or lr·lr_gamma^epoch when lr_gamma > 0 (ImageNet's 0.97)."""
    if config.lr_gamma > 0:
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, config.lr_gamma)
    return torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, config.epochs, eta_min=config.lr_min
    )


def train_step(
    net: EvalNetwork | ImageNetNetwork,
    optimizer: torch.optim.Optimizer,
    data: DeviceData,
    index: torch.Tensor,
    config: EvalConfig,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One DARTS training step on the images ``index`` of ``data``, all on the device.

    Crop and flip, normalisation, Cutout (after normalisation, as DARTS), the loss (label
    smoothed when set, as DARTS on ImageNet) with the auxiliary head's term, gradient
    clipping and the SGD step. Returns the loss and the number
    of correct predictions as device tensors, so that the host never waits for the step.
    """
    x, y = data.batch(index, generator)
    if config.cutout:
        x = cutout(x, config.cutout, generator)
    logits, aux_logits = net(x)
    smoothing = config.label_smoothing
    loss = F_nn.cross_entropy(logits, y, label_smoothing=smoothing)
    if aux_logits is not None:
        aux_loss = F_nn.cross_entropy(aux_logits, y, label_smoothing=smoothing)
        loss = loss + config.auxiliary_weight * aux_loss
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # type: ignore[no-untyped-call]
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
    optimizer.step()
    return loss.detach(), (logits.detach().argmax(dim=1) == y).sum()


class Retrain:
    """State of one training run: network, optimiser, schedule, generators; checkpointable."""

    def __init__(self, genotype: Genotype, config: EvalConfig, mode: str) -> None:
        self.genotype, self.config, self.mode = genotype, config, mode
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: got '{config.device}' but CUDA is not available here")
        if config.threads:
            torch.set_num_threads(config.threads)
        check_genotype(genotype, config)
        train, self.test, self.ood = _load_sets(config)
        self.num_classes = train.num_classes
        # The test images' size is the network's: ImageNet's training images are stored
        # larger and cropped to it.
        self.in_channels, self.input_size = train.in_channels, self.test.image_size
        self.mean, self.std = train.mean, train.std
        self.data = (
            ResizedCropData(train, self.device, config.image_size)
            if config.network == "imagenet"
            else DeviceData(train, self.device, augment=True)
        )
        self.n_train = len(train)
        n_steps = self.n_train // config.batch_size  # the last partial batch is dropped
        self.steps_per_epoch = (
            min(n_steps, config.steps_per_epoch) if config.steps_per_epoch else n_steps
        )
        torch.manual_seed(config.seed)
        self.net = build_network(
            genotype, config, self.num_classes, self.input_size, self.in_channels
        ).to(self.device)
        self.net.to(memory_format=memory_format(config.channels_last))
        self.optimizer = make_optimizer(self.net, config)
        self.schedule = make_schedule(self.optimizer, config)
        self.sample_gen = torch.Generator().manual_seed(config.seed + 1)
        self.device_gen = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.epoch = 0
        self.history: list[dict[str, Any]] = []

    def train_epoch(self, progress: Progress | None = None) -> dict[str, Any]:
        cfg, B = self.config, self.config.batch_size
        started = time.perf_counter()
        self.net.train()
        self.net.drop_path_prob = cfg.drop_path * self.epoch / cfg.epochs
        lr = self.schedule.get_last_lr()[0]
        order = torch.randperm(self.n_train, generator=self.sample_gen)
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device, dtype=torch.long)
        for s in range(self.steps_per_epoch):
            index = order[s * B : (s + 1) * B].to(self.device)
            loss, hits = train_step(
                self.net, self.optimizer, self.data, index, cfg, self.device_gen
            )
            loss_sum += loss
            correct += hits
            if progress is not None:
                progress(self.epoch, s + 1, self.steps_per_epoch)
        self.schedule.step()
        self.epoch += 1
        seen = self.steps_per_epoch * B
        record = {
            "epoch": self.epoch,
            "train_loss": float(loss_sum) / self.steps_per_epoch,
            "train_acc": 100.0 * int(correct) / seen,
            "lr": lr,
            "drop_path_prob": self.net.drop_path_prob,
            "seconds": time.perf_counter() - started,
        }
        self.history.append(record)
        return record

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "mode": self.mode,
            "config": self.config.to_dict(),
            "genotype": self.genotype.to_json(),
            "epoch": self.epoch,
            "history": self.history,
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            **generator_states(self.sample_gen, self.device_gen, self.device),
        }
        return state

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        try:
            saved = (state["mode"], eval_from_mapping(state["config"]), state["genotype"])
            if saved != (self.mode, self.config, self.genotype.to_json()):
                raise CheckpointError(
                    f"{source}: written for another {_describe_mismatch(saved, self)}; "
                    "resume with the same genotype and settings or use another --out"
                )
            self.net.load_state_dict(state["net"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
            restore_generators(state, self.sample_gen, self.device_gen, self.device)
            self.epoch = int(state["epoch"])
            self.history = [dict(record) for record in state["history"]]
        except CheckpointError:
            raise
        except (KeyError, RuntimeError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(
                f"{source}: not a checkpoint of this evaluation ({type(exc).__name__}: {exc}); "
                "delete it to start over, or use another --out"
            ) from None

    def save(self, out_dir: Path) -> None:
        save_atomic(self.state_dict(), out_dir / CHECKPOINT)


def _describe_mismatch(saved: tuple[str, EvalConfig, Any], run: Retrain) -> str:
    mode, config, genotype = saved
    if mode != run.mode:
        return f"mode ('{mode}', not '{run.mode}')"
    if genotype != run.genotype.to_json():
        return "genotype"
    diff = [
        f"{key}: {value!r} (checkpoint) vs {getattr(run.config, key)!r}"
        for key, value in config.to_dict().items()
        if value != getattr(run.config, key)
    ]
    return f"configuration ({'; '.join(diff)})"


# -- entry points --------------------------------------------------------------------------


def _evaluate(
    genotype: Genotype,
    config: EvalConfig,
    out_dir: str | Path,
    mode: str,
    resume: bool,
    progress: Progress | None,
    init_weights: dict[str, torch.Tensor] | None = None,
    sized_as: tuple[int, int] | None = None,
) -> dict[str, Any]:
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    if not resume and (ckpt.exists() or (out / METRICS_FILE).exists()):
        raise ConfigError(
            f"--out: {out} already holds an evaluation; pass --resume to continue it, "
            "or choose another directory"
        )
    state = load_checkpoint(ckpt) if resume and ckpt.exists() else None
    run = Retrain(genotype, config, mode)  # checks the genotype and reads the data first
    out.mkdir(parents=True, exist_ok=True)
    if state is not None:
        run.load_state_dict(state, ckpt)
    elif init_weights is not None:
        assert isinstance(run.net, EvalNetwork)  # a proxy's network is the CIFAR one
        inherit_supernet_weights(run.net, genotype, init_weights)
    while run.epoch < config.epochs:
        run.train_epoch(progress)
        # the log before the checkpoint: a kill between the two reruns the epoch on resume
        write_atomic(out / TRAIN_LOG, "".join(json.dumps(r) + "\n" for r in run.history))
        run.save(out)
    started = time.perf_counter()
    metrics = measure(run)
    if sized_as is not None:
        # params_m and flops_m are in the units of L and F: the evaluation network's size,
        # exact without training; the trained (smaller) network's size is kept beside them.
        metrics["trained_network"] = {
            "layers": config.layers,
            "init_channels": config.init_channels,
            "params_m": metrics["params_m"],
            "flops_m": metrics["flops_m"],
        }
        sized = EvalNetwork(
            genotype,
            run.num_classes,
            sized_as[0],
            sized_as[1],
            run.input_size,
            run.in_channels,
            stem_multiplier=config.stem_multiplier,
        )
        metrics["params_m"] = count_params_m(sized)
        metrics["flops_m"] = count_flops_m(sized, run.input_size, run.in_channels)
    train_seconds = sum(float(r["seconds"]) for r in run.history)
    result: dict[str, Any] = {
        **metrics,
        "mode": mode,
        "device": config.device,
        "eval_seconds": train_seconds + time.perf_counter() - started,
        "final_train_acc": run.history[-1]["train_acc"] if run.history else None,
        "genotype": genotype.to_json(),
        "genotype_hash": genotype.genotype_hash(),
        "settings": config.to_dict(),
        "inherits_supernet_weights": init_weights is not None,
    }
    write_atomic(out / METRICS_FILE, json.dumps(result, indent=2) + "\n")
    return result


def run_evaluation(
    genotype: Genotype,
    config: EvalConfig,
    out_dir: str | Path,
    resume: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Retrain ``genotype`` (or resume the retrain) and write ``out_dir/metrics.json``.

    Also writes ``eval_checkpoint.pt`` after every epoch and ``eval_log.jsonl`` (one line per
    epoch). Returns what ``metrics.json`` holds.
    """
    return _evaluate(genotype, config, out_dir, RETRAIN, resume, progress)


def run_proxy(
    genotype: Genotype,
    search_config: SearchConfig,
    out_dir: str | Path,
    epochs: int = PROXY_EPOCHS,
    progress: Progress | None = None,
    resume: bool = False,
    supernet_state: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The cheap evaluation right after a search: see :func:`proxy_config`.

    With ``supernet_state`` (the search checkpoint's ``net``) the derived network starts from
    the supernet's weights of the ops it keeps, so the proxy is a short fine-tune rather than
    a short training from scratch; after a PC-DARTS search it starts from scratch, since the
    supernet's ops saw 1/K of the channels (``inherits_supernet_weights`` says which).
    ``params_m`` and ``flops_m`` are those of the evaluation network the search's L and F
    refer to (``eval_layers``, ``eval_init_channels``), counted exactly; the trained network's
    own size is under ``trained_network``.

    The genotype must have the search's number of intermediate nodes, since it stands for
    the network that search derived.
    """
    if genotype.steps != search_config.nodes:
        raise GenotypeError(
            f"genotype: has {genotype.steps} intermediate nodes per cell but the search has "
            f"nodes={search_config.nodes}; a proxy evaluates the search's own derived network"
        )
    config = proxy_config(search_config, epochs)
    if search_config.backbone == "pc_darts":
        # PC-DARTS's ops hold weights for C/K shuffled channels, not the network's C.
        supernet_state = None
    sized_as = (search_config.eval_layers, search_config.eval_init_channels)
    return _evaluate(genotype, config, out_dir, PROXY, resume, progress, supernet_state, sized_as)
