"""The PGD attack behind the "PGD Acc." column (section IV-B-4).

Section IV-B-4 evaluates adversarial robustness with L∞ PGD (Madry et al., the paper's [15]):
ε = 2/255 in pixel units, 10 steps, and a step size of 2.5ε divided over the steps, i.e.
α = 2.5ε/10 per step, so the iterates can cross the ε-ball from any start, as Madry et al.
suggest ([22]). With ``x`` the clean normalised input and CE the cross-entropy,

    δ ~ U(−ε, ε),   x⁰ = Π(x + δ),   xᵗ⁺¹ = Π(xᵗ + α · sign(∇ₓ CE(f(xᵗ), y))),

where Π clips to the ε-ball around ``x`` and to the valid pixel range (:meth:`PixelBox.project`).
Everything happens in the normalised input space, where ε and the pixel range are per channel
(ε / std). The training-time attack of eq. (4), FGSM, is :func:`search_core.objectives.fgsm`.

The authors' scripts ran another PGD for the paper's tables (:func:`robust_accuracy_paper`:
ε = 1/255, no random start); its accuracy is kept beside this one to compare with the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F_nn

from search_core.errors import ConfigError
from search_core.metrics import (
    Classifier,
    check_eval_mode,
    check_positive_int,
    logits_of,
    model_device,
)
from search_core.objectives import PixelBox

# The PGD of the authors' tables (yuezhixiong/NAS-Benchmark, DARTS/test_adv.py and the
# scripts that call it); see robust_accuracy_paper.
PAPER_PGD_EPSILON = 1 / 255
PAPER_PGD_STEPS = 10
PAPER_PGD_STEP_SCALE = 2.5


def _check_attack(steps: int, step_scale: float) -> None:
    check_positive_int("steps", steps)
    if (
        isinstance(step_scale, bool)
        or not isinstance(step_scale, int | float)
        or not math.isfinite(step_scale)
        or step_scale <= 0
    ):
        raise ConfigError(f"step_scale={step_scale!r}: expected a finite number > 0")


def _check_batch(x: torch.Tensor, y: torch.Tensor, box: PixelBox) -> None:
    if x.dim() != 4 or not x.is_floating_point():
        raise ConfigError(
            f"x: shape {tuple(x.shape)}, dtype {x.dtype}; expected float images (N, C, H, W)"
        )
    if y.shape != (x.shape[0],):
        raise ConfigError(
            f"y: shape {tuple(y.shape)}; expected ({x.shape[0]},), one label per image"
        )
    channels = box.epsilon.shape[1] if box.epsilon.dim() == 4 else 1
    if channels not in (1, x.shape[1]):
        raise ConfigError(
            f"box: ε has {channels} channels; expected {x.shape[1]}, the channels of x"
        )


def _box_like(box: PixelBox, x: torch.Tensor) -> PixelBox:
    """The box on ``x``'s device and dtype, so that the iterates stay there."""
    return PixelBox(
        epsilon=box.epsilon.to(x.device, x.dtype),
        low=box.low.to(x.device, x.dtype),
        high=box.high.to(x.device, x.dtype),
    )


