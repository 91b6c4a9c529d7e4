"""The supernet and its architecture parameters α (section III-A), for the three backbones.

Every edge (i, j) of a cell computes f_ij(d_i) = Σ_o softmax(α^(i,j))_o o(d_i); a node sums its
incoming edges; the cell outputs the concatenation of its intermediate nodes. All normal cells
share ``alpha_normal`` and both reduction cells share ``alpha_reduce`` (rows: edges in the
order of :func:`search_core.layout.edge_inputs`, columns: ``PRIMITIVES``).

The backbones of Table IV change three things, each in its own module:

- PC-DARTS (:mod:`search_core.partial`): each edge's mixed op sees 1/K of the channels, and
  nodes weigh their incoming edges by softmax(β), with β (``beta_normal``, ``beta_reduce``)
  learnt beside α.
- P-DARTS (:mod:`search_core.progressive`): each edge builds only the ops that its stage
  still searches (``op_masks``, kept as buffers so a checkpoint of the network carries them),
  softmax(α) runs over those, and a skip-connect's output passes through dropout.
- DARTS: neither.

The network is its own controller: :meth:`SearchNetwork.weights` are θ, :meth:`alphas` are the
architecture parameters (α, and β for PC-DARTS), :meth:`genotype` derives the discrete cell by
its backbone's rule, and :meth:`cost_weights` are the op weights the cost model prices. Batch
norm uses batch statistics only (no running buffers), so the network is a pure function of
(θ, α, x) and can be called functionally at unrolled weights θ' (eq. 9).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F_nn
from torch import nn

from search_core.cost import derived_weights
from search_core.derive import derive_from_weights, softmax_rows
from search_core.genotypes import PRIMITIVES, Genotype
from search_core.layout import CellSpec, cell_layout, edge_inputs
from search_core.ops import FactorizedReduce, ReLUConvBN, build_op
from search_core.partial import PartialMixedOp, edge_cost_factors, edge_softmax, exact_edge_softmax
from search_core.progressive import (
    SKIP,
    exact_masked_softmax,
    limit_skip_connections,
    masked_softmax,
)

ALPHA_NAMES = ("alpha_normal", "alpha_reduce")
BETA_NAMES = ("beta_normal", "beta_reduce")
MASK_NAMES = ("op_mask_normal", "op_mask_reduce")


class MixedOp(nn.Module):
    """One edge of the supernet: the softmax-weighted sum of its candidate ops.

    ``candidates`` are the columns of `PRIMITIVES` the edge searches (all by default; P-DARTS
    prunes them). ``none`` is never built: its output is zero, so it changes nothing but the
    softmax. ``skip_dropout`` is P-DARTS's dropout after the stride-1 skip-connect.
    """

    def __init__(self, channels: int, stride: int, candidates: Sequence[int] | None = None) -> None:
        super().__init__()
        ops = []
        self.indices: list[int] = []
        for o in range(len(PRIMITIVES)) if candidates is None else candidates:
            name = PRIMITIVES[o]
            if name == "none":
                continue
            op = build_op(name, channels, stride, affine=False, track_stats=False)
            if "pool" in name:
                op = nn.Sequential(
                    op, nn.BatchNorm2d(channels, affine=False, track_running_stats=False)
                )
            ops.append(op)
            self.indices.append(o)
        self.ops = nn.ModuleList(ops)
        self.skip_dropout = 0.0
        self.identity = tuple(o == SKIP and stride == 1 for o in self.indices)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for o, op, identity in zip(self.indices, self.ops, self.identity, strict=True):
            y = op(x)
            if identity and self.skip_dropout > 0:
                y = F_nn.dropout(y, self.skip_dropout, training=True)
            h = weights[o] * y
            out = h if out is None else out + h
        assert out is not None, "an edge searches at least one op besides none"
        return out


class SearchCell(nn.Module):
    """A cell whose every edge is a mixed op (partially connected for PC-DARTS)."""

    def __init__(
        self,
        spec: CellSpec,
        steps: int,
        multiplier: int,
        partial_k: int = 1,
        op_mask: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        c = spec.channels
        self.reduction = spec.reduction
        self.steps = steps
        self.multiplier = multiplier
        if spec.reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(
                spec.c_prev_prev, c, affine=False, track_stats=False
            )
        else:
            self.preprocess0 = ReLUConvBN(spec.c_prev_prev, c, 1, 1, 0, False, False)
        self.preprocess1 = ReLUConvBN(spec.c_prev, c, 1, 1, 0, False, False)
        self.edges = edge_inputs(steps)
        ops: list[nn.Module] = []
        for e, (_, j) in enumerate(self.edges):
            stride = 2 if spec.reduction and j < 2 else 1
            candidates = None if op_mask is None else op_mask[e].nonzero().flatten().tolist()
            op: nn.Module = MixedOp(c // partial_k, stride, candidates)
            if partial_k > 1:
                op = PartialMixedOp(op, partial_k, stride)
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        edge_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for node in range(self.steps):
            total: torch.Tensor | None = None
            for j in range(node + 2):
                h = self.ops[e](states[j], weights[e])
                if edge_weights is not None:
                    h = edge_weights[e] * h
                total = h if total is None else total + h
                e += 1
            assert total is not None
            states.append(total)
        return torch.cat(states[-self.multiplier :], dim=1)


class SearchNetwork(nn.Module):
    """The supernet: stem, search cells, global pooling, classifier, and the architecture.

    ``partial_k`` > 1 or ``edge_normalization`` make it PC-DARTS's, ``op_masks`` (normal,
    reduce; edges x `PRIMITIVES`, True where an op is searched) P-DARTS's; ``skip_limit`` is
    the most skip-connects :meth:`genotype` keeps in the normal cell (None: no limit).
    ``autocast`` (a dtype, or None) runs the cells under autocast and returns float32 logits,
    so that every loss, gradient of α and update stays in float32 (config ``autocast``).
    """

    def __init__(
        self,
        num_classes: int,
        layers: int = 8,
        init_channels: int = 16,
        input_size: int = 32,
        in_channels: int = 3,
        steps: int = 4,
        stem_multiplier: int = 3,
        *,
        partial_k: int = 1,
        edge_normalization: bool = False,
        op_masks: tuple[torch.Tensor, torch.Tensor] | None = None,
        skip_limit: int | None = None,
    ) -> None:
        super().__init__()
        self.steps = steps
        multiplier = steps  # the cell concatenates all its intermediate nodes
        self.multiplier = multiplier
        self.skip_limit = skip_limit
        specs = cell_layout(layers, init_channels, input_size, stem_multiplier, multiplier)
        c_stem = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_stem, track_running_stats=False),
        )
        masks = (None, None) if op_masks is None else op_masks
        self.cells = nn.ModuleList(
            SearchCell(spec, steps, multiplier, partial_k, masks[1 if spec.reduction else 0])
            for spec in specs
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(multiplier * specs[-1].channels, num_classes)
        n_edges = len(edge_inputs(steps))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))
        self.arch_names: tuple[str, ...] = ALPHA_NAMES
        if edge_normalization:
            self.beta_normal = nn.Parameter(1e-3 * torch.randn(n_edges))
            self.beta_reduce = nn.Parameter(1e-3 * torch.randn(n_edges))
            self.arch_names = (*ALPHA_NAMES, *BETA_NAMES)
        self.autocast: torch.dtype | None = None
        self.masked = op_masks is not None
        if op_masks is not None:
            for name, mask in zip(MASK_NAMES, op_masks, strict=True):
                self.register_buffer(name, mask.to(torch.bool).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal, w_reduce = self.op_weights()
        e_normal, e_reduce = self.edge_weights()
        if self.autocast is None:
            return self._logits(x, w_normal, w_reduce, e_normal, e_reduce)
        with torch.autocast(x.device.type, dtype=self.autocast):
            logits = self._logits(x, w_normal, w_reduce, e_normal, e_reduce)
        return logits.float()

    def _logits(
        self,
        x: torch.Tensor,
        w_normal: torch.Tensor,
        w_reduce: torch.Tensor,
        e_normal: torch.Tensor | None,
        e_reduce: torch.Tensor | None,
    ) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            if cell.reduction:
                s0, s1 = s1, cell(s0, s1, w_reduce, e_reduce)
            else:
                s0, s1 = s1, cell(s0, s1, w_normal, e_normal)
        logits: torch.Tensor = self.classifier(self.global_pooling(s1).flatten(1))
        return logits

    def op_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """softmax(α) per edge, over the ops each edge searches, for normal and reduction."""
        masks = self.op_masks()
        if masks is not None:
            return (
                masked_softmax(self.alpha_normal, masks[0]),
                masked_softmax(self.alpha_reduce, masks[1]),
            )
        return self.alpha_normal.softmax(dim=-1), self.alpha_reduce.softmax(dim=-1)

    def edge_weights(self) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """PC-DARTS's softmax(β) over each node's incoming edges; None without β."""
        if "beta_normal" not in self.arch_names:
            return None, None
        return (
            edge_softmax(self._tensor("beta_normal"), self.steps),
            edge_softmax(self._tensor("beta_reduce"), self.steps),
        )

    def cost_weights(
        self, uniform: bool = False, derived: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The op weights the cost model prices (eqs. 5, 6): softmax(α), rows scaled by their
        edge's cost factor under edge normalisation (`search_core.partial.edge_cost_factors`);
        ``derived``: those of the network the derivation keeps (`search_core.cost`).

        ``uniform``: the weights at α = β = 0 over every op, a constant of the search space
        (not of a P-DARTS stage), by which the cost losses are normalised.
        """
        betas: list[torch.Tensor] = [
            self._tensor(name) for name in BETA_NAMES if name in self.arch_names
        ]
        if uniform:
            zeros = [torch.zeros_like(a.detach()) for a in (self.alpha_normal, self.alpha_reduce)]
            weights = [z.softmax(dim=-1) for z in zeros]
            betas = [torch.zeros_like(b.detach()) for b in betas]
        else:
            weights = list(self.op_weights())
        if derived:
            scales: list[torch.Tensor | None] = [None, None]
            if betas:
                scales = [edge_softmax(b, self.steps) for b in betas]
            return (
                derived_weights(weights[0], self.steps, scales[0]),
                derived_weights(weights[1], self.steps, scales[1]),
            )
        if betas:
            weights = [
                w * edge_cost_factors(b, self.steps).unsqueeze(1)
                for w, b in zip(weights, betas, strict=True)
            ]
        return weights[0], weights[1]

    def alphas(self) -> list[nn.Parameter]:
        """The architecture parameters (upper level): α, then β for PC-DARTS."""
        found = [getattr(self, name) for name in self.arch_names]
        assert all(isinstance(p, nn.Parameter) for p in found)
        return found

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        """θ with names: every parameter that is not architecture (lower level)."""
        for name, p in self.named_parameters():
            if name not in self.arch_names:
                yield name, p

    def weights(self) -> list[nn.Parameter]:
        """θ: the network weights (lower level)."""
        return [p for _, p in self.named_weights()]

    def set_skip_dropout(self, rate: float) -> None:
        """P-DARTS's dropout after every stride-1 skip-connect, for the epochs to come."""
        for module in self.modules():
            if isinstance(module, MixedOp):
                module.skip_dropout = rate

    def genotype(self) -> Genotype:
        """The discrete architecture by the backbone's rule: DARTS's (top-2 edges, ``none``
        excluded) on softmax(α), times softmax(β) for PC-DARTS, over the surviving ops with at
        most ``skip_limit`` skip-connects in the normal cell for P-DARTS."""
        # The weights of op_weights and edge_weights, computed exactly (float64, independent
        # of an entry's position), so that equal logits tie and the tie rule decides.
        alphas = (self._tensor(ALPHA_NAMES[0]), self._tensor(ALPHA_NAMES[1]))
        masks = self.op_masks()
        if masks is not None:
            weights = [exact_masked_softmax(a, m) for a, m in zip(alphas, masks, strict=True)]
        else:
            weights = [softmax_rows(a) for a in alphas]
        if "beta_normal" in self.arch_names:
            weights = [
                w * exact_edge_softmax(self._tensor(name), self.steps).unsqueeze(1)
                for w, name in zip(weights, BETA_NAMES, strict=True)
            ]
        if self.skip_limit is not None:
            weights[0] = limit_skip_connections(weights[0], self.steps, self.skip_limit)
        return derive_from_weights(weights[0], weights[1], self.steps, self.multiplier)

    def op_masks(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """P-DARTS's masks of the ops each edge searches; None for the other backbones."""
        if not self.masked:
            return None
        return self._tensor(MASK_NAMES[0]), self._tensor(MASK_NAMES[1])

    def _tensor(self, name: str) -> torch.Tensor:
        found = getattr(self, name)
        assert isinstance(found, torch.Tensor)
        return found
