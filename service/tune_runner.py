"""Ray Tune orchestration of a sweep: the one module of `service` that imports Ray Tune.

A sweep's run directory holds everything it writes::

    <run_dir>/sweep.json          the spec, its sweep id, status and where things are
    <run_dir>/trials/<key>/       one search (and its evaluation) per trial; ``key`` is made
                                  of the swept values, so it is stable across restarts
    <run_dir>/tune/<name>/        Ray Tune's experiment state (Tuner.restore reads it)
    <run_dir>/results.parquet     the results table, one row per trial
    <run_dir>/results.db          the SQLite store, unless the spec names a database URL
    <run_dir>/export/             the Pareto front: genotypes.json/.py, front.csv/.parquet
    <run_dir>/report.html         the interactive report (plotly, self-contained)

Each trial runs :func:`search_core.search.run_search` with ``resume=True`` in its own trial
directory and reports every epoch to Tune with a checkpoint (the search's ``checkpoint.pt``
and ``metrics.jsonl``). When Ray restarts a failed trial (``FailureConfig``), the trial starts
again from its directory, or from Tune's copy of the checkpoint when the directory has none.
The collection after the run (:func:`collect`) reads only the trial directories, so it can be
run again at any time and gives the same rows; the store's upsert keeps it idempotent.

When ``storage.path`` is a filesystem URI (``s3://bucket/prefix``, ``file:///abs/path``, ...),
no node is assumed to share the run directory: Tune's experiment state and the trials'
checkpoints go to ``<uri>/<sweep_id>/`` (``tune_path`` in ``sweep.json``), each trial works in
a node-local scratch directory and persists all its files (``trial.json`` included) in the
checkpoint it reports each epoch and in one more with its final report. The driver's run
directory gets ``trials/<key>/`` by downloading each trial's latest checkpoint
(:func:`sync_trials`, called by :func:`trial_states`), so the collection and ``sweep status``
read the same files as with a local run directory.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_core.errors import ConfigError, E2RNASError
from service.sweep_config import (
    BOUND_KEYS,
    FRONT_METRICS,
    SweepSpec,
    eval_config_for,
    is_uri,
    parse_sweep,
    search_config_for,
    trial_count,
    trial_resources,
)

__all__ = [
    "SWEEP_FILE",
    "Collected",
    "RayAddressError",
    "StorageError",
    "SweepStateError",
    "check_address",
    "check_storage",
    "collect",
    "read_sweep_state",
    "results_table",
    "run_sweep",
    "search_epochs",
    "search_trial",
    "spec_of",
    "stored_table",
    "sweep_id_for",
    "sweep_objectives",
    "sweep_progress",
    "sync_trials",
    "trial_key",
    "trial_states",
    "write_run_report",
]

SWEEP_FILE = "sweep.json"
TRIAL_FILE = "trial.json"
TRIALS_DIR = "trials"
TUNE_DIR = "tune"
RESULTS_FILE = "results.parquet"
REPORT_FILE = "report.html"
EXPORT_DIR = "export"
_COPIED = ("checkpoint.pt", "metrics.jsonl", "config.json")
_SEARCH_OBJECTIVES = ("val_loss", "ood_loss", "adv_loss", "nop_loss", "flops_loss")
_ADDRESS_TIMEOUT_S = 3.0
SCRATCH_DIR = "e2rnas-trials"
_SYNCED = ".synced-from"  # in a downloaded trial directory: the checkpoint it came from
_SAFE_KEY = re.compile(r"[A-Za-z0-9_.=+-]+")


class RayAddressError(E2RNASError, ValueError):
    """A Ray address is malformed or nothing answers there."""


class SweepStateError(E2RNASError, ValueError):
    """A run directory does not hold a sweep, or holds one in a state that forbids the action."""


class StorageError(E2RNASError, ValueError):
    """The sweep's storage URI cannot be reached or read."""


# -- names and state ---------------------------------------------------------------------------


def trial_key(point: Mapping[str, Any]) -> str:
    """A directory name of the swept values, e.g. ``F=0.4_L=0.03_seed=0``: keys sorted, unsafe
    characters replaced, and a short hash appended when the name had to be shortened."""
    if not point:
        return "default"
    text = "_".join(f"{key}={point[key]}" for key in sorted(point))
    safe = re.sub(r"[^A-Za-z0-9_.=+-]", "-", text)
    if safe != text or len(safe) > 100:
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        safe = f"{safe[:90]}-{digest}"
    return safe


