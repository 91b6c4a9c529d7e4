"""The sweep file schema: pydantic models of a ``sweeps/*.yaml`` file, checked before anything runs.

A sweep names its data, a search preset with overrides, the evaluation that follows each
search (``none``, ``proxy`` or ``retrain``), a grid of config values (``L``, ``F``, ``seed`` and
any other :class:`~search_core.config.SearchConfig` key), a search strategy (``grid``, or
``optuna`` multi-objective over ranges of L and F), resources per trial, a cap on the number of
trials, the Ray address, where results are stored (a local directory, or a pyarrow filesystem
URI such as ``s3://bucket/prefix`` for a cluster without a shared filesystem) and the axes of
the report's projections. Unknown keys are rejected at every
level. Every bad input raises :class:`~search_core.errors.ConfigError` with one line that
names the file and the dotted path of the bad field, e.g.
``sweeps/x.yaml: grid.L[1]: expected a bound >= 0, got -2``.

One trial's search config is layered, preset < ``search.overrides`` < top-level ``dataset`` and
``ood_dataset`` < the grid point (:func:`search_config_for`). Every grid point is built once at
validation time, so a sweep that loads cannot fail on its configuration later.

With ``strategy.kind: optuna``, L and F come from ``strategy.L`` and ``strategy.F`` and must not
be in the grid; the other grid keys still multiply: ``num_samples`` trials per grid point.
"""

from __future__ import annotations

import itertools
import math
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from search_core.config import PRESETS, SearchConfig, preset
from search_core.errors import ConfigError
from search_core.eval_config import (
    EVAL_PRESETS,
    EvalConfig,
    eval_preset,
    proxy_config,
    retrain_config,
)

FRONT_METRICS = ("test_error", "params_m", "flops_m", "pgd_acc", "ood_aupr")
BOUND_KEYS = ("L", "F")
SEARCH_OBJECTIVES = ("val_loss", "ood_loss", "adv_loss", "nop_loss", "flops_loss")
PROJECTION_2D = ("test_error", "params_m")
PROJECTION_3D = ("test_error", "params_m", "pgd_acc")
PLOTTABLE = (
    *FRONT_METRICS,
    *SEARCH_OBJECTIVES,
    "L",
    "F",
    "seed",
    "epochs",
    "latency_ms",
    "search_seconds",
    "eval_seconds",
    "front_rank",
)
"""Results columns a projection may plot in any sweep; numeric grid keys are added per sweep."""
STORAGE_SCHEMES = ("file", "s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss")
"""URI schemes of the pyarrow filesystems a sweep may store its Tune state on."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SweepSyntaxError(ConfigError):
    """The sweep file is not YAML at all (as opposed to YAML with a bad field)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchSection(_Model):
    """The search: a preset of :data:`search_core.config.PRESETS` and checked overrides."""

    preset: str = "paper"
    overrides: dict[str, Any] = Field(default_factory=dict)


class EvaluationSection(_Model):
    """What follows each search: nothing, a cheap proxy, or the paper's full retrain."""

    mode: Literal["none", "proxy", "retrain"] = "proxy"
    preset: str | None = None  # None: the search's preset name, if an evaluation preset has it
    overrides: dict[str, Any] = Field(default_factory=dict)


class Range(_Model):
    """A closed interval ``[low, high]`` of a lower bound, in the bound's units."""

    low: float = Field(ge=0, allow_inf_nan=False)
    high: float = Field(ge=0, allow_inf_nan=False)

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.low < self.high:
            raise ValueError(f"expected low < high, got low={self.low:g}, high={self.high:g}")
        return self


