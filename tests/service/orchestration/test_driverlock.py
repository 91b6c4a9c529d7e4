"""One driver per run directory: the lock, between real processes.

A process holding ``driver_lock`` refuses every other driver at once, naming the run directory
and its pid; killed with SIGKILL, it frees the lock. The integration test runs a real
``e2rnas sweep run``, is refused a second one and a ``sweep resume`` on its run directory,
SIGKILLs the driver, after which ``sweep resume`` proceeds and finishes the sweep.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.errors import RunDirLockedError, exit_code, http_status
from service.orchestration.driverlock import LOCK_FILE, Holder, driver_lock, lock_holder

SCRIPT = Path(sys.executable).parent / "e2rnas"
HOLD = """\
import sys, time
from pathlib import Path
from service.orchestration.driverlock import driver_lock
with driver_lock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(600)
"""
SWEEP = """\
name: locked
dataset: digits
ood_dataset: digits-ood
search:
  preset: cpu-tiny
  overrides: {{epochs: {epochs}, steps_per_epoch: 1, order: first, batch_size: 8, nodes: 2}}
evaluation: {{mode: none}}
grid: {{L: [0.05], F: [0.6]}}
resources: {{gpu: 0, cpu: 1}}
"""


@pytest.fixture
def holder_process(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding ``tmp_path/run``'s driver lock until it is killed."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    yield process
    process.kill()
    process.wait()


def test_a_held_lock_refuses_other_drivers_and_a_kill_frees_it(
    tmp_path: Path, holder_process: subprocess.Popen[str]
) -> None:
    run_dir = tmp_path / "run"
    assert lock_holder(run_dir) == Holder(pid=holder_process.pid, host=socket.gethostname())
    started = time.monotonic()
    with pytest.raises(RunDirLockedError) as info, driver_lock(run_dir):
        pass
    assert time.monotonic() - started < 5  # at once, not after a wait for the holder
    message = str(info.value)
    assert message.startswith(f"{run_dir}: ") and f"pid {holder_process.pid}" in message
    assert "\n" not in message and "sweep resume" in message
    assert (exit_code(info.value), http_status(info.value)) == (2, 409)
    holder_process.send_signal(signal.SIGKILL)
    holder_process.wait()
    assert lock_holder(run_dir) is None
    with driver_lock(run_dir), driver_lock(run_dir):  # re-entrant within one process
        record = json.loads((run_dir / LOCK_FILE).read_text(encoding="utf-8"))
        assert record["pid"] == os.getpid()
    assert lock_holder(run_dir) is None


# -- real drivers -------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


def _driver(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(SCRIPT), "sweep", *args],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_holder(run_dir: Path, pid: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (found := lock_holder(run_dir)) is None or found.pid != pid:
        assert time.monotonic() < deadline, f"the driver never took the lock ({found})"
        time.sleep(0.2)


def _sweep_file(tmp_path: Path, epochs: int) -> Path:
    path = tmp_path / "locked.yaml"
    path.write_text(SWEEP.format(epochs=epochs), encoding="utf-8")
    return path


@pytest.mark.integration
@pytest.mark.slow
def test_a_second_driver_is_refused_and_a_sigkilled_driver_does_not_block_resume(
    tmp_path: Path,
) -> None:
    # One real driver: while it runs, a second `sweep run` and a `sweep resume` of its run
    # directory are refused at once, naming it; SIGKILLed after a checkpoint, it leaves the
    # lock free, and the resume it refused before now finishes the sweep.
    path, run_dir = _sweep_file(tmp_path, epochs=3), tmp_path / "run"
    first = _driver("run", str(path), "--out", str(run_dir), cwd=tmp_path)
    try:
        _wait_for_holder(run_dir, first.pid)
        second = _driver("run", str(path), "--out", str(run_dir), cwd=tmp_path)
        _out, err = second.communicate(timeout=120)
        assert second.returncode == 2, err
        assert err.count("\n") == 1 and err.startswith(f"e2rnas: error: {run_dir}: "), err
        assert f"pid {first.pid}" in err
        deadline = time.monotonic() + 120
        while not (run_dir / "sweep.json").exists():
            assert time.monotonic() < deadline and first.poll() is None, "no sweep.json"
            time.sleep(0.2)
        resume = _driver("resume", str(run_dir), cwd=tmp_path)
        _out, err = resume.communicate(timeout=120)
        assert resume.returncode == 2 and f"pid {first.pid}" in err, err
        deadline = time.monotonic() + 300
        while not list(run_dir.glob("trials/*/checkpoint.pt")):
            assert time.monotonic() < deadline and first.poll() is None, "no checkpoint"
            time.sleep(0.2)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert lock_holder(run_dir) is None  # the kernel released it with the process
    resumed = _driver("resume", str(run_dir), cwd=tmp_path)
    _out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    state = json.loads((run_dir / "sweep.json").read_text(encoding="utf-8"))
    assert state["status"] == "done"
    assert lock_holder(run_dir) is None
