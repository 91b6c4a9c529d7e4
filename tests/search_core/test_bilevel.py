"""The bi-level step against autograd: eq. (9)'s hypergradient, eq. (10)'s update, eq. (8)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F_nn
from torch.func import functional_call

from search_core.bilevel import BilevelStep
from search_core.config import SearchConfig, preset
from search_core.cost import build_cost_tables
from search_core.model_search import ALPHA_NAMES, SearchNetwork
from search_core.objectives import PixelBox, fgsm, kl_uniform

B, SIZE, CLASSES = 6, 8, 3


def make(config: SearchConfig) -> tuple[BilevelStep, torch.Generator]:
    torch.manual_seed(0)
    net = SearchNetwork(CLASSES, config.layers, config.init_channels, SIZE, 1, config.nodes)
    net = net.double()
    costs = build_cost_tables(
        config.eval_layers, config.eval_init_channels, CLASSES, SIZE, 1, config.nodes
    )
    box = PixelBox.for_normalisation(config.epsilon, [0.5], [0.25])
    box = PixelBox(box.epsilon.double(), box.low.double(), box.high.double())
    gen = torch.Generator().manual_seed(5)
    return BilevelStep(net, config, costs, box, gen), gen


def batches() -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    g = torch.Generator().manual_seed(1)
    out = []
    for _ in range(2):
        x = torch.randn(B, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
        out.append((x, torch.randint(0, CLASSES, (B,), generator=g)))
    ood = torch.randn(B, 1, SIZE, SIZE, generator=g, dtype=torch.float64)
    return out[0], out[1], (ood, torch.zeros(B, dtype=torch.long))


def tiny(**changes: object) -> SearchConfig:
    base = preset("cpu-tiny").replace(layers=3, init_channels=4, nodes=2, eval_layers=3)
    return base.replace(**changes)


def reference_hypergradients(
    step: BilevelStep,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    ood_x: torch.Tensor,
    seed: int,
) -> list[torch.Tensor]:
    """∇α L_k(θ'(α), α) by plain autograd through the unrolled step (eq. 9 taken literally)."""
    cfg, net = step.config, step.net
    names = [n for n, _ in net.named_weights()]
    theta = [p.detach().requires_grad_(True) for p in net.weights()]
    alphas = [a.detach().clone().requires_grad_(True) for a in net.alphas()]

    def model(weights: list[torch.Tensor]) -> object:
        params = dict(zip(names, weights, strict=True)) | dict(
            zip(ALPHA_NAMES, alphas, strict=True)
        )
        return lambda x: functional_call(net, params, (x,))

    xi = cfg.lr
    loss_tr = F_nn.cross_entropy(model(theta)(train[0]), train[1])
    g = torch.autograd.grad(loss_tr, theta, create_graph=True)
    unrolled = []
    for p, gi, orig in zip(theta, g, net.weights(), strict=True):
        step_dir = gi + cfg.weight_decay * p
        buf = step.w_optim.state.get(orig, {}).get("momentum_buffer")
        if buf is not None:
            step_dir = step_dir + cfg.momentum * buf
        unrolled.append(p - xi * step_dir)
    f = model(unrolled)
    gen = torch.Generator().manual_seed(seed)
    x_adv = fgsm(model([u.detach() for u in unrolled]), val[0], val[1], step.box, gen)
    losses = {
        "val": F_nn.cross_entropy(f(val[0]), val[1]),
        "ood": kl_uniform(f(ood_x)),
        "adv": F_nn.cross_entropy(f(x_adv), val[1]),
    }
    out = []
    for name in cfg.objectives:
        if name in losses:
            grads = torch.autograd.grad(losses[name], alphas, retain_graph=True)
            out.append(torch.cat([gr.reshape(-1) for gr in grads]))
    return out


@pytest.mark.parametrize(("hessian", "rtol"), [("exact", 1e-6), ("finite_difference", 1e-4)])
@pytest.mark.parametrize("after_a_step", [False, True])
def test_hypergradient_matches_autograd_through_the_unrolled_step(
    hessian: str, rtol: float, after_a_step: bool
) -> None:
    # DARTS's default step (0.01 / ‖v‖) is too coarse to compare at 1e-4 on this tiny net,
    # whose ReLU and max-pool kinks it crosses; a small step checks the arithmetic.
    # The unnormalised costs keep the first step's α where this comparison was set up (the
    # cost rows do not enter it: see the test of the cost rows below).
    step, gen = make(
        tiny(hessian=hessian, order="second", fd_epsilon=1e-5, cost_normalization="none")
    )
    train, val, (ood_x, _) = batches()
    if after_a_step:  # momentum buffers now exist and enter θ'
        step.step(train, val, ood_x)
    gen.manual_seed(11)
    got = step.hypergradients(train, val, ood_x).grads
    want = reference_hypergradients(step, train, val, ood_x, seed=11)
    assert len(want) == 3
    for k, w in enumerate(want):
        scale = w.abs().max()
        assert torch.allclose(got[k], w, rtol=0, atol=rtol * scale), (k, (got[k] - w).abs().max())


def test_second_order_term_is_not_negligible_here() -> None:
    """Guards the test above: first- and second-order gradients differ on this problem."""
    step, gen = make(tiny(order="second", hessian="exact", lr=0.5))
    first, _ = make(tiny(order="first", lr=0.5))
    train, val, (ood_x, _) = batches()
    gen.manual_seed(3)
    g2 = step.hypergradients(train, val, ood_x).grads[0]
    g1 = first.hypergradients(train, val, ood_x).grads[0]
    assert (g2 - g1).norm() > 1e-3 * g1.norm()


def test_first_order_is_the_plain_alpha_gradient() -> None:
    step, _ = make(tiny(order="first", objectives="val"))
    train, val, (ood_x, _) = batches()
    got = step.hypergradients(train, val, ood_x).grads[0]
    loss = F_nn.cross_entropy(step.net(val[0]), val[1])
    want = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, step.net.alphas())])
    assert torch.allclose(got, want, atol=1e-12)


