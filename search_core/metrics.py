"""The evaluation metrics of section IV-B-4 and the cost of inference.

- Test error: the percentage of misclassified test images.
- OoD AUPR: the area under the precision-recall curve for telling out-of-distribution images
  (SVHN for CIFAR) from in-distribution ones, with the OoD images as positives (section
  IV-B-4, after Hendrycks & Gimpel, the paper's [14]). The detector scores a sample by its
  maximum softmax probability (MSP): the lower the MSP, the more OoD. AUROC and the FPR at
  95 % TPR are reported beside it, as the authors' scripts do, the FPR both with the OoD
  samples as positives and with the in-distribution ones (the usual convention of [14]).
- OoD AUPR by the authors' protocol (:func:`ood_aupr_paper`): what their script computed for
  the paper's Table I, which differs from the definition above in its cut of the OoD split
  and in the orientation of its score; kept beside the correct one to compare with the paper.
- Latency: the median wall time of a batch-1 forward.

Adversarial accuracy (PGD) lives in :mod:`search_core.attacks`.

All percentages are in [0, 100]. Models are classifiers that map a batch of normalised images
to logits; a model returning a tuple, as :class:`~search_core.model_eval.EvalNetwork` does
with ``(logits, aux_logits)``, is read through its first element.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from itertools import chain

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F_nn
from torch import nn

from search_core.errors import ConfigError

ModelOutput = torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]
Classifier = Callable[[torch.Tensor], ModelOutput]

# The recall of the positives at which `fpr_at_95_tpr` and `fpr_at_95_tpr_in` read the
# false-positive rate.
_TPR_LEVEL = 0.95
# The batch size of the authors' DataLoaders in DARTS/test_ood.py, which sets their OoD cut.
PAPER_OOD_BATCH = 32


def logits_of(output: ModelOutput) -> torch.Tensor:
    """The logits of a model's output: the output itself, or the first element of a tuple."""
    return output[0] if isinstance(output, tuple) else output


def model_device(model: Classifier, fallback: torch.device) -> torch.device:
    """The device of a module's first parameter or buffer; ``fallback`` for anything else."""
    if isinstance(model, nn.Module):
        for tensor in chain(model.parameters(), model.buffers()):
            return tensor.device
    return fallback


def check_eval_mode(model: Classifier) -> None:
    """Refuse a module in training mode: batch norm would use batch statistics and update
    its running ones, and dropout would perturb the logits being measured."""
    if isinstance(model, nn.Module) and model.training:
        raise ConfigError(
            f"model: {type(model).__name__} is in training mode; expected eval mode "
            "(call model.eval() before evaluating it)"
        )


def check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    """Raise a :class:`ConfigError` unless ``value`` is an int (not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}={value!r}: expected an integer >= {minimum}")


def _check_images(images: torch.Tensor) -> None:
    if images.dim() != 4 or images.shape[0] == 0:
        raise ConfigError(
            f"images: shape {tuple(images.shape)}; expected a non-empty batch (N, C, H, W)"
        )


def _check_logits_labels(logits: torch.Tensor, labels: torch.Tensor) -> None:
    if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
        raise ConfigError(
            f"logits: shape {tuple(logits.shape)}; expected a non-empty (N, classes) tensor"
        )
    if labels.shape != (logits.shape[0],):
        raise ConfigError(
            f"labels: shape {tuple(labels.shape)}; expected ({logits.shape[0]},), "
            "one class index per row of logits"
        )


def predict_logits(model: Classifier, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The logits of ``images`` (already normalised), computed in batches without gradients.

    Each batch is moved to the model's device; the result is a float32 tensor on the CPU.
    """
    check_positive_int("batch_size", batch_size)
    _check_images(images)
    check_eval_mode(model)
    device = model_device(model, images.device)
    chunks = []
    with torch.no_grad():
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].to(device)
            chunks.append(logits_of(model(batch)).float().cpu())
    return torch.cat(chunks)


