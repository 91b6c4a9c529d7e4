"""One driver per run directory: the lock, between real processes.

A process holding ``driver_lock`` refuses every other driver at once, naming the run directory
and its pid; killed with SIGKILL, it frees the lock. Real drivers refused and killed on one run
directory are in ``tests/faults/test_driver_faults.py``.
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
