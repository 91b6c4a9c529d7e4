"""One real, undisturbed sweep that the whole test session shares, and the comparison of a
disturbed sweep's rows with it.

``REFERENCE_SWEEP`` is a two-trial sweep of the ``cpu-tiny`` search (two-node cells, four
epochs of two steps, first order) with a one-epoch proxy evaluation, on the embedded digits and
an embedded local Ray. It is deterministic on the CPU: the same trial gives the same row in any
run of it, however many of its grid points the run has, so a sweep disturbed by a fault (a
killed worker, a killed driver, a damaged file) must end with exactly the reference's rows.

:func:`shared_run` runs it once per test session, across pytest-xdist workers (a lock file in
the session's common temporary directory; the first worker runs it, the others wait and read
what it left). :func:`compare_rows` counts rows lost and duplicated and checks that every row
that is there holds the reference's results.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

SCRIPT = Path(sys.executable).parent / "e2rnas"
REFERENCE_SWEEP = """\
name: {name}
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides:
    order: first
    nodes: 2  # a cell of 5 edges, not 14: the search steps cost a third
    batch_size: 8
    epochs: 4
    steps_per_epoch: 2
evaluation:
  mode: proxy
  overrides:
    epochs: 1
grid:
  L: {L}
  F: [0.6]
resources:
  gpu: 0
  cpu: 1
max_trials: 4
"""
REFERENCE_L = (0.03, 0.08)
ASHA_SCHEDULER = "scheduler: {kind: mo_asha, reduction_factor: 2}\n"
ASHA_SETTING = {"reduction_factor": 2}  # the same, as a replay's setting
EPOCHS = 4
# What a trial computes (not its timings): equal to the bit in a disturbed run.
RESULT_COLUMNS = (
    "val_loss",
    "ood_loss",
    "adv_loss",
    "nop_loss",
    "flops_loss",
    "mgda_weights",
    "test_error",
    "params_m",
    "flops_m",
    "pgd_acc",
    "ood_aupr",
    "evaluation",
    "genotype",
    "genotype_hash",
)


def sweep_text(name: str, grid_l: tuple[float, ...] = REFERENCE_L) -> str:
    """The reference sweep file under another name, on some of its grid points."""
    return REFERENCE_SWEEP.format(name=name, L=json.dumps(list(grid_l)))


def asha_text(name: str) -> str:
    """The reference sweep under MO-ASHA (rungs after 1 and 2 of its 4 epochs, half kept
    there), one trial at a time: its trials run as in the reference, to the bit, and the
    scheduler sees them in Tune's order, as a replay of the reference ``--order trials``."""
    text = sweep_text(name).replace("  cpu: 1\n", "  cpu: 1\n  max_concurrent: 1\n")
    return text + ASHA_SCHEDULER


def e2rnas_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS="1",
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0",
    )
    env.pop("RAY_ADDRESS", None)
    return env


def driver(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """``e2rnas sweep ARGS`` (a sweep's driver) in the background, output captured."""
    return subprocess.Popen(
        [str(SCRIPT), "sweep", *args],
        cwd=cwd,
        env=e2rnas_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def start_sweep(path: Path, run_dir: Path, cwd: Path) -> subprocess.Popen[str]:
    """``e2rnas sweep run`` of ``path`` into ``run_dir`` in the background, output captured."""
    return driver("run", str(path), "--out", str(run_dir), cwd=cwd)


def run_to_end(path: Path, run_dir: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``e2rnas sweep run`` of ``path`` into ``run_dir``, waited for, output captured."""
    return subprocess.run(
        [str(SCRIPT), "sweep", "run", str(path), "--out", str(run_dir)],
        cwd=cwd,
        env=e2rnas_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def kill_when(
    process: subprocess.Popen[str], condition: Callable[[], object], what: str, limit: float = 400
) -> None:
    """SIGKILL ``process`` as soon as ``condition()`` holds (polled every 50 ms); fails if it
    ends first or ``limit`` seconds pass. The process is reaped either way."""
    try:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline and process.poll() is None, f"no {what}"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class SharedRun:
    """A finished sweep: its file, run directory, and what its driver printed."""

    sweep_file: Path
    run_dir: Path
    returncode: int
    stdout: str
    stderr: str

    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.run_dir / "results.parquet")


def shared_run(base: Path, name: str = "reference") -> SharedRun:
    """The reference sweep, run under ``base`` by whichever process asks first."""
    folder = base / f"shared-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    record = folder / "done.json"
    with (folder / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not record.exists():
            sweep_file = folder / f"{name}.yaml"
            sweep_file.write_text(sweep_text(name), encoding="utf-8")
            run_dir = folder / "run"
            done = run_to_end(sweep_file, run_dir, folder)
            fields = {
                "sweep_file": str(sweep_file),
                "run_dir": str(run_dir),
                "returncode": done.returncode,
                "stdout": done.stdout,
                "stderr": done.stderr,
            }
            record.write_text(json.dumps(fields), encoding="utf-8")
    fields = json.loads(record.read_text(encoding="utf-8"))
    return SharedRun(
        Path(fields["sweep_file"]),
        Path(fields["run_dir"]),
        fields["returncode"],
        fields["stdout"],
        fields["stderr"],
    )


def compare_rows(got: pd.DataFrame, reference: pd.DataFrame) -> tuple[int, int]:
    """(rows lost, rows duplicated) of ``got`` against the reference rows of the same grid
    points (matched on L and F); every row present must hold the reference's results exactly."""
    lost = duplicated = 0
    for _, expected in reference.iterrows():
        same = got[(got["L"] == expected["L"]) & (got["F"] == expected["F"])]
        if len(same) == 0:
            lost += 1
            continue
        duplicated += len(same) - 1
        for _, row in same.iterrows():
            assert row["status"] == "done", row.to_dict()
            for column in RESULT_COLUMNS:
                assert row[column] == expected[column], (
                    f"L={expected['L']}: {column} is {row[column]!r}, "
                    f"undisturbed {expected[column]!r}"
                )
    return lost, duplicated


def write_image_folder(root: Path, classes: int, per_class: dict[str, int]) -> None:
    """``root/<split>/<class>/<k>.png`` as torchvision's ImageFolder reads it: small random RGB
    images, wider than tall as photos are, class folders named like ImageNet's."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, count in per_class.items():
        for c in range(classes):
            folder = root / split / f"n0000000{c}"
            folder.mkdir(parents=True)
            for k in range(count):
                pixels = rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{k}.png")
