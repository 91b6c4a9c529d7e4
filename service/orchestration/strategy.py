"""The sweep file's ``strategy`` and ``scheduler`` sections: which trials run, and which stop
early (:mod:`service.orchestration.spec` holds the whole file's schema).

``strategy`` is ``grid`` (every grid point) or ``optuna`` (L and F sampled in ranges, TPE or
NSGA-II, on the front metrics; its study in memory, or in an Optuna storage that
``optuna-dashboard`` opens while the sweep runs, :func:`optuna_search_args`); ``scheduler``
is ``fifo`` (every trial to its last epoch) or ``mo_asha`` (Pareto-rank successive halving
on what a search reports every epoch, :mod:`service.orchestration.mo_asha`). What these
sections need of the search configs (the grace period inside the search, the ranked losses
measured) is checked by :mod:`service.orchestration.checks`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from search_core.config import BOUND_LIMITS
from service.objectives import EPOCH_METRICS, EVALUATED_OBJECTIVES
from service.results.urls import ENV_PREFIX, has_password

__all__ = [
    "BOUND_KEYS",
    "DEFAULT_SCHEDULER_METRICS",
    "MAX_TRIALS",
    "Range",
    "SchedulerSection",
    "StrategySection",
    "optuna_search_args",
]

BOUND_KEYS = ("L", "F")
MAX_TRIALS = 10_000
"""The most trials one sweep file may ask for (``max_trials``); a service caps lower."""
DEFAULT_SCHEDULER_METRICS = ("val_loss", "adv_loss", "ood_loss", "params_m", "flops_m")
"""What ``scheduler.kind: mo_asha`` ranks on unless ``metrics`` says otherwise."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    num_samples: int | None = Field(default=None, ge=1, le=MAX_TRIALS)  # optuna: per grid point
    L: Range | None = None  # optuna only, M params
    F: Range | None = None  # optuna only, M multiply-adds
    # optuna only; default all five front metrics; the paper-protocol measures may join them
    objectives: tuple[str, ...] | None = None
    seed: int | None = None  # optuna only: the sampler's seed
    # optuna only: an Optuna RDB storage (SQLAlchemy URL, or env:VARIABLE for one with a
    # password) to keep the search's study in; default in memory
    storage: str | None = Field(default=None, min_length=1, max_length=2000)
    # optuna only, with storage: default the sweep's id (a run directory's own; a resume
    # continues it)
    study_name: str | None = Field(default=None, min_length=1, max_length=512)

    @field_validator("storage")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None or value.startswith(ENV_PREFIX):
            return value
        if "://" not in value:
            raise ValueError(
                "expected an SQLAlchemy URL such as sqlite:////abs/path/optuna.db"
                ", or env:VARIABLE naming a variable that holds one"
            )
        # A sweep file's spec is copied into sweep.json, the database and API answers.
        if has_password(value):
            raise ValueError(
                "a URL with a password would be copied into sweep.json and the API's answers; "
                "expected env:VARIABLE naming the environment variable that holds it"
            )
        return value

    @field_validator("objectives")
    @classmethod
    def _known_metrics(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        unknown = [name for name in value if name not in EVALUATED_OBJECTIVES]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(
                f"expected distinct names among {', '.join(EVALUATED_OBJECTIVES)}, "
                f"got {list(value)}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StrategySection:
        optuna_only = ("sampler", "num_samples", "L", "F", "objectives", "seed", "storage")
        if self.study_name is not None and self.storage is None:
            raise ValueError("study_name: names the study in storage; give storage too")
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
            for key in BOUND_KEYS:
                high = getattr(self, key).high
                if high > BOUND_LIMITS[key]:
                    raise ValueError(
                        f"{key}.high: got {high:g}; expected at most {BOUND_LIMITS[key]:g} "
                        f"(the largest lower bound {key} takes)"
                    )
        return self

    @property
    def ranges(self) -> dict[str, tuple[float, float]]:
        """The keys the strategy samples in a range, with the range: L and F under optuna."""
        bounds = [(key, getattr(self, key)) for key in BOUND_KEYS]
        return {k: (b.low, b.high) for k, b in bounds if self.kind == "optuna" and b is not None}


def optuna_search_args(strategy: StrategySection, sweep_id: str) -> dict[str, Any]:
    """The arguments of Ray Tune's ``OptunaSearch`` that the section decides: the sampler
    (TPE or NSGA-II, seeded) and, with ``storage``, the Optuna storage and the study's name
    (default ``sweep_id``). OptunaSearch loads a study of that name where there is one, so a
    resumed sweep goes on with its study; a storage named by ``env:VARIABLE`` pickles as the
    reference into Tune's experiment (:func:`service.analysis.optuna_study.open_storage`).
    Empty for the grid strategy, whose drivers need not import Optuna."""
    if strategy.kind != "optuna":
        return {}
    import optuna

    sampler: Any
    if strategy.sampler == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=strategy.seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=strategy.seed)
    if strategy.storage is None:
        return {"sampler": sampler}
    from service.analysis.optuna_study import open_storage

    storage = open_storage(strategy.storage, "strategy.storage")
    return {"sampler": sampler, "storage": storage, "study_name": strategy.study_name or sweep_id}


class SchedulerSection(_Model):
    """When trials stop early: ``fifo`` runs every trial to its last epoch; ``mo_asha`` stops
    those that rank low on ``metrics`` at the rungs of successive halving (after
    ``grace_period · reduction_factor**k`` epochs; :mod:`service.orchestration.mo_asha`),
    ties within a front broken by crowding distance or by hypervolume contribution.
    ``metrics`` are what a search reports every epoch, each ranked in its direction of the
    objectives registry. That the grace period fits the search's epochs is checked with the
    search configs (:mod:`service.orchestration.checks`)."""

    kind: Literal["fifo", "mo_asha"] = "fifo"
    metrics: tuple[str, ...] | None = None  # mo_asha only; default val_loss, adv_loss,
    # ood_loss, params_m, flops_m
    grace_period: int | None = Field(default=None, ge=1, le=100_000)  # mo_asha; default 1
    reduction_factor: float | None = Field(default=None, allow_inf_nan=False)  # default 3
    # mo_asha: what orders the trials of one front at a rung; default crowding
    tie_break: Literal["crowding", "hypervolume"] | None = None
    # mo_asha: only the first rungs of the geometric series (1: a single halving); default all
    max_rungs: int | None = Field(default=None, ge=1, le=100)

    @field_validator("metrics")
    @classmethod
    def _epoch_metrics(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        unknown = [name for name in value if name not in EPOCH_METRICS]
        if unknown or not value or len(set(value)) != len(value):
            raise ValueError(
                f"expected distinct names among what a search reports every epoch "
                f"({', '.join(EPOCH_METRICS)}), got {list(value)}"
            )
        return value

    @field_validator("reduction_factor")
    @classmethod
    def _halving(cls, value: float | None) -> float | None:
        if value is not None and not 1 < value <= 1000:
            raise ValueError(
                f"expected a factor > 1 (each rung keeps 1/reduction_factor of the trials "
                f"that reach it; 2 to 4 are usual), got {value:g}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SchedulerSection:
        if self.kind == "fifo":
            given = [
                key
                for key in ("metrics", "grace_period", "reduction_factor", "tie_break", "max_rungs")
                if getattr(self, key) is not None
            ]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: used only by kind mo_asha; fifo runs every trial "
                    "to its last epoch"
                )
        return self

    @property
    def ranked(self) -> tuple[str, ...]:
        """The metrics MO-ASHA ranks trials on."""
        return self.metrics or DEFAULT_SCHEDULER_METRICS

    @property
    def grace(self) -> int:
        return self.grace_period or 1

    @property
    def factor(self) -> float:
        return self.reduction_factor or 3.0

    @property
    def ties(self) -> str:
        return self.tie_break or "crowding"
