"""PC-DARTS (`search_core.partial`) against literal references: the channel shuffle and the
partially connected mixed op rebuilt channel by channel, edge normalisation and the derivation
rule written out as loops over plain floats, and hand-made α and β whose cells are known."""

from __future__ import annotations

import math
import random

import pytest
import torch

from search_core.derive import derive_genotype
from search_core.genotypes import PRIMITIVES, Genotype
from search_core.layout import CellSpec, edge_inputs
from search_core.model_search import MixedOp, SearchCell, SearchNetwork
from search_core.partial import (
    PartialMixedOp,
    channel_shuffle,
    edge_cost_factors,
    edge_softmax,
    pc_darts_genotype,
)

NONE = PRIMITIVES.index("none")


def literal_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Channel shuffle by its definition: output channel i·groups + g is input g·(C/g) + i."""
    c = x.shape[1]
    per_group = c // groups
    out = torch.empty_like(x)
    for g in range(groups):
        for i in range(per_group):
            out[:, i * groups + g] = x[:, g * per_group + i]
    return out


def literal_max_pool_2x2(x: torch.Tensor) -> torch.Tensor:
    """2x2 max pooling, stride 2, a last window cut short on odd sizes (ceil mode)."""
    n, c, h, w = x.shape
    out = torch.empty(n, c, (h + 1) // 2, (w + 1) // 2, dtype=x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = x[:, :, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            out[:, :, i, j] = window.amax(dim=(2, 3))
    return out


@pytest.mark.parametrize(("channels", "groups"), [(8, 4), (12, 3), (6, 2), (5, 1)])
def test_channel_shuffle_matches_its_definition(channels: int, groups: int) -> None:
    x = torch.randn(2, channels, 3, 3)
    assert torch.equal(channel_shuffle(x, groups), literal_shuffle(x, groups))


@pytest.mark.parametrize(("stride", "size"), [(1, 6), (2, 6), (2, 5)])
def test_partial_mixed_op_matches_a_per_channel_rebuild(stride: int, size: int) -> None:
    """Output channel p = i·K + g of the shuffled concatenation: for g = 0 the mixed op's
    channel i on the first C/K input channels, else input channel C/K + (g − 1)·C/K + i,
    max-pooled when the edge strides."""
    torch.manual_seed(0)
    channels, k = 8, 4
    active = channels // k
    inner = MixedOp(active, stride).double()
    op = PartialMixedOp(inner, k, stride)
    x = torch.randn(3, channels, size, size, dtype=torch.float64)
    weights = torch.softmax(torch.randn(len(PRIMITIVES), dtype=torch.float64), dim=0)

    searched = sum(
        weights[o] * module(x[:, :active])
        for o, module in zip(inner.indices, inner.ops, strict=True)
    )
    assert isinstance(searched, torch.Tensor)
    bypass = x[:, active:] if stride == 1 else literal_max_pool_2x2(x[:, active:])
    expected = torch.empty(3, channels, *searched.shape[2:], dtype=torch.float64)
    for p in range(channels):
        i, g = divmod(p, k)
        source = g * active + i
        expected[:, p] = searched[:, source] if source < active else bypass[:, source - active]
    assert torch.allclose(op(x, weights), expected, atol=1e-12)


def test_only_one_kth_of_the_channels_reaches_the_ops() -> None:
    """The ops are built on C/K channels: the memory and compute saving of section 3.2."""
    full = sum(p.numel() for p in MixedOp(16, 1).parameters())
    partial = sum(p.numel() for p in PartialMixedOp(MixedOp(4, 1), 4, 1).parameters())
    assert partial == sum(p.numel() for p in MixedOp(4, 1).parameters())  # the bypass has none
    assert partial < full / 4  # pointwise convolutions shrink by K², depthwise by K


def literal_edge_softmax(beta: list[float], steps: int) -> list[float]:
    out = []
    start = 0
    for node in range(steps):
        row = beta[start : start + node + 2]
        total = sum(math.exp(b) for b in row)
        out.extend(math.exp(b) / total for b in row)
        start += node + 2
    return out


def test_edge_normalisation_is_a_softmax_over_each_nodes_inputs() -> None:
    beta = [0.3, -1.0, 2.0, 0.0, 0.5, -0.2, 1.1, 0.4, 0.0, -3.0, 0.7, 0.9, 1.5, -0.4]
    got = edge_softmax(torch.tensor(beta, dtype=torch.float64), 4)
    assert torch.allclose(got, torch.tensor(literal_edge_softmax(beta, 4), dtype=torch.float64))
    # each node's incoming weights sum to 1, and the cost factors to 2 (two kept edges)
    assert torch.allclose(got[:2].sum(), torch.tensor(1.0, dtype=torch.float64))
    factors = edge_cost_factors(torch.tensor(beta, dtype=torch.float64), 4)
    assert torch.allclose(factors[9:14].sum(), torch.tensor(2.0, dtype=torch.float64))


def test_a_cell_weighs_each_incoming_edge_by_its_normalised_beta() -> None:
    """x_j = Σ_i softmax(β)_ij f_ij(x_i), with the cell's own edges as the f_ij."""
    torch.manual_seed(1)
    spec = CellSpec(0, 6, 6, 4, reduction=False, reduction_prev=False, resolution=5)
    cell = SearchCell(spec, steps=3, multiplier=3, partial_k=2).double()
    s0, s1 = (torch.randn(2, 6, 5, 5, dtype=torch.float64) for _ in range(2))
    n_edges = len(edge_inputs(3))
    weights = torch.softmax(torch.randn(n_edges, len(PRIMITIVES), dtype=torch.float64), dim=1)
    beta = torch.randn(n_edges, dtype=torch.float64)
    normalised = literal_edge_softmax(beta.tolist(), 3)
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    for e, (node, j) in enumerate(edge_inputs(3)):
        if len(states) == node + 2:
            states.append(torch.zeros_like(states[0]))
        states[node + 2] = states[node + 2] + normalised[e] * cell.ops[e](states[j], weights[e])
    expected = torch.cat(states[2:], dim=1)
    got = cell(s0, s1, weights, edge_softmax(beta, 3))
    assert torch.allclose(got, expected, atol=1e-12)


