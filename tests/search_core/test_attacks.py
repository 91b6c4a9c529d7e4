"""PGD (section IV-B-4) against its closed form on a linear model and a plain re-implementation;
the authors' PGD (ε = 1/255, no random start) against their test_adv.py written out plainly."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F_nn
from torch import nn

from search_core.attacks import (
    PAPER_PGD_EPSILON,
    PAPER_PGD_STEP_SCALE,
    PAPER_PGD_STEPS,
    pgd,
    robust_accuracy,
    robust_accuracy_paper,
)
from search_core.errors import ConfigError
from search_core.metrics import error_rate, predict_logits
from search_core.objectives import PixelBox

MEAN = (0.4, 0.5, 0.6)
STD = (0.2, 0.25, 0.3)


def unbounded_box(epsilon: list[float]) -> PixelBox:
    eps = torch.tensor(epsilon).view(1, -1, 1, 1)
    return PixelBox(
        epsilon=eps,
        low=torch.full_like(eps, -float("inf")),
        high=torch.full_like(eps, float("inf")),
    )


class TwoClassLinear(nn.Module):
    """Logits (w·x, −w·x): the loss of label 0 falls with w·x, that of label 1 rises."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        score = (x.flatten(1) * self.w.flatten()).sum(1)
        return torch.stack([score, -score], dim=1)


def small_conv_net(dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    with torch.no_grad():
        bn = net[1]
        assert isinstance(bn, nn.BatchNorm2d)
        assert bn.running_mean is not None and bn.running_var is not None
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    return net.to(dtype).eval()


def valid_images(box: PixelBox, n: int, seed: int, size: int = 6) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, box.low.shape[1], size, size, generator=g)
    return box.low + u * (box.high - box.low)


@pytest.mark.parametrize("random_start", [True, False])
def test_pgd_reaches_the_closed_form_corner_of_a_linear_model(random_start: bool) -> None:
    # CE of label 0 is log(1 + exp(−2 w·x)): the worst δ in the ε-ball is −ε·sign(w), and
    # +ε·sign(w) for label 1. 10 steps of 0.25ε cover 2.5ε ≥ 2ε, the ball's width.
    g = torch.Generator().manual_seed(3)
    w = torch.randn(1, 3, 4, 4, generator=g) * 0.1
    model = TwoClassLinear(w).eval()
    x = torch.randn(8, 3, 4, 4, generator=g)
    y = torch.tensor([0, 1, 0, 1, 1, 0, 0, 1])
    eps = [0.03, 0.05, 0.07]  # per channel, as ε / std is
    box = unbounded_box(eps)
    x_adv = pgd(
        model,
        x,
        y,
        box,
        steps=10,
        step_scale=2.5,
        random_start=random_start,
        generator=torch.Generator().manual_seed(4),
    )
    label_sign = (1 - 2 * y).float().view(-1, 1, 1, 1)
    want = x - torch.tensor(eps).view(1, 3, 1, 1) * w.sign() * label_sign
    assert torch.equal(x_adv, want)


def reference_pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epsilon: list[float],
    low: list[float],
    high: list[float],
    steps: int,
    step_scale: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Madry et al.'s PGD written plainly: one image at a time, clamps channel by channel."""
    noise = torch.rand(x.shape, generator=generator, dtype=x.dtype)
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        xi = x[i : i + 1]
        adv = xi.clone()
        for c, eps in enumerate(epsilon):
            start = xi[:, c] + (2 * noise[i : i + 1, c] - 1) * eps
            adv[:, c] = start.clamp(min=xi[:, c] - eps, max=xi[:, c] + eps).clamp(low[c], high[c])
        for _ in range(steps):
            adv = adv.detach().requires_grad_(True)
            loss = F_nn.cross_entropy(model(adv), y[i : i + 1])
            (grad,) = torch.autograd.grad(loss, adv)
            step = (
                adv.detach()
                + step_scale
                * torch.tensor(epsilon, dtype=x.dtype).view(1, -1, 1, 1)
                / steps
                * grad.sign()
            )
            adv = step.clone()
            for c, eps in enumerate(epsilon):
                adv[:, c] = (
                    step[:, c].clamp(min=xi[:, c] - eps, max=xi[:, c] + eps).clamp(low[c], high[c])
                )
        out[i] = adv.detach()[0]
    return out


