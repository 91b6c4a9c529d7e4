"""Experiment tracking: the sweep file's ``tracking`` section, and Ray Tune's own logger
callbacks that it turns on (see docs/ARCHITECTURE.md, "The parts and the arrows").

::

    tracking:
      mlflow: {tracking_uri: sqlite:////abs/mlflow.db, experiment: my-exp}  # both optional
      tensorboard: true
      wandb: {mode: offline, project: e2rnas, dir: /abs/dir}                # all optional

Nothing here logs by hand: ``MLflowLoggerCallback``, ``TBXLoggerCallback`` and
``WandbLoggerCallback`` of Ray Tune log what every trial reports (each search epoch's objectives
and sizes, then the final report's front metrics), one step per ``training_iteration``, so the
final report is the step after the last epoch. The one thing they do not see is the genotype,
which the search writes into the run directory's trial directory: a small callback copies each
finished trial's ``genotype.json`` into Tune's trial directory, which MLflow's
``save_artifact=True`` uploads when the trial ends and Tune keeps beside its own records.

Where things go, by default inside the run directory: MLflow into ``mlflow.db`` (SQLite, MLflow's
own advice since its file store went into maintenance), artifacts into ``mlartifacts/`` beside
the database; TensorBoard's event files into each Tune trial directory (``tune/<name>/<trial>``);
W&B's runs into ``wandb/``. A relative path or URI is refused rather than resolved: the command
line, the web service, a Ray Job's driver and the trials each read the spec in another
directory, so only an absolute one means one place to all of them.

The packages are optional (``pip install 'e2rnas-sweeps[tracking]'``) and imported only when a
sweep turns a tracker on. Their presence is checked when a sweep starts or resumes
(:func:`prepare_trackers`), not by the schema: the trials and every reader of a finished run
(``sweep status``, ``pareto``, the web pages) parse the same spec and need none of them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from service import errors
from service.errors import ConfigError
from service.files import write_text_atomically
from service.orchestration.strategy import _Model
from service.results.urls import check_file_uri, split_uri
from service.yamltext import excerpt

if TYPE_CHECKING:
    from service.orchestration.spec import SweepSpec

__all__ = [
    "GENOTYPE_FILE",
    "INSTALL_FIX",
    "MLflowSection",
    "TrackingSpec",
    "WandbSection",
    "check_tracking_uri",
    "prepare_trackers",
    "require_package",
    "tracker_callbacks",
    "trial_genotype",
]

INSTALL_FIX = "pip install 'e2rnas-sweeps[tracking]'"
PACKAGES = {"mlflow": "mlflow", "tensorboard": "tensorboardX", "wandb": "wandb"}
"""The module each tracker imports (``mlflow`` also comes from ``mlflow-skinny``)."""
MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"  # beside the database, as ``mlflow server`` lays them out
GENOTYPE_FILE = "genotype.json"
URI_FORMS = "sqlite:////abs/path/mlflow.db, file:///abs/path or http(s)://host[:port]"
PROJECT_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")  # W&B's allowed characters


def check_tracking_uri(uri: str) -> None:
    """The form of an MLflow tracking URI, checked without opening it (ValueError otherwise)."""
    fix = f"expected {URI_FORMS}"
    parts = split_uri(uri, fix)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(
            f"{excerpt(uri)} is a path; a relative one means another directory to the command "
            f"line, the service and a Ray Job, so none is resolved: {fix}"
        )
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"{excerpt(uri)}: no host; expected {scheme}://host[:port]")
        if parts.password is not None:
            raise ValueError(
                "a URL with a password would be copied into sweep.json and the API's answers; "
                "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD on the driver instead"
            )
    elif scheme == "file":
        check_file_uri(uri, parts)
    elif scheme == "sqlite":
        if not uri[len("sqlite:") :].startswith("////"):
            raise ValueError(
                f"{excerpt(uri)}: a relative SQLite path (three slashes); expected "
                "sqlite:////abs/path/mlflow.db (four: absolute)"
            )
    else:
        raise ValueError(f"unknown tracking URI scheme {excerpt(parts.scheme)}; {fix}")


class MLflowSection(_Model):
    """MLflow: the tracking store (None: ``mlflow.db`` in the run directory) and experiment
    (None: the sweep's name). One MLflow run per trial, its artifacts Tune's trial directory."""

    tracking_uri: str | None = Field(default=None, min_length=1)
    experiment: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("tracking_uri")
    @classmethod
    def _uri_form(cls, value: str | None) -> str | None:
        if value is not None:
            check_tracking_uri(value)
        return value


class WandbSection(_Model):
    """Weights & Biases: ``offline`` (the default) writes runs that ``wandb sync`` uploads
    later; ``online`` needs an API key on the driver (``WANDB_API_KEY`` or ``wandb login``).
    ``project`` None is the sweep's name; ``dir`` None is the run directory."""

    mode: Literal["offline", "online"] = "offline"
    project: str | None = None
    dir: str | None = Field(default=None, min_length=1)

    @field_validator("project")
    @classmethod
    def _project_name(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_PATTERN.fullmatch(value):
            raise ValueError(
                "expected 1 to 128 letters, digits, '_', '-' or '.', starting with a letter or "
                f"digit, got {excerpt(value)}"
            )
        return value

    @field_validator("dir")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_absolute():
            raise ValueError(
                f"{excerpt(value)} is relative, which means another directory to the command "
                "line, the service and a Ray Job; give an absolute path, or leave dir out for "
                "the run directory"
            )
        return value


class TrackingSpec(_Model):
    """The ``tracking`` section: which of Ray Tune's logger callbacks a sweep runs with."""

    mlflow: MLflowSection | None = None
    tensorboard: bool = False
    wandb: WandbSection | None = None

    def trackers(self) -> list[str]:
        """The trackers the section turns on, in :data:`PACKAGES` order."""
        on = {
            "mlflow": self.mlflow is not None,
            "tensorboard": self.tensorboard,
            "wandb": self.wandb is not None,
        }
        return [name for name in PACKAGES if on[name]]

    @model_validator(mode="after")
    def _something(self) -> TrackingSpec:
        if not self.trackers():
            raise ValueError(
                "turns no tracker on; give mlflow: {}, tensorboard: true or wandb: {}, "
                "or leave the section out"
            )
        return self


def require_package(field: str, module: str) -> None:
    """ConfigError, naming ``field`` and the install fix, when ``module`` is not installed."""
    errors.require_package(field, module, "tracking")


def prepare_trackers(spec: SweepSpec) -> None:
    """Before a sweep starts or resumes, on its driver: the trackers' packages are installed
    here (ConfigError otherwise), and W&B's offline mode is in this process's environment,
    where Ray's callback looks before it asks for an API key. Called on resume too, since a
    restored experiment brings its callbacks back from Tune's state, not from here."""
    if spec.tracking is None:
        return
    for name in spec.tracking.trackers():
        require_package(f"tracking.{name}", PACKAGES[name])
    if spec.tracking.wandb is not None and spec.tracking.wandb.mode == "offline":
        os.environ["WANDB_MODE"] = "offline"


def tracker_callbacks(spec: SweepSpec, run_dir: Path) -> list[Any]:
    """Ray Tune's logger callbacks for the sweep's ``tracking`` section, in the order Tune
    calls them (the genotype copy before MLflow's upload); ``run_dir`` is absolute."""
    tracking = spec.tracking
    if tracking is None:
        return []
    callbacks: list[Any] = []
    if tracking.mlflow is not None:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        uri = tracking.mlflow.tracking_uri or f"sqlite:///{run_dir / MLFLOW_DB}"
        experiment = tracking.mlflow.experiment or spec.name
        _open_experiment(uri, experiment)
        callbacks += [
            _genotype_files(spec, run_dir),
            MLflowLoggerCallback(
                uri, experiment_name=experiment, tags={"sweep": spec.name}, save_artifact=True
            ),
        ]
    if tracking.tensorboard:
        from ray.tune.logger import TBXLoggerCallback

        callbacks.append(TBXLoggerCallback())  # type: ignore[no-untyped-call, unused-ignore]
    if tracking.wandb is not None:
        from ray.air.integrations.wandb import WandbLoggerCallback

        folder = Path(tracking.wandb.dir or run_dir)
        folder.mkdir(parents=True, exist_ok=True)  # W&B's logging actor runs on this node
        project = tracking.wandb.project or spec.name
        callbacks.append(
            WandbLoggerCallback(project=project, mode=tracking.wandb.mode, dir=str(folder))
        )
    return callbacks


def _open_experiment(uri: str, name: str) -> None:
    """Create the experiment in a local store unless it exists, its artifacts in
    ``mlartifacts`` beside an SQLite database: Ray's callback takes no artifact location, and
    MLflow's default is ``./mlruns`` of whatever directory the driver runs in. A store MLflow
    refuses (a file store without ``MLFLOW_ALLOW_FILE_STORE=true``) is one line before any
    trial starts. A tracking server chooses its own artifact store and is left to the callback."""
    scheme = uri.split(":", 1)[0].lower()
    if scheme not in ("sqlite", "file"):
        return
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    artifacts = None
    if scheme == "sqlite":
        database = Path(uri[len("sqlite:///") :])
        database.parent.mkdir(parents=True, exist_ok=True)
        artifacts = (database.parent / MLFLOW_ARTIFACTS).as_uri()
    try:
        client = MlflowClient(tracking_uri=uri)
        if client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=artifacts)
    except MlflowException as error:
        reason = str(error.message).splitlines()[0]
        raise ConfigError(
            f"tracking.mlflow.tracking_uri: MLflow cannot use {excerpt(uri)}: {reason}"
        ) from None


def trial_genotype(trial_dir: Path, checkpoint: Any | None) -> str | None:
    """The ``genotype.json`` a finished search wrote: in its trial directory, else in its
    trial's latest checkpoint (storage on a URI: the final report's checkpoint carries every
    file of the trial); None for a trial that has none (stopped early, or failed)."""
    path = trial_dir / GENOTYPE_FILE
    if path.is_file():
        return path.read_text(encoding="utf-8")
    if checkpoint is None:
        return None
    try:
        with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{GENOTYPE_FILE}") as f:
            return bytes(f.read()).decode("utf-8")
    except OSError:
        return None


def _genotype_files(spec: SweepSpec, run_dir: Path) -> Any:
    """A Tune callback that copies each finished trial's genotype into Tune's trial directory
    (``trial.local_path``, synced to the trial's storage) before MLflow uploads that directory.

    The class is made here, not at the module's top, because the sweep schema imports this
    module and must not pull Ray in; Tune pickles it with the experiment's state (cloudpickle
    keeps a local class by value), so a resume restores it."""
    from ray import tune

    from service.orchestration.rundir import TRIALS_DIR, trial_name

    class GenotypeFiles(tune.Callback):  # type: ignore[misc, unused-ignore]
        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            name = trial_name(spec, dict(trial.config), str(trial.trial_id))
            text = trial_genotype(run_dir / TRIALS_DIR / name, trial.checkpoint)
            if text is not None:
                write_text_atomically(Path(trial.local_path) / GENOTYPE_FILE, text)

    return GenotypeFiles()
