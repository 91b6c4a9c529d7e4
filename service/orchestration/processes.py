"""The processes of an embedded Ray head that an earlier service left behind, found and
stopped through ``/proc`` and its process group (no Ray import: the head is not ours, and its
own API may be gone with its driver).

A service killed with SIGKILL leaves its head running in its own session; the next service
reads the head's record (pid, temp dir) and stops it with :func:`stop_group` only after
:func:`is_embedded_head` confirms that the pid is still that head, never a reused pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

__all__ = ["group_alive", "is_embedded_head", "stop_group"]


def is_embedded_head(pid: int, temp_dir: str) -> bool:
    """Whether ``pid`` is a live ``ray start --head`` with ``temp_dir`` (read from /proc)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"--head" in words and temp_dir.encode() in words and group_alive(pid)


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is alive (zombies do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while listed
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def stop_group(pgid: int) -> None:
    """SIGTERM the process group ``pgid`` (a head started by a previous service, not our
    child), SIGKILL what is left after 30 s, and wait until none of it is alive."""
    for sig, wait in ((signal.SIGTERM, 30.0), (signal.SIGKILL, 10.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not group_alive(pgid):
            return
