"""The command line on a real full disk (a 1 MiB tmpfs, ``small_fs``): one line
``e2rnas: error: <file>: No space left on device``, exit ``EXIT_OS_ERROR``, and nothing
partial left: no temporary file, and no directory the failed command made."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import SharedRun

from service import cli
from service.errors import EXIT_OS_ERROR

NO_SPACE = "No space left on device"
EXPORT_FILES = {"genotypes.json", "genotypes.py", "front.csv", "front.parquet", "robust.csv"}
# Two one-step epochs of a two-node cell: a checkpoint of a few hundred KiB, within the 1 MiB.
SMALL_SEARCH = ["--set", "epochs=2", "--set", "steps_per_epoch=1", "--set", "nodes=2"]

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


def test_a_sweep_that_runs_out_of_space_leaves_no_run_directory(
    small_fs: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "full.yaml"
    path.write_text(SWEEP, encoding="utf-8")
    out = small_fs.root / "run"
    small_fs.fill(free=4096)  # one page: the driver lock, then nothing
    assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == EXIT_OS_ERROR
    line = _one_line(capsys.readouterr().err)
    assert f"{out}/" in line
    assert not out.exists()
    assert small_fs.temporary_files() == []


# -- the same faults, then the space comes back: the undisturbed results ------------------------


def _without_timings(records: str) -> list[dict[str, Any]]:
    """metrics.jsonl's records without their wall-clock fields."""
    rows = [json.loads(line) for line in records.splitlines() if line.strip()]
    return [
        {k: v for k, v in row.items() if "seconds" not in k and k != "ended_at"} for row in rows
    ]


def test_a_search_out_of_space_then_given_room_gives_the_undisturbed_result(
    small_fs: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: Callable[[str], dict[str, Any]],
) -> None:
    full = fault("disk full during a checkpoint")
    command = ["search", "--preset", "cpu-tiny", *SMALL_SEARCH]
    assert cli.main([*command, "--out", str(tmp_path / "undisturbed")]) == 0
    out = small_fs.root / "search"
    small_fs.fill(free=12 * 1024)
    assert cli.main([*command, "--out", str(out)]) == EXIT_OS_ERROR
    full["injected"] = True
    assert _one_line(capsys.readouterr().err).endswith(f"{out / 'checkpoint.pt'}: " + NO_SPACE)
    assert not out.exists() and small_fs.temporary_files() == []
    (small_fs.root / "filler").unlink()
    assert cli.main([*command, "--out", str(out)]) == 0
    for name in ("genotype.json", "genotype.py"):
        assert (out / name).read_bytes() == (tmp_path / "undisturbed" / name).read_bytes()
    got, expected = (
        _without_timings((folder / "metrics.jsonl").read_text(encoding="utf-8"))
        for folder in (out, tmp_path / "undisturbed")
    )
    assert got == expected and len(got) == 2
    full["rows_lost"] = full["rows_duplicated"] = 0


def test_an_export_out_of_space_keeps_the_previous_set_whole(
    small_fs: Any,
    tmp_path: Path,
    reference_sweep: SharedRun,
    capsys: pytest.CaptureFixture[str],
    fault: Callable[[str], dict[str, Any]],
) -> None:
    full = fault("disk full during export")
    run_dir = str(reference_sweep.run_dir)
    assert cli.main(["export", run_dir, "--out", str(tmp_path / "undisturbed")]) == 0
    out = small_fs.root / "export"
    assert cli.main(["export", run_dir, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == EXPORT_FILES
    small_fs.fill(free=0)
    capsys.readouterr()
    assert cli.main(["export", run_dir, "--out", str(out)]) == EXIT_OS_ERROR
    full["injected"] = True
    assert _one_line(capsys.readouterr().err)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, whole
    assert small_fs.temporary_files() == [] and not list(small_fs.root.glob("**/.*"))
    (small_fs.root / "filler").unlink()
    assert cli.main(["export", run_dir, "--out", str(out)]) == 0
    undisturbed = {p.name: p.read_bytes() for p in (tmp_path / "undisturbed").iterdir()}
    got = {p.name: p.read_bytes() for p in out.iterdir()}
    assert got == undisturbed
    rows = pd.read_csv(out / "front.csv")
    reference = pd.read_csv(tmp_path / "undisturbed" / "front.csv")
    full["rows_lost"] = len(set(reference["trial_id"]) - set(rows["trial_id"]))
    full["rows_duplicated"] = int(rows["trial_id"].duplicated().sum())
    assert (full["rows_lost"], full["rows_duplicated"]) == (0, 0)