def test_step_updates_alpha_with_mgda_combination_and_theta_with_lower_level_gradient() -> None:
    step, gen = make(tiny(order="first", grad_clip=0.0))
    train, val, (ood_x, _) = batches()
    gen.manual_seed(2)
    h = step.hypergradients(train, val, ood_x)
    # θ's gradient for eq. (8): ∇θ (L_tr + L_ood) at (θ_t, α_t), by autograd.
    lower = F_nn.cross_entropy(step.net(train[0]), train[1]) + kl_uniform(step.net(ood_x))
    want_theta = torch.autograd.grad(lower, step.net.weights())
    for got, want in zip(h.lower_grads, want_theta, strict=True):
        assert torch.allclose(got, want, atol=1e-12)
    gen.manual_seed(2)
    result = step.step(train, val, ood_x)
    applied = torch.cat([a.grad.reshape(-1) for a in step.net.alphas()])  # type: ignore[union-attr]
    assert torch.allclose(applied, result.weights @ h.grads, atol=1e-10)
    assert torch.isclose(result.weights.sum(), torch.tensor(1.0, dtype=result.weights.dtype))
    assert (result.weights >= 0).all()
    assert result.losses.shape == (5,)


def test_equal_weighting_ablation_uses_one_fifth_each() -> None:
    step, _ = make(tiny(order="first", weighting="equal"))
    train, val, (ood_x, _) = batches()
    result = step.step(train, val, ood_x)
    assert torch.allclose(result.weights, torch.full((5,), 0.2, dtype=result.weights.dtype))