def test_pgd_matches_a_plain_per_image_implementation() -> None:
    model = small_conv_net(torch.float64)
    eps_pixels = 8 / 255
    box = PixelBox.for_normalisation(eps_pixels, MEAN, STD)
    x = valid_images(box, 6, seed=1).double()
    y = torch.tensor([0, 1, 2, 3, 1, 2])
    got = pgd(model, x, y, box, steps=5, step_scale=2.5, generator=torch.Generator().manual_seed(7))
    epsilon = [eps_pixels / s for s in STD]
    low = [(0 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    high = [(1 - m) / s for m, s in zip(MEAN, STD, strict=True)]
    want = reference_pgd(model, x, y, epsilon, low, high, 5, 2.5, torch.Generator().manual_seed(7))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert (got - x).abs().max() > 0.5 * max(epsilon)  # the attack moved


def test_pgd_stays_in_the_epsilon_ball_and_pixel_range_at_the_edges() -> None:
    model = small_conv_net()
    eps_pixels = 8 / 255
    box = PixelBox.for_normalisation(eps_pixels, MEAN, STD)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    pixels = torch.cat([torch.zeros(4, 3, 6, 6), torch.ones(4, 3, 6, 6)])
    x = (pixels - mean) / std
    y = torch.tensor([0, 1, 2, 3] * 2)
    x_adv = pgd(model, x, y, box, generator=torch.Generator().manual_seed(0))
    adv_pixels = x_adv * std + mean
    assert adv_pixels.min() >= -1e-6 and adv_pixels.max() <= 1 + 1e-6
    assert (adv_pixels - pixels).abs().max() <= eps_pixels + 1e-6
    # black images can only brighten and white ones only darken, and some pixels did
    assert (adv_pixels[:4] > 1e-3).any() and (adv_pixels[4:] < 1 - 1e-3).any()


def test_pgd_leaves_inputs_and_parameter_grads_alone() -> None:
    model = small_conv_net()
    box = PixelBox.for_normalisation(8 / 255, MEAN, STD)
    x = valid_images(box, 4, seed=2)
    x_before = x.clone()
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():  # callers may evaluate under no_grad; the attack still needs grads
        x_adv = pgd(model, x, y, box, steps=3)
    assert not x_adv.requires_grad
    assert torch.equal(x, x_before)
    assert all(p.grad is None for p in model.parameters())
    assert not torch.equal(x_adv, x)


def test_pgd_reads_the_logits_of_a_tuple_output() -> None:
    plain = small_conv_net()

    class WithAux(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = plain

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
            return self.net(x), None

    box = PixelBox.for_normalisation(4 / 255, MEAN, STD)
    x = valid_images(box, 4, seed=5)
    y = torch.tensor([3, 2, 1, 0])
    a = pgd(WithAux().eval(), x, y, box, generator=torch.Generator().manual_seed(1))
    b = pgd(plain, x, y, box, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def trained_tiny_model() -> tuple[nn.Module, torch.Tensor, torch.Tensor, PixelBox]:
    """A linear model trained on two classes told apart by their mean brightness."""
    torch.manual_seed(0)
    box = PixelBox.for_normalisation(8 / 255, MEAN, STD)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(64) % 2
    pixels = (0.45 + 0.1 * y.float().view(-1, 1, 1, 1)) + 0.05 * torch.randn(
        64, 3, 4, 4, generator=g
    )
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    x = (pixels.clamp(0, 1) - mean) / std
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 2))
    params = list(model.parameters())
    for _ in range(100):
        grads = torch.autograd.grad(F_nn.cross_entropy(model(x), y), params)
        with torch.no_grad():
            for p, grad in zip(params, grads, strict=True):
                p.sub_(0.5 * grad)
    return model.eval(), x, y, box


def test_robust_accuracy_is_at_most_clean_accuracy() -> None:
    model, x, y, box = trained_tiny_model()
    clean = 100.0 - error_rate(predict_logits(model, x), y)
    assert clean >= 90.0
    robust = robust_accuracy(
        model, x, y, box, batch_size=16, generator=torch.Generator().manual_seed(0)
    )
    assert 0.0 <= robust <= clean
    strong = PixelBox.for_normalisation(0.1, MEAN, STD)  # exceeds half the class gap
    assert robust_accuracy(model, x, y, strong, batch_size=16) < clean


def test_robust_accuracy_counts_pgd_hits_over_batches() -> None:
    model, x, y, box = trained_tiny_model()
    box = PixelBox.for_normalisation(0.05, MEAN, STD)
    got = robust_accuracy(
        model, x, y, box, batch_size=24, steps=4, generator=torch.Generator().manual_seed(9)
    )
    g = torch.Generator().manual_seed(9)
    correct = 0
    for start in (0, 24, 48):  # 64 images: batches of 24, 24 and 16
        xb, yb = x[start : start + 24], y[start : start + 24]
        x_adv = pgd(model, xb, yb, box, steps=4, generator=g)
        correct += int((model(x_adv).argmax(1) == yb).sum())
    assert got == pytest.approx(100.0 * correct / 64)
    assert 0.0 < got < 100.0  # the case is not trivial


def authors_pgd_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, epsilon_255: float
) -> float:
    """DARTS/test_adv.py's ``test_PGD`` written out plainly: ε = epsilon/255 / std, steps of
    2.5ε/steps from the clean images (no random start), the batch mean of CE, each step
    clipped to the ε-ball around the clean images and then to the pixel range."""
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    upper, lower = (1 - mean) / std, (0 - mean) / std
    epsilon = (epsilon_255 / 255.0) / std
    step_size = 2.5 * epsilon / steps
    adv_input = x.clone().requires_grad_(True)
    for _ in range(steps):
        loss = F_nn.cross_entropy(model(adv_input), y)
        (grad,) = torch.autograd.grad(loss, adv_input)
        adv_images = adv_input.detach() + step_size * torch.sign(grad)
        delta = torch.max(torch.min(adv_images - x, epsilon), -epsilon)
        adv_images = torch.max(torch.min(x + delta, upper), lower)
        adv_input = adv_images.clone().requires_grad_(True)
    with torch.no_grad():
        predicted = model(adv_input).argmax(1)
    return 100.0 * int((predicted == y).sum()) / len(y)


def test_robust_accuracy_paper_is_the_authors_pgd_on_a_linear_classifier() -> None:
    torch.manual_seed(4)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 5 * 5, 6)).eval()
    with torch.no_grad():
        model[1].weight.mul_(30.0)  # steep enough that 1/255 flips some predictions
    x = valid_images(PixelBox.for_normalisation(0.0, MEAN, STD), 80, seed=5, size=5)
    with torch.no_grad():
        y = model(x).argmax(1)  # clean accuracy 100 %
    y[::4] = (y[::4] + 1) % 6  # and a quarter of the labels wrong
    got = robust_accuracy_paper(model, x, y, MEAN, STD, batch_size=32)
    want = authors_pgd_accuracy(model, x, y, steps=10, epsilon_255=1.0)
    assert got == want
    assert 0.0 < got < 75.0  # the attack bites, but not on every image
    assert (PAPER_PGD_EPSILON, PAPER_PGD_STEPS, PAPER_PGD_STEP_SCALE) == (1 / 255, 10, 2.5)
    # the paper's ε = 2/255 with a random start is another attack, and a stronger one
    stronger = robust_accuracy(
        model, x, y, PixelBox.for_normalisation(2 / 255, MEAN, STD), batch_size=32
    )
    assert stronger < got


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"steps": 0}, "steps=0"),
        ({"steps": 2.5}, "steps=2.5"),
        ({"step_scale": 0.0}, "step_scale=0.0"),
        ({"step_scale": float("nan")}, "step_scale=nan"),
    ],
)
def test_pgd_rejects_bad_settings(kwargs: dict[str, float], field: str) -> None:
    model = small_conv_net()
    box = PixelBox.for_normalisation(8 / 255, MEAN, STD)
    x = valid_images(box, 2, seed=0)
    with pytest.raises(ConfigError, match=field):
        pgd(model, x, torch.tensor([0, 1]), box, **kwargs)  # type: ignore[arg-type]


def test_pgd_and_robust_accuracy_reject_bad_inputs() -> None:
    model = small_conv_net()
    box = PixelBox.for_normalisation(8 / 255, MEAN, STD)
    x = valid_images(box, 2, seed=0)
    with pytest.raises(ConfigError, match=r"y: shape \(3,\)"):
        pgd(model, x, torch.tensor([0, 1, 2]), box)
    with pytest.raises(ConfigError, match="ε has 3 channels; expected 1"):
        pgd(model, x[:, :1], torch.tensor([0, 1]), box)
    with pytest.raises(ConfigError, match="training mode"):
        pgd(model.train(), x, torch.tensor([0, 1]), box)
    model.eval()
    with pytest.raises(ConfigError, match="batch_size=0"):
        robust_accuracy(model, x, torch.tensor([0, 1]), box, batch_size=0)
    with pytest.raises(ConfigError, match="images: shape"):
        robust_accuracy(model, x[:0], torch.tensor([], dtype=torch.long), box)
