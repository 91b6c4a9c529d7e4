"""Ray Tune: the one module of the project that imports Ray Tune (and Ray's core API).

:func:`run_sweep` runs (or resumes) a checked sweep spec as one Tune experiment: one trial per
grid point (or per Optuna sample), each running :func:`service.orchestration.trainable.run_trial`
through a :class:`TuneSession`, under Tune's FIFO scheduler or MO-ASHA
(:class:`ParetoHalvingScheduler`), with ``FailureConfig`` restarts, one checkpoint kept per trial,
``Tuner.restore`` for ``sweep resume``, and one log line per trial event. When Tune returns, the
sweep's results are collected (:func:`service.orchestration.collect.collect`).

:func:`latest_checkpoints` finds each trial's newest checkpoint through Tune's public results API
(``ExperimentAnalysis`` and ``ResultGrid``/``Result.checkpoint``), never through the names of
Tune's directories, so an upgrade of Ray cannot silently break ``sweep status`` and resume.
The Ray Jobs API is :mod:`service.orchestration.jobs`, the only other module that imports Ray.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ray  # type: ignore[import-untyped, unused-ignore]
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from service.errors import ConfigError, StorageError, SweepStateError
from service.logs import sweep_context
from service.objectives import FRONT_METRICS
from service.orchestration.addresses import GCS_PORT, check_address
from service.orchestration.collect import collect, results_table, sweep_outcome
from service.orchestration.driverlock import driver_lock
from service.orchestration.mo_asha import STOP, SweepRungs
from service.orchestration.points import sweep_objectives, trial_count, trial_resources
from service.orchestration.rundir import TUNE_DIR, set_status, trial_key
from service.orchestration.spec import BOUND_KEYS, SweepSpec, is_uri
from service.orchestration.storage import check_storage, experiment_reachable, prepare_state
from service.orchestration.strategy import optuna_search_args
from service.orchestration.tracking import prepare_trackers, tracker_callbacks
from service.orchestration.trainable import run_retrain, run_trial
from service.orchestration.twostage import choose_retrains

__all__ = ["ParetoHalvingScheduler", "TuneSession", "latest_checkpoints", "run_sweep"]

logger = logging.getLogger(__name__)
MAX_FAILURES = 3  # restarts of a failed trial from its last checkpoint


class TuneSession:
    """A :class:`~service.orchestration.trainable.TrialSession` over Ray Tune's function API."""

    def trial_id(self) -> str:
        return str(tune.get_context().get_trial_id())

    def node_id(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    @contextmanager
    def restored_checkpoint(self) -> Iterator[Path | None]:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as saved:
            yield Path(saved)

    def report(self, metrics: dict[str, Any], checkpoint: Path | None = None) -> None:
        if checkpoint is None:
            tune.report(metrics)
        else:
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(checkpoint)))


def search_trial(
    config: dict[str, Any], spec_data: dict[str, Any], run_dir: str, scratch: str | None = None
) -> None:
    """The function trainable Tune runs: one trial in a :class:`TuneSession`."""
    run_trial(config, spec_data, run_dir, TuneSession(), scratch=scratch)


def retrain_trial(config: dict[str, Any], spec_data: dict[str, Any], run_dir: str) -> None:
    """The function trainable of a two-stage sweep's second stage (one retrain)."""
    run_retrain(config, spec_data, run_dir, TuneSession())


def latest_checkpoints(experiment_path: str, filesystem: Any) -> list[str]:
    """The path (on ``filesystem``) of each trial's latest checkpoint in the Tune experiment at
    ``experiment_path``; trials that reported none yet are left out, and so is every trial
    while the experiment has saved no snapshot of its state yet."""
    try:
        analysis = tune.ExperimentAnalysis(experiment_path, storage_filesystem=filesystem)
    except ValueError:  # Tune's answer for "no experiment snapshot there yet"
        return []
    grid = tune.ResultGrid(analysis)
    results = (grid[i] for i in range(len(grid)))
    return [str(result.checkpoint.path) for result in results if result.checkpoint is not None]


# -- one line per trial event --------------------------------------------------------------


class _ProgressLines(tune.Callback):  # type: ignore[misc, unused-ignore]
    """Logs one line per epoch, trial end and trial error."""

    def on_trial_result(
        self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any], **info: Any
    ) -> None:
        key = trial_key(dict(trial.config))
        if result.get("phase", "search") == "done":
            shown = ", ".join(
                f"{m} {result[m]:.4g}"
                for m in FRONT_METRICS
                if isinstance(result.get(m), float) and not math.isnan(result[m])
            )
            logger.info("trial %s: done  %s", key, shown)
        else:
            logger.info(
                "trial %s: epoch %s  params_m %.4g  flops_m %.4g",
                key,
                result.get("epoch", "?"),
                result.get("params_m", math.nan),
                result.get("flops_m", math.nan),
            )

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        logger.warning("trial %s: failed", trial_key(dict(trial.config)))


