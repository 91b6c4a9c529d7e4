"""The E2RNAS objectives (section III-B, III-C): eqs. (3)-(6), and the FGSM attack for (4).

- L_val, L_tr: mean cross-entropy.
- L_ood (eq. 3): mean over OoD samples of KL(U ‖ softmax(f(x))), U uniform over the k classes.
- L_adv (eq. 4): cross-entropy on validation samples perturbed by FGSM with a random start
  (Wong et al. 2020, the paper's [21]): δ ~ U(−ε, ε), one step of 1.25ε·sign(∇ₓ), projected
  back to the ε-ball and the valid pixel range. ε is given in pixel units and applied to
  normalised inputs as ε / std per channel.
- L_nop (eq. 5) = |N̂(α) − L| and L_flops (eq. 6) = |F̂(α) − F| (see :mod:`search_core.cost`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F_nn

Model = Callable[[torch.Tensor], torch.Tensor]


def kl_uniform(logits: torch.Tensor, reduction: str = "full") -> torch.Tensor:
    """Eq. (3): mean over the batch of KL(U ‖ softmax(logits)).

    KL(U‖p) = Σ_c (1/k) log((1/k) / p_c) = −log k − (1/k) Σ_c log p_c. ``reduction``
    ``"per_class"`` divides it by k, as PyTorch's ``kl_div`` with its default mean reduction
    (over batch × classes) does in the authors' code.
    """
    k = logits.shape[-1]
    log_p = F_nn.log_softmax(logits, dim=-1)
    kl = -math.log(k) - log_p.mean(dim=-1).mean()
    return kl / k if reduction == "per_class" else kl


def cost_loss(estimate: torch.Tensor, bound: float) -> torch.Tensor:
    """Eqs. (5), (6): the distance of the differentiable cost to its lower bound."""
    return (estimate - bound).abs()


@dataclass(frozen=True)
class PixelBox:
    """The valid input range and ε of an attack, in the normalised input space."""

    epsilon: torch.Tensor  # (1, C, 1, 1): ε / std
    low: torch.Tensor  # (1, C, 1, 1): (0 − mean) / std
    high: torch.Tensor  # (1, C, 1, 1): (1 − mean) / std

    @staticmethod
    def for_normalisation(
        epsilon: float,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
    ) -> PixelBox:
        m = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        return PixelBox(epsilon=epsilon / s, low=(0.0 - m) / s, high=(1.0 - m) / s)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Clip to the ε-ball around ``x`` and to the valid pixel range."""
        x_adv = torch.minimum(torch.maximum(x_adv, x - self.epsilon), x + self.epsilon)
        return torch.minimum(torch.maximum(x_adv, self.low), self.high)


def fgsm(
    model: Model,
    x: torch.Tensor,
    y: torch.Tensor,
    box: PixelBox,
    generator: torch.Generator | None = None,
    step_scale: float = 1.25,
) -> torch.Tensor:
    """FGSM with a random start (for eq. 4); returns detached adversarial inputs."""
    x = x.detach()
    noise = torch.rand(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    start = box.project(x + (2.0 * noise - 1.0) * box.epsilon, x).requires_grad_(True)
    loss = F_nn.cross_entropy(model(start), y)
    (grad,) = torch.autograd.grad(loss, start)
    return box.project(start.detach() + step_scale * box.epsilon * grad.sign(), x)
