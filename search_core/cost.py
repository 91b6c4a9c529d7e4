"""Differentiable cost model N̂(α), F̂(α) of the evaluation network (eqs. 5, 6; IV-B-2).

The paper writes N̂(α) = Σ_(i,j)∈E Σ_o softmax(α^(i,j))_o n_o and F̂(α) likewise with f_o, and
gives per-op FLOP formulas at one resolution. We keep the form and make every term exact for
the *evaluation network* the configuration describes (its depth, width, classes and input
size): n_o and f_o are each op's parameters and multiply-accumulates summed over every cell of
that network that shares the alpha (all normal cells share α_normal, the two reduction cells
α_reduce), at each cell's own channels and resolution, and the fixed parts (stem, the cells'
input preprocessing, classifier) are added as a constant. At a one-hot α whose unchosen edges
sit on ``none``, N̂ and F̂ equal the counted size of the built network (a test checks it against
``torch.utils.flop_counter``). Units: millions of parameters and millions of MACs.

`derived_weights` is an option beyond the paper (``cost_estimate=derived``): eq. (5) prices the
whole supernet, 14 edges with ``none`` among the ops, while the network that is built keeps two
edges per node and never ``none``. Weighting each edge by its chance of being kept and each op
by its share among the non-``none`` ops prices the derived network instead, so that lowering
N̂ can no longer be done by moving weight onto ``none``, which the derivation ignores.

The backbones hand the tables their own op weights (`SearchNetwork.cost_weights`): P-DARTS's
are zero on the ops it pruned (the authors' costs are masked likewise); PC-DARTS's rows are
scaled by twice the edge's softmax(β), the authors' β weighting made exact at a one-hot
architecture (`search_core.partial.edge_cost_factors`). The tables themselves are the
evaluation network's, the same for every backbone: that network has all its channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from search_core.genotypes import PRIMITIVES, Genotype
from search_core.layout import CellSpec, cell_layout, edge_inputs, reduced

_KERNELS = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}


def op_cost(name: str, channels: int, size: int, stride: int) -> tuple[int, int]:
    """(parameters, multiply-accumulates) of one op on a ``size``x``size`` input.

    Convolutions have no bias; batch norm is affine (2 parameters per channel) and, like
    ReLU and pooling, costs no multiply-accumulates.
    """
    c = channels
    out = reduced(size) if stride == 2 else size
    positions = out * out
    if name in ("none", "max_pool_3x3", "avg_pool_3x3"):
        return 0, 0
    if name == "skip_connect":
        if stride == 1:
            return 0, 0
        # FactorizedReduce: two 1x1 convs C -> C/2 at the output resolution, one BN.
        return c * c + 2 * c, c * c * positions
    k2 = _KERNELS[name] ** 2
    one = c * k2 + c * c  # depthwise k x k, pointwise 1x1
    if name.startswith("sep_conv"):
        return 2 * one + 4 * c, 2 * one * positions
    return one + 2 * c, one * positions


def preprocess_cost(spec: CellSpec) -> tuple[int, int]:
    """(parameters, MACs) of a cell's two input 1x1 convolutions (or factorized reduce)."""
    c, size = spec.channels, spec.resolution
    params = spec.c_prev_prev * c + 2 * c + spec.c_prev * c + 2 * c
    macs = (spec.c_prev_prev * c + spec.c_prev * c) * size * size
    return params, macs


