"""Sweeps on a storage URI: no shared filesystem, every trial's files go through the storage.

When ``storage.path`` is a filesystem URI (``s3://bucket/prefix``, ``file:///abs/path``, ...),
no node is assumed to share the run directory: Tune's experiment state and the trials'
checkpoints go to ``<uri>/<sweep_id>/`` (``tune_path`` in ``sweep.json``), each trial works in a
node-local scratch directory and persists all its files (``trial.json`` included) in the
checkpoint it reports each epoch, and in one more with its final report. The driver's run
directory gets ``trials/<key>/`` by downloading each trial's latest checkpoint
(:func:`sync_trials`), so the collection and ``sweep status`` read the same files as with a
local run directory. Which checkpoint is a trial's latest comes from Ray Tune's public results
API (:func:`service.orchestration.tuner.latest_checkpoints`), never from Tune's directory names.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from service.errors import StorageError, SweepStateError
from service.files import replace_directory
from service.orchestration.rundir import (
    SWEEP_FILE,
    TRIAL_FILE,
    TRIALS_DIR,
    create_state,
    read_sweep_state,
    sweep_id_for,
)
from service.orchestration.spec import SweepSpec, is_uri

__all__ = [
    "SCRATCH_DIR",
    "check_storage",
    "experiment_reachable",
    "prepare_state",
    "scratch_dir",
    "stage",
    "sync_trials",
]

SCRATCH_DIR = "e2rnas-trials"
_SYNCED = ".synced-from"  # in a downloaded trial directory: the checkpoint it came from
_KEY_CHARACTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.=+-")


def check_storage(uri: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path of a storage URI, after checking that its prefix can be
    listed (it may not exist yet: Tune creates it); StorageError at once otherwise."""
    import pyarrow  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    fix = "check the URI, the credentials (e.g. AWS_* variables) and the network"
    try:
        fs, path = pyarrow.fs.FileSystem.from_uri(uri)
        info = fs.get_file_info(path)
    except (pyarrow.ArrowException, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise StorageError(
            f"storage.path {uri!r}: cannot reach the storage ({reason}); {fix}"
        ) from None
    if info.type == pyarrow.fs.FileType.File:
        raise StorageError(f"storage.path {uri!r}: is a file; expected a directory or a prefix")
    return fs, path


def experiment_reachable(tune_path: str) -> bool:
    """Whether the storage answers and still holds the sweep's Tune experiment."""
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    try:
        fs, path = check_storage(tune_path)
        return bool(fs.get_file_info(path).type == pyarrow.fs.FileType.Directory)
    except (StorageError, OSError):
        return False


def prepare_state(spec: SweepSpec, run_dir: Path, resume: bool) -> dict[str, Any]:
    """The sweep's state: read back on resume, else written for a new sweep (with the
    experiment's place on the storage URI, checked to be free, when there is one)."""
    from service.results.store import default_url

    if resume:
        return read_sweep_state(run_dir)
    if (run_dir / SWEEP_FILE).exists():
        raise SweepStateError(
            f"{run_dir}: already holds a sweep; continue it with 'e2rnas sweep resume "
            f"{run_dir}' or choose another --out"
        )
    database_url = spec.storage.database_url or default_url(run_dir)
    if not is_uri(spec.storage.path):
        return create_state(spec, run_dir, database_url)
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    # One experiment per run directory: sweeps of the same name share a storage URI.
    tune_path = f"{spec.storage.path.rstrip('/')}/{sweep_id_for(spec, run_dir)}"
    fs, fs_path = check_storage(tune_path)
    if fs.get_file_info(fs_path).type != pyarrow.fs.FileType.NotFound:
        raise SweepStateError(
            f"storage {tune_path}: already holds a Tune experiment of run directory "
            f"{run_dir}, but the run directory has no {SWEEP_FILE}; remove it there or "
            "choose another --out"
        )
    return create_state(spec, run_dir, database_url, tune_path=tune_path)


def scratch_dir(sweep_id: str, key: str) -> Path:
    """The node-local directory a trial of a sweep on a storage URI works in."""
    return Path(tempfile.gettempdir()) / SCRATCH_DIR / sweep_id / key


def stage(source: Path, target: Path) -> None:
    """Copy every file under ``source`` to ``target``, but half-written ones (``.name.tmp``)."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def _is_plain_name(key: object) -> bool:
    return (
        isinstance(key, str)
        and bool(key)
        and key not in (".", "..")
        and all(c in _KEY_CHARACTERS for c in key)
    )


def sync_trials(run_dir: Path) -> int:
    """Download each trial's latest checkpoint from the sweep's storage URI into
    ``trials/<key>/`` of the run directory; returns how many trial directories changed.

    A no-op for a sweep with local storage. A trial directory already downloaded from the
    same checkpoint is left alone, so calling it often (``sweep status``) costs one read of
    Tune's experiment state.
    """
    import pyarrow  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    from service.orchestration.tuner import latest_checkpoints

    run_dir = Path(run_dir)
    state = read_sweep_state(run_dir)
    if not state.get("storage_uri"):
        return 0
    fs, root = check_storage(state["tune_path"])
    local = pyarrow.fs.LocalFileSystem()
    changed = 0
    try:
        latest = latest_checkpoints(root, fs)
    except (pyarrow.ArrowException, OSError) as exc:
        raise StorageError(f"{state['tune_path']}: cannot list the trials ({exc})") from None
    for checkpoint in latest:
        try:
            with fs.open_input_stream(f"{checkpoint}/{TRIAL_FILE}") as stream:
                key = json.loads(stream.read().decode("utf-8"))["trial_key"]
        except (pyarrow.ArrowException, OSError, ValueError, KeyError, TypeError):
            continue  # deleted meanwhile by a newer checkpoint, or not one of our trials
        if not _is_plain_name(key):
            continue  # a key must be a plain directory name
        target = run_dir / TRIALS_DIR / key
        marker = target / _SYNCED
        if marker.exists() and marker.read_text(encoding="utf-8") == checkpoint:
            continue

        def download(new: Path, checkpoint: str = checkpoint) -> None:
            pyarrow.fs.copy_files(
                checkpoint, str(new), source_filesystem=fs, destination_filesystem=local
            )
            (new / _SYNCED).write_text(checkpoint, encoding="utf-8")

        try:
            # A temporary directory of a name unique to this reader, swapped in whole: two
            # readers of one run directory (a driver and the service) never share one.
            replace_directory(target, download)
        except (pyarrow.ArrowException, OSError):
            # Tune replaced the checkpoint while it was read (num_to_keep=1): keep the copy
            # there is; the next call gets the newer one.
            continue
        changed += 1
    return changed