def pgd(
    model: Classifier,
    x: torch.Tensor,
    y: torch.Tensor,
    box: PixelBox,
    steps: int = 10,
    step_scale: float = 2.5,
    random_start: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L∞ PGD of section IV-B-4 on normalised inputs ``x`` with labels ``y``.

    ε is ``box.epsilon``; each of the ``steps`` steps moves by α = ``step_scale`` · ε /
    ``steps``. The random start is δ = (2u − 1) · ε with u = ``torch.rand(x.shape,
    generator=generator)``, drawn on the generator's device (``x``'s without one) and then
    moved to ``x``'s, so a CPU generator gives the same start on every device.

    The model must be in eval mode. Gradients are taken with respect to the input only, so
    the parameters' ``.grad`` stay untouched; it works inside ``torch.no_grad`` as well.
    Returns the detached adversarial inputs.
    """
    _check_attack(steps, step_scale)
    _check_batch(x, y, box)
    check_eval_mode(model)
    x = x.detach()
    box = _box_like(box, x)
    alpha = step_scale * box.epsilon / steps
    if random_start:
        noise_device = generator.device if generator is not None else x.device
        noise = torch.rand(x.shape, generator=generator, device=noise_device, dtype=x.dtype)
        x_adv = box.project(x + (2.0 * noise.to(x.device) - 1.0) * box.epsilon, x)
    else:
        x_adv = x.clone()
    with torch.enable_grad():
        for _ in range(steps):
            x_adv.requires_grad_(True)
            # A sum, not a mean: each image's gradient is then its own loss's, at a scale
            # that does not shrink with the batch size.
            loss = F_nn.cross_entropy(logits_of(model(x_adv)), y, reduction="sum")
            (grad,) = torch.autograd.grad(loss, x_adv)
            x_adv = box.project(x_adv.detach() + alpha * grad.sign(), x)
    return x_adv.detach()


def robust_accuracy(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    box: PixelBox,
    batch_size: int = 256,
    steps: int = 10,
    step_scale: float = 2.5,
    generator: torch.Generator | None = None,
    random_start: bool = True,
) -> float:
    """The "PGD Acc." of section IV-B-4: accuracy (%) on :func:`pgd` examples of all images.

    ``images`` are normalised; each batch of ``batch_size`` is moved, with its labels, to the
    model's device, attacked (from a random start unless ``random_start`` is False) and
    classified.
    """
    check_positive_int("batch_size", batch_size)
    _check_attack(steps, step_scale)
    if images.dim() != 4 or images.shape[0] == 0:
        raise ConfigError(
            f"images: shape {tuple(images.shape)}; expected a non-empty batch (N, C, H, W)"
        )
    if labels.shape != (images.shape[0],):
        raise ConfigError(
            f"labels: shape {tuple(labels.shape)}; expected ({images.shape[0]},), "
            "one label per image"
        )
    check_eval_mode(model)
    device = model_device(model, images.device)
    correct = 0
    for start in range(0, images.shape[0], batch_size):
        x = images[start : start + batch_size].to(device)
        y = labels[start : start + batch_size].to(device)
        x_adv = pgd(model, x, y, box, steps, step_scale, random_start, generator)
        with torch.no_grad():
            predicted = logits_of(model(x_adv)).argmax(dim=-1)
        correct += int((predicted == y).sum())
    return 100.0 * correct / images.shape[0]


def robust_accuracy_paper(
    model: Classifier,
    images: torch.Tensor,
    labels: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int = 256,
) -> float:
    """Accuracy (%) under the PGD the authors' scripts ran for the paper's tables.

    Found in yuezhixiong/NAS-Benchmark: DARTS/test_adv.py (``test_PGD``) attacks with
    ``--epsilon`` (default 1, in 1/255 pixel units) and ``--step_num`` (default 10) steps of
    ``2.5 * epsilon / step_num``, ε and the pixel range divided by the normalisation's std
    per channel, starting at the clean images (no random start), each step
    ``x + step · sign(∇x CE)`` clipped to the ε-ball around the clean images and then to the
    valid pixel range, in eval mode; the scripts behind the tables (DARTS/auto.py,
    DARTS/auto_train.py) pass neither option, so they ran ε = 1/255 and 10 steps, although
    the paper's text says 2/255. This is :func:`robust_accuracy` with those settings
    (:data:`PAPER_PGD_EPSILON`, :data:`PAPER_PGD_STEPS`, :data:`PAPER_PGD_STEP_SCALE`) in
    ``images``' own normalisation ``mean``, ``std``. Two differences change nothing: their
    loss is the batch mean of CE, this one the sum, whose gradient has the same signs; their
    CIFAR-10 mean and std in test_adv.py are rounded (0.2471 for 0.24703233, ...), which moves
    ε by under 0.1 %. Batches are independent in eval mode, so their batch size of 32 or 64
    does not matter either.
    """
    box = PixelBox.for_normalisation(PAPER_PGD_EPSILON, mean, std, images.device)
    return robust_accuracy(
        model,
        images,
        labels,
        box,
        batch_size=batch_size,
        steps=PAPER_PGD_STEPS,
        step_scale=PAPER_PGD_STEP_SCALE,
        random_start=False,
    )