def sweep_id_for(spec: SweepSpec, run_dir: Path) -> str:
    """The id of the sweep ``spec`` run into ``run_dir``: its name and a hash of the path."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode()).hexdigest()[:8]
    return f"{spec.name}-{digest}"


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def read_sweep_state(run_dir: Path) -> dict[str, Any]:
    """The ``sweep.json`` of a run directory (SweepStateError when there is none)."""
    path = Path(run_dir) / SWEEP_FILE
    if not path.exists():
        raise SweepStateError(f"{run_dir}: no {SWEEP_FILE}; not the run directory of a sweep")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SweepStateError(f"{path}: cannot read the sweep state ({exc})") from None
    if not isinstance(state, dict) or "spec" not in state or "sweep_id" not in state:
        raise SweepStateError(f"{path}: expected an object with 'spec' and 'sweep_id'")
    return state


def spec_of(run_dir: Path) -> SweepSpec:
    """The spec stored in a run directory's ``sweep.json``."""
    state = read_sweep_state(Path(run_dir))
    return parse_sweep(state["spec"], source=str(Path(run_dir) / SWEEP_FILE))


def search_epochs(spec: SweepSpec) -> int:
    """The number of search epochs of each trial (of the first grid point's config)."""
    point = {key: values[0] for key, values in spec.grid.items()}
    if spec.strategy.kind == "optuna":
        point.update({key: getattr(spec.strategy, key).low for key in BOUND_KEYS})
    return search_config_for(spec, point).epochs


def _set_status(run_dir: Path, status: str) -> None:
    state = read_sweep_state(run_dir)
    state["status"] = status
    state["updated_at"] = time.time()
    _write_json(run_dir / SWEEP_FILE, state)


def sweep_objectives(spec: SweepSpec) -> dict[str, str]:
    """The objectives of the sweep's Pareto front, with their directions.

    The strategy's objectives (all five front metrics by default); a sweep without an
    evaluation has only the search's losses and the exact sizes.
    """
    directions = {"test_error": "min", "params_m": "min", "flops_m": "min"}
    directions.update(pgd_acc="max", ood_aupr="max")
    if spec.evaluation.mode == "none":
        return {name: "min" for name in ("val_loss", "ood_loss", "adv_loss", "params_m", "flops_m")}
    names = spec.strategy.objectives or FRONT_METRICS
    return {name: directions[name] for name in names}


# -- addresses ---------------------------------------------------------------------------------


def check_address(address: str, default_port: int) -> tuple[str, int]:
    """The (host, port) of a Ray address, after checking that something listens there.

    Accepts ``HOST:PORT``, ``ray://HOST:PORT`` and ``http(s)://HOST:PORT``; raises
    RayAddressError at once when nothing answers within a few seconds.
    """
    text = address.strip()
    parsed = urllib.parse.urlsplit(text if "://" in text else f"tcp://{text}")
    try:
        host, port = parsed.hostname, parsed.port or default_port
    except ValueError:
        host, port = None, 0
    if not host:
        raise RayAddressError(f"Ray address {address!r}: expected HOST:PORT or a URL")
    try:
        with socket.create_connection((host, port), timeout=_ADDRESS_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayAddressError(
            f"Ray address {address!r}: nothing answers at {host}:{port} "
            f"({exc.strerror or exc}); is the Ray head running?"
        ) from None
    return host, port


# -- storage -----------------------------------------------------------------------------------


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


def _stage(source: Path, target: Path) -> None:
    """Copy every file under ``source`` to ``target``, but half-written ones (``.name.tmp``)."""
    for path in source.rglob("*"):
        relative = path.relative_to(source)
        if path.is_file() and not any(part.startswith(".") for part in relative.parts):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / relative)


def _latest_checkpoints(fs: Any, root: str) -> list[str]:
    """The newest ``checkpoint_*`` directory of each Tune trial under the experiment ``root``."""
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    directory = pyarrow.fs.FileType.Directory
    latest: list[str] = []
    for trial in fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)):
        if trial.type != directory:
            continue
        saved = [
            info.path
            for info in fs.get_file_info(pyarrow.fs.FileSelector(trial.path, allow_not_found=True))
            if info.type == directory and info.base_name.startswith("checkpoint_")
        ]
        if saved:
            latest.append(max(saved))  # checkpoint_000012: zero-padded, so text order works
    return latest


