"""The bi-level step on the PC-DARTS and P-DARTS supernets against autograd: eq. (9)'s
hypergradient of α (and of PC-DARTS's β) taken literally through the unrolled step, the
warm-up step that leaves the architecture alone, and P-DARTS's clipped α direction."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F_nn
from torch.func import functional_call

from search_core.bilevel import BilevelStep
from search_core.config import SearchConfig, preset
from search_core.cost import build_cost_tables
from search_core.model_search import MixedOp, SearchNetwork
from search_core.objectives import PixelBox, kl_uniform
from search_core.progressive import full_mask, masked_softmax, prune_ops

B, SIZE, CLASSES = 4, 6, 3
Batch = tuple[torch.Tensor, torch.Tensor]


def config(backbone: str, **changes: object) -> SearchConfig:
    base = {"layers": 3, "init_channels": 4, "nodes": 2, "eval_layers": 3, "pc_k": 2}
    if backbone == "pdarts":
        base.update(pdarts_stage_layers="3,3", pdarts_stage_ops="8,4", pdarts_stage_dropout="0,0")
    return preset("cpu-tiny", {"backbone": backbone, **base, **changes})


def network(cfg: SearchConfig) -> SearchNetwork:
    torch.manual_seed(0)
    masks = None
    if cfg.backbone == "pdarts":  # a second stage: 4 ops per edge, pruned by a random α
        generator = torch.Generator().manual_seed(4)
        full = full_mask(5)
        masks = tuple(
            prune_ops(masked_softmax(torch.randn(5, 8, generator=generator), full), full, 4)
            for _ in range(2)
        )
    net = SearchNetwork(
        CLASSES,
        cfg.layers,
        cfg.init_channels,
        SIZE,
        1,
        cfg.nodes,
        partial_k=cfg.pc_k if cfg.backbone == "pc_darts" else 1,
        edge_normalization=cfg.backbone == "pc_darts",
        op_masks=masks,  # type: ignore[arg-type]
    ).double()
    with torch.no_grad():
        for a in net.alphas():
            a.copy_(torch.randn_like(a))
    return net


def step_for(cfg: SearchConfig) -> BilevelStep:
    costs = build_cost_tables(cfg.eval_layers, cfg.eval_init_channels, CLASSES, SIZE, 1, cfg.nodes)
    box = PixelBox.for_normalisation(cfg.epsilon, [0.5], [0.25])
    box = PixelBox(box.epsilon.double(), box.low.double(), box.high.double())
    return BilevelStep(network(cfg), cfg, costs, box, torch.Generator().manual_seed(5))


def batches() -> tuple[Batch, Batch, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(2):
        x = torch.randn(B, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
        out.append((x, torch.randint(0, CLASSES, (B,), generator=g)))
    return out[0], out[1], torch.randn(B, 1, SIZE, SIZE, generator=g, dtype=torch.float64)


def reference(
    step: BilevelStep, train: Batch, val: Batch, ood_x: torch.Tensor
) -> list[torch.Tensor]:
    """∇_arch L_k(θ'(arch), arch) for L_val and L_ood by autograd through θ' = θ − ξ(∇θ L_tr +
    λθ) (no momentum yet), every architecture tensor (α, β) a leaf."""
    cfg, net = step.config, step.net
    names = [n for n, _ in net.named_weights()]
    theta = [p.detach().requires_grad_(True) for p in net.weights()]
    arch = [a.detach().clone().requires_grad_(True) for a in net.alphas()]

    def model(weights: list[torch.Tensor]) -> object:
        params = dict(zip(names, weights, strict=True)) | dict(
            zip(net.arch_names, arch, strict=True)
        )
        return lambda x: functional_call(net, params, (x,))

    loss_tr = F_nn.cross_entropy(model(theta)(train[0]), train[1])
    g = torch.autograd.grad(loss_tr, theta, create_graph=True)
    unrolled = [p - cfg.lr * (gi + cfg.weight_decay * p) for p, gi in zip(theta, g, strict=True)]
    f = model(unrolled)
    losses = [F_nn.cross_entropy(f(val[0]), val[1]), kl_uniform(f(ood_x))]
    out = []
    for loss in losses:
        grads = torch.autograd.grad(loss, arch, retain_graph=True)
        out.append(torch.cat([gr.reshape(-1) for gr in grads]))
    return out


@pytest.mark.parametrize("backbone", ["pc_darts", "pdarts"])
@pytest.mark.parametrize(("hessian", "rtol"), [("exact", 1e-6), ("finite_difference", 1e-4)])
def test_hypergradients_match_autograd_through_the_unrolled_step(
    backbone: str, hessian: str, rtol: float
) -> None:
    # A small finite-difference step for the comparison, as in test_bilevel.py.
    cfg = config(backbone, objectives="val,ood", hessian=hessian, fd_epsilon=1e-5)
    step = step_for(cfg)
    train, val, ood_x = batches()
    got = step.hypergradients(train, val, ood_x).grads
    want = reference(step, train, val, ood_x)
    n_arch = sum(a.numel() for a in step.net.alphas())
    assert got.shape == (2, n_arch)
    for k, w in enumerate(want):
        assert torch.allclose(got[k], w, rtol=0, atol=rtol * w.abs().max()), k
    if backbone == "pc_darts":  # β does receive a hypergradient
        assert float(got[:, -10:].abs().sum()) > 0


@pytest.mark.parametrize("backbone", ["darts", "pc_darts", "pdarts"])
def test_a_warm_up_step_moves_theta_only(backbone: str) -> None:
    step = step_for(config(backbone))
    train, _, ood_x = batches()
    arch = [a.detach().clone() for a in step.net.alphas()]
    theta = [p.detach().clone() for p in step.net.weights()]
    step.weight_step(train, ood_x)
    assert all(torch.equal(a, b) for a, b in zip(arch, step.net.alphas(), strict=True))
    assert any(not torch.equal(p, q) for p, q in zip(theta, step.net.weights(), strict=True))


def test_the_architecture_direction_is_clipped_to_its_norm() -> None:
    step = step_for(config("pdarts", arch_grad_clip=1e-4))
    train, val, ood_x = batches()
    step.step(train, val, ood_x)
    norm = torch.cat([a.grad.reshape(-1) for a in step.net.alphas() if a.grad is not None]).norm()
    assert float(norm) == pytest.approx(1e-4, rel=1e-4)  # torch divides by norm + 1e-6


@pytest.mark.parametrize("backbone", ["darts", "pc_darts", "pdarts"])
def test_looped_central_differences_are_the_vmapped_ones_with_one_dropout_mask(
    backbone: str,
) -> None:
    """fd_batch="loop" replays the random state for each shifted network, so skip-connect
    dropout draws the mask vmap's randomness="same" draws once; the state after is the same."""

    def hypergradients(fd_batch: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = step_for(config(backbone, hessian="finite_difference", fd_batch=fd_batch))
        for module in step.net.modules():
            if isinstance(module, MixedOp):
                module.skip_dropout = 0.5
        train, val, ood_x = batches()
        torch.manual_seed(seed)
        grads = step.hypergradients(train, val, ood_x).grads
        return grads, torch.rand(4)

    looped, after_loop = hypergradients("loop", seed=3)
    vmapped, after_vmap = hypergradients("vmap", seed=3)
    scale = vmapped.abs().max()
    assert torch.allclose(looped, vmapped, rtol=0, atol=1e-10 * scale)
    assert torch.equal(after_loop, after_vmap)
    other, _ = hypergradients("loop", seed=4)  # the masks do change the hypergradients
    assert (other - looped).abs().max() > 1e-3 * scale
