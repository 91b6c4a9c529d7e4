"""P-DARTS (Chen et al. 2019, section 3): progressive depth, search-space approximation and
search-space regularisation.

The search runs in stages (section 3.2); stage s trains a new supernet of ``layers_s`` cells
(5, 11, 17 on CIFAR) whose edges hold only the ops that survived the stage before (8, 5, 3),
with fresh weights θ and a fresh α over those ops. Between stages every edge keeps its
``ops_{s+1}`` strongest ops by softmax(α) over the ops it searched, ``none`` included
(`prune_ops`, the search-space approximation). The network's depth thus grows while its
width of choice shrinks, keeping the memory of a stage bounded.

Two regularisers (section 3.3): operation-level dropout after every skip-connect (the stride-1
identity; a strided skip-connect is a convolution), whose rate starts at each stage's own
value and decays (`skip_dropout_rate`, the schedule of the authors' code); and, on the final
cell, at most M skip-connects in the normal cell (`limit_skip_connections`).

α lives in full (edges x `PRIMITIVES`) tensors here, with a boolean mask of the ops each edge
still searches: softmax over the surviving ops is softmax(α) with the others at −∞, so the
cost model, the derivation and the bi-level step see the same tensors as for DARTS, with the
pruned ops at weight 0. The derivation (`pdarts_genotype`) is DARTS's rule on those weights,
which is what the authors' final steps compute (drop ``none``, keep each edge's strongest op,
keep each node's two strongest edges), followed by the skip-connect limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from search_core.config import SearchConfig
from search_core.derive import derive_from_weights, softmax_rows
from search_core.genotypes import PRIMITIVES, Genotype

NONE = PRIMITIVES.index("none")
SKIP = PRIMITIVES.index("skip_connect")
DROPOUT_DECAY = 0.2  # the authors' per-epoch exponential decay of the dropout after warm-up


@dataclass(frozen=True)
class Stage:
    """One search stage: its depth, ops per edge, initial skip dropout and first epoch."""

    index: int
    layers: int
    ops: int
    dropout: float
    first_epoch: int


def stage_plan(config: SearchConfig) -> list[Stage]:
    """The stages of a search: P-DARTS's from the config, one stage for the other backbones."""
    if config.backbone != "pdarts":
        return [Stage(0, config.layers, len(PRIMITIVES), 0.0, 0)]
    return [
        Stage(s, layers, ops, dropout, s * config.epochs)
        for s, (layers, ops, dropout) in enumerate(
            zip(
                config.pdarts_stage_layers,
                config.pdarts_stage_ops,
                config.pdarts_stage_dropout,
                strict=True,
            )
        )
    ]


def full_mask(n_edges: int) -> torch.Tensor:
    """Every op searched on every edge (the first stage)."""
    return torch.ones(n_edges, len(PRIMITIVES), dtype=torch.bool)


def masked_softmax(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over each row's surviving ops; pruned ops get weight 0 (and gradient 0)."""
    return alpha.masked_fill(~mask, -math.inf).softmax(dim=-1)


def exact_masked_softmax(alpha: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`masked_softmax` for the derivation: float64, equal logits give exactly equal weights
    (see `search_core.derive.softmax_rows`); no gradient."""
    return softmax_rows(alpha.detach().masked_fill(~mask.to(alpha.device), -math.inf))


def prune_ops(weights: torch.Tensor, mask: torch.Tensor, keep: int) -> torch.Tensor:
    """The mask of the next stage: each edge keeps its ``keep`` strongest surviving ops.

    ``weights`` are the masked softmax of the stage that ends. The weakest ops go first, ties
    going to the lower op index first, as the authors' repeated argmin drops them.
    """
    out = torch.zeros_like(mask)
    for e in range(mask.shape[0]):
        alive = [o for o in range(mask.shape[1]) if bool(mask[e, o])]
        if len(alive) < keep:
            raise ValueError(f"edge {e} searches {len(alive)} ops, fewer than {keep} to keep")
        # sorted() is stable: among equal weights the lower index is dropped first.
        ranked = sorted(alive, key=lambda o: float(weights[e, o]))
        for o in ranked[len(alive) - keep :]:
            out[e, o] = True
    return out


def skip_dropout_rate(initial: float, epoch: int, epochs: int, warmup: int) -> float:
    """The skip-connect dropout in epoch ``epoch`` (0-based) of a stage of ``epochs``.

    While α is frozen (the first ``warmup`` epochs) it falls linearly, initial·(E − e − 1)/E;
    once α moves it decays exponentially from the initial rate, initial·exp(−0.2 (e − warmup)).
    """
    if epoch < warmup:
        return initial * (epochs - epoch - 1) / epochs
    return initial * math.exp(-(epoch - warmup) * DROPOUT_DECAY)


def limit_skip_connections(weights: torch.Tensor, steps: int, limit: int) -> torch.Tensor:
    """Normal-cell op weights whose derived cell keeps at most ``limit`` skip-connects.

    While the cell `derive_from_weights` builds has more, the kept skip-connect of the lowest
    weight is removed (its weight set to 0: its edge then offers its next op, and may lose its
    place to another edge), and the cell is derived again, as P-DARTS's final step does.
    """
    out = weights.detach().clone()
    while True:
        cell = derive_from_weights(out, out, steps, steps).normal
        rows = _rows(cell, steps)
        skips = [row for (op, _), row in zip(cell, rows, strict=True) if op == "skip_connect"]
        if len(skips) <= limit:
            return out
        weakest = min(skips, key=lambda row: (float(out[row, SKIP]), row))
        out[weakest, SKIP] = 0.0


def _rows(cell: tuple[tuple[str, int], ...], steps: int) -> list[int]:
    """The α row of each kept edge of a cell (edge k belongs to node k // 2)."""
    offsets = [sum(n + 2 for n in range(node)) for node in range(steps)]
    return [offsets[k // 2] + j for k, (_, j) in enumerate(cell)]


def pdarts_genotype(
    alpha_normal: torch.Tensor,
    alpha_reduce: torch.Tensor,
    mask_normal: torch.Tensor,
    mask_reduce: torch.Tensor,
    steps: int = 4,
    multiplier: int = 4,
    skip_limit: int | None = 2,
) -> Genotype:
    """The discrete cells of P-DARTS: DARTS's rule on the masked softmax, then at most
    ``skip_limit`` skip-connects in the normal cell (None: no limit)."""
    normal = exact_masked_softmax(alpha_normal, mask_normal)
    reduce = exact_masked_softmax(alpha_reduce, mask_reduce)
    if skip_limit is not None:
        normal = limit_skip_connections(normal, steps, skip_limit)
    return derive_from_weights(normal, reduce, steps, multiplier)
