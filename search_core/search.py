"""The search loop of Algorithm 1, with a checkpoint every epoch and a reporting callback.

:func:`run_search` loads the in-distribution and OoD sets onto the device once, splits the
training set in halves (θ and α, IV-B-2), and runs ``epochs`` epochs of
:class:`~search_core.bilevel.BilevelStep`. After each epoch it derives the genotype, counts its
exact size in the units of L and F, appends one line to ``metrics.jsonl``, writes a checkpoint
(θ, α, both optimisers, the schedule and every random generator) and calls the reporter, which
the sweep layer fills with Ray Tune's report. Rerunning with ``resume=True`` continues from the
last checkpoint and ends exactly where an uninterrupted run would. Outputs are written
atomically, so a killed run never leaves a half-written file.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

import torch

from search_core.augment import normalize, random_crop_flip, to_float
from search_core.bilevel import BilevelStep
from search_core.config import SearchConfig, from_mapping
from search_core.cost import build_cost_tables, genotype_size
from search_core.data import ImageSet, load_image_set, split_halves
from search_core.errors import CheckpointError, ConfigError
from search_core.genotypes import Genotype
from search_core.model_search import SearchNetwork
from search_core.objectives import PixelBox

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


def _replace_whole(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file of this writer alone beside ``path``, then rename it
    over ``path``, so that ``path`` holds either the old or the whole new content.

    The temporary file is removed when anything fails, and an OSError (a full disk) names
    ``path``. The file gets the permissions a plain ``open`` would give it.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` so that ``path`` holds either the old or the whole new checkpoint.

    torch serialises into memory and the bytes are written here, so a full disk is the
    OSError it is: torch's own writer reports a failed write as a RuntimeError that hides it.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _replace_whole(path, lambda handle: handle.write(buffer.getbuffer()))


def generator_states(
    sample_gen: torch.Generator, device_gen: torch.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """Every random state a run draws from, for its checkpoint."""
    states = {
        "sample_gen": sample_gen.get_state(),
        "device_gen": device_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":  # drop-path draws from the device's default generator
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def restore_generators(
    state: dict[str, Any],
    sample_gen: torch.Generator,
    device_gen: torch.Generator,
    device: torch.device,
) -> None:
    """Put back what :func:`generator_states` saved (KeyError if a state is missing)."""
    sample_gen.set_state(state["sample_gen"])
    device_gen.set_state(state["device_gen"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) so that ``path`` holds either the old or the whole new content."""
    _replace_whole(path, lambda handle: handle.write(text.encode("utf-8")))


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
        self.net = SearchNetwork(
            self.num_classes,
            config.layers,
            config.init_channels,
            self.input_size,
            self.in_channels,
            config.nodes,
            stem_multiplier=config.stem_multiplier,
        ).to(self.device)
        self.costs = build_cost_tables(
            config.eval_layers,
            config.eval_init_channels,
            self.num_classes,
            self.input_size,
            self.in_channels,
            config.nodes,
            stem_multiplier=config.stem_multiplier,
        ).to(self.device)
        box = PixelBox.for_normalisation(config.epsilon, train.mean, train.std, self.device)
        self.sample_gen = torch.Generator().manual_seed(config.seed + 1)
        self.device_gen = torch.Generator(device=self.device).manual_seed(config.seed + 2)
        self.step = BilevelStep(self.net, config, self.costs, box, self.device_gen)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.step.w_optim, config.epochs, eta_min=config.lr_min
        )
        self.epoch = 0

    def run_epoch(self, progress: Progress | None = None) -> dict[str, Any]:
        cfg, B = self.config, self.config.batch_size
        started = time.perf_counter()
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
        train_sum = torch.zeros((), device=self.device)
        for s in range(self.steps_per_epoch):
            train = self.data.batch(order_w[s * B : (s + 1) * B], self.device_gen)
            val = self.data.batch(order_a[s * B : (s + 1) * B], self.device_gen)
            ood_x, _ = self.ood.batch(ood_picks[s], None, augment=False)
            result = self.step.step(train, val, ood_x)
            loss_sum += result.losses
            weight_sum += result.weights
            train_sum += result.train_loss
            if progress is not None:
                progress(self.epoch, s + 1, self.steps_per_epoch)
        self.schedule.step()
        self.epoch += 1
        n = self.steps_per_epoch
        losses = (loss_sum / n).tolist()
        genotype = self.net.genotype()
        params_m, flops_m = self.genotype_size(genotype)
        record: dict[str, Any] = {"epoch": self.epoch}
        for name in ("val", "ood", "adv", "nop", "flops"):
            key = f"{name}_loss"
            record[key] = losses[cfg.objectives.index(name)] if name in cfg.objectives else None
        record.update(
            mgda_weights=(weight_sum / n).tolist(),
            objectives=list(cfg.objectives),
            train_loss=float(train_sum / n),
            params_m=params_m,
            flops_m=flops_m,
            genotype=genotype.to_json(),
            genotype_hash=genotype.genotype_hash(),
            lr=self.schedule.get_last_lr()[0],
            seconds=time.perf_counter() - started,
        )
        return record

    def genotype_size(self, genotype: Genotype) -> tuple[float, float]:
        return genotype_size(genotype, self.costs)

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
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


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only``); any damage is one clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}); "
            "delete it to start over, or use another --out"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (expected a dict of states)")
    return state


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
    while search.epoch < config.epochs:
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
