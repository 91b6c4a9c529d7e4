"""Deriving the discrete cell from the architecture weights (section III-A).

E2RNAS derives the discrete cell with the DARTS rule (III-A; DARTS, Liu et al. 2019, section
2.4): for every intermediate node keep the two incoming edges with the strongest non-``none``
operation (softmax weight over the row), and on each kept edge the strongest non-``none``
operation. The cell output concatenates the last ``multiplier`` nodes. PC-DARTS scales each
edge's op weights by its normalised β before the rule, P-DARTS zeroes the ops it pruned
(:mod:`search_core.partial`, :mod:`search_core.progressive`).
"""

from __future__ import annotations

import math

import torch

from search_core.errors import GenotypeError
from search_core.genotypes import PRIMITIVES, Edge, Genotype, _show

__all__ = ["derive_from_weights", "derive_genotype", "softmax_rows"]


def derive_genotype(
    alpha_normal: torch.Tensor, alpha_reduce: torch.Tensor, steps: int = 4, multiplier: int = 4
) -> Genotype:
    """The discrete cells alpha stands for, by the DARTS rule (III-A; DARTS section 2.4).

    Rows of alpha are edges, node by node (node 0: inputs 0, 1; node 1: inputs 0, 1, 2; ...),
    columns are `PRIMITIVES`. With w = softmax(alpha) over each row, the strength of an edge is
    max over ops o != none of w[o]; each node keeps its two strongest edges (ties: lower input
    first), strongest first, each with its argmax non-``none`` op (ties: first in PRIMITIVES).
    Both cells concatenate their last ``multiplier`` nodes.
    """
    weights = [
        softmax_rows(_checked(alpha, field, steps, multiplier))
        for alpha, field in ((alpha_normal, "alpha_normal"), (alpha_reduce, "alpha_reduce"))
    ]
    return derive_from_weights(weights[0], weights[1], steps, multiplier)


def softmax_rows(values: torch.Tensor) -> torch.Tensor:
    """softmax over the last dimension of a 1-D or 2-D tensor, in float64 on the CPU, the same
    for every order of a row's entries (``-inf`` entries get weight 0).

    The derivation ranks these weights and breaks exact ties by position, so two edges with
    equal logits must get equal weights. ``torch.softmax`` does not promise that: its vectorised
    sum adds a row's terms in an order that depends on where they sit, and on an AVX-512 CPU
    softmax([2, 0, ..., 0]) and the same logits with the 2 in another column differ in the last
    bit (float32 and float64 alike). ``math.fsum`` rounds the exact sum once, whatever the order.
    """
    rows = values.detach().to(device="cpu", dtype=torch.float64)
    flat = rows.reshape(-1, rows.shape[-1]).tolist() if rows.dim() else [[float(rows)]]
    out = []
    for row in flat:
        top = max(row)
        terms = [math.exp(v - top) for v in row]
        total = math.fsum(terms)
        out.append([t / total for t in terms])
    return torch.tensor(out, dtype=torch.float64).reshape(rows.shape)


def derive_from_weights(
    weights_normal: torch.Tensor, weights_reduce: torch.Tensor, steps: int = 4, multiplier: int = 4
) -> Genotype:
    """`derive_genotype`'s rule on op weights given directly (rows: edges, columns: ops), which
    PC-DARTS scales by each edge's normalised β and P-DARTS zeroes where it pruned."""
    normal = _checked(weights_normal, "weights_normal", steps, multiplier).tolist()
    reduce = _checked(weights_reduce, "weights_reduce", steps, multiplier).tolist()
    concat = tuple(range(2 + steps - multiplier, steps + 2))
    return Genotype(_derive_cell(normal, steps), concat, _derive_cell(reduce, steps), concat)


def _checked(values: object, field: str, steps: int, multiplier: int) -> torch.Tensor:
    """``values`` as a finite float64 CPU tensor of one cell's (edges, ops) shape; anything
    else, or bad ``steps`` or ``multiplier``, raises GenotypeError."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise GenotypeError(f"steps: expected an int >= 1, got {_show(steps)}")
    if (
        isinstance(multiplier, bool)
        or not isinstance(multiplier, int)
        or not 1 <= multiplier <= steps
    ):
        raise GenotypeError(
            f"multiplier: expected an int in 1..steps={steps}, got {_show(multiplier)}"
        )
    shape = (steps * (steps + 3) // 2, len(PRIMITIVES))
    if not isinstance(values, torch.Tensor):
        raise GenotypeError(f"{field}: expected a tensor of shape {shape}, got {_show(values)}")
    if tuple(values.shape) != shape:
        raise GenotypeError(
            f"{field}: expected shape {shape} ({steps} steps x {len(PRIMITIVES)} PRIMITIVES), "
            f"got {tuple(values.shape)}"
        )
    out = values.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(out).all()):
        raise GenotypeError(f"{field}: expected finite values, got NaN or infinity")
    return out


def _derive_cell(weights: list[list[float]], steps: int) -> tuple[Edge, ...]:
    """The kept edges of one cell from its op weights; see `derive_genotype`."""
    candidates = [k for k, op in enumerate(PRIMITIVES) if op != "none"]

    def best_op(row: list[float]) -> int:
        best = candidates[0]
        for k in candidates[1:]:
            if row[k] > row[best]:
                best = k
        return best

    edges: list[Edge] = []
    start = 0
    for node in range(steps):
        rows = weights[start : start + node + 2]
        # sorted() is stable, so equally strong edges keep the lower input first.
        kept = sorted(range(node + 2), key=lambda j: -rows[j][best_op(rows[j])])[:2]
        edges.extend((PRIMITIVES[best_op(rows[j])], j) for j in kept)
        start += node + 2
    return tuple(edges)