# -- MO-ASHA as a Tune scheduler -------------------------------------------------------------


class ParetoHalvingScheduler(FIFOScheduler):  # type: ignore[misc, unused-ignore]
    """Ray Tune's side of ``scheduler.kind: mo_asha``: each search epoch a trial reports goes
    to the sweep's :class:`~service.orchestration.mo_asha.SweepRungs` (the rule, its state
    file and the resume), whose answer becomes Tune's ``CONTINUE`` or ``STOP``; trials start
    in Tune's order, as under FIFO."""

    def __init__(self, spec: SweepSpec, run_dir: Path) -> None:
        super().__init__()  # type: ignore[no-untyped-call, unused-ignore]
        self.rungs = SweepRungs(spec, run_dir)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        answer = self.rungs.on_result(dict(trial.config), str(trial.trial_id), result)
        return str(TrialScheduler.STOP if answer == STOP else TrialScheduler.CONTINUE)

    def debug_string(self) -> str:
        return f"Using MO-ASHA: {self.rungs.stopped_count()} trials stopped."


def _scheduler(spec: SweepSpec, run_dir: Path) -> Any:
    if spec.scheduler.kind == "mo_asha":
        return ParetoHalvingScheduler(spec, run_dir)
    return FIFOScheduler()  # type: ignore[no-untyped-call, unused-ignore]


# -- the experiment ------------------------------------------------------------------------


def _param_space(spec: SweepSpec) -> dict[str, Any]:
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


def _search_alg(spec: SweepSpec, sweep_id: str) -> Any:
    if spec.strategy.kind != "optuna":
        return None
    from ray.tune.search.optuna import OptunaSearch  # type: ignore[import-untyped, unused-ignore]

    objectives = sweep_objectives(spec)
    study = optuna_search_args(spec.strategy, sweep_id)
    return OptunaSearch(metric=list(objectives), mode=list(objectives.values()), **study)


def _init_ray(address: str | None, num_cpus: int | None) -> None:
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    # Tune's automatic loggers include TensorBoardX's, whose import pulls torch into the driver
    # (4.8 s of a 20 s resume, on every driver start) for event files nothing reads: the driver
    # keeps Tune's CSV and JSON records (see _tuner) and no TensorBoard writer.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
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


def _check_before_start(spec: SweepSpec, run_dir: Path, address: str | None) -> None:
    """Everything that can be checked before Ray starts: the Optuna restrictions, the Ray
    address, the trackers' packages, a storage URI's reachability (and that it is no run dir)."""
    _param_space(spec)
    optuna_search_args(spec.strategy, spec.name)  # strategy.storage opens, before sweep.json
    prepare_trackers(spec)
    if address and address != "auto":
        check_address(address, GCS_PORT)
    if is_uri(spec.storage.path):
        if run_dir == (Path(spec.storage.path) / spec.name).resolve():
            # The CLI's default run directory, storage.path/<name>, is no place for a URI.
            raise SweepStateError(
                f"storage.path {spec.storage.path!r} is a URI; give the local run directory "
                "with --out DIR"
            )
        check_storage(spec.storage.path)


