"""What is measured on a trained evaluation network (section IV-B-4): the front metrics and
the measures beside them.

The five front metrics (docs/ARCHITECTURE.md): ``test_error`` on the full test split;
``params_m`` (auxiliary head excluded) and ``flops_m`` (multiply-accumulates at the dataset's
input size) of the built network; ``pgd_acc`` under PGD (10 steps of 2.5ε/10, random start,
ε = 2/255 in pixel space whatever the normalisation) on the full test split; ``ood_aupr`` with
the OoD set's *test* split as positives and the maximum softmax probability as the score (the
authors' scripts use SVHN's test split). OoD images are normalised with their own set's
statistics, as the search feeds them. Batch-1 latency is recorded beside them, and three
measures that are no front metric unless a sweep asks: ``ood_aupr_paper`` and
``pgd_acc_paper``, the OoD AUPR and the PGD accuracy by the protocol of the authors' scripts
behind the paper's tables (first 10,016 OoD images scored the wrong way round; ε = 1/255
without a random start: :func:`search_core.metrics.ood_aupr_paper`,
:func:`search_core.attacks.robust_accuracy_paper`), to compare with the paper, and
``ood_fpr95_in``, the FPR at 95 % TPR with the in-distribution images as positives.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from search_core.attacks import robust_accuracy, robust_accuracy_paper
from search_core.data import ImageSet
from search_core.metrics import (
    error_rate,
    fpr_at_95_tpr,
    fpr_at_95_tpr_in,
    latency_ms,
    ood_aupr,
    ood_aupr_paper,
    ood_auroc,
    paper_ood_count,
    predict_logits,
)
from search_core.model_eval import EvalNetwork, ImageNetNetwork, count_flops_m, count_params_m
from search_core.objectives import PixelBox
from search_core.search import DeviceData

if TYPE_CHECKING:
    from search_core.evaluate import Retrain

__all__ = ["FRONT_METRICS", "PAPER_METRICS", "device_name", "measure"]

FRONT_METRICS = ("test_error", "params_m", "flops_m", "pgd_acc", "ood_aupr")
# Measured beside the front metrics: the authors' protocol, and the FPR with in-distribution
# positives.
PAPER_METRICS = ("ood_aupr_paper", "pgd_acc_paper", "ood_fpr95_in")


class _Logits(nn.Module):
    """The evaluation network seen as a plain classifier: logits only, for the attack."""

    def __init__(self, net: EvalNetwork | ImageNetNetwork) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.net(x)[0]
        return logits


def _whole(images: ImageSet, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole split on the device, normalised with its own set's statistics."""
    data = DeviceData(images, device, augment=False)
    return data.batch(torch.arange(len(images), device=device), None, augment=False)


def device_name(device: torch.device) -> str:
    """What the latency was measured on, in words."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine() or "cpu"
    return f"{cpu} cpu, {torch.get_num_threads()} threads"


def measure(run: Retrain) -> dict[str, Any]:
    """The five front metrics of the trained network, plus latency, OoD extras and the
    paper-protocol measures (:data:`PAPER_METRICS`)."""
    cfg, device = run.config, run.device
    net = run.net
    net.eval()
    model = _Logits(net).eval()
    test_x, test_y = _whole(run.test, device)
    in_logits = predict_logits(model, test_x, cfg.eval_batch_size)
    test_error = error_rate(in_logits, test_y.cpu())
    box = PixelBox.for_normalisation(cfg.epsilon, run.mean, run.std, device)
    # A CPU generator: the attack's random starts are then the same on every device.
    attack_gen = torch.Generator().manual_seed(cfg.seed + 3)
    pgd_acc = robust_accuracy(
        model,
        test_x,
        test_y,
        box,
        batch_size=cfg.eval_batch_size,
        steps=cfg.pgd_steps,
        step_scale=cfg.pgd_step_scale,
        generator=attack_gen,
    )
    pgd_acc_paper = robust_accuracy_paper(
        model, test_x, test_y, run.mean, run.std, batch_size=cfg.eval_batch_size
    )
    del test_x
    ood_x, _ = _whole(run.ood, device)
    ood_logits = predict_logits(model, ood_x, cfg.eval_batch_size)
    del ood_x
    shape = (run.in_channels, run.input_size, run.input_size)
    return {
        "test_error": test_error,
        "params_m": count_params_m(net),
        "flops_m": count_flops_m(net, run.input_size, run.in_channels),
        "pgd_acc": pgd_acc,
        "ood_aupr": ood_aupr(in_logits, ood_logits),
        "latency_ms": latency_ms(model, shape, device, repeats=cfg.latency_repeats),
        "latency_device": device_name(device),
        "clean_acc": 100.0 - test_error,
        "ood_auroc": ood_auroc(in_logits, ood_logits),
        "ood_fpr95": fpr_at_95_tpr(in_logits, ood_logits),
        "ood_fpr95_in": fpr_at_95_tpr_in(in_logits, ood_logits),
        "ood_aupr_paper": ood_aupr_paper(in_logits, ood_logits),
        "ood_images_paper": paper_ood_count(len(in_logits), len(ood_logits)),
        "pgd_acc_paper": pgd_acc_paper,
        "ood_base_rate": 100.0 * len(ood_logits) / (len(ood_logits) + len(in_logits)),
        "test_images": len(in_logits),
        "ood_images": len(ood_logits),
    }
