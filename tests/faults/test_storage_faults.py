"""A storage URI that becomes unreachable in the middle of a sweep, for real.

The reference sweep (``tests/sweepkit.py``) runs on a ``file://`` storage URI whose directory is
reached through a symbolic link, as a network share is reached through its mount point. Once
Tune has stored a checkpoint there, the link's target is moved away: every read and write of
the storage fails (``No such file or directory``) for a few seconds, as while a share is down,
and then it is put back. Tune's syncs fail meanwhile (the driver logs them) and are retried;
had a trial failed for good, ``sweep resume`` would finish it from its stored checkpoint. Either
way the sweep must end with exactly the rows of the undisturbed reference run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sweepkit import SCRIPT, SharedRun, compare_rows, e2rnas_env, sweep_text

OUTAGE_S = 6.0


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
    text = sweep_text("uri") + f"storage:\n  path: {storage.as_uri()}\n"
    path.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    driver = subprocess.Popen(
        [str(SCRIPT), "sweep", "run", str(path), "--out", str(run_dir)],
        cwd=tmp_path,
        env=e2rnas_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    away = tmp_path / "share-away"
    try:
        deadline = time.monotonic() + 300
        while not list(share.glob("storage/*/*/checkpoint_*")):
            assert time.monotonic() < deadline and driver.poll() is None, "no stored checkpoint"
            time.sleep(0.05)
        share.rename(away)  # the share is gone: the link leads nowhere
        outage["injected"] = True
        time.sleep(OUTAGE_S)
        away.rename(share)
        _out, err = driver.communicate(timeout=600)
    finally:
        if away.exists():
            away.rename(share)
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    # The outage was felt: the driver logged a failed write under the gone mount point.
    failed = [line for line in err.splitlines() if str(mount) in line and "Error" in line]
    assert failed, err[-4000:]
    if driver.returncode != 0:
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
    lost, duplicated = compare_rows(frame, reference_sweep.frame())
    outage["rows_lost"], outage["rows_duplicated"] = lost, duplicated
    assert (lost, duplicated) == (0, 0)
    assert len(frame) == 2