def test_ablations_change_the_lower_level() -> None:
    train, val, (ood_x, _) = batches()
    no_ood, _ = make(tiny(order="first", ood_in_lower=False))
    h = no_ood.hypergradients(train, val, ood_x)
    loss = F_nn.cross_entropy(no_ood.net(train[0]), train[1])
    for got, want in zip(
        h.lower_grads, torch.autograd.grad(loss, no_ood.net.weights()), strict=True
    ):
        assert torch.allclose(got, want, atol=1e-12)
    adv, _ = make(tiny(order="first", adv_train_in_lower=True))
    h_adv = adv.hypergradients(train, val, ood_x)
    plain, _ = make(tiny(order="first"))
    h_plain = plain.hypergradients(train, val, ood_x)
    assert not torch.allclose(h_adv.lower_grads[0], h_plain.lower_grads[0])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_step_on_gpu_matches_cpu_and_never_syncs_the_host() -> None:
    cpu, _ = make(tiny(order="second"))
    gpu, _ = make(tiny(order="second"))
    gpu.net.cuda()
    box = PixelBox(gpu.box.epsilon.cuda(), gpu.box.low.cuda(), gpu.box.high.cuda())
    gen = torch.Generator(device="cuda").manual_seed(5)
    gpu = BilevelStep(gpu.net, gpu.config, gpu.costs.to("cuda"), box, gen)
    train, val, (ood_x, _) = batches()
    train_gpu, val_gpu = [(t[0].cuda(), t[1].cuda()) for t in (train, val)]
    # the adversarial row depends on device-specific random starts: compare the others
    rows = [0, 1, 3, 4]
    h_gpu = gpu.hypergradients(train_gpu, val_gpu, ood_x.cuda()).grads[rows]
    h_cpu = cpu.hypergradients(train, val, ood_x).grads[rows]
    assert torch.allclose(h_gpu.cpu(), h_cpu, rtol=1e-4, atol=1e-6)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        gpu.step(train_gpu, val_gpu, ood_x.cuda())
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("estimate", ["expected", "derived"])
@pytest.mark.parametrize("normalization", ["none", "start"])
def test_cost_rows_are_the_gradients_of_the_scaled_cost_losses(
    estimate: str, normalization: str
) -> None:
    """Rows 4 and 5 of the hypergradients: ∇α |N̂ - L| and ∇α |F̂ - F| (eqs. 5-7), divided by
    the estimates at uniform α under ``start``, recomputed here from the cost tables."""
    from search_core.cost import derived_weights

    config = tiny(L=0.01, F=5.0, cost_estimate=estimate, cost_normalization=normalization)
    step, _ = make(config)
    train, val, (ood_x, _) = batches()
    got = step.hypergradients(train, val, ood_x)
    alphas = [a.detach().clone().requires_grad_(True) for a in step.net.alphas()]

    def estimates(a_normal: torch.Tensor, a_reduce: torch.Tensor) -> tuple[torch.Tensor, ...]:
        w = [torch.softmax(a_normal, dim=-1), torch.softmax(a_reduce, dim=-1)]
        if estimate == "derived":
            w = [derived_weights(x, config.nodes) for x in w]
        return step.costs.expected(w[0], w[1])

    n_hat, f_hat = estimates(*alphas)
    uniform = [torch.zeros_like(a) for a in alphas]
    n0, f0 = (float(v) for v in estimates(*uniform))
    scales = (1 / n0, 1 / f0) if normalization == "start" else (1.0, 1.0)
    for row, (value, bound, scale) in enumerate(
        ((n_hat, config.L, scales[0]), (f_hat, config.F, scales[1])), start=3
    ):
        loss = scale * (value - bound).abs()
        grads = torch.autograd.grad(loss, alphas, retain_graph=True)
        want = torch.cat([g.reshape(-1) for g in grads]).to(got.grads.dtype)
        assert torch.allclose(got.grads[row], want, rtol=1e-5, atol=1e-12)
        assert float(got.losses[row]) == pytest.approx(float(loss), rel=1e-5)