class StrategySection(_Model):
    """``grid`` tries every grid point; ``optuna`` samples L and F in ranges (TPE or NSGA-II)
    to improve the front metrics of ``objectives``."""

    kind: Literal["grid", "optuna"] = "grid"
    sampler: Literal["tpe", "nsga2"] | None = None  # optuna only; default tpe
    num_samples: int | None = Field(default=None, ge=1)  # optuna only: trials per grid point
    L: Range | None = None  # optuna only, M params
    F: Range | None = None  # optuna only, M multiply-adds
    objectives: tuple[str, ...] | None = None  # optuna only; default all five front metrics
    seed: int | None = None  # optuna only: the sampler's seed

    @field_validator("objectives")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        unknown = [name for name in value if name not in FRONT_METRICS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(
                f"expected distinct names among {', '.join(FRONT_METRICS)}, got {list(value)}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StrategySection:
        optuna_only = ("sampler", "num_samples", "L", "F", "objectives", "seed")
        if self.kind == "grid":
            given = [key for key in optuna_only if getattr(self, key) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: used only by kind optuna; the grid strategy takes "
                    "L and F from the grid"
                )
        else:
            needed = [key for key in ("num_samples", "L", "F") if getattr(self, key) is None]
            if needed:
                raise ValueError(f"kind optuna needs {', '.join(needed)}")
        return self


class ResourcesSection(_Model):
    """Resources per trial; ``gpu`` None means one GPU where CUDA exists, else none."""

    gpu: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    cpu: float = Field(default=1.0, gt=0, allow_inf_nan=False)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, value: float | None) -> float | None:
        # Ray packs fractions of one GPU, but cannot split a trial over 1.5 GPUs.
        if value is not None and value > 1 and not value.is_integer():
            raise ValueError(f"expected a fraction up to 1 or a whole number, got {value:g}")
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
    """

    path: str = Field(default="runs", min_length=1)
    database_url: str | None = Field(default=None, min_length=1)

    @field_validator("path")
    @classmethod
    def _known_uri(cls, value: str) -> str:
        if is_uri(value):
            check_storage_uri(value)
        return value


class ReportSection(_Model):
    """The columns of the report's 2-D and 3-D projections (checked against the sweep's
    plottable columns by the spec, which knows the grid keys)."""

    projection_2d: tuple[str, ...] = PROJECTION_2D
    projection_3d: tuple[str, ...] = PROJECTION_3D


class SweepSpec(_Model):
    """One sweep file, checked: every grid point builds a valid search config."""

    name: str
    dataset: str | None = None  # None: the search preset's
    ood_dataset: str | None = None  # None: the search preset's
    search: SearchSection = Field(default_factory=SearchSection)
    evaluation: EvaluationSection = Field(default_factory=EvaluationSection)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    strategy: StrategySection = Field(default_factory=StrategySection)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    max_trials: int = Field(default=100, ge=1)
    ray: RaySection = Field(default_factory=RaySection)
    storage: StorageSection = Field(default_factory=StorageSection)
    report: ReportSection = Field(default_factory=ReportSection)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                "expected 1 to 64 letters, digits, '_', '-' or '.', starting with a letter "
                f"or digit, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        # Raised as ValueError with the full dotted path; load_sweep reports it as is.
        try:
            _check_spec(self)
        except ConfigError as error:
            raise ValueError(str(error)) from None
        return self


# -- public functions ----------------------------------------------------------------------


def load_sweep(path: str | Path) -> SweepSpec:
    """The sweep in the YAML file ``path``, checked."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the sweep file ({error})") from None
    return parse_sweep(text, source=str(path))


def parse_sweep(data: str | Mapping[str, Any], source: str = "<sweep>") -> SweepSpec:
    """A sweep from YAML text or an already parsed mapping; ``source`` names it in errors."""
    if isinstance(data, str):
        try:
            data = yaml.safe_load(data)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
            problem = error.problem or error.context or "cannot parse"
            raise SweepSyntaxError(f"{source}: malformed YAML: {where}{problem}") from None
        except yaml.YAMLError as error:
            raise SweepSyntaxError(f"{source}: malformed YAML: {error}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: expected a mapping of sweep keys (name, search, grid, ...), "
            f"got {type(data).__name__}"
        )
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_one_line(error)}") from None


def grid_points(spec: SweepSpec) -> list[dict[str, Any]]:
    """Every combination of the grid's values: the first key varies slowest, each key's
    values in the file's order. An empty grid has one point, ``{}``."""
    keys = list(spec.grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*(spec.grid[k] for k in keys))
    ]


def trial_count(spec: SweepSpec) -> int:
    """How many trials the sweep runs: the grid size, times ``num_samples`` under optuna."""
    size = math.prod(len(values) for values in spec.grid.values())
    return size * (spec.strategy.num_samples or 1) if spec.strategy.kind == "optuna" else size


def search_config_for(spec: SweepSpec, point: Mapping[str, Any]) -> SearchConfig:
    """The search config of one trial: preset < overrides < dataset keys < ``point``."""
    return preset(spec.search.preset, {**_base_overrides(spec), **point})


