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
from collections.abc import Callable
from pathlib import Path

__all__ = ["group_alive", "is_embedded_head", "stop_group"]


def is_embedded_head(pid: int, temp_dir: str) -> bool:
    """Whether ``pid`` is a live ``ray start --head`` with ``temp_dir`` (read from /proc)."""
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"--head" in words and temp_dir.encode() in words and group_alive(pid)


def _states(pgid: int) -> dict[int, str]:
    """The state letter of each process of the group ``pgid``, by pid (read from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended while listed
        if int(fields[2]) == pgid:
            found[int(stat.parent.name)] = fields[0]
    return found


def group_alive(pgid: int) -> bool:
    """Whether any process of the group ``pgid`` is alive (zombies do not count)."""
    return any(state != "Z" for state in _states(pgid).values())


def _wait(alive: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)


def stop_group(pgid: int) -> None:
    """Stop the process group ``pgid`` of an embedded Ray head (``ray start --head --block``,
    the group's leader) and wait until none of it is alive: SIGINT to the head, which runs
    Ray's own clean-up and exits within seconds; SIGTERM to what is left of the group; SIGKILL
    after 10 s.

    SIGTERM to the whole group at once is no good: ``ray start --block`` takes its children's
    SIGTERM exits for expected ones and goes on waiting, so only a SIGKILL after a timeout
    ended it (30 s on every stop of the service).
    """
    with contextlib.suppress(ProcessLookupError):
        os.kill(pgid, signal.SIGINT)
    _wait(lambda: _states(pgid).get(pgid, "Z") != "Z", 20.0)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not group_alive(pgid):
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        _wait(lambda: group_alive(pgid), 10.0)
