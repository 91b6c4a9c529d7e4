"""The search loop of Algorithm 1, with a checkpoint every epoch and a reporting callback.

:func:`run_search` loads the in-distribution and OoD sets onto the device once, splits the
training set in halves (θ and α, IV-B-2), and runs the epochs of
:class:`~search_core.bilevel.BilevelStep`. After each epoch it derives the genotype, counts its
exact size in the units of L and F, appends one line to ``metrics.jsonl``, writes a checkpoint
(θ, α, both optimisers, the schedule and every random generator) and calls the reporter, which
the sweep layer fills with Ray Tune's report. Rerunning with ``resume=True`` continues from the
last checkpoint and ends exactly where an uninterrupted run would. Outputs are written
atomically, so a killed run never leaves a half-written file.

The backbone decides the supernet (:mod:`search_core.model_search`) and the stages: one for
DARTS and PC-DARTS, P-DARTS's for ``pdarts`` (:mod:`search_core.progressive`). A stage begins
with a new supernet, optimisers and cosine schedule; its first ``arch_warmup_epochs`` epochs
train θ alone (their records hold no upper-level objectives), and P-DARTS sets each epoch's
skip-connect dropout. When a stage that is not the last ends, its α prunes the ops of the next
(P-DARTS's search-space approximation) and the next stage's supernet is built before the
checkpoint is written, so the checkpoint holds the stage, the surviving ops and the random
state after that build: a run killed in any stage resumes exactly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from search_core.augment import normalize, random_crop_flip, to_float
from search_core.bilevel import BilevelStep
from search_core.checkpoint import (
    generator_states,
    load_checkpoint,
    restore_generators,
    save_atomic,
    write_atomic,
)
from search_core.config import SearchConfig, from_mapping
from search_core.cost import build_cost_tables, genotype_size
from search_core.data import ImageSet, load_image_set, split_halves
from search_core.errors import CheckpointError, ConfigError
from search_core.genotypes import Genotype
from search_core.layout import edge_inputs
from search_core.model_search import SearchNetwork
from search_core.objectives import PixelBox
from search_core.ops import autocast_dtype, memory_format
from search_core.progressive import full_mask, prune_ops, skip_dropout_rate, stage_plan

__all__ = [
    "CHECKPOINT",
    "METRICS",
    "DeviceData",
    "Progress",
    "Reporter",
    "Search",
    "SearchResult",
    "load_checkpoint",
    "run_search",
]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"


class Reporter(Protocol):
    """Receives each epoch's record and the directory holding that epoch's checkpoint."""

    def __call__(self, record: dict[str, Any], checkpoint_dir: Path) -> None: ...


Progress = Callable[[int, int, int], None]  # (epoch, step, steps_per_epoch)


@dataclass(frozen=True)
class SearchResult:
    genotype: Genotype
    records: list[dict[str, Any]]
    out_dir: Path


class DeviceData:
    """A whole image set on the device, batched, augmented and normalised there."""

    def __init__(self, images: ImageSet, device: torch.device, augment: bool) -> None:
        self.images = images.images.to(device)
        self.labels = images.labels.to(device)
        self.mean, self.std = images.mean, images.std
        size = images.image_size
        self.padding = (4 if size >= 32 else max(1, size // 8)) if augment else 0
        # Digits are not mirror-symmetric; natural images are.
        self.flip = augment and not images.name.startswith("digits")

    def batch(
        self, index: torch.Tensor, generator: torch.Generator | None, augment: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_float(self.images[index])
        if augment and (self.padding or self.flip):
            x = random_crop_flip(x, self.padding, self.flip, generator)
        return normalize(x, self.mean, self.std), self.labels[index]


def _load_data(config: SearchConfig) -> tuple[ImageSet, ImageSet]:
    train = load_image_set(config.dataset, "train", config.data_root, config.download)
    ood = load_image_set(config.ood_dataset, "train", config.data_root, config.download)
    if ood.image_size != train.image_size or ood.in_channels != train.in_channels:
        ood = load_image_set(
            config.ood_dataset, "train", config.data_root, config.download, train.image_size
        )
        if ood.in_channels != train.in_channels:
            raise ConfigError(
                f"ood_dataset: '{config.ood_dataset}' has {ood.in_channels} channels but "
                f"dataset '{config.dataset}' has {train.in_channels}; pick an OoD set of the "
                "same kind of images"
            )
    return train, ood


class Search:
    """State of one search: network, step, data, generators; checkpointable."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device: got '{config.device}' but CUDA is not available here")
        if config.threads:
            torch.set_num_threads(config.threads)
        torch.manual_seed(config.seed)
        train, ood = _load_data(config)
        self.num_classes = train.num_classes
        self.in_channels, self.input_size = train.in_channels, train.image_size
        self.data = DeviceData(train, self.device, config.augment)
        self.ood = DeviceData(ood, self.device, augment=False)
        self.weight_idx, self.arch_idx = split_halves(len(train.labels), config.train_portion)
        n_steps = min(len(self.weight_idx), len(self.arch_idx)) // config.batch_size
        if n_steps < 1:
            raise ConfigError(
                f"batch_size: got {config.batch_size} but each half of '{config.dataset}' "
                f"holds only {min(len(self.weight_idx), len(self.arch_idx))} images"
            )
        self.steps_per_epoch = (
            min(n_steps, config.steps_per_epoch) if config.steps_per_epoch else n_steps
        )
        self.costs = build_cost_tables(
            config.eval_layers,
            config.eval_init_channels,
            self.num_classes,
            self.input_size,
            self.in_channels,
            config.nodes,
            stem_multiplier=config.stem_multiplier,
        ).to(self.device)
        self.box = PixelBox.for_normalisation(config.epsilon, train.mean, train.std, self.device)
        self.sample_gen = torch.Generator().manual_seed(config.seed + 1)
        self.device_gen = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.plan = stage_plan(config)
        self.stage = 0
        n_edges = len(edge_inputs(config.nodes))
        self.masks: tuple[torch.Tensor, torch.Tensor] | None = (
            (full_mask(n_edges), full_mask(n_edges)) if config.backbone == "pdarts" else None
        )
        self.epoch = 0
        self._build_stage()

    def _build_stage(self) -> None:
        """The current stage's supernet (new θ and α), optimisers and cosine schedule."""
        cfg = self.config
        partial = cfg.backbone == "pc_darts"
        self.net = SearchNetwork(
            self.num_classes,
            self.plan[self.stage].layers,
            cfg.init_channels,
            self.input_size,
            self.in_channels,
            cfg.nodes,
            stem_multiplier=cfg.stem_multiplier,
            partial_k=cfg.pc_k if partial else 1,
            edge_normalization=partial,
            op_masks=self.masks,
            skip_limit=cfg.pdarts_skip_limit if cfg.backbone == "pdarts" else None,
        ).to(self.device)
        self.net.to(memory_format=memory_format(cfg.channels_last))
        self.net.autocast = autocast_dtype(cfg.autocast)
        self.step = BilevelStep(self.net, cfg, self.costs, self.box, self.device_gen)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.step.w_optim, cfg.epochs, eta_min=cfg.lr_min
        )

    def _next_stage(self) -> None:
        """P-DARTS's search-space approximation: prune by this stage's α, build the next."""
        assert self.masks is not None
        keep = self.plan[self.stage + 1].ops
        weights = [w.detach().cpu() for w in self.net.op_weights()]
        pruned = [prune_ops(w, m, keep) for w, m in zip(weights, self.masks, strict=True)]
        self.masks = (pruned[0], pruned[1])
        self.stage += 1
        self._build_stage()

    def run_epoch(self, progress: Progress | None = None) -> dict[str, Any]:
        cfg, B = self.config, self.config.batch_size
        started = time.perf_counter()
        stage = self.plan[self.stage]
        in_stage = self.epoch - stage.first_epoch
        arch_moves = in_stage >= cfg.arch_warmup_epochs
        extra: dict[str, Any] = {"arch_updates": arch_moves}
        if cfg.backbone == "pdarts":
            rate = skip_dropout_rate(stage.dropout, in_stage, cfg.epochs, cfg.arch_warmup_epochs)
            self.net.set_skip_dropout(rate)
            extra.update(stage=stage.index + 1, skip_dropout=rate)
        # The epoch's whole sampling plan moves to the device in one copy per index set, so
        # the steps themselves never wait on the host.
        order_w = self.weight_idx[torch.randperm(len(self.weight_idx), generator=self.sample_gen)]
        order_a = self.arch_idx[torch.randperm(len(self.arch_idx), generator=self.sample_gen)]
        ood_picks = torch.randint(
            len(self.ood.labels), (self.steps_per_epoch, B), generator=self.sample_gen
        )
        order_w, order_a, ood_picks = (
            t.to(self.device, non_blocking=True) for t in (order_w, order_a, ood_picks)
        )
        loss_sum = torch.zeros(len(cfg.objectives), device=self.device)
        weight_sum = torch.zeros(len(cfg.objectives), device=self.device)
        # Per objective: ‖g_k‖ and γ_k‖g_k‖ (the effective weight under l2 normalisation).
        norm_sum = torch.zeros(2, len(cfg.objectives), device=self.device)
        train_sum = torch.zeros((), device=self.device)
        for s in range(self.steps_per_epoch):
            train = self.data.batch(order_w[s * B : (s + 1) * B], self.device_gen)
            ood_x, _ = self.ood.batch(ood_picks[s], None, augment=False)
            if arch_moves:
                val = self.data.batch(order_a[s * B : (s + 1) * B], self.device_gen)
                result = self.step.step(train, val, ood_x)
                loss_sum += result.losses
                weight_sum += result.weights
                norm_sum += torch.stack([result.grad_norms, result.weights * result.grad_norms])
                train_sum += result.train_loss
            else:
                train_sum += self.step.weight_step(train, ood_x)
            if progress is not None:
                progress(self.epoch, s + 1, self.steps_per_epoch)
        self.schedule.step()
        self.epoch += 1
        record = self._record(loss_sum, weight_sum, train_sum, arch_moves, started)
        norms = (norm_sum / self.steps_per_epoch).tolist() if arch_moves else [None, None]
        record.update(grad_norms=norms[0], effective_weights=norms[1])
        record.update(extra)
        if self.epoch == stage.first_epoch + cfg.epochs and self.stage + 1 < len(self.plan):
            self._next_stage()
        return record

    def _record(
        self,
        loss_sum: torch.Tensor,
        weight_sum: torch.Tensor,
        train_sum: torch.Tensor,
        arch_moves: bool,
        started: float,
    ) -> dict[str, Any]:
        """The epoch's metrics line; warm-up epochs (no α step) have no upper objectives."""
        cfg, n = self.config, self.steps_per_epoch
        losses = (loss_sum / n).tolist()
        genotype = self.net.genotype()
        params_m, flops_m = self.genotype_size(genotype)
        record: dict[str, Any] = {"epoch": self.epoch}
        for name in ("val", "ood", "adv", "nop", "flops"):
            key = f"{name}_loss"
            measured = arch_moves and name in cfg.objectives
            record[key] = losses[cfg.objectives.index(name)] if measured else None
        record.update(
            mgda_weights=(weight_sum / n).tolist() if arch_moves else None,
            objectives=list(cfg.objectives),
            train_loss=float(train_sum / n),
            params_m=params_m,
            flops_m=flops_m,
            genotype=genotype.to_json(),
            genotype_hash=genotype.genotype_hash(),
            lr=self.schedule.get_last_lr()[0],
            seconds=time.perf_counter() - started,
            ended_at=time.time(),  # wall clock: orders the epochs of a sweep's trials
        )
        return record

    def genotype_size(self, genotype: Genotype) -> tuple[float, float]:
        return genotype_size(genotype, self.costs)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        stages: dict[str, Any] = {"stage": self.stage}
        if self.masks is not None:
            stages["op_masks"] = list(self.masks)
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            **stages,
            "net": self.net.state_dict(),
            "w_optim": self.step.w_optim.state_dict(),
            "a_optim": self.step.a_optim.state_dict(),
            "schedule": self.schedule.state_dict(),
            **generator_states(self.sample_gen, self.device_gen, self.device),
        }

    def load_state_dict(self, state: dict[str, Any], source: Path) -> None:
        try:
            saved = from_mapping(state["config"])
            if saved != self.config:
                diff = [
                    f"{k}: {v!r} (checkpoint) vs {getattr(self.config, k)!r}"
                    for k, v in saved.to_dict().items()
                    if v != self.config.to_dict()[k]
                ]
                raise CheckpointError(
                    f"{source}: written for another configuration ({'; '.join(diff)}); "
                    "resume with the same settings or use another --out"
                )
            stage = int(state.get("stage", 0))
            if not 0 <= stage < len(self.plan):
                raise ValueError(f"stage {stage} of a search with {len(self.plan)} stages")
            if "op_masks" in state:
                normal, reduce = (m.to(torch.bool) for m in state["op_masks"])
                self.masks = (normal, reduce)
            if stage != self.stage or self.masks is not None:
                self.stage = stage
                self._build_stage()
            self.net.load_state_dict(state["net"])
            self.step.w_optim.load_state_dict(state["w_optim"])
            self.step.a_optim.load_state_dict(state["a_optim"])
            self.schedule.load_state_dict(state["schedule"])
            restore_generators(state, self.sample_gen, self.device_gen, self.device)
            self.epoch = int(state["epoch"])
        except CheckpointError:
            raise
        except (KeyError, RuntimeError, TypeError, ValueError, ConfigError) as exc:
            raise CheckpointError(
                f"{source}: not a checkpoint of this search ({type(exc).__name__}: {exc}); "
                "delete it to start over, or use another --out"
            ) from None

    def save(self, out_dir: Path) -> None:
        save_atomic(self.state_dict(), out_dir / CHECKPOINT)


