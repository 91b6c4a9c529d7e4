"""A storage URI that becomes unreachable in the middle of a sweep, for real.

One grid point of the reference sweep (``tests/sweepkit.py``) runs on a ``file://`` storage URI
whose directory is reached through a symbolic link, as a network share is reached through its
mount point. Once Tune has stored a checkpoint there, the link's target is moved away: every
read and write of the storage fails, as while a share is down, and it stays gone until the
driver gives up: the trial fails at each of its retries, and the driver stops with one line
naming the storage and ``sweep resume``. Once the storage is back, ``sweep resume`` finishes
the trial from its stored checkpoint, and the sweep must end with exactly the undisturbed row.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweepkit import SCRIPT, SharedRun, compare_rows, e2rnas_env, start_sweep, sweep_text

GRID_L = (0.08,)


@pytest.mark.integration
@pytest.mark.slow
def test_a_storage_uri_gone_mid_sweep_ends_with_the_undisturbed_rows(
    tmp_path: Path, reference_sweep: SharedRun, fault: Callable[[str], dict[str, Any]]
) -> None:
    outage = fault("storage URI unreachable mid-sweep")
    share, mount = tmp_path / "share", tmp_path / "mnt"
    share.mkdir()
    mount.symlink_to(share, target_is_directory=True)
    storage = mount / "storage"
    path = tmp_path / "uri.yaml"
    # One grid point: the retries that fail while the storage is gone cost a process each.
    text = sweep_text("uri", GRID_L) + f"storage:\n  path: {storage.as_uri()}\n"
    path.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    driver = start_sweep(path, run_dir, tmp_path)
    away = tmp_path / "share-away"
    try:
        deadline = time.monotonic() + 300
        while not list(share.glob("storage/*/*/checkpoint_*")):
            assert time.monotonic() < deadline and driver.poll() is None, "no stored checkpoint"
            time.sleep(0.05)
        share.rename(away)  # the share is gone: the link leads nowhere
        outage["injected"] = True
        _out, err = driver.communicate(timeout=600)
        away.rename(share)
    finally:
        if away.exists():
            away.rename(share)
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    # The outage was felt: trials failed at every retry while the storage was gone, and the
    # driver gave up with one line naming the storage and the way on.
    assert driver.returncode == 2, (driver.returncode, err[-3000:])
    last = err.splitlines()[-1]
    assert last.startswith(f"e2rnas: error: storage.path '{storage.as_uri()}': became "), last
    # Ray logs its trials' tracebacks; the driver's own ends in that line, not in a traceback.
    assert f"sweep resume {run_dir}" in last and "service/cli/" not in err, err[-3000:]
    assert json.loads((run_dir / "sweep.json").read_text())["status"] == "interrupted"
    resumed = subprocess.run(
        [str(SCRIPT), "sweep", "resume", str(run_dir)],
        cwd=tmp_path,
        env=e2rnas_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    frame = SharedRun(path, run_dir, 0, "", "").frame()
    reference = reference_sweep.frame()
    lost, duplicated = compare_rows(frame, reference[reference["L"].isin(GRID_L)])
    outage["rows_lost"], outage["rows_duplicated"] = lost, duplicated
    assert (lost, duplicated) == (0, 0)
    assert len(frame) == 1