@dataclass(frozen=True)
class CostTables:
    """Per-edge, per-op costs summed over the cells that share each alpha.

    ``params_normal[e, o]`` are the parameters op ``o`` adds on edge ``e`` across all normal
    cells; ``fixed_params`` counts the stem, preprocessing and classifier.
    """

    params_normal: torch.Tensor
    params_reduce: torch.Tensor
    flops_normal: torch.Tensor
    flops_reduce: torch.Tensor
    fixed_params: float
    fixed_flops: float

    def to(self, device: torch.device | str) -> CostTables:
        return CostTables(
            self.params_normal.to(device),
            self.params_reduce.to(device),
            self.flops_normal.to(device),
            self.flops_reduce.to(device),
            self.fixed_params,
            self.fixed_flops,
        )

    def expected(
        self, weights_normal: torch.Tensor, weights_reduce: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N̂, F̂) in millions for op weights (softmax of alpha), differentiable."""
        params = (
            self.fixed_params
            + (weights_normal * self.params_normal).sum()
            + (weights_reduce * self.params_reduce).sum()
        )
        flops = (
            self.fixed_flops
            + (weights_normal * self.flops_normal).sum()
            + (weights_reduce * self.flops_reduce).sum()
        )
        return params, flops


def derived_weights(
    weights: torch.Tensor, steps: int, edge_scale: torch.Tensor | None = None
) -> torch.Tensor:
    """Op weights of the network `derive_genotype` would build from ``weights`` (rows: edges).

    Each row is renormalised over the non-``none`` ops (the derivation's op choice), then scaled
    by the edge's keep weight: 1 for a node's edges when it has only two inputs, else
    2 s_e / Σ_e' s_e' over the node's edges, with s_e the edge strength max_o≠none w_e,o (the
    derivation keeps the two strongest). At the one-hot weights of a genotype this returns them
    unchanged, so the estimate stays exact there; in between it is differentiable almost
    everywhere (the max routes the gradient to the strongest op, as the derivation does).
    ``edge_scale`` multiplies each strength, as PC-DARTS's derivation multiplies it by the
    edge's softmax(β) (`search_core.partial`); P-DARTS's pruned ops arrive with weight 0.
    """
    none = PRIMITIVES.index("none")
    keep = torch.ones(len(PRIMITIVES), dtype=torch.bool, device=weights.device)
    keep[none] = False
    ops = weights * keep
    mass = ops.sum(dim=1, keepdim=True)
    ops = ops / mass.clamp_min(torch.finfo(weights.dtype).tiny)
    strength = weights[:, keep].max(dim=1).values
    if edge_scale is not None:
        strength = strength * edge_scale
    factors = []
    start = 0
    for node in range(steps):
        count = node + 2
        s = strength[start : start + count]
        if count <= 2:
            factors.append(torch.ones_like(s))
        else:
            factors.append(2.0 * s / s.sum().clamp_min(torch.finfo(weights.dtype).tiny))
        start += count
    return ops * torch.cat(factors).unsqueeze(1)


def build_cost_tables(
    layers: int,
    init_channels: int,
    num_classes: int,
    input_size: int,
    in_channels: int = 3,
    steps: int = 4,
    stem_multiplier: int = 3,
) -> CostTables:
    """Cost tables (millions) of the evaluation network these arguments describe.

    Its cells concatenate all ``steps`` intermediate nodes, as every derived genotype does.
    """
    multiplier = steps
    specs = cell_layout(layers, init_channels, input_size, stem_multiplier, multiplier)
    edges = edge_inputs(steps)
    tables = {
        kind: torch.zeros(2, len(edges), len(PRIMITIVES), dtype=torch.float64)
        for kind in ("normal", "reduce")
    }
    c_stem = stem_multiplier * init_channels
    fixed_params = in_channels * c_stem * 9 + 2 * c_stem
    fixed_macs = in_channels * c_stem * 9 * input_size * input_size
    for spec in specs:
        p, m = preprocess_cost(spec)
        fixed_params += p
        fixed_macs += m
        table = tables["reduce" if spec.reduction else "normal"]
        node_size = reduced(spec.resolution) if spec.reduction else spec.resolution
        for e, (_, j) in enumerate(edges):
            from_input = j < 2
            stride = 2 if spec.reduction and from_input else 1
            size = spec.resolution if from_input else node_size
            for o, name in enumerate(PRIMITIVES):
                p, m = op_cost(name, spec.channels, size, stride)
                table[0, e, o] += p
                table[1, e, o] += m
    c_last = multiplier * specs[-1].channels
    fixed_params += c_last * num_classes + num_classes
    fixed_macs += c_last * num_classes
    dtype = torch.float32
    return CostTables(
        params_normal=(tables["normal"][0] / 1e6).to(dtype),
        params_reduce=(tables["reduce"][0] / 1e6).to(dtype),
        flops_normal=(tables["normal"][1] / 1e6).to(dtype),
        flops_reduce=(tables["reduce"][1] / 1e6).to(dtype),
        fixed_params=fixed_params / 1e6,
        fixed_flops=fixed_macs / 1e6,
    )


def one_hot_weights(genotype: Genotype) -> tuple[torch.Tensor, torch.Tensor]:
    """Op weights that select exactly the genotype's ops (unchosen edges weigh nothing)."""
    edges = edge_inputs(genotype.steps)
    row = {edge: e for e, edge in enumerate(edges)}
    out = []
    for cell in (genotype.normal, genotype.reduce):
        w = torch.zeros(len(edges), len(PRIMITIVES))
        for k, (name, j) in enumerate(cell):
            w[row[(k // 2, j)], PRIMITIVES.index(name)] += 1.0
        out.append(w)
    return out[0], out[1]


def genotype_size(genotype: Genotype, tables: CostTables) -> tuple[float, float]:
    """(params_m, flops_m) of the genotype's evaluation network, from the tables.

    Exact for genotypes that concatenate all intermediate nodes (every derived genotype);
    count a built :class:`~search_core.model_eval.EvalNetwork` for any other.
    """
    standard = tuple(range(2, genotype.steps + 2))
    if genotype.normal_concat != standard or genotype.reduce_concat != standard:
        raise ValueError("genotype_size needs the standard concat; count the built network")
    w_normal, w_reduce = one_hot_weights(genotype)
    device = tables.params_normal.device
    params, flops = tables.expected(w_normal.to(device), w_reduce.to(device))
    return float(params), float(flops)
