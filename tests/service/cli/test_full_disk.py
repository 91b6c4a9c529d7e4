"""The command line on a real full disk (a 1 MiB tmpfs, ``small_fs``): one line
``e2rnas: error: <file>: No space left on device``, exit 1, and nothing partial left: no
temporary file, and no directory the failed command made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service import cli

SWEEP = """\
name: full
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides: {epochs: 1, steps_per_epoch: 1, order: first, batch_size: 8, nodes: 2}
evaluation: {mode: none}
grid: {L: [0.05], F: [0.6]}
resources: {gpu: 0, cpu: 1}
"""


def _one_line(err: str) -> str:
    """The error line (after the progress bar's, if any): one, and no traceback."""
    assert err.endswith("\n") and "Traceback" not in err, err
    line = err.splitlines()[-1]
    assert err.count("e2rnas: error: ") == 1 and line.startswith("e2rnas: error: "), err
    assert line.endswith(": No space left on device"), err
    return line


def test_a_search_that_runs_out_of_space_leaves_nothing(
    small_fs: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    out = small_fs.root / "search"
    small_fs.fill(free=12 * 1024)  # room for config.json and metrics.jsonl, not a checkpoint
    command = ["search", "--preset", "cpu-tiny", "--set", "epochs=1", "--set", "steps_per_epoch=1"]
    assert cli.main([*command, "--out", str(out)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert line == f"e2rnas: error: {out / 'checkpoint.pt'}: No space left on device"
    assert not out.exists()
    assert small_fs.temporary_files() == []


def test_a_sweep_that_runs_out_of_space_leaves_no_run_directory(
    small_fs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    out = small_fs.root / "run"
    small_fs.fill(free=4096)  # one page: the driver lock, then nothing
    assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == 1
    line = _one_line(capsys.readouterr().err)
    assert f"{out}/" in line
    assert not out.exists()
    assert small_fs.temporary_files() == []