def evaluation_preset(spec: SweepSpec) -> str:
    """The evaluation preset: as given, else the search preset's name if it has one."""
    if spec.evaluation.preset is not None:
        return spec.evaluation.preset
    return spec.search.preset if spec.search.preset in EVAL_PRESETS else "paper"


def eval_config_for(spec: SweepSpec, search: SearchConfig) -> EvalConfig | None:
    """The evaluation after ``search``'s trial, with the evaluation overrides; None for
    ``mode: none``."""
    if spec.evaluation.mode == "none":
        return None
    if spec.evaluation.mode == "proxy":
        base = proxy_config(search)
    else:
        base = retrain_config(search, evaluation_preset(spec))
    return base.replace(**spec.evaluation.overrides)


def trial_resources(spec: SweepSpec, cuda_available: bool | None = None) -> dict[str, float]:
    """Ray resources of one trial; ``gpu`` unset means 1 if CUDA is available, else 0.

    CUDA is probed here, when asked, never at import.
    """
    gpu = spec.resources.gpu
    if gpu is None:
        if cuda_available is None:
            import torch

            cuda_available = bool(torch.cuda.is_available())
        gpu = 1.0 if cuda_available else 0.0
    return {"cpu": spec.resources.cpu, "gpu": gpu}


def is_uri(path: str) -> bool:
    """Whether a ``storage.path`` is a filesystem URI rather than a local directory."""
    return "://" in path


def check_storage_uri(uri: str) -> None:
    """Check the form of a storage URI without touching the network (ValueError otherwise)."""
    fix = (
        f"expected a local directory or a URI of {', '.join(STORAGE_SCHEMES)}, "
        "e.g. s3://bucket/prefix or file:///abs/path"
    )
    if any(c.isspace() for c in uri):
        raise ValueError(f"{uri!r} is not a valid URI (it holds spaces); {fix}")
    try:
        parts = urllib.parse.urlsplit(uri)
    except ValueError as error:
        raise ValueError(f"{uri!r} is not a valid URI ({error}); {fix}") from None
    scheme = parts.scheme.lower()
    if scheme not in STORAGE_SCHEMES:
        raise ValueError(f"unknown filesystem scheme {parts.scheme!r} in {uri!r}; {fix}")
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ValueError(f"{uri!r}: a file URI needs an absolute path, file:///abs/path")
    elif not parts.netloc:
        raise ValueError(f"{uri!r}: no bucket or host; expected e.g. {scheme}://bucket/prefix")


def plottable_columns(spec: SweepSpec) -> tuple[str, ...]:
    """The results columns a report projection of this sweep may plot: :data:`PLOTTABLE` and
    every grid key whose values are all numbers."""
    numeric = [
        key
        for key, values in spec.grid.items()
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    ]
    return tuple(dict.fromkeys((*PLOTTABLE, *numeric)))


def check_axes(
    names: tuple[str, ...] | list[str], size: int, field: str, choices: tuple[str, ...]
) -> tuple[str, ...]:
    """``names`` as a projection's axes: ``size`` distinct names among ``choices``; the
    ConfigError names ``field`` (and the index of a bad name) and lists the choices."""
    if len(names) != size:
        example = ",".join(PROJECTION_2D if size == 2 else PROJECTION_3D)
        raise ConfigError(
            f"{field}: expected {size} column names, got {len(names)} ({list(names)}); "
            f"e.g. {example}"
        )
    for i, name in enumerate(names):
        if name not in choices:
            raise ConfigError(
                f"{field}[{i}]: unknown column {name!r}; expected one of {', '.join(choices)}"
            )
        if name in names[:i]:
            raise ConfigError(
                f"{field}[{i}]: {name!r} is repeated; choose {size} different columns"
            )
    return tuple(names)


# -- checks ----------------------------------------------------------------------------------


def _base_overrides(spec: SweepSpec) -> dict[str, Any]:
    data = {"dataset": spec.dataset, "ood_dataset": spec.ood_dataset}
    return {**spec.search.overrides, **{k: v for k, v in data.items() if v is not None}}


