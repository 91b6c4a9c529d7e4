"""The DARTS supernet and its architecture parameters α (section III-A).

Every edge (i, j) of a cell computes f_ij(d_i) = Σ_o softmax(α^(i,j))_o o(d_i); a node sums its
incoming edges; the cell outputs the concatenation of its intermediate nodes. All normal cells
share ``alpha_normal`` and both reduction cells share ``alpha_reduce`` (rows: edges in the
order of :func:`search_core.layout.edge_inputs`, columns: ``PRIMITIVES``).

The network is its own controller: :meth:`SearchNetwork.weights` are θ, :meth:`alphas` are α,
:meth:`genotype` derives the discrete cell by the DARTS rule. Batch norm uses batch statistics
only (no running buffers), so the network is a pure function of (θ, α, x) and can be called
functionally at unrolled weights θ' (eq. 9).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from search_core.genotypes import PRIMITIVES, Genotype, derive_genotype
from search_core.layout import CellSpec, cell_layout, edge_inputs
from search_core.ops import FactorizedReduce, ReLUConvBN, build_op

ALPHA_NAMES = ("alpha_normal", "alpha_reduce")


class MixedOp(nn.Module):
    """One edge of the supernet: the softmax-weighted sum of every candidate op."""

    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        ops = []
        self.indices: list[int] = []
        for o, name in enumerate(PRIMITIVES):
            if name == "none":
                continue  # its output is zero: it changes nothing but the softmax
            op = build_op(name, channels, stride, affine=False, track_stats=False)
            if "pool" in name:
                op = nn.Sequential(
                    op, nn.BatchNorm2d(channels, affine=False, track_running_stats=False)
                )
            ops.append(op)
            self.indices.append(o)
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor | None = None
        for o, op in zip(self.indices, self.ops, strict=True):
            h = weights[o] * op(x)
            out = h if out is None else out + h
        assert out is not None
        return out


class SearchCell(nn.Module):
    """A cell whose every edge is a :class:`MixedOp`."""

    def __init__(self, spec: CellSpec, steps: int, multiplier: int) -> None:
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
        self.ops = nn.ModuleList(
            MixedOp(c, 2 if spec.reduction and j < 2 else 1) for _, j in self.edges
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for node in range(self.steps):
            total: torch.Tensor | None = None
            for j in range(node + 2):
                h = self.ops[e](states[j], weights[e])
                total = h if total is None else total + h
                e += 1
            assert total is not None
            states.append(total)
        return torch.cat(states[-self.multiplier :], dim=1)


class SearchNetwork(nn.Module):
    """The supernet: stem, search cells, global pooling, classifier, and α."""

    def __init__(
        self,
        num_classes: int,
        layers: int = 8,
        init_channels: int = 16,
        input_size: int = 32,
        in_channels: int = 3,
        steps: int = 4,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        self.steps = steps
        multiplier = steps  # the cell concatenates all its intermediate nodes
        self.multiplier = multiplier
        specs = cell_layout(layers, init_channels, input_size, stem_multiplier, multiplier)
        c_stem = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_stem, track_running_stats=False),
        )
        self.cells = nn.ModuleList(SearchCell(spec, steps, multiplier) for spec in specs)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(multiplier * specs[-1].channels, num_classes)
        n_edges = len(edge_inputs(steps))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(PRIMITIVES)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal, w_reduce = self.op_weights()
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, w_reduce if cell.reduction else w_normal)
        logits: torch.Tensor = self.classifier(self.global_pooling(s1).flatten(1))
        return logits

    def op_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """softmax(α) per edge, for normal and reduction cells."""
        return self.alpha_normal.softmax(dim=-1), self.alpha_reduce.softmax(dim=-1)

    def alphas(self) -> list[nn.Parameter]:
        """α: the architecture parameters (upper level)."""
        return [self.alpha_normal, self.alpha_reduce]

    def named_weights(self) -> Iterator[tuple[str, nn.Parameter]]:
        """θ with names: every parameter that is not α (lower level)."""
        for name, p in self.named_parameters():
            if name not in ALPHA_NAMES:
                yield name, p

    def weights(self) -> list[nn.Parameter]:
        """θ: the network weights (lower level)."""
        return [p for _, p in self.named_weights()]

    def genotype(self) -> Genotype:
        """The discrete architecture by the DARTS rule (top-2 edges, ``none`` excluded)."""
        return derive_genotype(
            self.alpha_normal.detach().cpu(),
            self.alpha_reduce.detach().cpu(),
            self.steps,
            self.multiplier,
        )
