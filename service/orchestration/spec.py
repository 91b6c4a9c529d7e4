"""The sweep file schema: pydantic models of a ``sweeps/*.yaml`` file, checked before anything runs.

A sweep names its data, a search preset with overrides, the evaluation that follows each
search (``none``, ``proxy`` or ``retrain``), a grid of config values (``L``, ``F``, ``seed`` and
any other :class:`~search_core.config.SearchConfig` key), a search strategy (``grid``, or
``optuna`` multi-objective over ranges of L and F), a scheduler (``fifo``, or ``mo_asha``:
Pareto-rank successive halving that stops trials early), resources per trial, a cap on the number of
trials, the Ray address, where results are stored (a local directory, or a pyarrow filesystem
URI such as ``s3://bucket/prefix`` for a cluster without a shared filesystem) and the axes of
the report's projections. Unknown keys are rejected at every level. Every bad input raises
:class:`~search_core.errors.ConfigError` with one line that names the file and the dotted path
of the bad field, e.g. ``sweeps/x.yaml: grid.L[1]: expected a bound >= 0, got -2``.

The checks that need the search core (every grid point builds a valid search config, the
evaluation overrides are known keys, ...) are :mod:`service.orchestration.checks`; what a
checked spec means for its trials (grid points, configs, resources, objectives) is
:mod:`service.orchestration.points`.

With ``strategy.kind: optuna``, L and F come from ``strategy.L`` and ``strategy.F`` and must not
be in the grid; the other grid keys still multiply: ``num_samples`` trials per grid point.

Method variants that are not a product of keys (Table VI's ablations: w/o MGDA, w/ AT in LL,
...) are named in ``variants`` (name → search overrides) and swept by the grid key
``variant``, which multiplies like any other and is a results column; a point's variant
overrides the search overrides, and the point's other keys override the variant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from service.errors import ConfigError
from service.objectives import DEFAULT_PROJECTION_2D, DEFAULT_PROJECTION_3D
from service.orchestration.strategy import (
    BOUND_KEYS,
    MAX_TRIALS,
    Range,
    SchedulerSection,
    StrategySection,
    _Model,
)
from service.orchestration.tracking import TrackingSpec
from service.results.urls import ENV_PREFIX, check_file_uri, env_reference, split_uri
from service.yamltext import excerpt, load_yaml

__all__ = [
    "BOUND_KEYS",
    "MAX_TRIALS",
    "EvaluationSection",
    "ProxyStage",
    "Range",
    "ReportSection",
    "ResourcesSection",
    "RetrainStage",
    "SchedulerSection",
    "SearchSection",
    "StorageSection",
    "StrategySection",
    "SweepSpec",
    "check_storage_uri",
    "is_uri",
    "load_sweep",
    "parse_sweep",
]

STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
"""URI schemes of the pyarrow filesystems a sweep may store its Tune state on."""
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # whole names: fullmatch
DATABASE_URL_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:\+[A-Za-z0-9_]+)?://\S*")
MIN_CPU = 0.01  # Ray rounds resources to 1e-4; a smaller share is no share at all
MAX_CPU = 1024.0
MAX_GPU = 64.0


class SearchSection(_Model):
    """The search: a preset of :data:`search_core.config.PRESETS` and checked overrides."""

    preset: str = "paper"
    overrides: dict[str, Any] = Field(default_factory=dict)


class ProxyStage(_Model):
    """The proxy of a two-stage evaluation: overrides of the proxy after each search."""

    overrides: dict[str, Any] = Field(default_factory=dict)


class RetrainStage(_Model):
    """The retrain of a two-stage evaluation: its preset and overrides, and ``max``, the most
    proxy-front genotypes retrained (chosen by hypervolume contribution; None: all)."""

    preset: str | None = None  # None: the search's preset name, if an evaluation preset has it
    overrides: dict[str, Any] = Field(default_factory=dict)
    max: int | None = Field(default=None, ge=1, le=MAX_TRIALS)


class EvaluationSection(_Model):
    """What follows each search: nothing, a cheap proxy, the paper's full retrain, or
    ``two_stage``: a proxy after every search, then, once every search has ended, the full
    retrain of the proxy front only (``proxy`` and ``retrain`` sections)."""

    mode: Literal["none", "proxy", "retrain", "two_stage"] = "proxy"
    preset: str | None = None  # None: the search's preset name, if an evaluation preset has it
    overrides: dict[str, Any] = Field(default_factory=dict)
    proxy: ProxyStage | None = None  # two_stage only
    retrain: RetrainStage | None = None  # two_stage only

    @model_validator(mode="after")
    def _stages(self) -> EvaluationSection:
        if self.mode != "two_stage":
            given = [key for key in ("proxy", "retrain") if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: used only by mode two_stage; mode {self.mode} takes "
                    "preset and overrides"
                )
            return self
        if self.retrain is None:
            raise ValueError(
                "retrain: missing; mode two_stage retrains the proxy front: give e.g. "
                "retrain: {preset: cpu-tiny, max: 3}"
            )
        given = [key for key in ("preset", "overrides") if getattr(self, key)]
        if given:
            raise ValueError(
                f"{', '.join(given)}: mode two_stage takes them in its proxy and retrain "
                "sections (proxy: {overrides: ...}, retrain: {preset: ..., overrides: ...})"
            )
        return self


class ResourcesSection(_Model):
    """Resources per trial (``gpu`` None means one GPU where CUDA exists, else none), and how
    many trials may run at once."""

    gpu: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cpu: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    # The most trials at once (None: as many as the cluster's CPUs hold): 1 runs one trial
    # after another, which an asynchronous scheduler then sees in a reproducible order.
    max_concurrent: int | None = Field(default=None, ge=1, le=MAX_TRIALS)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, value: float | None) -> float | None:
        # Ray packs fractions of one GPU, but cannot split a trial over 1.5 GPUs.
        if value is None or value == 0:
            return value
        if value < MIN_CPU or value > MAX_GPU or (value > 1 and not value.is_integer()):
            raise ValueError(
                f"expected 0, a fraction {MIN_CPU:g} to 1 or a whole number up to {MAX_GPU:g} "
                f"of GPUs per trial, got {value:g}"
            )
        return value

    @field_validator("cpu")
    @classmethod
    def _ray_share(cls, value: float) -> float:
        if not MIN_CPU <= value <= MAX_CPU:
            raise ValueError(
                f"expected {MIN_CPU:g} to {MAX_CPU:g} CPUs per trial (Ray rounds shares to "
                f"0.0001), got {value:g}"
            )
        return value


class RaySection(_Model):
    """Where Ray runs: None starts an embedded local Ray."""

    address: str | None = Field(default=None, min_length=1)


class StorageSection(_Model):
    """Where Tune state and results go, and the results database (None: SQLite there).

    ``path`` is a local directory (the run directory's parent) or a pyarrow filesystem URI
    (``s3://bucket/prefix``, ``gs://...``, ``file:///abs/path``): Tune's experiment state and
    the trials' checkpoints then go there, and the run directory (``--out``) gets each trial's
    files from it. Only the URI's form is checked here; reachability is checked at run time.

    ``database_url`` is a SQLAlchemy URL or ``env:VARIABLE``, the environment variable that
    holds one: a URL with a password written here ends up in ``sweep.json`` (then made the
    owner's only), a reference keeps it out of every file (`service.results.urls`).
    """

    path: str = Field(default="runs", min_length=1)
    database_url: str | None = Field(default=None, min_length=1)

    @field_validator("database_url")
    @classmethod
    def _variable_name(cls, value: str | None) -> str | None:
        if value is not None and value.startswith(ENV_PREFIX):
            try:
                env_reference(value.removeprefix(ENV_PREFIX))
            except ConfigError as error:
                raise ValueError(str(error).split(": ", 1)[1]) from None
        return value

    @field_validator("path")
    @classmethod
    def _known_uri(cls, value: str) -> str:
        if is_uri(value):
            check_storage_uri(value)
        return value

    @field_validator("database_url")
    @classmethod
    def _url_form(cls, value: str | None) -> str | None:
        # The form only: the database layer alone talks to databases (reachability at run time).
        if value is None or value.startswith(ENV_PREFIX):  # a reference: checked above
            return value
        if not DATABASE_URL_PATTERN.fullmatch(value):
            raise ValueError(
                f"expected a database URL DIALECT[+DRIVER]://..., e.g. sqlite:////abs/results.db "
                f"or postgresql+psycopg://user@host/db, or env:VARIABLE, got {excerpt(value)}"
            )
        return value


class ReportSection(_Model):
    """The columns of the report's 2-D and 3-D projections (checked against the sweep's
    plottable columns by the spec, which knows the grid keys)."""

    projection_2d: tuple[str, ...] = DEFAULT_PROJECTION_2D
    projection_3d: tuple[str, ...] = DEFAULT_PROJECTION_3D


class SweepSpec(_Model):
    """One sweep file, checked: every grid point builds a valid search config."""

    name: str
    dataset: str | None = None  # None: the search preset's
    ood_dataset: str | None = None  # None: the search preset's
    search: SearchSection = Field(default_factory=SearchSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    variants: dict[str, dict[str, Any]] = Field(default_factory=dict)  # name → overrides
    strategy: StrategySection = Field(default_factory=StrategySection)
    scheduler: SchedulerSection = Field(default_factory=SchedulerSection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    max_trials: int = Field(default=100, ge=1, le=MAX_TRIALS)
    ray: RaySection = Field(default_factory=RaySection)
    storage: StorageSection = Field(default_factory=StorageSection)
    report: ReportSection = Field(default_factory=ReportSection)
    tracking: TrackingSpec | None = None  # Ray Tune's logger callbacks (tracking.py)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.fullmatch(value):
            raise ValueError(
                "expected 1 to 64 letters, digits, '_', '-' or '.', starting with a letter "
                f"or digit, got {excerpt(value)}"
            )
        return value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> SweepSpec:
        from service.orchestration.checks import check_spec

        # Raised as ValueError with the full dotted path; load_sweep reports it as is.
        service_cap = (info.context or {}).get("service_cap")
        try:
            check_spec(self, service_cap)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self


# -- public functions ----------------------------------------------------------------------


def load_sweep(path: str | Path) -> SweepSpec:
    """The sweep in the YAML file ``path``, checked (its own ``max_trials`` the only cap)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the sweep file ({error})") from None
    return parse_sweep(text, source=str(path))


def parse_sweep(
    data: str | Mapping[str, Any], source: str = "<sweep>", service_cap: int | None = None
) -> SweepSpec:
    """A sweep from YAML text or an already parsed mapping; ``source`` names it in errors.

    ``service_cap`` is a service's own cap on trials; it is checked with the file's
    ``max_trials`` before any search config is built.
    """
    if isinstance(data, str):
        data = load_yaml(data, source)
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of sweep keys (name, search, grid, ...), "
            f"got {type(data).__name__}"
        )
    try:
        return SweepSpec.model_validate(data, context={"service_cap": service_cap})
    except ValidationError as error:
        raise ConfigError(f"{source}: {_one_line(error)}") from None


def is_uri(path: str) -> bool:
    """Whether a ``storage.path`` is a filesystem URI rather than a local directory."""
    return "://" in path


def check_storage_uri(uri: str) -> None:
    """Check the form of a storage URI without touching the network (ValueError otherwise)."""
    fix = (
        f"expected a local directory or a URI of {', '.join(STORAGE_SCHEMES)}, "
        "e.g. s3://bucket/prefix or file:///abs/path"
    )
    parts = split_uri(uri, fix, spaces="is not a valid URI (it holds spaces)")
    scheme = parts.scheme.lower()
    if scheme not in STORAGE_SCHEMES:
        raise ValueError(
            f"unknown filesystem scheme {excerpt(parts.scheme)} in {excerpt(uri)}; {fix}"
        )
    if scheme == "file":
        check_file_uri(uri, parts)
    elif not parts.netloc:
        raise ValueError(
            f"{excerpt(uri)}: no bucket or host; expected e.g. {scheme}://bucket/prefix"
        )


# -- error messages ---------------------------------------------------------------------


def _one_line(error: ValidationError) -> str:
    """The first validation error as ``dotted.path[i]: what was expected, got value``."""
    errors = error.errors(include_url=False)
    first = errors[0]
    path = _dotted(first["loc"])
    kind = first["type"]
    if kind == "extra_forbidden":
        valid = _valid_keys(first["loc"][:-1])
        message = "unknown key" + (f"; expected one of {', '.join(valid)}" if valid else "")
    elif kind == "missing":
        message = "missing; this key is required"
    elif kind == "value_error":
        message = first["msg"].removeprefix("Value error, ")
    else:
        message = f"{first['msg']}, got {excerpt(first['input'])}"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return f"{path}: {message}{more}" if path else f"{message}{more}"


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "[" in part:
            continue  # pydantic's name of a validator wrapper, not a key
        else:
            out += f".{part}" if out else str(part)
    return out


def _valid_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model at ``loc`` accepts, when ``loc`` leads to a model."""
    model: Any = SweepSpec
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        model = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
    return list(getattr(model, "model_fields", {}))
