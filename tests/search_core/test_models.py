"""Supernet and evaluation network: structure, shapes, α, the genotype rule end to end."""

from __future__ import annotations

import pytest
import torch

from search_core.genotypes import BUNDLED, PRIMITIVES
from search_core.layout import cell_layout, reduction_indices
from search_core.model_eval import EvalNetwork, count_params_m
from search_core.model_search import SearchNetwork


def test_reduction_cells_sit_at_one_and_two_thirds() -> None:
    assert reduction_indices(8) == (2, 5)
    assert reduction_indices(20) == (6, 13)
    cells = cell_layout(20, 36, 32)
    assert [c.index for c in cells if c.reduction] == [6, 13]
    assert cells[-1].channels == 144 and cells[-1].resolution == 8


def test_supernet_shapes_and_parameter_split() -> None:
    net = SearchNetwork(num_classes=7, layers=5, init_channels=4, input_size=8, in_channels=1)
    out = net(torch.randn(3, 1, 8, 8))
    assert out.shape == (3, 7)
    assert [a.shape for a in net.alphas()] == [(14, len(PRIMITIVES))] * 2
    names = {id(p) for p in net.weights()}
    assert all(id(a) not in names for a in net.alphas())
    total = sum(p.numel() for p in net.parameters())
    assert total == sum(p.numel() for p in net.weights()) + 2 * 14 * len(PRIMITIVES)
    # batch norm keeps no running statistics: the net is a function of (θ, α, x)
    assert not list(net.buffers()) or all(b.numel() == 0 for b in net.buffers())


def test_supernet_genotype_follows_alpha() -> None:
    net = SearchNetwork(num_classes=3, layers=3, init_channels=4, input_size=8, in_channels=1)
    with torch.no_grad():
        net.alpha_normal.zero_()
        net.alpha_reduce.zero_()
        net.alpha_normal[:, PRIMITIVES.index("sep_conv_3x3")] = 5.0
        net.alpha_reduce[:, PRIMITIVES.index("max_pool_3x3")] = 5.0
    genotype = net.genotype()
    assert {op for op, _ in genotype.normal} == {"sep_conv_3x3"}
    assert {op for op, _ in genotype.reduce} == {"max_pool_3x3"}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_evaluation_network_runs_with_auxiliary_head_and_drop_path(name: str) -> None:
    net = EvalNetwork(BUNDLED[name], num_classes=10, layers=8, init_channels=8, auxiliary=True)
    net.drop_path_prob = 0.2
    net.train()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    net.eval()
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert aux is None
    without_aux = EvalNetwork(BUNDLED[name], num_classes=10, layers=8, init_channels=8)
    assert count_params_m(net) == pytest.approx(count_params_m(without_aux))


def test_inherited_weights_reproduce_a_one_hot_supernet() -> None:
    """With α one-hot on the genotype's ops (and ``none`` elsewhere) the supernet computes the
    derived network; after inheriting its weights the evaluation network computes the same
    function (train-mode batch norm, no pooling ops, whose supernet copies add a batch norm)."""
    from search_core.cost import one_hot_weights
    from search_core.genotypes import Genotype
    from search_core.model_eval import inherit_supernet_weights

    torch.manual_seed(0)
    normal = [("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 0), ("sep_conv_5x5", 2)]
    reduce = [("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 2), ("dil_conv_5x5", 0)]
    genotype = Genotype(normal, [2, 3], reduce, [2, 3])
    supernet = SearchNetwork(4, layers=4, init_channels=4, input_size=8, in_channels=1, steps=2)
    supernet = supernet.double()
    with torch.no_grad():
        for alpha, w in zip(supernet.alphas(), one_hot_weights(genotype), strict=True):
            alpha.copy_(torch.where(w > 0, 40.0, 0.0))
            alpha[:, 0] = torch.where(w.sum(1) == 0, 40.0, 0.0)
    net = EvalNetwork(genotype, 4, layers=4, init_channels=4, input_size=8, in_channels=1)
    net = net.double().train()
    copied = inherit_supernet_weights(net, genotype, supernet.state_dict())
    assert copied > 10
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(net(x)[0], supernet(x), atol=1e-8)
    fresh = EvalNetwork(genotype, 4, layers=4, init_channels=4, input_size=8, in_channels=1)
    assert not torch.allclose(fresh.double().train()(x)[0], supernet(x), atol=1e-3)
