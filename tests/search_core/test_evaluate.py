"""Retraining and measuring a genotype (IV-B-3, IV-B-4), on tiny digits runs.

References are independent of the code under test: the paper's settings as printed, DARTS's
cosine formula for the learning rate, scikit-learn's average precision recomputed on logits of
a network rebuilt from the checkpoint, a freshly built network for the sizes, and an
uninterrupted run for resume.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_curve

from search_core.config import preset
from search_core.data import load_image_set
from search_core.errors import CheckpointError, ConfigError, DatasetError, GenotypeError
from search_core.evaluate import (
    CHECKPOINT,
    EVAL_PRESETS,
    METRICS_FILE,
    TRAIN_LOG,
    EvalConfig,
    Retrain,
    build_network,
    check_genotype,
    eval_from_mapping,
    eval_preset,
    measure,
    proxy_config,
    retrain_config,
    run_evaluation,
    run_proxy,
)
from search_core.genotypes import BUNDLED, Genotype
from search_core.model_eval import EvalNetwork, count_flops_m, count_params_m

DARTS_V2 = BUNDLED["darts_v2"]
# Three epochs of the cpu-tiny retrain: every part runs and the network learns (about 90 %
# test accuracy), in a few seconds.
QUICK = {"epochs": 3, "latency_repeats": 3}
# Measured values that depend on the machine's load, not on the seed.
TIMINGS = {"latency_ms", "eval_seconds"}


def quick(**changes: Any) -> EvalConfig:
    return eval_preset("cpu-tiny", {**QUICK, **changes})


def numbers(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


class InterruptError(Exception):
    """Raised by a progress callback to stop a run part of the way, as a kill would."""


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("eval") / "run"
    return out, run_evaluation(DARTS_V2, quick(), out)


# -- settings ------------------------------------------------------------------------------


def test_paper_preset_is_section_iv_b_3() -> None:
    c = eval_preset("paper")
    assert (c.dataset, c.ood_dataset) == ("cifar10", "svhn")
    assert (c.layers, c.init_channels, c.epochs, c.batch_size) == (20, 36, 600, 96)
    assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.grad_clip) == (
        0.025,
        0.0,
        0.9,
        3e-4,
        5.0,
    )
    assert (c.cutout, c.drop_path, c.auxiliary, c.auxiliary_weight) == (16, 0.2, True, 0.4)
    assert (c.pgd_steps, c.pgd_step_scale) == (10, 2.5)
    assert c.epsilon == pytest.approx(2 / 255)
    assert c.steps_per_epoch == 0  # the full training set every epoch


@pytest.mark.parametrize("name", sorted(EVAL_PRESETS))
def test_every_preset_takes_one_epoch(name: str) -> None:
    assert eval_preset(name, {"epochs": "1"}).epochs == 1


def test_cpu_tiny_retrains_the_network_the_tiny_search_sizes() -> None:
    search = preset("cpu-tiny")
    tiny = eval_preset("cpu-tiny")
    assert (tiny.layers, tiny.init_channels) == (search.eval_layers, search.eval_init_channels)
    assert retrain_config(search, "cpu-tiny") == tiny


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"layers": 2}, "layers"),
        ({"init_channels": 7}, "init_channels"),
        ({"epochs": "two"}, "epochs"),
        ({"drop_path": 1.0}, "drop_path"),
        ({"cutout": -1}, "cutout"),
        ({"pgd_steps": 0}, "pgd_steps"),
        ({"lr_min": 1.0}, "lr_min"),
        ({"auxiliary": "maybe"}, "auxiliary"),
        ({"device": "tpu"}, "device"),
        ({"epoch": 3}, "did you mean 'epochs'"),
    ],
)
def test_bad_values_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        eval_from_mapping(changes)


def test_unknown_preset_and_round_trip() -> None:
    with pytest.raises(ConfigError, match="cpu-tiny"):
        eval_preset("huge")
    c = quick(seed=3)
    assert eval_from_mapping(c.to_dict()) == c
    assert c.replace(seed="4").seed == 4


def test_search_derives_retrain_and_proxy_settings() -> None:
    search = preset("paper", {"dataset": "cifar100", "eval_layers": 14, "seed": 5})
    retrain = retrain_config(search, "paper")
    assert (retrain.dataset, retrain.layers, retrain.init_channels) == ("cifar100", 14, 36)
    assert (retrain.epochs, retrain.cutout, retrain.seed) == (600, 16, 5)
    proxy = proxy_config(search, epochs=3)
    assert (proxy.layers, proxy.init_channels, proxy.epochs) == (8, 16, 3)
    assert (proxy.batch_size, proxy.lr, proxy.lr_min) == (64, 0.025, 0.001)
    assert (proxy.cutout, proxy.drop_path, proxy.auxiliary) == (0, 0.0, False)


def test_an_imagenet_retrain_after_a_search_is_a_transfer() -> None:
    """Table V: the genotype goes to the imagenet preset's data and network; only where the
    data lies and how to run come from the search (seed, device, threads, memory format)."""
    search = preset(
        "paper",
        {"seed": 7, "data_root": "/data", "threads": 3, "channels_last": True},
    )
    got = retrain_config(search, "imagenet")
    want = eval_preset(
        "imagenet", {"data_root": "/data", "seed": 7, "threads": 3, "channels_last": True}
    )
    assert got == want
    assert (got.network, got.dataset, got.layers, got.init_channels) == (
        "imagenet",
        "imagefolder:imagenet",
        14,
        48,
    )
    assert retrain_config(search, "paper").channels_last  # the CIFAR retrain follows it too


# -- genotypes that do not fit -------------------------------------------------------------


def test_a_genotype_whose_cells_do_not_fit_is_refused() -> None:
    misfit = Genotype(DARTS_V2.normal, (2, 3, 4, 5), DARTS_V2.reduce, (4, 5))
    with pytest.raises(GenotypeError, match="reduce_concat"):
        check_genotype(misfit, quick())
    check_genotype(DARTS_V2, eval_preset("paper"))  # meta device: instant even at paper size


def test_proxy_refuses_a_genotype_of_another_search_space(tmp_path: Path) -> None:
    search = preset("cpu-tiny", {"nodes": 3})
    with pytest.raises(GenotypeError, match="nodes=3"):
        run_proxy(DARTS_V2, search, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="mnist"):
        run_evaluation(DARTS_V2, quick(dataset="mnist"), tmp_path / "out")
    assert not (tmp_path / "out").exists()


# -- a real tiny retrain -------------------------------------------------------------------


def test_metrics_json_holds_the_contract(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, metrics = quick_run
    assert json.loads((out / METRICS_FILE).read_text()) == metrics
    for key in ("test_error", "params_m", "flops_m", "pgd_acc", "ood_aupr", "latency_ms"):
        assert isinstance(metrics[key], float), key
    assert metrics["mode"] == "retrain"
    assert metrics["device"] == "cpu"
    assert "cpu" in metrics["latency_device"]
    assert metrics["settings"] == quick().to_dict()
    assert Genotype.from_json(metrics["genotype"]) == DARTS_V2
    assert metrics["genotype_hash"] == DARTS_V2.genotype_hash()
    assert metrics["eval_seconds"] > 0 and metrics["latency_ms"] > 0


def test_metrics_are_sane(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, m = quick_run
    assert 0 <= m["test_error"] <= 100
    assert m["clean_acc"] == pytest.approx(100 - m["test_error"])
    assert 0 <= m["pgd_acc"] <= m["clean_acc"]
    assert m["ood_base_rate"] < m["ood_aupr"] <= 100
    assert (m["test_images"], m["ood_images"]) == (180, 179)  # the whole test splits
    assert m["ood_images_paper"] == 179  # under the authors' 10,016: the whole OoD split too
    assert 0 <= m["pgd_acc_paper"] <= m["clean_acc"]
    assert 0 <= m["ood_fpr95_in"] <= 100
    # the authors' orientation ranks OoD images by confidence: a good detector falls below
    assert m["ood_aupr_paper"] < m["ood_base_rate"]


def test_sizes_are_those_of_the_built_network(quick_run: tuple[Path, dict[str, Any]]) -> None:
    _, metrics = quick_run
    net = build_network(DARTS_V2, quick(), num_classes=5, input_size=8, in_channels=1)
    assert metrics["params_m"] == count_params_m(net)
    assert metrics["flops_m"] == count_flops_m(net, 8, 1)
    assert net.auxiliary is not None  # trained with the head, counted without it


def test_schedule_and_drop_path_follow_darts(quick_run: tuple[Path, dict[str, Any]]) -> None:
    out, _ = quick_run
    log = [json.loads(line) for line in (out / TRAIN_LOG).read_text().splitlines()]
    c = quick()
    assert [r["epoch"] for r in log] == [1, 2, 3]
    for epoch, record in enumerate(log):
        cosine = c.lr_min + (c.lr - c.lr_min) * (1 + math.cos(math.pi * epoch / c.epochs)) / 2
        assert record["lr"] == pytest.approx(cosine)
        assert record["drop_path_prob"] == pytest.approx(c.drop_path * epoch / c.epochs)


def test_test_error_and_aupr_match_an_independent_recomputation(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    out, metrics = quick_run
    state = torch.load(out / CHECKPOINT, weights_only=True)
    net = build_network(DARTS_V2, quick(), num_classes=5, input_size=8, in_channels=1)
    net.load_state_dict(state["net"])
    net.eval()

    def logits(name: str) -> torch.Tensor:
        images = load_image_set(name, "test")
        mean = torch.tensor(images.mean).view(1, -1, 1, 1)
        std = torch.tensor(images.std).view(1, -1, 1, 1)
        with torch.no_grad():
            out: torch.Tensor = net((images.images.float() / 255 - mean) / std)[0]
        return out

    in_logits, ood_logits = logits("digits"), logits("digits-ood")
    labels = load_image_set("digits", "test").labels
    wrong = (in_logits.argmax(1) != labels).double().mean().item()
    assert metrics["test_error"] == pytest.approx(100 * wrong)
    msp = torch.cat([in_logits, ood_logits]).double().softmax(1).amax(1).numpy()
    is_ood = np.r_[np.zeros(len(in_logits)), np.ones(len(ood_logits))]
    reference = 100 * average_precision_score(is_ood, -msp)
    assert metrics["ood_aupr"] == pytest.approx(reference, abs=1e-6)
    fpr, tpr, _ = roc_curve(1 - is_ood, msp, drop_intermediate=False)  # in-distribution positive
    assert metrics["ood_fpr95_in"] == pytest.approx(100 * fpr[np.argmax(tpr >= 0.95)])
    # DARTS/test_ood.py's lines: float32 MSP, precision_recall_curve(1 - label, prob), auc
    prob = torch.cat([in_logits, ood_logits]).float().softmax(1).max(1)[0].numpy()
    precision, recall, _ = precision_recall_curve(is_ood, prob)
    assert metrics["ood_aupr_paper"] == pytest.approx(100 * auc(recall, precision), abs=1e-6)


def test_pgd_is_in_pixel_space_and_bites_when_eps_grows(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    out, metrics = quick_run
    run = Retrain(DARTS_V2, quick(), "retrain")
    run.load_state_dict(torch.load(out / CHECKPOINT, weights_only=True), out / CHECKPOINT)
    assert measure(run)["pgd_acc"] == metrics["pgd_acc"]  # seeded: the same attack again
    run.config = quick(epsilon=0.0)
    unattacked = measure(run)
    assert unattacked["pgd_acc"] == pytest.approx(metrics["clean_acc"])
    # the authors' attack keeps its own ε = 1/255 and starts from the clean images
    assert unattacked["pgd_acc_paper"] == metrics["pgd_acc_paper"]
    run.config = quick(epsilon=0.5)  # half the pixel range: nothing survives on digits
    assert measure(run)["pgd_acc"] < metrics["clean_acc"] - 20


# -- checkpoints and resume ----------------------------------------------------------------


def test_resume_ends_where_an_uninterrupted_run_ends(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, whole = quick_run
    out = tmp_path / "run"

    def stop_in_second_epoch(epoch: int, step: int, steps: int) -> None:
        if epoch == 1:
            raise InterruptError

    with pytest.raises(InterruptError):
        run_evaluation(DARTS_V2, quick(), out, progress=stop_in_second_epoch)
    assert torch.load(out / CHECKPOINT, weights_only=True)["epoch"] == 1
    assert not (out / METRICS_FILE).exists()
    torch.manual_seed(1234)  # whatever ran in between, the checkpoint restores every stream
    resumed = run_evaluation(DARTS_V2, quick(), out, resume=True)
    assert numbers(resumed) == numbers(whole)


def test_an_existing_evaluation_needs_resume(
    quick_run: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = quick_run
    with pytest.raises(ConfigError, match="--resume"):
        run_evaluation(DARTS_V2, quick(), out)


def test_corrupt_or_foreign_checkpoints_are_one_clear_error(
    quick_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    out, _ = quick_run
    (tmp_path / CHECKPOINT).write_bytes(b"\x00not a checkpoint\xff" * 64)
    with pytest.raises(CheckpointError, match="corrupt"):
        run_evaluation(DARTS_V2, quick(), tmp_path, resume=True)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / CHECKPOINT).write_bytes((out / CHECKPOINT).read_bytes())
    with pytest.raises(CheckpointError, match=re.escape("seed: 0 (checkpoint) vs 9")):
        run_evaluation(DARTS_V2, quick(seed=9), foreign, resume=True)
    with pytest.raises(CheckpointError, match="genotype"):
        run_evaluation(BUNDLED["darts_v1"], quick(), foreign, resume=True)


# -- proxy ---------------------------------------------------------------------------------


def test_proxy_measures_the_derived_network_at_search_size(tmp_path: Path) -> None:
    search = preset("cpu-tiny")
    metrics = run_proxy(DARTS_V2, search, tmp_path, epochs=2)
    assert metrics["mode"] == "proxy"
    settings = metrics["settings"]
    assert (settings["layers"], settings["init_channels"]) == (search.layers, 4)
    assert (settings["epochs"], settings["steps_per_epoch"]) == (2, 0)  # full passes
    trained = build_network(
        DARTS_V2, proxy_config(search, 2), num_classes=5, input_size=8, in_channels=1
    )
    assert metrics["trained_network"]["params_m"] == count_params_m(trained)
    assert metrics["trained_network"]["flops_m"] == count_flops_m(trained, 8, 1)
    # the front's sizes are in the units of L and F: the search's evaluation network
    sized = EvalNetwork(DARTS_V2, 5, search.eval_layers, search.eval_init_channels, 8, 1)
    assert metrics["params_m"] == count_params_m(sized)
    assert metrics["flops_m"] == count_flops_m(sized, 8, 1)
    assert not metrics["inherits_supernet_weights"]
    assert 0 <= metrics["pgd_acc"] <= metrics["clean_acc"]
    assert json.loads((tmp_path / METRICS_FILE).read_text()) == metrics


def test_a_pc_darts_proxy_starts_from_scratch(tmp_path: Path) -> None:
    """The PC-DARTS supernet's ops saw 1/K of the channels: its weights are not inherited."""
    from search_core.model_search import SearchNetwork

    search = preset("cpu-tiny", {"backbone": "pc_darts"})
    supernet = SearchNetwork(
        5, search.layers, search.init_channels, 8, 1, partial_k=4, edge_normalization=True
    )
    metrics = run_proxy(DARTS_V2, search, tmp_path, epochs=1, supernet_state=supernet.state_dict())
    assert not metrics["inherits_supernet_weights"]
    assert metrics["settings"]["init_channels"] == search.init_channels == 8