def literal_pc_darts_cell(
    alpha: list[list[float]], beta: list[float], steps: int
) -> list[tuple[str, int]]:
    """Section 3.3's rule with plain floats: rank edges by max_o≠none softmax(α)_o·softmax(β)."""
    b = literal_edge_softmax(beta, steps)
    edges = []
    start = 0
    for node in range(steps):
        strength = {}
        best = {}
        for j in range(node + 2):
            row = alpha[start + j]
            total = sum(math.exp(a) for a in row)
            w = [math.exp(a) / total * b[start + j] for a in row]
            o = max((o for o in range(len(row)) if o != NONE), key=lambda o: (w[o], -o))
            strength[j], best[j] = w[o], o
        kept = sorted(strength, key=lambda j: (-strength[j], j))[:2]
        edges.extend((PRIMITIVES[best[j]], j) for j in kept)
        start += node + 2
    return edges


def test_derivation_multiplies_op_and_edge_weights() -> None:
    """A hand-made cell: α alone keeps input 2 of node 1, β overrules it.

    Node 1's edges: input 0 holds sep_conv_3x3 at α 1.0, input 1 dil_conv_3x3 at α 1.5,
    input 2 skip_connect at α 3.0 (so DARTS keeps inputs 2 and 1); β = (1, 1, −2) on them gives
    edge weights ≈ (0.488, 0.488, 0.024), so PC-DARTS keeps inputs 1 and 0."""
    steps = 2
    alpha_normal = torch.zeros(len(edge_inputs(steps)), len(PRIMITIVES))
    alpha_normal[0, PRIMITIVES.index("avg_pool_3x3")] = 2.0
    alpha_normal[1, PRIMITIVES.index("sep_conv_5x5")] = 2.0
    alpha_normal[2, PRIMITIVES.index("sep_conv_3x3")] = 1.0
    alpha_normal[3, PRIMITIVES.index("dil_conv_3x3")] = 1.5
    alpha_normal[4, PRIMITIVES.index("skip_connect")] = 3.0
    beta_normal = torch.tensor([0.0, 0.0, 1.0, 1.0, -2.0])
    alpha_reduce = torch.zeros_like(alpha_normal)
    alpha_reduce[:, PRIMITIVES.index("max_pool_3x3")] = 1.0
    beta_reduce = torch.tensor([0.0, 0.0, -5.0, 0.0, 0.0])

    darts = derive_genotype(alpha_normal, alpha_reduce, steps, steps)
    assert darts.normal[2:] == (("skip_connect", 2), ("dil_conv_3x3", 1))
    got = pc_darts_genotype(alpha_normal, alpha_reduce, beta_normal, beta_reduce, steps, steps)
    expected_normal = (
        ("avg_pool_3x3", 0),
        ("sep_conv_5x5", 1),
        ("dil_conv_3x3", 1),
        ("sep_conv_3x3", 0),
    )
    expected_reduce = (
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 2),
    )
    assert got == Genotype(expected_normal, (2, 3), expected_reduce, (2, 3))


@pytest.mark.parametrize("seed", range(5))
def test_derivation_matches_the_literal_rule_on_random_alpha_and_beta(seed: int) -> None:
    rng = random.Random(seed)
    n_edges = len(edge_inputs(4))
    alpha = [[[rng.gauss(0, 1) for _ in PRIMITIVES] for _ in range(n_edges)] for _ in range(2)]
    beta = [[rng.gauss(0, 2) for _ in range(n_edges)] for _ in range(2)]
    got = pc_darts_genotype(
        *(torch.tensor(a, dtype=torch.float64) for a in alpha),
        *(torch.tensor(b, dtype=torch.float64) for b in beta),
    )
    assert list(got.normal) == literal_pc_darts_cell(alpha[0], beta[0], 4)
    assert list(got.reduce) == literal_pc_darts_cell(alpha[1], beta[1], 4)


def test_the_supernet_derives_and_learns_beta() -> None:
    torch.manual_seed(2)
    net = SearchNetwork(
        3,
        layers=3,
        init_channels=8,
        input_size=6,
        in_channels=1,
        partial_k=4,
        edge_normalization=True,
    )
    assert [name for name in net.arch_names] == [
        "alpha_normal",
        "alpha_reduce",
        "beta_normal",
        "beta_reduce",
    ]
    with torch.no_grad():
        net.beta_normal.copy_(torch.randn(14) * 3)
        net.alpha_normal.copy_(torch.randn(14, len(PRIMITIVES)) * 3)
    expected = pc_darts_genotype(
        net.alpha_normal, net.alpha_reduce, net.beta_normal, net.beta_reduce
    )
    assert net.genotype() == expected
    loss = net(torch.randn(4, 1, 6, 6)).logsumexp(dim=1).mean()
    grads = torch.autograd.grad(loss, net.alphas())
    assert all(float(g.abs().sum()) > 0 for g in grads)
    ids = {id(p) for p in net.weights()}
    assert not any(id(a) in ids for a in net.alphas())
