"""``e2rnas count --dataset imagenet`` and ``e2rnas evaluate --preset imagenet`` (Table V),
run as real subprocesses on an ImageFolder written here in the real on-disk layout.

References: the network built in this process and counted here, DARTS's published 4.7 M
parameters (E2RNAS's Table V: 4.72 M), and DARTS's learning rate 0.1·0.97^epoch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sweepkit import write_image_folder

from search_core.genotypes import BUNDLED
from search_core.model_eval import ImageNetNetwork, count_flops_m, count_params_m


def e2rnas(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=cwd,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_count_darts_v2_on_imagenet(tmp_path: Path) -> None:
    result = e2rnas("count", "darts_v2", "--dataset", "imagenet", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert (answer["dataset"], answer["classes"], answer["input_size"]) == ("imagenet", 1000, 224)
    size = {key: answer[key] for key in ("params_m", "flops_m")}
    net = ImageNetNetwork(BUNDLED["darts_v2"], num_classes=1000, layers=14, init_channels=48)
    assert size == {"params_m": count_params_m(net), "flops_m": count_flops_m(net, 224)}
    assert round(size["params_m"], 2) == 4.72


def test_count_on_imagenet_refuses_an_image_its_stem_cannot_halve(tmp_path: Path) -> None:
    args = ("count", "darts_v2", "--dataset", "imagenet", "--input-size", "16")
    result = e2rnas(*args, cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("e2rnas: error: --input-size: got 16; expected 32 to 1024"), line


# The imagenet preset made tiny: 32-pixel images, 3 cells of C=4, two one-step epochs.
TINY = {
    "dataset": "imagefolder:imagenet",
    "ood_dataset": "imagefolder:ood",
    "data_root": ".",
    "image_size": 32,
    "layers": 3,
    "init_channels": 4,
    "epochs": 2,
    "steps_per_epoch": 1,
    "batch_size": 4,
    "eval_batch_size": 8,
    "pgd_steps": 1,
    "latency_repeats": 1,
}


def test_evaluate_with_the_imagenet_preset(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "imagenet", 3, {"train": 3, "test": 2})
    write_image_folder(tmp_path / "ood", 1, {"train": 1, "test": 3})
    settings = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    args = ("evaluate", "darts_v2", "--preset", "imagenet", *settings, "--out", "ev")
    result = e2rnas(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (metrics["mode"], metrics["test_images"], metrics["ood_images"]) == ("retrain", 6, 3)
    assert metrics["settings"]["network"] == "imagenet"
    assert metrics["settings"]["label_smoothing"] == 0.1
    net = ImageNetNetwork(
        BUNDLED["darts_v2"], num_classes=3, layers=3, init_channels=4, input_size=32
    )
    assert metrics["params_m"] == count_params_m(net)
    assert metrics["flops_m"] == count_flops_m(net, 32)
    for name in ("test_error", "pgd_acc", "ood_aupr"):
        assert 0.0 <= metrics[name] <= 100.0
    log = [
        json.loads(line) for line in (tmp_path / "ev" / "eval_log.jsonl").read_text().splitlines()
    ]
    assert [record["lr"] for record in log] == pytest.approx([0.1, 0.1 * 0.97])
    assert str(Path("ev") / "metrics.json") in result.stdout
