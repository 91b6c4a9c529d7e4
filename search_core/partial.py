"""PC-DARTS (Xu et al. 2020, section 3): partial channel connections and edge normalisation.

Partial channels (section 3.2): an edge (i, j) sends only 1/K of the channels of x_i through its
mixed op, f_ij(x_i) = shuffle(concat(Σ_o softmax(α_ij)_o o(S_ij x_i), (1 − S_ij) x_i)), where
S_ij masks the first C/K channels; the other channels bypass the op (through 2x2 max pooling
when the edge strides, so both halves have the output's size), and a channel shuffle with K
groups interleaves the two, so that the next edge samples other channels. The ops are built on
C/K channels, which is where the memory and time go down by about K.

Edge normalisation (section 3.3): a node weighs its incoming edges by their own parameters β,
x_j = Σ_{i<j} softmax_i(β_ij) f_ij(x_i), the softmax taken over the node's incoming edges. The
discrete cell multiplies both (section 3.3, "the connectivity of edge (i, j) is determined by
both α and β"): the DARTS rule of `search_core.genotypes` applied to softmax(α_ij)_o ·
softmax(β)_ij, so that an edge's strength is its strongest non-``none`` op times its β weight.

The E2RNAS authors' PC-DARTS variant weighs each edge's expected cost by that β weight; see
`edge_cost_factors` for the factor that keeps the cost model exact at a one-hot architecture.
"""

from __future__ import annotations

import torch
from torch import nn

from search_core.derive import derive_from_weights, softmax_rows
from search_core.genotypes import Genotype


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet's channel shuffle: channel g·(C/groups) + i moves to i·groups + g."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class PartialMixedOp(nn.Module):
    """A mixed op on the first 1/K of the channels; the rest bypass it, then shuffle.

    ``inner`` is the mixed op built on ``channels // k`` channels (a
    `search_core.model_search.MixedOp`), called with the edge's op weights.
    """

    def __init__(self, inner: nn.Module, k: int, stride: int) -> None:
        super().__init__()
        self.inner = inner
        self.k = k
        # ceil_mode: the bypass matches the ops' output size ((s + 1) // 2) on odd sizes too.
        self.bypass: nn.Module = (
            nn.MaxPool2d(2, 2, ceil_mode=True) if stride == 2 else nn.Identity()
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        active = x.shape[1] // self.k
        searched = self.inner(x[:, :active], weights)
        kept = self.bypass(x[:, active:])
        return channel_shuffle(torch.cat([searched, kept], dim=1), self.k)


def edge_softmax(beta: torch.Tensor, steps: int) -> torch.Tensor:
    """softmax(β) over each node's incoming edges (rows in `edge_inputs` order)."""
    parts = []
    start = 0
    for node in range(steps):
        parts.append(beta[start : start + node + 2].softmax(dim=0))
        start += node + 2
    return torch.cat(parts)


def edge_cost_factors(beta: torch.Tensor, steps: int) -> torch.Tensor:
    """Each edge's weight in the expected cost: 2·softmax(β) over its node's edges.

    The authors' variant weighs an edge's expected op cost by softmax(β) alone. A node of the
    derived network keeps two edges, and the one-hot architecture of a genotype puts β weight
    1/2 on each of them (0 elsewhere): the factor 2 makes the estimate equal the built
    network's size there, as the contract of `search_core.cost` asks.
    """
    return 2.0 * edge_softmax(beta, steps)


def pc_darts_weights(op_weights: torch.Tensor, beta: torch.Tensor, steps: int) -> torch.Tensor:
    """softmax(α) · softmax(β), row by row: what the PC-DARTS derivation ranks."""
    return op_weights * edge_softmax(beta, steps).unsqueeze(1)


def pc_darts_genotype(
    alpha_normal: torch.Tensor,
    alpha_reduce: torch.Tensor,
    beta_normal: torch.Tensor,
    beta_reduce: torch.Tensor,
    steps: int = 4,
    multiplier: int = 4,
) -> Genotype:
    """The discrete cells of PC-DARTS: the DARTS rule on softmax(α)·softmax(β) (section 3.3)."""
    normal = softmax_rows(alpha_normal) * exact_edge_softmax(beta_normal, steps).unsqueeze(1)
    reduce = softmax_rows(alpha_reduce) * exact_edge_softmax(beta_reduce, steps).unsqueeze(1)
    return derive_from_weights(normal, reduce, steps, multiplier)


def exact_edge_softmax(beta: torch.Tensor, steps: int) -> torch.Tensor:
    """`edge_softmax` with `softmax_rows`: equal β on a node's edges give exactly equal weights,
    so the derivation's tie rule holds (see `softmax_rows`)."""
    parts, start = [], 0
    for node in range(steps):
        parts.append(softmax_rows(beta[start : start + node + 2]))
        start += node + 2
    return torch.cat(parts)
