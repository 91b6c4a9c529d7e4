"""The bodies the API answers with, named by purpose (request bodies are sweep files)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]
from pydantic import BaseModel, Field

from service.analysis.gallery import FigureName
from service.objectives import Direction

Status = Literal["pending", "running", "done", "failed", "cancelled"]


class Progress(BaseModel):
    """Trials by state (``stopped``: early, by the sweep's scheduler), and search epochs done
    over all trials."""

    total: int = 0
    pending: int = 0
    running: int = 0
    done: int = 0
    stopped: int = 0
    failed: int = 0
    epochs: int = 0


class SweepCreated(BaseModel):
    id: str


class SweepValidated(BaseModel):
    """A sweep file that would be accepted: the name it would run under, its trial count and
    the objectives its front is ranked on (name → min or max)."""

    name: str
    trials: int
    objectives: dict[str, str]


class SweepPublic(BaseModel):
    id: str
    name: str
    status: Status
    progress: Progress
    created_at: dt.datetime
    updated_at: dt.datetime
    job_id: str | None = None
    message: str | None = None
    spec: dict[str, Any] = Field(default_factory=dict)


class SweepsPublic(BaseModel):
    """A page of the sweeps: ``count`` of them here, ``total`` in all (``limit``/``offset``)."""

    data: list[SweepPublic]
    count: int
    total: int


class ResultsPublic(BaseModel):
    """A page of the results table: one record per trial, NaN as null; ``count`` records
    here, ``total`` in the table (``limit``/``offset``)."""

    columns: list[str]
    data: list[dict[str, Any]]
    count: int
    total: int


class ParetoPublic(BaseModel):
    """The front over ``objectives`` (name → min or max) of the trials that have them all."""

    objectives: dict[str, str]
    front: list[dict[str, Any]]
    ranks: dict[str, int]  # trial_id → nondomination rank (0 = front)
    hypervolume: float
    reference: list[float] | None
    knee: str | None  # trial_id of the knee point


class RobustHypervolume(BaseModel):
    """The hypervolume of one seed per configuration over the draws, and of all seeds."""

    pooled: float  # of every valid run together
    mean: float
    low: float  # the interval at ``confidence``: the draws' percentiles
    high: float
    confidence: float
    method: Literal["exact", "bootstrap"]
    draws: int
    reference: list[float] | None


class RobustDuplicate(BaseModel):
    """Finished trials that found one genotype."""

    genotype_hash: str
    trials: list[str]
    configurations: list[str]


class RobustSurface(BaseModel):
    percentile: float
    points: list[list[float]]  # [x, y], best x first


class RobustAttainment(BaseModel):
    """The seeds' attainment surfaces over two columns (one set per seed value)."""

    x: str
    y: str
    sets: list[str]
    surfaces: list[RobustSurface]


class RobustRuns(BaseModel):
    min: int
    max: int


class RobustPublic(BaseModel):
    """Which configurations (swept values without the seed) stay on the front when the seed
    changes (`service.analysis.robust`)."""

    objectives: dict[str, str]
    seed_key: str | None  # None when the results have no seed column
    keys: list[str]  # the configuration's columns
    method: Literal["exact", "bootstrap"]  # of the dominance probabilities
    combinations: int | None  # of one valid run per configuration; None past 2**53
    log10_combinations: float
    resamples: int  # draws behind the probabilities (all combinations when exact)
    random_seed: int
    runs: RobustRuns  # valid runs per configuration
    note: str | None  # e.g. each configuration has one run
    hypervolume: RobustHypervolume
    # Each backbone's, against the same reference, where the trials span several.
    hypervolume_by_backbone: dict[str, RobustHypervolume]
    configurations: list[dict[str, Any]]  # ranked by dominance_probability, with spreads
    duplicates: list[RobustDuplicate]
    twins: list[list[str]]  # configurations that found one genotype under every seed
    attainment: RobustAttainment | None


class ObjectivePublic(BaseModel):
    """One metric of the registry (`service.objectives`)."""

    name: str
    direction: Direction
    unit: str
    label: str
    kind: str  # "front", "search" or "other"


class ObjectivesPublic(BaseModel):
    data: list[ObjectivePublic]
    count: int


class FigurePublic(BaseModel):
    """A plotly figure as JSON, for ``Plotly.react(div, data, layout, config)``."""

    data: list[dict[str, Any]]
    layout: dict[str, Any]

    @classmethod
    def of(cls, fig: go.Figure) -> FigurePublic:
        """``fig`` as plotly writes its JSON (NaN as null), with its traces' uids, which the
        page's ``Plotly.react`` matches traces by."""
        return cls.model_validate(json.loads(fig.to_json(remove_uids=False)))


class SweepFiguresPublic(BaseModel):
    """The sweep page's figures over the finished trials, and what they were drawn with."""

    objectives: dict[str, str]  # of the front and ranks: name → min or max
    axes: list[str]  # columns a projection may plot (with a value in some finished trial)
    projection_2d: list[str]  # the columns of figures["projection_2d"]: x, y
    projection_3d: list[str]  # the columns of figures["projection_3d"]: x, y, z
    figures: dict[FigureName, FigurePublic]  # the figures the results allow
    notes: dict[str, str]  # section ("projection_2d", "heatmaps", ...) → why it lacks figures


class CompareSweep(BaseModel):
    """One sweep's front over the two objectives of a comparison."""

    id: str
    name: str
    label: str  # its traces' name in the figure: "A: <id>" or "B: <id>"
    finished: int  # finished trials
    front_size: int
    hypervolume: float  # against ``reference``
    reference: list[float] | None  # the sweep's own default reference; None without a front
    shared_hypervolume: float | None  # against ComparePublic.shared_reference
    # One seed per configuration, against the shared reference: the mean and its interval
    # (service.analysis.robust); None without a shared reference.
    seed_hypervolume: RobustHypervolume | None = None
    seed_note: str | None = None  # e.g. each configuration has one run: no interval width


class ComparePublic(BaseModel):
    """Two sweeps' fronts over the same two objectives, measured against one reference."""

    objectives: dict[str, str]  # x, then y: name → min or max
    sweeps: list[CompareSweep]
    shared_reference: list[float] | None  # the worse of the two references per objective
    figure: FigurePublic


class DatabaseHealth(BaseModel):
    ok: bool
    dialect: str  # sqlite, postgresql
    detail: str | None = None  # why not ok


class RayHealth(BaseModel):
    reachable: bool | None  # None: the embedded Ray starts with the first sweep
    address: str  # or what is wrong there


class LoopHealth(BaseModel):
    """The background loop that follows sweeps (service.api.manager)."""

    ok: bool
    alive: bool
    last_success: dt.datetime | None  # the last pass that listed the sweeps and tried them
    consecutive_failures: int  # passes in a row that failed as a whole
    failing_sweeps: int  # sweeps whose last refresh failed (their message says why)
    last_error: str | None


class Health(BaseModel):
    """``ok``, or ``unavailable`` (HTTP 503) with ``detail`` naming the part that is down:
    the database or the refresh loop. Ray unreachable is reported, not fatal: reads work."""

    status: Literal["ok", "unavailable"]
    detail: str | None = None
    database: DatabaseHealth
    ray: RayHealth
    loop: LoopHealth
    version: str


class Problem(BaseModel):
    """Every error answer, as RFC 9457's ``application/problem+json`` (`service.api.problems`).

    ``detail`` is the one line clients and the pages show, naming the field or the header;
    ``type`` tells the project's kinds of error apart (one per row of `service.errors.ERRORS`,
    ``about:blank`` for plain HTTP errors, whose ``title`` is the status phrase)."""

    type: str = Field(examples=["about:blank", "tag:e2rnas-sweeps,2026:unknown-sweep"])
    title: str = Field(examples=["Not Found"])
    status: int
    detail: str = Field(
        examples=["sweep_id: no sweep 'x' on this service; GET /api/sweeps lists them"]
    )
    instance: str = Field(examples=["/api/sweeps/x"])  # the request's path


PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem} for code in (400, 401, 403, 404, 409, 413, 415, 422, 503)
}
"""The error answers a route may give, for its OpenAPI ``responses``."""
