"""The bodies the API answers with, named by purpose (request bodies are sweep files)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["pending", "running", "done", "failed", "cancelled"]


class Progress(BaseModel):
    """Trials by state, and search epochs done over all trials."""

    total: int = 0
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    epochs: int = 0


class SweepCreated(BaseModel):
    id: str


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
    data: list[SweepPublic]
    count: int


class ResultsPublic(BaseModel):
    """The results table: one record per trial, NaN as null."""

    columns: list[str]
    data: list[dict[str, Any]]
    count: int


class ParetoPublic(BaseModel):
    """The front over ``objectives`` (name → min or max) of the trials that have them all."""

    objectives: dict[str, str]
    front: list[dict[str, Any]]
    ranks: dict[str, int]  # trial_id → nondomination rank (0 = front)
    hypervolume: float
    reference: list[float] | None
    knee: str | None  # trial_id of the knee point


class Health(BaseModel):
    status: Literal["ok"]
    database: str
    ray: str
    version: str


class Problem(BaseModel):
    """Every 4xx answer: what was wrong, naming the field or the header."""

    detail: str