def error_rate(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """The test error of section IV-B-4: the percentage of rows whose argmax is not the label."""
    _check_logits_labels(logits, labels)
    wrong = int((logits.argmax(dim=-1) != labels.to(logits.device)).sum())
    return 100.0 * wrong / logits.shape[0]


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The maximum softmax probability over the last dimension (Hendrycks & Gimpel, [14])."""
    if logits.dim() == 0 or logits.shape[-1] == 0:
        raise ConfigError(
            f"logits: shape {tuple(logits.shape)}; expected a last dimension of classes"
        )
    return logits.softmax(dim=-1).amax(dim=-1)


def check_ood_logits(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> None:
    """Raise a :class:`ConfigError` unless both are non-empty (N, classes) tensors of the
    same number of classes."""
    for name, logits in (("in_logits", in_logits), ("ood_logits", ood_logits)):
        if logits.dim() != 2 or logits.shape[0] == 0 or logits.shape[1] == 0:
            raise ConfigError(
                f"{name}: shape {tuple(logits.shape)}; expected a non-empty (N, classes) tensor"
            )
    if in_logits.shape[1] != ood_logits.shape[1]:
        raise ConfigError(
            f"ood_logits: {ood_logits.shape[1]} classes; expected {in_logits.shape[1]}, "
            "the number of classes of in_logits"
        )


def _ood_labels_and_scores(
    in_logits: torch.Tensor, ood_logits: torch.Tensor
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Binary labels (1 = OoD, the positives) and OoD-ness scores (higher = more OoD).

    The score is −log MSP, a strictly increasing function of −MSP, so every rank-based metric
    (AUPR, AUROC, FPR at a TPR) is the one of −MSP. The log keeps confident predictions apart
    where the MSP itself rounds to 1.0 and would tie them.
    """
    check_ood_logits(in_logits, ood_logits)
    logits = torch.cat([in_logits.detach().cpu(), ood_logits.detach().cpu()]).double()
    scores = -F_nn.log_softmax(logits, dim=-1).amax(dim=-1)
    labels = np.concatenate(
        [np.zeros(in_logits.shape[0], dtype=np.int64), np.ones(ood_logits.shape[0], np.int64)]
    )
    return labels, scores.numpy()


def _ranked_counts(
    labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """The true and false positives flagged at each distinct threshold, from the highest score
    down: ``(tp, fp)``, each cumulative, so ``tp[-1]`` is every positive and ``fp[-1]`` every
    negative. Samples with equal scores are flagged together (one threshold)."""
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_labels = scores[order], labels[order]
    # the last index of each run of equal scores: where a threshold flags a whole run
    ends = np.flatnonzero(np.r_[ranked_scores[1:] != ranked_scores[:-1], True])
    tp = np.cumsum(ranked_labels, dtype=np.float64)[ends]
    fp = (ends + 1).astype(np.float64) - tp
    return tp, fp


def ood_aupr(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> float:
    """Section IV-B-4: AUPR (%) with the OoD samples as positives and −MSP as their score.

    Computed as average precision, Σ_n (R_n − R_{n−1}) P_n over the distinct thresholds from
    the highest score down (R_0 = 0), the definition scikit-learn's
    ``average_precision_score`` uses (the tests compare the two). A detector no better than
    chance scores the positives' share of all samples.
    """
    labels, scores = _ood_labels_and_scores(in_logits, ood_logits)
    tp, fp = _ranked_counts(labels, scores)
    recall = tp / tp[-1]
    precision = tp / (tp + fp)
    gained = np.diff(np.r_[0.0, recall])
    return 100.0 * float(np.sum(gained * precision))


def ood_auroc(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> float:
    """AUROC (%) of the −MSP detector, OoD samples positive: P(score_ood > score_in), a tie
    counting one half (the trapezoids under the ROC curve through every distinct threshold)."""
    labels, scores = _ood_labels_and_scores(in_logits, ood_logits)
    tp, fp = _ranked_counts(labels, scores)
    tpr = np.r_[0.0, tp / tp[-1]]
    fpr = np.r_[0.0, fp / fp[-1]]
    return 100.0 * float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def fpr_at_95_tpr(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> float:
    """The share (%) of in-distribution samples flagged as OoD at the first threshold of the
    −MSP detector that flags at least 95 % of the OoD samples."""
    labels, scores = _ood_labels_and_scores(in_logits, ood_logits)
    tp, fp = _ranked_counts(labels, scores)
    # Every distinct threshold is a point: skipping collinear ones could skip the first point
    # that reaches the TPR level and read the FPR of a later one.
    first = int(np.searchsorted(tp / tp[-1], _TPR_LEVEL, side="left"))
    return 100.0 * float(fp[first] / fp[-1])


def fpr_at_95_tpr_in(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> float:
    """The FPR (%) at 95 % TPR with the in-distribution samples as positives and the MSP as
    their score (Hendrycks & Gimpel's convention): the share of OoD samples accepted at the
    first threshold, from the highest MSP down, that accepts at least 95 % of the
    in-distribution samples, on the whole OoD split.

    The authors' ``fpr_tpr95`` (yuezhixiong/NAS-Benchmark, DARTS/utils.py) takes the same
    positives but averages the OoD share above each in-distribution score whose TPR lies in
    (94.95 %, 95.05 %), which no score of a small test split may hit; this one is defined on
    every split. Equal scores are accepted together, as in :func:`fpr_at_95_tpr`.
    """
    labels, scores = _ood_labels_and_scores(in_logits, ood_logits)
    tp, fp = _ranked_counts(1 - labels, -scores)  # in-distribution positives, MSP order
    first = int(np.searchsorted(tp / tp[-1], _TPR_LEVEL, side="left"))
    return 100.0 * float(fp[first] / fp[-1])


def paper_ood_count(in_count: int, ood_count: int) -> int:
    """How many OoD images, from the start of the split, the authors' script scores.

    DARTS/test_ood.py (yuezhixiong/NAS-Benchmark) reads the in-distribution test split and
    the OoD split (SVHN's test split, in its order: ``shuffle=False``) in batches of 32, and
    stops the OoD loop once it has read as many batches as the in-distribution split has:
    32·⌈n_in/32⌉ images, 10,016 for CIFAR's 10,000 test images. A split with fewer images
    (the embedded ``digits-ood``: 179) is read whole, so the count is the smaller of the two.
    """
    return min(ood_count, PAPER_OOD_BATCH * math.ceil(in_count / PAPER_OOD_BATCH))


def ood_aupr_paper(in_logits: torch.Tensor, ood_logits: torch.Tensor) -> float:
    """OoD AUPR (%) as the authors' script computed the paper's Table I.

    Found in yuezhixiong/NAS-Benchmark, DARTS/test_ood.py (``infer``): the MSP is computed in
    float32 (``F.softmax(logits).max``) for the whole in-distribution test split and for the
    first :func:`paper_ood_count` OoD images (``ood_logits`` in the split's order), labelled
    1 in and 0 out; the AUPR reported as the OoD one is ``auc(recall, precision)`` of
    ``precision_recall_curve(1 - label, prob)``: the OoD images are the positives, but are
    ranked by the MSP itself, i.e. by *confidence*, the wrong way round (:func:`ood_aupr`
    ranks them by −MSP). A good detector then scores below the positives' base rate, which is
    how Table I lands at 31-35 %. The area is scikit-learn's ``auc``, the trapezoids through
    every distinct threshold from the point (recall 0, precision 1) on, not the average
    precision of :func:`ood_aupr`; points past full recall add no area, so scikit-learn
    versions that keep them and those that drop them agree. The MSP's float32 ties are kept.
    """
    check_ood_logits(in_logits, ood_logits)
    kept = ood_logits[: paper_ood_count(in_logits.shape[0], ood_logits.shape[0])]
    prob = torch.cat([in_logits.detach().cpu(), kept.detach().cpu()]).float()
    scores = prob.softmax(dim=-1).amax(dim=-1).double().numpy()
    is_ood = np.r_[np.zeros(in_logits.shape[0], np.int64), np.ones(kept.shape[0], np.int64)]
    tp, fp = _ranked_counts(is_ood, scores)
    recall = np.r_[0.0, tp / tp[-1]]
    precision = np.r_[1.0, tp / (tp + fp)]
    return 100.0 * float(np.sum(np.diff(recall) * (precision[1:] + precision[:-1]) / 2.0))


def _as_device(device: torch.device | str) -> torch.device:
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ConfigError(f"device={device!r}: not a torch device ({err})") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r}: CUDA is not available on this machine")
    return resolved


def _on_device(tensor_device: torch.device, device: torch.device) -> bool:
    if tensor_device.type != device.type:
        return False
    return device.index is None or tensor_device.index in (None, device.index)


def latency_ms(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    device: torch.device | str = "cpu",
    warmup: int = 10,
    repeats: int = 50,
) -> float:
    """The median wall time (ms) of ``repeats`` forwards of one image after ``warmup`` ones.

    ``input_shape`` is (C, H, W). The model must already sit on ``device``; it runs in eval
    mode under ``torch.no_grad`` and gets its training flag back afterwards. On CUDA the
    device is synchronised before and after each timed forward, since kernels run
    asynchronously. The median resists the outliers of a shared machine.
    """
    dev = _as_device(device)
    if (
        not isinstance(input_shape, tuple)
        or len(input_shape) != 3
        or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape)
    ):
        raise ConfigError(f"input_shape={input_shape!r}: expected (C, H, W), positive integers")
    check_positive_int("warmup", warmup, minimum=0)
    check_positive_int("repeats", repeats)
    tensors = list(chain(model.parameters(), model.buffers()))
    for tensor in tensors:
        if not _on_device(tensor.device, dev):
            raise ConfigError(
                f"device={device!r}: the model has a tensor on {tensor.device}; "
                "expected the model on the device it is timed on"
            )
    floating = [tensor.dtype for tensor in tensors if tensor.is_floating_point()]
    dtype = floating[0] if floating else torch.float32
    # A local generator: timing must not advance the global random stream.
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((1, *input_shape), generator=generator, dtype=dtype).to(dev)

    def synchronise() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    was_training = model.training
    model.eval()
    seconds = []
    try:
        with torch.no_grad():
            for _ in range(warmup):
                model(x)
            for _ in range(repeats):
                synchronise()
                start = time.perf_counter()
                model(x)
                synchronise()
                seconds.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return 1000.0 * statistics.median(seconds)