def _concurrency(spec: SweepSpec) -> int:
    """How many trials run at once: as many as the cluster's CPUs hold, at most
    ``resources.max_concurrent``."""
    cpus = float(ray.cluster_resources().get("CPU", 1.0))  # type: ignore[no-untyped-call, unused-ignore]
    concurrent = max(1, int(cpus // spec.resources.cpu))
    return min(concurrent, spec.resources.max_concurrent or concurrent)


def _second_stage(spec: SweepSpec, run_dir: Path) -> str:
    """A two-stage sweep's retrain of its proxy front, as a Tune experiment of its own
    (restored on resume; a finished retrain is not run again); the sweep's status after it."""
    chosen = choose_retrains(run_dir, spec, results_table(run_dir))["chosen"]
    if not chosen:
        return "done"
    path = run_dir / TUNE_DIR / f"{spec.name}-retrain"
    space = {"trial": tune.grid_search(chosen)}
    trainable = tune.with_resources(
        tune.with_parameters(
            retrain_trial, spec_data=spec.model_dump(mode="json"), run_dir=str(run_dir)
        ),
        trial_resources(spec, cuda_available=None if spec.resources.gpu is None else False),
    )
    if tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(
            str(path), trainable, resume_unfinished=True, resume_errored=True, param_space=space
        )
    else:
        logger.info("second stage: retraining %d trials of the proxy front", len(chosen))
        tuner = tune.Tuner(
            trainable,
            param_space=space,
            tune_config=tune.TuneConfig(
                reuse_actors=True, max_concurrent_trials=_concurrency(spec)
            ),
            run_config=tune.RunConfig(
                name=path.name,
                storage_path=str(path.parent),
                failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
                callbacks=[CSVLoggerCallback(), JsonLoggerCallback()],  # type: ignore[no-untyped-call, unused-ignore]
                verbose=0,
            ),
        )
    return "failed" if _errors(tuner.fit()) else "done"


def _tuner(spec: SweepSpec, state: dict[str, Any], trainable: Any, resume: bool) -> Any:
    """A new Tuner for the sweep, or the interrupted experiment restored."""
    tune_path = str(state["tune_path"])  # a local path or a URI: Tune resolves either
    if resume and tune.Tuner.can_restore(tune_path):
        return tune.Tuner.restore(
            tune_path,
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            param_space=_param_space(spec),
        )
    remote = bool(state.get("storage_uri"))
    concurrent = _concurrency(spec)
    logger.info(
        "%d trials, up to %d at a time, in %s", trial_count(spec), concurrent, state["run_dir"]
    )
    samples = spec.strategy.num_samples if spec.strategy.kind == "optuna" else 1
    return tune.Tuner(
        trainable,
        param_space=_param_space(spec),
        tune_config=tune.TuneConfig(
            search_alg=_search_alg(spec, state["sweep_id"]),
            scheduler=_scheduler(spec, Path(state["run_dir"])),
            num_samples=samples or 1,
            reuse_actors=True,
            max_concurrent_trials=concurrent,
        ),
        run_config=tune.RunConfig(
            name=state["sweep_id"] if remote else spec.name,
            storage_path=state["storage_uri"] if remote else str(Path(state["run_dir"]) / TUNE_DIR),
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[
                _ProgressLines(),
                CSVLoggerCallback(),  # type: ignore[no-untyped-call, unused-ignore]
                JsonLoggerCallback(),  # type: ignore[no-untyped-call, unused-ignore]
                *tracker_callbacks(spec, Path(state["run_dir"])),
            ],
            verbose=0,
        ),
    )


def _errors(grid: Any) -> int:
    """Trials of a Tune result grid that failed after their retries."""
    return sum(1 for i in range(len(grid)) if grid[i].error is not None)


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
    ones do not). The run directory's driver lock is held throughout
    (:mod:`service.orchestration.driverlock`): a second driver is refused at once.
    """
    run_dir = Path(run_dir).resolve()
    address = address or spec.ray.address
    _check_before_start(spec, run_dir, address)
    # One driver per run directory, from before anything is written until the end.
    with driver_lock(run_dir):
        _drive(spec, run_dir, address, resume, num_cpus)
    return run_dir


def _drive(
    spec: SweepSpec, run_dir: Path, address: str | None, resume: bool, num_cpus: int | None
) -> None:
    state = prepare_state(spec, run_dir, resume)
    remote = bool(state.get("storage_uri"))
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
    with sweep_context(state["sweep_id"]):
        _init_ray(address, num_cpus)
        try:
            tuner = _tuner(spec, state, trainable, resume)
            set_status(run_dir, "running")
            try:
                status = sweep_outcome(_errors(tuner.fit()), spec, run_dir)
                if spec.evaluation.mode == "two_stage" and status == "done":
                    status = _second_stage(spec, run_dir)
            except KeyboardInterrupt:
                set_status(run_dir, "interrupted")
                raise
            except Exception:
                if remote and not experiment_reachable(str(state["tune_path"])):
                    set_status(run_dir, "interrupted")
                    raise StorageError(
                        f"storage.path {state['storage_uri']!r}: became unreachable while the "
                        "sweep ran, and Tune gave up; what it stored is kept: run 'e2rnas "
                        f"sweep resume {run_dir}' once the storage is back"
                    ) from None
                raise
            # Collected before Ray shuts down: inside a Ray Job, the shutdown deletes the
            # job's working directory, which is this process's current directory.
            collect(run_dir, status=status)
        finally:
            ray.shutdown()
            try:
                Path.cwd()
            except FileNotFoundError:
                os.chdir(run_dir)
