"""One driver per run directory: an exclusive lock its driver holds for the whole of its life.

``e2rnas sweep run`` and ``sweep resume`` take :func:`driver_lock` on
``<run_dir>/.driver.lock`` before they write anything there, and hold it until they exit. The
lock is an ``flock``: the kernel releases it when the process ends, however it ends, so a
driver killed with SIGKILL never blocks a later ``sweep resume``, and there is no stale lock to
clean up. The file holds the holder's pid and host for the message a second driver gets
(:class:`~service.errors.RunDirLockedError`, one line, exit 2), and for :func:`lock_holder`,
which the web service asks before it resubmits a lost sweep. The lock file stays in place
between drivers: removing it would let two processes lock two different files of one name.

The lock is re-entrant within a process (the CLI takes it, then ``run_sweep`` again), and its
descriptor is not inherited by the programs a driver starts (``O_CLOEXEC``), so Ray's
processes cannot keep it alive after the driver died. On a filesystem shared by several
machines the lock is as good as the filesystem's ``flock`` (NFSv4 and CephFS provide it).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from service.errors import RunDirLockedError

__all__ = ["LOCK_FILE", "Holder", "driver_lock", "lock_holder"]

LOCK_FILE = ".driver.lock"
# A probe by lock_holder holds the lock for microseconds; a driver waits that long, no more.
_PATIENCE_S = 1.0

_held: dict[Path, list[int]] = {}  # lock file -> [descriptor, depth], in this process
_guard = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """The driver that holds a run directory's lock, as its lock file says."""

    pid: int | None
    host: str | None

    def __str__(self) -> str:
        pid = "an unknown pid" if self.pid is None else f"pid {self.pid}"
        return f"{pid} on {self.host or 'an unknown host'}"


@contextmanager
def driver_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s driver lock for the body (creating the directory); raise
    RunDirLockedError naming the run directory and the holder when another driver has it."""
    path = Path(run_dir).resolve() / LOCK_FILE
    with _guard:
        entry = _held.get(path)
        if entry is None:
            entry = _held[path] = [_acquire(path), 0]
        entry[1] += 1
    try:
        yield
    finally:
        with _guard:
            entry[1] -= 1
            if entry[1] == 0:
                del _held[path]
                os.close(entry[0])  # the kernel drops the lock with its last descriptor


def lock_holder(run_dir: Path) -> Holder | None:
    """The driver holding ``run_dir``'s lock, or None when no process holds it."""
    path = Path(run_dir).resolve() / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _acquire(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        deadline = time.monotonic() + _PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    holder = _read_holder(fd)
                    raise RunDirLockedError(_locked_message(path.parent, holder)) from None
                time.sleep(0.05)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
    except OSError as exc:
        os.close(fd)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_holder(fd: int) -> Holder:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
        return Holder(pid=int(data["pid"]), host=str(data["host"]))
    except (OSError, ValueError, KeyError, TypeError):  # being written, or not ours
        return Holder(pid=None, host=None)


def _locked_message(run_dir: Path, holder: Holder) -> str:
    stop = f"stop it (kill {holder.pid}) and " if holder.pid is not None else ""
    return (
        f"{run_dir}: another driver ({holder}) is running this sweep; wait for it to end, "
        f"or {stop}continue with 'e2rnas sweep resume {run_dir}'"
    )
