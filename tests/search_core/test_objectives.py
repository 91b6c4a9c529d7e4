"""Eqs. (3)-(6) and the FGSM attack of eq. (4) against their definitions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F_nn

from search_core.objectives import PixelBox, cost_loss, fgsm, kl_uniform


def test_kl_uniform_equals_its_definition() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(7, 10, generator=g, dtype=torch.float64) * 3
    p = logits.softmax(-1)
    u = torch.full_like(p, 1 / 10)
    # KL(U‖p) = Σ_c U_c log(U_c / p_c), averaged over samples (eq. 3)
    want = (u * (u.log() - p.log())).sum(-1).mean()
    assert torch.isclose(kl_uniform(logits), want, atol=1e-12)
    # and it is what torch's kl_div computes as KL(target ‖ input) with batchmean
    lib = F_nn.kl_div(F_nn.log_softmax(logits, -1), u, reduction="batchmean")
    assert torch.isclose(kl_uniform(logits), lib, atol=1e-12)


def test_kl_uniform_is_zero_only_for_uniform_predictions() -> None:
    assert kl_uniform(torch.zeros(3, 5)).abs() < 1e-6
    assert kl_uniform(torch.tensor([[5.0, 0.0, 0.0]])) > 0.5


def test_cost_loss_is_the_absolute_distance_to_the_bound() -> None:
    estimate = torch.tensor(3.0, requires_grad=True)
    loss = cost_loss(estimate, 2.5)
    (grad,) = torch.autograd.grad(loss, estimate)
    assert loss.item() == pytest.approx(0.5)
    assert grad.item() == 1.0
    assert cost_loss(torch.tensor(1.0), 2.5).item() == pytest.approx(1.5)


def box(eps: float = 8 / 255) -> PixelBox:
    return PixelBox.for_normalisation(eps, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])


def test_fgsm_stays_in_the_epsilon_ball_and_the_pixel_range() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    b = box()
    x = torch.rand(16, 3, 4, 4) * (b.high - b.low) + b.low  # valid normalised images
    x[0] = b.low[0]  # a black image sits on the range's edge
    y = torch.randint(0, 5, (16,))
    x_adv = fgsm(model, x, y, b, torch.Generator().manual_seed(1))
    assert ((x_adv - x).abs() <= b.epsilon + 1e-6).all()
    assert (x_adv >= b.low - 1e-6).all() and (x_adv <= b.high + 1e-6).all()
    pixels = x_adv * torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1) + torch.tensor(
        [0.4, 0.5, 0.6]
    ).view(1, 3, 1, 1)
    assert pixels.min() >= -1e-6 and pixels.max() <= 1 + 1e-6


def test_fgsm_on_a_linear_model_matches_the_closed_form() -> None:
    """For a linear model the input gradient's sign is −sign(w_y − w_other) everywhere, so
    FGSM with random start δ ~ U(−ε, ε) is x_adv = clip(x + δ + 1.25ε·s, x ± ε)."""
    w = torch.tensor([[1.0, -2.0, 0.5, -0.25]])
    model = torch.nn.Linear(4, 2, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.cat([w, -w]))
    eps = 0.1
    b = PixelBox(torch.tensor(eps), torch.tensor(-10.0), torch.tensor(10.0))
    x = torch.zeros(3, 4)
    y = torch.zeros(3, dtype=torch.long)  # label 0: the loss grows along −sign(w)
    x_adv = fgsm(model, x, y, b, torch.Generator().manual_seed(0))
    delta = (2 * torch.rand(3, 4, generator=torch.Generator().manual_seed(0)) - 1) * eps
    want = (delta - 1.25 * eps * torch.sign(w)).clamp(-eps, eps)
    assert torch.allclose(x_adv, want)
    assert (x_adv * torch.sign(w) <= 0).all()  # every coordinate ends on the adversarial side


def test_fgsm_increases_the_loss() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5))
    b = box(16 / 255)
    x = torch.zeros(64, 3, 4, 4)
    y = torch.randint(0, 5, (64,))
    x_adv = fgsm(model, x, y, b, torch.Generator().manual_seed(2))
    assert F_nn.cross_entropy(model(x_adv), y) > F_nn.cross_entropy(model(x), y)


def test_pixel_box_converts_epsilon_to_normalised_units() -> None:
    b = PixelBox.for_normalisation(2 / 255, [0.5], [0.25])
    assert b.epsilon.item() == pytest.approx(2 / 255 / 0.25)
    assert b.low.item() == pytest.approx(-2.0) and b.high.item() == pytest.approx(2.0)
    assert math.isclose(float(b.project(torch.tensor(5.0), torch.tensor(1.99))), 2.0)