def _relative(message: str, key: str) -> str:
    """A core error message without its leading ``key:``, to sit under a longer path."""
    prefix = f"{key}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _check_spec(spec: SweepSpec) -> None:
    search_preset = spec.search.preset
    if search_preset not in PRESETS:
        raise ConfigError(
            f"search.preset: unknown preset {search_preset!r}; expected one of "
            + ", ".join(PRESETS)
        )
    for key in ("dataset", "ood_dataset"):
        if getattr(spec, key) is not None and key in spec.search.overrides:
            raise ConfigError(
                f"search.overrides.{key}: also set at the top level ({key}: "
                f"{getattr(spec, key)}); set it in one place"
            )
    for key, value in spec.search.overrides.items():
        _check_value(f"search.overrides.{key}", search_preset, {}, key, value)
    for key in ("dataset", "ood_dataset"):
        if getattr(spec, key) is not None:
            _check_value(key, search_preset, {}, key, getattr(spec, key))
    base = _base_overrides(spec)
    try:
        preset(search_preset, base)
    except ConfigError as error:
        raise ConfigError(f"search.overrides: {error}") from None

    _check_evaluation(spec)
    _check_grid(spec, base)

    count = trial_count(spec)
    if count > spec.max_trials:
        per_point = (
            f" ({spec.strategy.num_samples} samples per grid point)"
            if spec.strategy.kind == "optuna"
            else ""
        )
        raise ConfigError(
            f"max_trials: the sweep has {count} trials{per_point}, over max_trials = "
            f"{spec.max_trials}; shrink the grid or raise max_trials"
        )
    for point in grid_points(spec):
        try:
            search_config_for(spec, point)
        except ConfigError as error:
            raise ConfigError(f"grid: the point {point}: {error}") from None
    choices = plottable_columns(spec)
    check_axes(spec.report.projection_2d, 2, "report.projection_2d", choices)
    check_axes(spec.report.projection_3d, 3, "report.projection_3d", choices)


def _check_value(path: str, name: str, base: Mapping[str, Any], key: str, value: Any) -> None:
    try:
        preset(name, {**base, key: value})
    except ConfigError as error:
        raise ConfigError(f"{path}: {_relative(str(error), key)}") from None


def _check_evaluation(spec: SweepSpec) -> None:
    evaluation = spec.evaluation
    if evaluation.preset is not None and evaluation.preset not in EVAL_PRESETS:
        raise ConfigError(
            f"evaluation.preset: unknown preset {evaluation.preset!r}; expected one of "
            + ", ".join(EVAL_PRESETS)
        )
    name = evaluation_preset(spec)
    for key, value in evaluation.overrides.items():
        try:
            eval_preset(name, {key: value})
        except ConfigError as error:
            raise ConfigError(f"evaluation.overrides.{key}: {_relative(str(error), key)}") from None
    if evaluation.mode == "none" and spec.strategy.kind == "optuna":
        raise ConfigError(
            "strategy.kind: optuna improves the front metrics, which evaluation.mode none "
            "does not measure; choose proxy or retrain"
        )


def _check_grid(spec: SweepSpec, base: Mapping[str, Any]) -> None:
    fields = set(SearchConfig.__dataclass_fields__)
    if spec.strategy.kind == "grid":
        missing = [key for key in BOUND_KEYS if key not in spec.grid]
        if missing:
            raise ConfigError(
                f"grid: no {' or '.join(missing)}; a grid sweep lists the lower bounds it tries, "
                "e.g. L: [2.5, 3.5]"
            )
    for key, values in spec.grid.items():
        path = f"grid.{key}"
        if key not in fields:
            _check_value(path, spec.search.preset, base, key, None)
        if spec.strategy.kind == "optuna" and key in BOUND_KEYS:
            raise ConfigError(
                f"{path}: optuna samples {key} in strategy.{key}; leave it out of the grid"
            )
        if not values:
            raise ConfigError(f"{path}: expected at least one value, got []")
        for i, value in enumerate(values):
            if not isinstance(value, bool | int | float | str):
                raise ConfigError(
                    f"{path}[{i}]: expected a number, string or boolean, got {value!r}"
                )
            if key in BOUND_KEYS and (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value < 0
            ):
                raise ConfigError(f"{path}[{i}]: expected a bound >= 0, got {value!r}")
            _check_value(f"{path}[{i}]", spec.search.preset, base, key, value)
        repeated = [v for i, v in enumerate(values) if v in values[:i]]
        if repeated:
            raise ConfigError(f"{path}: repeated value {repeated[0]!r}; list each value once")


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
        message = f"{first['msg']}, got {first['input']!r}"
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
