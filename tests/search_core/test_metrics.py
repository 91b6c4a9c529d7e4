"""Section IV-B-4's metrics against hand-computed answers and independent references; the
authors' protocol against their script's own scikit-learn call and a plain re-implementation."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch
import torch.nn.functional as F_nn
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from torch import nn

from search_core.errors import ConfigError
from search_core.genotypes import BUNDLED
from search_core.metrics import (
    error_rate,
    fpr_at_95_tpr,
    fpr_at_95_tpr_in,
    latency_ms,
    max_softmax,
    ood_aupr,
    ood_aupr_paper,
    ood_auroc,
    paper_ood_count,
    predict_logits,
)
from search_core.model_eval import EvalNetwork


def binary_logits(margins: list[float]) -> torch.Tensor:
    """Two-class logits (a, 0): the MSP is sigmoid(|a|), so it rises with the margin |a|."""
    a = torch.tensor(margins, dtype=torch.float64)
    return torch.stack([a, torch.zeros_like(a)], dim=1)


def numpy_msp(logits: torch.Tensor) -> npt.NDArray[np.float64]:
    z = logits.double().numpy()
    e = np.exp(z - z.max(axis=1, keepdims=True))
    msp: npt.NDArray[np.float64] = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
    return msp


def test_error_rate_on_hand_made_logits() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [4.0, 0.0, 1.0]])
    assert error_rate(logits, torch.tensor([0, 1, 2, 0])) == 0.0
    assert error_rate(logits, torch.tensor([0, 1, 2, 2])) == 25.0
    assert error_rate(logits, torch.tensor([1, 2, 0, 1])) == 100.0


def test_max_softmax_on_hand_made_logits() -> None:
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [1000.0, 0.0]])
    got = max_softmax(logits)
    torch.testing.assert_close(got, torch.tensor([0.5, 0.75, 1.0]))
    three = torch.tensor([[math.log(3.0), 0.0, 0.0], [-1.0, -1.0, -1.0]])
    torch.testing.assert_close(max_softmax(three), torch.tensor([3 / 5, 1 / 3]))


def test_ood_aupr_on_a_hand_computed_ranking() -> None:
    # From most to least OoD (lowest MSP first): OoD, in, OoD, in.
    # AP = Σ (R_n − R_{n−1}) P_n = 0.5 · 1 + 0.5 · 2/3 = 5/6.
    ood = binary_logits([0.1, 2.0])
    inside = binary_logits([1.0, 3.0])
    assert ood_aupr(inside, ood) == pytest.approx(100 * 5 / 6)


def test_ood_aupr_equals_sklearn_on_independently_computed_scores() -> None:
    g = torch.Generator().manual_seed(0)
    inside = torch.randn(200, 10, generator=g, dtype=torch.float64) * 3
    ood = torch.randn(50, 10, generator=g, dtype=torch.float64)
    labels = np.r_[np.zeros(200), np.ones(50)]
    scores = -np.r_[numpy_msp(inside), numpy_msp(ood)]  # OoD-ness: low MSP = more OoD
    want = 100 * average_precision_score(labels, scores)
    assert ood_aupr(inside, ood) == pytest.approx(want, abs=1e-9)
    assert ood_aupr(inside.float(), ood.float()) == pytest.approx(want, abs=1e-9)


def _random_sets(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(in-distribution, OoD) logits of random sizes: margins from a few values (odd seeds)
    tie many scores across and within the two sets; continuous ones (even seeds) tie none."""
    rng = np.random.default_rng(seed)
    n_in, n_ood = int(rng.integers(5, 300)), int(rng.integers(1, 120))
    if seed % 2:
        margins = rng.integers(0, 6, n_in + n_ood).astype(np.float64) / 2
    else:
        margins = rng.normal(0, 2, n_in + n_ood)
    margins[:n_in] += 1.0  # in-distribution samples are a little more confident
    logits = binary_logits(margins.tolist())
    return logits[:n_in], logits[n_in:]


