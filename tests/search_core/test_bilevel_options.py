"""The authors' choices as options of the bi-level step, each against an independent reference:
``mgda_on="direct"`` (eq. 1 on ∇α L_k(θ'), one Hessian-vector product on Σγ_k v_k) against the
literal formula by plain autograd, ``kl_reduction="per_class"`` against PyTorch's ``kl_div``,
the loss scales, the authors' adversarial lower level (and the finite differences on its own
loss), and the per-epoch diagnostics ‖g_k‖ and γ_k‖g_k‖."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F_nn
from torch.func import functional_call

from search_core.config import SearchConfig, preset
from search_core.mgda import min_norm_weights, normalize_gradients
from search_core.model_search import ALPHA_NAMES
from search_core.objectives import fgsm, kl_uniform

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_bilevel import B, batches, make, tiny


def _flat(tensors: tuple[torch.Tensor, ...] | list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


@pytest.mark.parametrize("hessian", ["exact", "finite_difference"])
@pytest.mark.parametrize("after_a_step", [False, True])
def test_direct_mgda_is_the_literal_formula(hessian: str, after_a_step: bool) -> None:
    """α's update direction equals Σγ_k ∇α L_k(θ') − ξ ∇²_{α,θ} L_tr · Σγ_k v_k, γ the min-norm
    weights of the l2-normalised direct gradients, all by plain autograd here (the product
    exactly by double backward, or by the same central difference written out), in float64."""
    config = tiny(order="second", hessian=hessian, mgda_on="direct", fd_epsilon=1e-5)
    step, gen = make(config)
    train, val, (ood_x, _) = batches()
    if after_a_step:  # momentum buffers now exist and enter θ'
        step.step(train, val, ood_x)
    net, xi = step.net, step.w_optim.param_groups[0]["lr"]
    names = [n for n, _ in net.named_weights()]
    theta = [p.detach().clone().requires_grad_(True) for p in net.weights()]
    alphas = [a.detach().clone().requires_grad_(True) for a in net.alphas()]

    def model(weights: list[torch.Tensor], arch: list[torch.Tensor]) -> object:
        params = dict(zip(names, weights, strict=True)) | dict(zip(ALPHA_NAMES, arch, strict=True))
        return lambda x: functional_call(net, params, (x,))

    loss_tr = F_nn.cross_entropy(model(theta, alphas)(train[0]), train[1])
    g = torch.autograd.grad(loss_tr, theta)
    unrolled = []
    for p, gi, orig in zip(theta, g, net.weights(), strict=True):
        direction = gi + config.weight_decay * p
        buf = step.w_optim.state.get(orig, {}).get("momentum_buffer")
        if buf is not None:
            direction = direction + config.momentum * buf
        unrolled.append((p - xi * direction).detach().requires_grad_(True))
    f = model(unrolled, alphas)
    x_adv = fgsm(
        model(unrolled, alphas), val[0], val[1], step.box, torch.Generator().manual_seed(11)
    )
    data = [
        F_nn.cross_entropy(f(val[0]), val[1]),
        kl_uniform(f(ood_x)),
        F_nn.cross_entropy(f(x_adv), val[1]),
    ]
    direct, vectors = [], []
    for loss in data:
        grads = torch.autograd.grad(loss, [*alphas, *unrolled])
        direct.append(_flat(grads[: len(alphas)]))
        vectors.append(grads[len(alphas) :])
    gen.manual_seed(11)
    h = step.hypergradients(train, val, ood_x)
    rows = torch.stack([*direct, *h.grads[3:]])  # the cost rows depend on α alone
    assert torch.allclose(h.grads[:3], rows[:3], rtol=0, atol=1e-10)
    gamma = min_norm_weights(normalize_gradients(rows, h.losses, "l2"), 250, 1e-6)
    v = [sum(gamma[k] * vectors[k][i] for k in range(3)) for i in range(len(theta))]

    def alpha_grad_of_train_loss(weights: list[torch.Tensor]) -> torch.Tensor:
        arch = [a.detach().clone().requires_grad_(True) for a in alphas]
        loss = F_nn.cross_entropy(model(weights, arch)(train[0]), train[1])
        return _flat(torch.autograd.grad(loss, arch))

    if hessian == "exact":
        arch = [a.detach().clone().requires_grad_(True) for a in alphas]
        weights = [p.detach().clone().requires_grad_(True) for p in theta]
        loss = F_nn.cross_entropy(model(weights, arch)(train[0]), train[1])
        g_w = torch.autograd.grad(loss, weights, create_graph=True)
        dot = sum((gi * vi).sum() for gi, vi in zip(g_w, v, strict=True))
        hvp = _flat(torch.autograd.grad(dot, arch))
    else:
        eps = config.fd_epsilon / _flat(v).norm()
        plus = [p.detach() + eps * vi for p, vi in zip(theta, v, strict=True)]
        minus = [p.detach() - eps * vi for p, vi in zip(theta, v, strict=True)]
        hvp = (alpha_grad_of_train_loss(plus) - alpha_grad_of_train_loss(minus)) / (2 * eps)
    want = gamma @ rows - xi * hvp
    gen.manual_seed(11)
    result = step.step(train, val, ood_x)
    got = _flat([a.grad for a in step.net.alphas()])  # type: ignore[misc]
    assert torch.allclose(result.weights, gamma, atol=1e-10)
    assert torch.allclose(got, want, rtol=0, atol=1e-6 * want.abs().max()), (got - want).abs().max()


def test_direct_and_hypergradient_agree_when_first_order() -> None:
    """ξ = 0: no second-order term, so both choices solve eq. (1) on the same gradients."""
    train, val, (ood_x, _) = batches()
    got = []
    for mgda_on in ("hypergradient", "direct"):
        step, gen = make(tiny(order="first", mgda_on=mgda_on))
        gen.manual_seed(4)
        step.step(train, val, ood_x)
        got.append(_flat([a.grad for a in step.net.alphas()]))  # type: ignore[misc]
    assert torch.equal(got[0], got[1])


def test_per_class_kl_is_pytorchs_kl_div_with_its_mean_reduction() -> None:
    logits = torch.randn(7, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    uniform = torch.full_like(logits, 1 / 5)
    reference = F_nn.kl_div(F_nn.log_softmax(logits, dim=-1), uniform, reduction="mean")
    assert torch.allclose(kl_uniform(logits, "per_class"), reference, atol=1e-14)
    summed = F_nn.kl_div(F_nn.log_softmax(logits, dim=-1), uniform, reduction="batchmean")
    assert torch.allclose(kl_uniform(logits), summed, atol=1e-14)


@pytest.mark.parametrize(
    ("changes", "row", "factor"),
    [
        ({"ood_upper_scale": 50.0}, 1, 50.0),
        ({"kl_reduction": "per_class"}, 1, 1 / 3),  # three classes
        ({"cost_scale": 7.5}, 3, 7.5),
        ({"cost_scale": 7.5}, 4, 7.5),
    ],
)
def test_scales_multiply_their_rows(changes: dict[str, object], row: int, factor: float) -> None:
    """First order (so θ' = θ): the scaled objective's row and loss are the plain ones times the
    factor, the other rows unchanged."""
    train, val, (ood_x, _) = batches()
    rows = []
    for config in (tiny(order="first"), tiny(order="first", **changes)):
        step, gen = make(config)
        gen.manual_seed(6)
        rows.append(step.hypergradients(train, val, ood_x))
    plain, scaled = rows
    assert torch.allclose(scaled.grads[row], factor * plain.grads[row], rtol=1e-12, atol=1e-15)
    assert torch.allclose(scaled.losses[row], factor * plain.losses[row], rtol=1e-12)
    others = [r for r in range(5) if r != row and not (row in (3, 4) and r in (3, 4))]
    assert torch.equal(scaled.grads[others], plain.grads[others])


@pytest.mark.parametrize("form", ["fgsm", "clean_and_adversarial"])
def test_adversarial_lower_level_and_its_finite_differences(form: str) -> None:
    """θ's gradient is ∇θ of CE(FGSM) or CE(clean) + CE(FGSM) (plus L_ood), by autograd with
    the same random start; and the central differences of eq. (9) differentiate that same
    L_tr, so they agree with the exact product (they took the clean batch before)."""
    train, val, (ood_x, _) = batches()
    config = tiny(order="first", adv_train_in_lower=True, adv_lower_form=form, ood_in_lower=False)
    step, gen = make(config)
    gen.manual_seed(8)
    h = step.hypergradients(train, val, ood_x)
    x_adv = fgsm(step.net, train[0], train[1], step.box, torch.Generator().manual_seed(8))
    loss = F_nn.cross_entropy(step.net(x_adv), train[1])
    if form == "clean_and_adversarial":
        loss = loss + F_nn.cross_entropy(step.net(train[0]), train[1])
    for got, want in zip(h.lower_grads, torch.autograd.grad(loss, step.net.weights()), strict=True):
        assert torch.allclose(got, want, atol=1e-12)
    second = []
    for hessian in ("exact", "finite_difference"):
        s, g = make(config.replace(order="second", hessian=hessian, fd_epsilon=1e-5))
        g.manual_seed(8)
        second.append(s.hypergradients(train, val, ood_x).grads[:3])
    scale = second[0].abs().max()
    assert torch.allclose(second[1], second[0], rtol=0, atol=1e-4 * scale)


def test_step_reports_the_norms_mgda_weighed() -> None:
    """‖g_k‖ of the rows eq. (1) was solved on: their product with γ is the effective mix."""
    step, gen = make(tiny(order="second", hessian="exact"))
    train, val, (ood_x, _) = batches()
    gen.manual_seed(9)
    h = step.hypergradients(train, val, ood_x)
    gen.manual_seed(9)
    result = step.step(train, val, ood_x)
    assert torch.allclose(result.grad_norms, h.grads.norm(dim=1), rtol=1e-12)


def test_paper_authors_preset_sets_the_authors_choices() -> None:
    config: SearchConfig = preset("paper-authors")
    assert (config.cost_scale, config.ood_upper_scale) == (7.5, 50.0)
    assert (config.kl_reduction, config.mgda_on) == ("per_class", "direct")
    assert config.adv_lower_form == "clean_and_adversarial"
    assert preset("paper-authors", {"backbone": "pc_darts"}).order == "first"
    default = preset("paper")
    assert (default.cost_scale, default.ood_upper_scale, default.mgda_on) == (
        1.0,
        1.0,
        "hypergradient",
    )
    assert B > 1