def sync_trials(run_dir: Path) -> int:
    """Download each trial's latest checkpoint from the sweep's storage URI into
    ``trials/<key>/`` of the run directory; returns how many trial directories changed.

    A no-op for a sweep with local storage. A trial directory already downloaded from the
    same checkpoint is left alone, so calling it often (``sweep status``) costs one listing.
    """
    import pyarrow  # type: ignore[import-untyped, unused-ignore]
    import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

    run_dir = Path(run_dir)
    state = read_sweep_state(run_dir)
    if not state.get("storage_uri"):
        return 0
    fs, root = check_storage(state["tune_path"])
    local = pyarrow.fs.LocalFileSystem()
    changed = 0
    try:
        latest = _latest_checkpoints(fs, root)
    except (pyarrow.ArrowException, OSError) as exc:
        raise StorageError(f"{state['tune_path']}: cannot list the trials ({exc})") from None
    for checkpoint in latest:
        try:
            with fs.open_input_stream(f"{checkpoint}/{TRIAL_FILE}") as stream:
                key = json.loads(stream.read().decode("utf-8"))["trial_key"]
        except (pyarrow.ArrowException, OSError, ValueError, KeyError, TypeError):
            continue  # deleted meanwhile by a newer checkpoint, or not one of our trials
        if not isinstance(key, str) or not _SAFE_KEY.fullmatch(key) or key in (".", ".."):
            continue  # a key must be a plain directory name
        target = run_dir / TRIALS_DIR / key
        marker = target / _SYNCED
        if marker.exists() and marker.read_text(encoding="utf-8") == checkpoint:
            continue
        partial = target.with_name(f".{key}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)  # copy_files makes the subdirectories, not the top one
        try:
            pyarrow.fs.copy_files(
                checkpoint, str(partial), source_filesystem=fs, destination_filesystem=local
            )
        except (pyarrow.ArrowException, OSError):
            # Tune replaced the checkpoint while it was read (num_to_keep=1): keep the copy
            # there is; the next call gets the newer one.
            shutil.rmtree(partial, ignore_errors=True)
            continue
        marker_tmp = partial / _SYNCED
        marker_tmp.write_text(checkpoint, encoding="utf-8")
        old = target.with_name(f".{key}.old")
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        partial.rename(target)
        shutil.rmtree(old, ignore_errors=True)
        changed += 1
    return changed


# -- the trainable -----------------------------------------------------------------------------


def _copy_checkpoint_back(source: Path, trial_dir: Path) -> None:
    """Put Tune's copy of a trial's checkpoint back where the search resumes from, unless the
    trial directory already holds a checkpoint (it is then at least as recent)."""
    if (trial_dir / "checkpoint.pt").exists():
        return
    trial_dir.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        if (source / name).exists():
            shutil.copy2(source / name, trial_dir / name)


def _stale(trial_dir: Path, tune_trial_id: str) -> bool:
    """Whether a scratch directory holds another Tune trial's files than ``tune_trial_id``."""
    try:
        info = json.loads((trial_dir / TRIAL_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return trial_dir.exists()
    return not isinstance(info, dict) or info.get("tune_trial_id") != tune_trial_id


def _epochs_done(trial_dir: Path) -> int:
    """The epochs a trial directory's checkpoint holds (0 without one)."""
    metrics = trial_dir / "metrics.jsonl"
    if not (trial_dir / "checkpoint.pt").exists() or not metrics.exists():
        return 0
    return sum(1 for line in metrics.read_text(encoding="utf-8").splitlines() if line.strip())


def _report_metrics(record: Mapping[str, Any], phase: str) -> dict[str, Any]:
    metrics: dict[str, Any] = {name: math.nan for name in FRONT_METRICS}
    for key in (*_SEARCH_OBJECTIVES, "params_m", "flops_m", "epoch"):
        value = record.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            metrics[key] = value
    if isinstance(record.get("genotype_hash"), str):
        metrics["genotype_hash"] = record["genotype_hash"]
    metrics["phase"] = phase
    return metrics


def search_trial(
    config: dict[str, Any], spec_data: dict[str, Any], run_dir: str, scratch: str | None = None
) -> None:
    """One trial: search at the grid point ``config``, then evaluate; reports to Ray Tune.

    ``spec_data`` is the sweep spec as JSON data (`tune.with_parameters` passes it), and
    ``run_dir`` the absolute run directory whose ``trials/`` holds this trial's directory.
    With ``scratch`` (a sweep on a storage URI: no shared filesystem), the trial works in
    ``<node temp dir>/e2rnas-trials/<scratch>/<key>`` instead and persists every file through
    its Tune checkpoints, the last one with its final report.
    """
    import ray  # type: ignore[import-untyped, unused-ignore]
    from ray import tune

    from search_core.evaluate import METRICS_FILE, run_evaluation, run_proxy
    from search_core.search import CHECKPOINT, load_checkpoint, run_search

    spec = parse_sweep(spec_data)
    point = dict(config)
    resources = trial_resources(spec)
    threads = max(1, int(resources["cpu"]))
    search_config = search_config_for(spec, point).replace(threads=threads)
    if resources["gpu"] > 0 and search_config.device == "cpu":
        search_config = search_config.replace(device="cuda")
    key = trial_key(point)
    if spec.strategy.kind == "optuna":
        # Sampled bounds may repeat (NSGA-II proposes duplicates): one directory per trial.
        key = f"{key}_{tune.get_context().get_trial_id()}"
    if scratch is None:
        trial_dir = Path(run_dir) / TRIALS_DIR / key
    else:
        trial_dir = Path(tempfile.gettempdir()) / SCRATCH_DIR / scratch / key
    trial_id = tune.get_context().get_trial_id()
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as saved:
            # A scratch directory left on this node may be older than the checkpoint (the
            # trial ran on another node since). It is newer only when this node ran an epoch
            # whose checkpoint Tune had not registered when the sweep stopped.
            newer = not _stale(trial_dir, trial_id) and _epochs_done(trial_dir) > _epochs_done(
                Path(saved)
            )
            if scratch is None:
                _copy_checkpoint_back(Path(saved), trial_dir)
            elif not newer:
                shutil.rmtree(trial_dir, ignore_errors=True)
                _stage(Path(saved), trial_dir)
    elif scratch is not None and _stale(trial_dir, trial_id):
        # Left by an earlier experiment of the same run directory (its storage was removed).
        shutil.rmtree(trial_dir, ignore_errors=True)
    trial_dir.mkdir(parents=True, exist_ok=True)
    # Each start of the trial (a restart after a failure, a resumed sweep) is recorded with
    # the process and the epochs already checkpointed, so a resume can be told from a rerun.
    previous: dict[str, Any] = {}
    if (trial_dir / TRIAL_FILE).exists():
        previous = json.loads((trial_dir / TRIAL_FILE).read_text(encoding="utf-8"))
    attempts: list[dict[str, Any]] = list(previous.get("attempts", []))
    # A trial that finished while the sweep was being stopped, before Tune recorded its end,
    # is started again by the resume: it only reports its recorded result again (search and
    # evaluation find their outputs complete), which is no new attempt.
    finished = previous.get("status") == "done"
    if not finished:
        node = ray.get_runtime_context().get_node_id()
        attempt = {"pid": os.getpid(), "node": node, "epochs_before": _epochs_done(trial_dir)}
        if scratch is not None:
            attempt["dir"] = str(trial_dir)  # where it worked: never the driver's run directory
        attempts.append(attempt)
    info = {
        "trial_key": key,
        "point": point,
        "tune_trial_id": tune.get_context().get_trial_id(),
        "attempts": attempts,
    }
    if not finished:
        _write_json(trial_dir / TRIAL_FILE, {**info, "status": "running"})

    def reporter(record: dict[str, Any], checkpoint_dir: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="e2rnas-ckpt-") as staging:
            if scratch is not None:
                _stage(trial_dir, Path(staging))  # everything: the driver reads only this
            else:
                for name in _COPIED:
                    if (checkpoint_dir / name).exists():
                        shutil.copy2(checkpoint_dir / name, Path(staging) / name)
            tune.report(
                _report_metrics(record, "search"),
                checkpoint=tune.Checkpoint.from_directory(staging),
            )

    try:
        result = run_search(search_config, trial_dir, resume=True, reporter=reporter)
        last = result.records[-1] if result.records else {}
        eval_config = eval_config_for(spec, search_config)
        metrics_path = trial_dir / METRICS_FILE
        if eval_config is None:
            final = _report_metrics(last, "done")
        else:
            if metrics_path.exists():
                measured = json.loads(metrics_path.read_text(encoding="utf-8"))
            elif spec.evaluation.mode == "proxy":
                supernet = load_checkpoint(trial_dir / CHECKPOINT)["net"]
                measured = run_proxy(
                    result.genotype,
                    search_config,
                    trial_dir,
                    epochs=eval_config.epochs,
                    resume=True,
                    supernet_state=supernet,
                )
            else:
                measured = run_evaluation(result.genotype, eval_config, trial_dir, resume=True)
            final = _report_metrics(last, "done")
            for name in (*FRONT_METRICS, "eval_seconds"):
                value = measured.get(name)
                if isinstance(value, int | float) and not isinstance(value, bool):
                    final[name] = float(value)
    except Exception:
        _write_json(trial_dir / TRIAL_FILE, {**info, "status": "error"})
        raise
    _write_json(trial_dir / TRIAL_FILE, {**info, "status": "done"})
    if scratch is None:
        tune.report(final)
        return
    with tempfile.TemporaryDirectory(prefix="e2rnas-ckpt-") as staging:
        _stage(trial_dir, Path(staging))
        tune.report(final, checkpoint=tune.Checkpoint.from_directory(staging))
    # The final checkpoint holds every file now; the node keeps no copy of a finished trial
    # (nor the sweep's folder once its last trial here is done: rmdir fails while in use).
    shutil.rmtree(trial_dir, ignore_errors=True)
    for folder in (trial_dir.parent, trial_dir.parent.parent):
        try:
            folder.rmdir()
        except OSError:
            break


# -- progress ----------------------------------------------------------------------------------


def _progress_callback() -> Any:
    from ray import tune

    class ProgressLines(tune.Callback):  # type: ignore[misc, unused-ignore]
        """One line on stdout per epoch, trial end and trial error."""

        def on_trial_result(
            self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
        ) -> None:
            point = {k: v for k, v in trial.config.items()}
            phase = result.get("phase", "search")
            if phase == "done":
                shown = ", ".join(
                    f"{m} {result[m]:.4g}"
                    for m in FRONT_METRICS
                    if isinstance(result.get(m), float) and not math.isnan(result[m])
                )
                print(f"trial {trial_key(point)}: done  {shown}", flush=True)
            else:
                print(
                    f"trial {trial_key(point)}: epoch {result.get('epoch', '?')}  "
                    f"params_m {result.get('params_m', math.nan):.4g}  "
                    f"flops_m {result.get('flops_m', math.nan):.4g}",
                    flush=True,
                )

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            print(f"trial {trial_key(dict(trial.config))}: failed", flush=True)

    return ProgressLines()


# -- the sweep ---------------------------------------------------------------------------------


def _param_space(spec: SweepSpec) -> dict[str, Any]:
    from ray import tune

    if spec.strategy.kind == "grid":
        return {key: tune.grid_search(list(values)) for key, values in spec.grid.items()}
    space: dict[str, Any] = {}
    for key, values in spec.grid.items():
        if len(values) > 1:
            raise ConfigError(
                f"grid.{key}: the optuna strategy takes one value per grid key here (got "
                f"{len(values)}); run one sweep per value"
            )
        space[key] = values[0]
    for key in BOUND_KEYS:
        bound = getattr(spec.strategy, key)
        space[key] = tune.uniform(bound.low, bound.high)
    return space


def _search_alg(spec: SweepSpec) -> Any:
    if spec.strategy.kind != "optuna":
        return None
    import optuna
    from ray.tune.search.optuna import OptunaSearch  # type: ignore[import-untyped, unused-ignore]

    objectives = sweep_objectives(spec)
    seed = spec.strategy.seed
    sampler: Any
    if spec.strategy.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    return OptunaSearch(metric=list(objectives), mode=list(objectives.values()), sampler=sampler)


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    import ray  # type: ignore[import-untyped, unused-ignore]

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    runtime_env = {"env_vars": env}
    if address:
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
    elif os.environ.get("RAY_ADDRESS"):  # inside a Ray Job: the cluster and runtime env it has
        ray.init(log_to_driver=False)
    else:
        ray.init(
            num_cpus=num_cpus or os.cpu_count() or 1,
            include_dashboard=False,
            runtime_env=runtime_env,
            log_to_driver=False,
        )


def _prepare(spec: SweepSpec, run_dir: Path, resume: bool) -> dict[str, Any]:
    run_dir = run_dir.resolve()
    path = run_dir / SWEEP_FILE
    if resume:
        return read_sweep_state(run_dir)
    if path.exists():
        raise SweepStateError(
            f"{run_dir}: already holds a sweep; continue it with 'e2rnas sweep resume "
            f"{run_dir}' or choose another --out"
        )
    sweep_id = sweep_id_for(spec, run_dir)
    uri = spec.storage.path if is_uri(spec.storage.path) else None
    state: dict[str, Any] = {
        "sweep_id": sweep_id,
        "name": spec.name,
        "spec": spec.model_dump(mode="json"),
        "status": "running",
        "run_dir": str(run_dir),
        "tune_path": str(run_dir / TUNE_DIR / spec.name),
        "database_url": spec.storage.database_url or _default_url(run_dir),
        "trials": trial_count(spec),
        "created_at": time.time(),
        "updated_at": time.time(),
    }
    if uri is not None:
        # One experiment per run directory: sweeps of the same name share a storage URI.
        tune_path = f"{uri.rstrip('/')}/{sweep_id}"
        fs, fs_path = check_storage(tune_path)
        import pyarrow.fs  # type: ignore[import-untyped, unused-ignore]

        if fs.get_file_info(fs_path).type != pyarrow.fs.FileType.NotFound:
            raise SweepStateError(
                f"storage {tune_path}: already holds a Tune experiment of run directory "
                f"{run_dir}, but the run directory has no {SWEEP_FILE}; remove it there or "
                "choose another --out"
            )
        state.update(storage_uri=uri, tune_path=tune_path)
    _write_json(path, state)
    return state


def _default_url(run_dir: Path) -> str:
    from service.store import default_url

    return default_url(run_dir)


def run_sweep(
    spec: SweepSpec,
    run_dir: Path,
    address: str | None = None,
    resume: bool = False,
    num_cpus: int | None = None,
) -> Path:
    """Run (or resume) the sweep into ``run_dir``, then collect its results; returns run_dir.

    ``address`` (else the spec's ``ray.address``) is a Ray cluster to run on; without one an
    embedded local Ray starts with ``num_cpus`` (default: every core). ``resume`` restores the
    Tune experiment of an interrupted run (unfinished and errored trials run again, finished
    ones do not).
    """
    run_dir = Path(run_dir).resolve()
    address = address or spec.ray.address
    _param_space(spec)  # the optuna restrictions, before anything starts
    if address and address != "auto":
        check_address(address, 6379)
    uri = spec.storage.path if is_uri(spec.storage.path) else None
    if uri is not None:
        if run_dir == (Path(spec.storage.path) / spec.name).resolve():
            # The CLI's default run directory, storage.path/<name>, is no place for a URI.
            raise SweepStateError(
                f"storage.path {uri!r} is a URI; give the local run directory with --out DIR"
            )
        check_storage(uri)
    state = _prepare(spec, run_dir, resume)
    remote = bool(state.get("storage_uri"))
    import ray
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(
            search_trial,
            spec_data=spec.model_dump(mode="json"),
            run_dir=str(run_dir),
            scratch=state["sweep_id"] if remote else None,
        ),
        trial_resources(spec, cuda_available=None if spec.resources.gpu is None else False),
    )
    if not address and os.environ.get("RAY_ADDRESS"):
        # A Ray Job starts in a copy of its working_dir that Ray may delete while the job
        # runs (its runtime env is garbage-collected); Tune needs a current directory.
        os.chdir(run_dir)
    _init_ray(address, num_cpus)
    try:
        available = ray.cluster_resources()  # type: ignore[no-untyped-call, unused-ignore]
        cpus = float(available.get("CPU", 1.0))
        concurrent = max(1, int(cpus // spec.resources.cpu))
        # A local path or a URI: Tune resolves either with pyarrow.
        tune_path = str(state["tune_path"])
        if resume and tune.Tuner.can_restore(tune_path):
            tuner = tune.Tuner.restore(
                tune_path,
                trainable=trainable,
                resume_unfinished=True,
                resume_errored=True,
                param_space=_param_space(spec),
            )
        else:
            samples = spec.strategy.num_samples if spec.strategy.kind == "optuna" else 1
            tuner = tune.Tuner(
                trainable,
                param_space=_param_space(spec),
                tune_config=tune.TuneConfig(
                    search_alg=_search_alg(spec),
                    num_samples=samples or 1,
                    reuse_actors=True,
                    max_concurrent_trials=concurrent,
                ),
                run_config=tune.RunConfig(
                    name=state["sweep_id"] if remote else spec.name,
                    storage_path=state["storage_uri"] if remote else str(run_dir / TUNE_DIR),
                    failure_config=tune.FailureConfig(max_failures=3),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                    callbacks=[_progress_callback()],
                    verbose=0,
                ),
            )
        _set_status(run_dir, "running")
        print(
            f"sweep {spec.name}: {trial_count(spec)} trials, up to {concurrent} at a time, "
            f"in {run_dir}",
            flush=True,
        )
        try:
            grid = tuner.fit()
        except KeyboardInterrupt:
            _set_status(run_dir, "interrupted")
            raise
        # A trial that failed after its retries carries its error. Ctrl-C makes Tune stop
        # every running trial, save its state and return, with those trials TERMINATED and
        # no error: only their trial.json, never marked done, tells them apart.
        errors = sum(1 for i in range(len(grid)) if grid[i].error is not None)
        finished = [t for t in trial_states(run_dir) if t.get("status") == "done"]
        if errors:
            status = "failed"
        elif len(finished) < trial_count(spec):
            status = "interrupted"  # Ctrl-C: Tune saved its state and returned early
        else:
            status = "done"
        # Collected before Ray shuts down: inside a Ray Job, the shutdown deletes the job's
        # working directory, which is this process's current directory.
        collect(run_dir, status=status)
    finally:
        ray.shutdown()
        try:
            Path.cwd()
        except FileNotFoundError:
            os.chdir(run_dir)
    return run_dir


# -- collection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Collected:
    """What :func:`collect` wrote."""

    results: Path
    database_url: str
    export: dict[str, Path]
    report: Path
    rows: int
    failed: int
    front: int


def _trial_dirs(run_dir: Path) -> list[Path]:
    trials = run_dir / TRIALS_DIR
    if not trials.is_dir():
        return []
    # Hidden directories are downloads in progress (sync_trials), never trials.
    return sorted(
        p for p in trials.iterdir() if not p.name.startswith(".") and (p / TRIAL_FILE).exists()
    )


def trial_states(run_dir: Path) -> list[dict[str, Any]]:
    """Each trial directory's ``trial.json`` plus the epochs it finished and its directory.

    A sweep on a storage URI first downloads the trials' latest checkpoints (sync_trials).
    """
    if (Path(run_dir) / SWEEP_FILE).exists():
        sync_trials(Path(run_dir))
    states: list[dict[str, Any]] = []
    for path in _trial_dirs(Path(run_dir)):
        info = json.loads((path / TRIAL_FILE).read_text(encoding="utf-8"))
        info.update(dir=str(path), epochs=_epochs_done(path))
        states.append(info)
    return states


def sweep_progress(run_dir: Path, total: int) -> dict[str, int]:
    """Trials pending, running, done and failed, and search epochs done, from the trial
    directories of ``run_dir`` (``total`` trials in all)."""
    counts = {"total": total, "pending": 0, "running": 0, "done": 0, "failed": 0, "epochs": 0}
    for info in trial_states(run_dir) if Path(run_dir).exists() else []:
        status = info.get("status")
        key = "done" if status == "done" else "failed" if status == "error" else "running"
        counts[key] += 1
        counts["epochs"] += int(info.get("epochs", 0))
    counts["pending"] = max(0, total - counts["done"] - counts["failed"] - counts["running"])
    return counts


def results_table(run_dir: Path) -> Any:
    """The results table of the run directory, read from its trial directories."""
    from service.results import results_frame, trial_row

    run_dir = Path(run_dir).resolve()
    state = read_sweep_state(run_dir)
    rows = []
    for info in trial_states(run_dir):
        status = "done" if info.get("status") == "done" else "failed"
        rows.append(
            trial_row(
                state["sweep_id"], info["trial_key"], info["point"], Path(info["dir"]), status
            )
        )
    return results_frame(rows)


def front_of(frame: Any, objectives: Mapping[str, str]) -> Any:
    """The nondominated rows of a results table over ``objectives``."""
    from service.pareto import pareto_info

    info = pareto_info(frame, objectives)
    return frame.iloc[list(info.front)].reset_index(drop=True)


def collect(
    run_dir: Path,
    export_dir: Path | None = None,
    status: str | None = None,
    projection_2d: Sequence[str] | None = None,
    projection_3d: Sequence[str] | None = None,
) -> Collected:
    """Read every trial of the run directory into ``results.parquet``, the store and the
    export of the front; running it again writes the same rows.

    ``status`` (e.g. ``done`` at the end of a run) becomes the sweep's status, ``failed``
    instead of ``done`` when a trial did not finish. The report's projections plot
    ``projection_2d`` and ``projection_3d`` (default: the sweep file's ``report:`` choice).
    """
    from service.export import export_front
    from service.report import write_report
    from service.store import ResultStore, UnknownSweepError

    run_dir = Path(run_dir).resolve()
    state = read_sweep_state(run_dir)
    spec = parse_sweep(state["spec"], source=str(run_dir / SWEEP_FILE))
    frame = results_table(run_dir)
    failed = int((frame["status"] != "done").sum()) if len(frame) else 0
    if status is not None:
        if status == "done" and (failed or len(frame) < trial_count(spec)):
            status = "failed"
        _set_status(run_dir, status)
        state["status"] = status
    results = run_dir / RESULTS_FILE
    tmp = results.with_name(f".{results.name}.tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(results)
    store = ResultStore(state["database_url"])
    try:
        store.create_schema()
        # The rows land before the final status, so whoever reads "done" finds them all.
        try:
            before = store.get_sweep(state["sweep_id"])["status"]
        except UnknownSweepError:
            before = "running"
        store.upsert_sweep(state["sweep_id"], spec.name, before, state["spec"])
        store.ingest(frame)
        store.update_sweep(
            state["sweep_id"],
            status=state["status"],
            progress=sweep_progress(run_dir, trial_count(spec)),
        )
    finally:
        store.close()
    objectives = sweep_objectives(spec)
    front = front_of(frame, objectives)
    exported = export_front(front, export_dir or run_dir / EXPORT_DIR)
    report = write_report(
        frame,
        run_dir / REPORT_FILE,
        objectives,
        title=f"E2RNAS sweep {spec.name}",
        projection_2d=spec.report.projection_2d if projection_2d is None else projection_2d,
        projection_3d=spec.report.projection_3d if projection_3d is None else projection_3d,
    )
    return Collected(
        results, state["database_url"], exported, report, len(frame), failed, len(front)
    )


def write_run_report(
    run_dir: Path,
    out: Path | None = None,
    projection_2d: Sequence[str] | None = None,
    projection_3d: Sequence[str] | None = None,
) -> Path:
    """Rewrite the report of a collected run directory from its ``results.parquet``, to
    ``out`` (default: its ``report.html``); the projections default to the sweep file's."""
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]

    from service.report import write_report

    run_dir = Path(run_dir).resolve()
    spec = spec_of(run_dir)
    results = run_dir / RESULTS_FILE
    if not results.exists():
        raise SweepStateError(
            f"{run_dir}: no {RESULTS_FILE} yet; the sweep has not finished (see 'e2rnas sweep "
            f"status {run_dir}')"
        )
    return write_report(
        pd.read_parquet(results),
        out if out is not None else run_dir / REPORT_FILE,
        sweep_objectives(spec),
        title=f"E2RNAS sweep {spec.name}",
        projection_2d=spec.report.projection_2d if projection_2d is None else projection_2d,
        projection_3d=spec.report.projection_3d if projection_3d is None else projection_3d,
    )


def stored_table(run_dir: Path) -> Any:
    """The results table of the run directory as the store holds it."""
    from service.store import ResultStore

    state = read_sweep_state(Path(run_dir))
    store = ResultStore(state["database_url"])
    try:
        return store.trials_frame(state["sweep_id"])
    finally:
        store.close()