@pytest.mark.parametrize("seed", range(6))
def test_ood_metrics_equal_sklearn_with_and_without_ties(seed: int) -> None:
    # sklearn is the independent reference for all three metrics.
    inside, ood = _random_sets(seed)
    n_in, n_ood = len(inside), len(ood)
    logits = torch.cat([inside, ood])
    labels = np.r_[np.zeros(n_in), np.ones(n_ood)]
    scores = -numpy_msp(logits)
    assert ood_aupr(inside, ood) == pytest.approx(100 * average_precision_score(labels, scores))
    assert ood_auroc(inside, ood) == pytest.approx(100 * roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    want = 100 * fpr[int(np.argmax(tpr >= 0.95))]
    assert fpr_at_95_tpr(inside, ood) == pytest.approx(want)


def test_ood_aupr_perfect_separation_scores_100() -> None:
    inside = binary_logits([5.0, 6.0, 7.0, -8.0])  # confident, in either class
    ood = binary_logits([0.0, 0.5, -1.0])
    assert ood_aupr(inside, ood) == pytest.approx(100.0)
    assert ood_auroc(inside, ood) == pytest.approx(100.0)
    assert fpr_at_95_tpr(inside, ood) == 0.0


def test_ood_aupr_of_indistinguishable_samples_is_the_base_rate() -> None:
    # identical logits tie every score: one threshold, precision = the positives' share
    same = torch.tensor([[1.0, 0.0, 2.0]])
    assert ood_aupr(same.repeat(30, 1), same.repeat(10, 1)) == pytest.approx(100 * 10 / 40)
    assert ood_auroc(same.repeat(30, 1), same.repeat(10, 1)) == pytest.approx(50.0)
    # samples from one distribution: about the base rate, 1/6
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(6000, 10, generator=g) * 2
    assert ood_aupr(logits[:5000], logits[5000:]) == pytest.approx(100 / 6, abs=2.0)


def test_ood_aupr_of_a_sensible_detector_lies_between_base_rate_and_100() -> None:
    g = torch.Generator().manual_seed(2)
    inside = torch.randn(300, 10, generator=g)
    inside[torch.arange(300), torch.randint(0, 10, (300,), generator=g)] += 4.0
    ood = torch.randn(100, 10, generator=g)
    ood[torch.arange(100), torch.randint(0, 10, (100,), generator=g)] += 1.5
    aupr = ood_aupr(inside, ood)
    assert 100 * 100 / 400 + 10 < aupr < 100.0


def test_ood_auroc_equals_the_share_of_correctly_ordered_pairs() -> None:
    g = torch.Generator().manual_seed(3)
    inside = torch.randn(40, 5, generator=g, dtype=torch.float64) * 2
    ood = torch.randn(25, 5, generator=g, dtype=torch.float64)
    s_in, s_ood = -numpy_msp(inside), -numpy_msp(ood)
    pairs = [1.0 if o > i else 0.5 if o == i else 0.0 for o, i in itertools.product(s_ood, s_in)]
    assert ood_auroc(inside, ood) == pytest.approx(100 * sum(pairs) / len(pairs))
    # swapping the roles reverses every pair
    assert ood_auroc(ood, inside) == pytest.approx(100 - 100 * sum(pairs) / len(pairs))


def test_fpr_at_95_tpr_on_a_hand_made_case() -> None:
    # 20 OoD samples: 19 with margins 0.1 ... 1.9 and one confident outlier at 5.0.
    # Flagging 19/20 = 95 % needs the threshold at margin 1.9; the in-distribution samples
    # with margins <= 1.9 are 0.55 and 1.55: 2 of 10 = 20 %.
    ood = binary_logits([0.1 * k for k in range(1, 20)] + [5.0])
    inside = binary_logits([0.55, 1.55, 3.0, 4.0, 5.5, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert fpr_at_95_tpr(inside, ood) == pytest.approx(20.0)
    # with two confident outliers only 18/20 = 90 % can be flagged below 5.0: 4 of 10 flagged
    ood2 = binary_logits([0.1 * k for k in range(1, 19)] + [5.0, 5.2])
    assert fpr_at_95_tpr(inside, ood2) == pytest.approx(40.0)
    # a chance detector: each in-distribution sample ties one OoD sample, so the ROC curve
    # is the diagonal, and at 95 % TPR the FPR is 95 % (not the 100 % of its end point)
    margins = [0.1 * k for k in range(1, 21)]
    assert fpr_at_95_tpr(binary_logits(margins), binary_logits(margins)) == pytest.approx(95.0)


# -- the authors' protocol, and the FPR with in-distribution positives ----------------------


def authors_msp(logits: torch.Tensor) -> npt.NDArray[np.float64]:
    """DARTS/test_ood.py's score: ``F.softmax(logits, dim=-1).max(dim=-1)[0]`` in float32."""
    msp: npt.NDArray[np.float64] = (
        F_nn.softmax(logits.float(), dim=-1).max(dim=-1)[0].double().numpy()
    )
    return msp


def paper_aupr_by_hand(in_prob: npt.NDArray[Any], out_prob: npt.NDArray[Any]) -> float:
    """The authors' OoD AUPR written out plainly: OoD images positive, ranked by the MSP itself
    (highest first); the trapezoids of (recall, precision) at every distinct threshold, from
    scikit-learn's end point (recall 0, precision 1)."""
    scores = np.r_[in_prob, out_prob]
    is_ood = np.r_[np.zeros(len(in_prob), bool), np.ones(len(out_prob), bool)]
    points = [(0.0, 1.0)]
    for threshold in sorted(set(scores.tolist()), reverse=True):
        flagged = scores >= threshold
        hits = int(np.sum(flagged & is_ood))
        points.append((hits / int(is_ood.sum()), hits / int(flagged.sum())))
    area = sum((r1 - r0) * (p0 + p1) / 2 for (r0, p0), (r1, p1) in itertools.pairwise(points))
    return 100 * area


def authors_call(in_prob: npt.NDArray[Any], out_prob: npt.NDArray[Any]) -> float:
    """DARTS/test_ood.py's own lines: ``precision_recall_curve(1 - label, prob)``, then
    ``auc(recall, precision)``."""
    label = np.concatenate([np.ones_like(in_prob), np.zeros_like(out_prob)])
    prob = np.concatenate([in_prob, out_prob])
    precision, recall, _ = precision_recall_curve(1 - label, prob)
    return 100 * float(auc(recall, precision))


def test_ood_aupr_paper_on_a_hand_computed_ranking() -> None:
    # By MSP, highest first: in, OoD, in, OoD, OoD. (recall, precision) at each threshold:
    # (0, 0), (1/3, 1/2), (1/3, 1/3), (2/3, 1/2), (1, 3/5), after (0, 1). Trapezoids:
    # 1/3 · (0 + 1/2)/2 + 1/3 · (1/3 + 1/2)/2 + 1/3 · (1/2 + 3/5)/2 = 73/180.
    inside = binary_logits([2.2, 0.85])
    ood = binary_logits([1.4, 0.4, 0.2])
    assert ood_aupr_paper(inside, ood) == pytest.approx(100 * 73 / 180)
    assert authors_call(authors_msp(inside), authors_msp(ood)) == pytest.approx(100 * 73 / 180)
    # the same images the right way round (OoD ranked by −MSP, average precision)
    assert ood_aupr(inside, ood) > 100 * 3 / 5


@pytest.mark.parametrize("seed", range(4))
def test_ood_aupr_paper_is_the_authors_call_on_the_first_ood_images(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_in, n_ood = int(rng.integers(20, 200)), int(rng.integers(50, 400))
    if seed % 2:  # few distinct margins: ties within and across the two sets
        margins = rng.integers(0, 5, n_in + n_ood).astype(np.float64)
    else:
        margins = rng.normal(0, 2, n_in + n_ood)
    margins[:n_in] += 1.0
    logits = binary_logits(margins.tolist())
    inside, ood = logits[:n_in], logits[n_in:]
    kept = min(n_ood, 32 * math.ceil(n_in / 32))  # whole batches of 32, as many as the in set
    in_prob, out_prob = authors_msp(inside), authors_msp(ood)[:kept]
    got = ood_aupr_paper(inside, ood)
    assert got == pytest.approx(authors_call(in_prob, out_prob), abs=1e-9)
    assert got == pytest.approx(paper_aupr_by_hand(in_prob, out_prob), abs=1e-9)
    changed = torch.cat([ood[:kept], -ood[kept:] * 3])  # the images past the cut never count
    assert ood_aupr_paper(inside, changed) == got


def test_the_paper_cut_is_whole_batches_of_32_as_many_as_the_in_distribution_set() -> None:
    assert paper_ood_count(10_000, 26_032) == 10_016  # CIFAR's test split against SVHN's
    assert paper_ood_count(180, 179) == 179  # the embedded digits: the whole OoD split
    assert [paper_ood_count(n, 1000) for n in (1, 32, 33, 64, 65)] == [32, 32, 64, 64, 96]
    assert paper_ood_count(10_000, 5_000) == 5_000


def test_the_authors_orientation_scores_a_perfect_detector_below_the_base_rate() -> None:
    inside = binary_logits([4.0 + k / 10 for k in range(30)])  # every in image more confident
    ood = binary_logits([k / 10 for k in range(30)])
    assert ood_aupr(inside, ood) == pytest.approx(100.0)
    base_rate = 100 * 30 / 60
    assert ood_aupr_paper(inside, ood) < base_rate


def fpr95_in_brute_force(in_msp: npt.NDArray[Any], out_msp: npt.NDArray[Any]) -> float:
    """Scan the thresholds from the highest MSP down; at the first that accepts at least 95 %
    of the in-distribution images, the share of OoD images accepted too."""
    for threshold in sorted(set(np.r_[in_msp, out_msp].tolist()), reverse=True):
        if np.mean(in_msp >= threshold) >= 0.95:
            return 100 * float(np.mean(out_msp >= threshold))
    raise AssertionError("the lowest threshold accepts every image")


def test_fpr_at_95_tpr_in_on_a_hand_made_case() -> None:
    # 20 in images at margins 1 ... 20: accepting 19 of 20 = 95 % puts the threshold at
    # margin 2; of the OoD margins 0.5, 1.5, 2.5 and 3, the last two are accepted: 50 %.
    inside = binary_logits([float(k) for k in range(1, 21)])
    ood = binary_logits([0.5, 1.5, 2.5, 3.0])
    assert fpr_at_95_tpr_in(inside, ood) == pytest.approx(50.0)
    assert fpr_at_95_tpr(inside, ood) != pytest.approx(50.0)  # the other positives differ


@pytest.mark.parametrize("seed", range(6))
def test_fpr_at_95_tpr_in_equals_a_brute_force_scan(seed: int) -> None:
    inside, ood = _random_sets(seed)
    want = fpr95_in_brute_force(numpy_msp(inside), numpy_msp(ood))
    assert fpr_at_95_tpr_in(inside, ood) == pytest.approx(want)


def test_paper_metrics_reject_bad_logits() -> None:
    with pytest.raises(ConfigError, match="ood_logits: 3 classes; expected 2"):
        ood_aupr_paper(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ConfigError, match=r"in_logits: shape \(0, 2\)"):
        fpr_at_95_tpr_in(torch.zeros(0, 2), torch.zeros(4, 2))


def test_ood_metrics_reject_bad_logits() -> None:
    with pytest.raises(ConfigError, match="ood_logits: 3 classes; expected 2"):
        ood_aupr(torch.zeros(4, 2), torch.zeros(4, 3))
    with pytest.raises(ConfigError, match=r"in_logits: shape \(0, 2\)"):
        ood_auroc(torch.zeros(0, 2), torch.zeros(4, 2))
    with pytest.raises(ConfigError, match=r"labels: shape \(3,\)"):
        error_rate(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


class TupleNet(nn.Module):
    """A plain module returning (logits, None), like EvalNetwork in eval mode."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.body(x), None


def test_predict_logits_batches_without_gradients() -> None:
    net = TupleNet().eval()
    x = torch.randn(10, 1, 8, 8)
    got = predict_logits(net, x, batch_size=3)
    assert got.shape == (10, 3) and got.dtype == torch.float32 and got.device.type == "cpu"
    assert not got.requires_grad
    torch.testing.assert_close(got, net.body(x).detach())
    with pytest.raises(ConfigError, match="training mode"):
        predict_logits(net.train(), x)
    with pytest.raises(ConfigError, match="batch_size=0"):
        predict_logits(net.eval(), x, batch_size=0)


def test_latency_of_an_eval_network_and_a_plain_module() -> None:
    net = EvalNetwork(
        BUNDLED["darts_v2"], num_classes=3, layers=3, init_channels=4, input_size=8, in_channels=1
    )
    net.train()
    state = torch.random.get_rng_state()
    ms = latency_ms(net, (1, 8, 8), warmup=2, repeats=5)
    assert isinstance(ms, float) and 0.0 < ms < 10_000.0
    assert net.training  # the training flag comes back
    assert torch.equal(torch.random.get_rng_state(), state)  # global RNG untouched
    plain = nn.Sequential(nn.Flatten(), nn.Linear(16, 4)).eval()
    plain_ms = latency_ms(plain, (1, 4, 4), warmup=0, repeats=3)
    assert isinstance(plain_ms, float) and plain_ms > 0.0
    assert not plain.training


def test_latency_rejects_bad_arguments() -> None:
    plain = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    with pytest.raises(ConfigError, match=r"input_shape=\(4, 4\)"):
        latency_ms(plain, (4, 4), repeats=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="repeats=0"):
        latency_ms(plain, (1, 4, 4), repeats=0)
    with pytest.raises(ConfigError, match="warmup=-1"):
        latency_ms(plain, (1, 4, 4), warmup=-1)
    with pytest.raises(ConfigError, match="device='nonsense'"):
        latency_ms(plain, (1, 4, 4), device="nonsense")
