"""The cost model (eqs. 5, 6) against the built evaluation network, counted independently."""

from __future__ import annotations

import math
import random

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from search_core.cost import (
    build_cost_tables,
    derived_weights,
    genotype_size,
    one_hot_weights,
    op_cost,
)
from search_core.derive import derive_genotype
from search_core.genotypes import BUNDLED, PRIMITIVES, Genotype
from search_core.layout import edge_inputs
from search_core.model_eval import EvalNetwork, count_flops_m, count_params_m
from search_core.model_search import SearchNetwork
from search_core.ops import build_op


def random_genotype(rng: random.Random, steps: int = 4) -> Genotype:
    ops = [p for p in PRIMITIVES if p != "none"]
    cells = []
    for _ in range(2):
        edges = []
        for node in range(steps):
            for j in rng.sample(range(node + 2), 2):
                edges.append((rng.choice(ops), j))
        cells.append(edges)
    concat = list(range(2, steps + 2))
    return Genotype(cells[0], concat, cells[1], concat)


def counted_macs(module: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        module(x)
    return counter.get_total_flops() // 2


@pytest.mark.parametrize("name", [p for p in PRIMITIVES if p != "none"])
@pytest.mark.parametrize(("size", "stride"), [(8, 1), (8, 2), (7, 2), (32, 1)])
def test_op_cost_matches_a_built_op(name: str, size: int, stride: int) -> None:
    channels = 6
    op = build_op(name, channels, stride, affine=True).eval()
    params, macs = op_cost(name, channels, size, stride)
    assert params == sum(p.numel() for p in op.parameters())
    assert macs == counted_macs(op, torch.zeros(1, channels, size, size))


# (classes, layers, init channels, input size, input channels)
NETWORKS = [(10, 20, 36, 32, 3), (100, 8, 16, 32, 3), (5, 6, 8, 8, 1), (10, 5, 4, 12, 3)]


@pytest.mark.parametrize(("classes", "layers", "channels", "size", "in_ch"), NETWORKS)
def test_cost_model_at_one_hot_alpha_equals_the_counted_network(
    classes: int, layers: int, channels: int, size: int, in_ch: int
) -> None:
    tables = build_cost_tables(layers, channels, classes, size, in_ch)
    rng = random.Random(layers * 1000 + size)
    genotypes = [random_genotype(rng) for _ in range(3)]
    if layers >= 8:
        genotypes.append(BUNDLED["darts_v2"])
    for genotype in genotypes:
        net = EvalNetwork(genotype, classes, layers, channels, size, in_ch, auxiliary=True)
        params_m, flops_m = genotype_size(genotype, tables)
        assert params_m == pytest.approx(count_params_m(net), rel=1e-6)
        assert flops_m == pytest.approx(count_flops_m(net, size, in_ch), rel=1e-6)


def test_cost_model_through_softmax_of_a_one_hot_alpha() -> None:
    """A large one-hot α (unchosen edges on ``none``) gives the genotype back and its size."""
    rng = random.Random(3)
    tables = build_cost_tables(8, 16, 10, 32, 3)
    for _ in range(3):
        genotype = random_genotype(rng)
        w_normal, w_reduce = one_hot_weights(genotype)
        alphas = []
        for w in (w_normal, w_reduce):
            a = torch.where(w > 0, 30.0, 0.0)
            a[:, 0] = torch.where(w.sum(1) == 0, 30.0, 0.0)
            alphas.append(a)
        assert derive_genotype(*alphas).canonical() == genotype.canonical()
        params, flops = tables.expected(alphas[0].softmax(-1), alphas[1].softmax(-1))
        net = EvalNetwork(genotype, 10, 8, 16, 32)
        assert float(params) == pytest.approx(count_params_m(net), rel=1e-4)
        assert float(flops) == pytest.approx(count_flops_m(net, 32), rel=1e-4)


def test_darts_v2_has_its_published_size() -> None:
    """DARTS (2nd order) reports 3.3 M parameters on CIFAR-10 (20 cells, C=36)."""
    net = EvalNetwork(BUNDLED["darts_v2"])
    assert count_params_m(net) == pytest.approx(3.349342, abs=1e-6)
    assert 520 < count_flops_m(net, 32) < 540


def test_cost_model_is_differentiable_and_linear_in_the_weights() -> None:
    tables = build_cost_tables(8, 16, 10, 32, 3)
    alpha = torch.zeros(14, len(PRIMITIVES), requires_grad=True)
    params, _ = tables.expected(alpha.softmax(-1), torch.full((14, 8), 1 / 8))
    (grad,) = torch.autograd.grad(params, alpha)
    # Uniform α: d N̂ / d α_o = (n_o − mean n) / 8 per edge.
    table = tables.params_normal
    expected = (table - table.mean(dim=1, keepdim=True)) / 8
    assert torch.allclose(grad, expected, atol=1e-7)


def _brute_force_derived_weights(weights: torch.Tensor, steps: int) -> torch.Tensor:
    """The definition of `derived_weights`, one entry at a time with plain floats."""
    none = PRIMITIVES.index("none")
    rows = weights.tolist()
    out = [[0.0] * len(PRIMITIVES) for _ in rows]
    start = 0
    for node in range(steps):
        edges = range(start, start + node + 2)
        strength = {e: max(v for o, v in enumerate(rows[e]) if o != none) for e in edges}
        total = sum(strength.values())
        for e in edges:
            keep = 1.0 if len(edges) == 2 else 2.0 * strength[e] / total
            mass = sum(v for o, v in enumerate(rows[e]) if o != none)
            for o, v in enumerate(rows[e]):
                if o != none:
                    out[e][o] = keep * v / mass
        start += node + 2
    return torch.tensor(out, dtype=weights.dtype)


def test_derived_weights_match_their_definition_entry_by_entry() -> None:
    torch.manual_seed(0)
    weights = torch.softmax(torch.randn(14, len(PRIMITIVES), dtype=torch.float64), dim=1)
    expected = _brute_force_derived_weights(weights, 4)
    assert torch.allclose(derived_weights(weights, 4), expected, atol=1e-12)
    # Two kept edges per node: the keep factors of a node sum to 2, and none is priced at 0.
    kept = derived_weights(weights, 4).sum(dim=1)
    assert torch.allclose(kept[:2], torch.ones(2, dtype=torch.float64))
    assert torch.allclose(kept[2:5].sum(), torch.tensor(2.0, dtype=torch.float64))
    assert float(derived_weights(weights, 4)[:, PRIMITIVES.index("none")].abs().sum()) == 0.0


@pytest.mark.parametrize("seed", range(4))
def test_derived_estimate_is_exact_at_the_one_hot_weights_of_a_genotype(seed: int) -> None:
    """At a genotype's one-hot weights the derived estimate is the counted network's size."""
    genotype = random_genotype(random.Random(seed))
    tables = build_cost_tables(6, 8, 5, 8, 1)
    w_normal, w_reduce = one_hot_weights(genotype)
    params, flops = tables.expected(derived_weights(w_normal, 4), derived_weights(w_reduce, 4))
    network = EvalNetwork(genotype, 5, 6, 8, 8, 1)
    assert float(params) == pytest.approx(count_params_m(network), rel=1e-6)
    assert float(flops) == pytest.approx(count_flops_m(network, 8, 1), rel=1e-6)


def test_derived_estimate_gradient_matches_finite_differences() -> None:
    """Autograd through `derived_weights` against central differences in alpha (float64)."""
    torch.manual_seed(1)
    tables = build_cost_tables(6, 8, 5, 8, 1)
    params_table = tables.params_normal.double()
    alpha = torch.randn(14, len(PRIMITIVES), dtype=torch.float64, requires_grad=True)

    def estimate(a: torch.Tensor) -> torch.Tensor:
        return (derived_weights(torch.softmax(a, dim=1), 4) * params_table).sum()

    (grad,) = torch.autograd.grad(estimate(alpha), alpha)
    h = 1e-6
    for e, o in [(0, 4), (3, 1), (7, 6), (13, 5), (9, 0)]:
        shift = torch.zeros_like(alpha)
        shift[e, o] = h
        numeric = (estimate(alpha + shift) - estimate(alpha - shift)) / (2 * h)
        assert float(grad[e, o]) == pytest.approx(float(numeric), rel=1e-5, abs=1e-12)


# -- the other backbones: their op weights at a genotype's one-hot architecture --------------


def kept_rows(genotype: Genotype) -> tuple[dict[int, str], dict[int, str]]:
    """Row (edge) → op of the kept edges of each cell."""
    rows = {edge: e for e, edge in enumerate(edge_inputs(genotype.steps))}
    return tuple(  # type: ignore[return-value]
        {rows[(k // 2, j)]: name for k, (name, j) in enumerate(cell)}
        for cell in (genotype.normal, genotype.reduce)
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("derived", [False, True])
def test_pc_darts_cost_at_one_hot_alpha_and_beta_equals_the_counted_network(
    seed: int, derived: bool
) -> None:
    """α one-hot on the kept ops, β equal on a node's two kept edges and −∞ on the others:
    the β-weighted estimate (factor 2·softmax(β)) is the built network's size, and the
    supernet derives the genotype back."""
    genotype = random_genotype(random.Random(seed))
    tables = build_cost_tables(6, 8, 5, 8, 1)
    net = SearchNetwork(5, 3, 8, 8, 1, partial_k=4, edge_normalization=True)
    with torch.no_grad():
        for alpha, beta, kept in zip(
            net.alphas()[:2], net.alphas()[2:], kept_rows(genotype), strict=True
        ):
            alpha.zero_()
            beta.fill_(-math.inf)
            for e, name in kept.items():
                alpha[e] = -math.inf
                alpha[e, PRIMITIVES.index(name)] = 0.0
                beta[e] = 0.0
    assert net.genotype().canonical() == genotype.canonical()
    params, flops = tables.expected(*net.cost_weights(derived=derived))
    counted = EvalNetwork(genotype, 5, 6, 8, 8, 1)
    assert float(params) == pytest.approx(count_params_m(counted), rel=1e-6)
    assert float(flops) == pytest.approx(count_flops_m(counted, 8, 1), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("derived", [False, True])
def test_pdarts_cost_at_one_hot_alpha_over_pruned_ops_equals_the_counted_network(
    seed: int, derived: bool
) -> None:
    """Masks of a last stage (3 ops per edge: the genotype's op where it keeps the edge,
    ``none`` where it does not), α one-hot inside them: the estimate over the surviving ops
    is the built network's size, and the supernet derives the genotype back."""
    rng = random.Random(seed)
    genotype = random_genotype(rng)
    tables = build_cost_tables(6, 8, 5, 8, 1)
    masks = []
    for kept in kept_rows(genotype):
        mask = torch.zeros(14, len(PRIMITIVES), dtype=torch.bool)
        for e in range(14):
            chosen = PRIMITIVES.index(kept.get(e, "none"))
            others = [o for o in range(len(PRIMITIVES)) if o != chosen]
            mask[e, [chosen, *rng.sample(others, 2)]] = True
        masks.append(mask)
    net = SearchNetwork(5, 3, 4, 8, 1, op_masks=(masks[0], masks[1]))
    with torch.no_grad():
        for alpha, kept in zip(net.alphas(), kept_rows(genotype), strict=True):
            alpha.fill_(-math.inf)
            for e in range(14):
                alpha[e, PRIMITIVES.index(kept.get(e, "none"))] = 0.0
    assert net.genotype().canonical() == genotype.canonical()
    params, flops = tables.expected(*net.cost_weights(derived=derived))
    counted = EvalNetwork(genotype, 5, 6, 8, 8, 1)
    assert float(params) == pytest.approx(count_params_m(counted), rel=1e-6)
    assert float(flops) == pytest.approx(count_flops_m(counted, 8, 1), rel=1e-6)


def test_pc_darts_cost_weighs_each_edge_by_twice_its_normalised_beta() -> None:
    """Entry by entry: softmax(α)_e,o · 2 exp(β_e) / Σ_{e' into the node} exp(β_e')."""
    torch.manual_seed(3)
    net = SearchNetwork(5, 3, 8, 8, 1, partial_k=2, edge_normalization=True).double()
    with torch.no_grad():
        for p in net.alphas():
            p.copy_(torch.randn_like(p))
    got, _ = net.cost_weights()
    alpha, beta = net.alpha_normal.tolist(), net.beta_normal.tolist()
    for e, (node, _) in enumerate(edge_inputs(4)):
        siblings = [f for f, (n, _) in enumerate(edge_inputs(4)) if n == node]
        edge = 2 * math.exp(beta[e]) / sum(math.exp(beta[f]) for f in siblings)
        total = sum(math.exp(a) for a in alpha[e])
        for o in range(len(PRIMITIVES)):
            assert float(got[e, o]) == pytest.approx(math.exp(alpha[e][o]) / total * edge)