def _read_records(path: Path, upto: int) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            epoch = int(record["epoch"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                f"{path}: line {n}: not a metrics record ({type(exc).__name__}); "
                "delete the directory to start over, or use another --out"
            ) from None
        if epoch <= upto:
            records.append(record)
    return records


def run_search(
    config: SearchConfig,
    out_dir: str | Path,
    resume: bool = False,
    reporter: Reporter | None = None,
    progress: Progress | None = None,
) -> SearchResult:
    """Run (or resume) one search, writing its outputs under ``out_dir``.

    Writes ``genotype.json``, ``genotype.py``, ``metrics.jsonl``, ``config.json`` and
    ``checkpoint.pt``. Without ``resume``, a directory that already holds a search is an error
    rather than something to overwrite.
    """
    out = Path(out_dir)
    ckpt = out / CHECKPOINT
    if not resume and (ckpt.exists() or (out / METRICS).exists()):
        raise ConfigError(
            f"--out: {out} already holds a search; pass --resume to continue it, "
            "or choose another directory"
        )
    state = load_checkpoint(ckpt) if resume and ckpt.exists() else None
    search = Search(config)
    out.mkdir(parents=True, exist_ok=True)
    if state is not None:
        search.load_state_dict(state, ckpt)
    records = _read_records(out / METRICS, search.epoch)
    write_atomic(out / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    while search.epoch < config.total_epochs:
        record = search.run_epoch(progress)
        records.append(record)
        # metrics before the checkpoint: a kill between the two reruns the epoch on resume
        write_atomic(out / METRICS, "".join(json.dumps(r) + "\n" for r in records))
        search.save(out)
        if reporter is not None:
            reporter(record, out)
    genotype = search.net.genotype()
    write_atomic(out / "genotype.json", genotype.dumps() + "\n")
    write_atomic(out / "genotype.py", genotype.to_darts_text("genotype") + "\n")
    return SearchResult(genotype=genotype, records=records, out_dir=out)
