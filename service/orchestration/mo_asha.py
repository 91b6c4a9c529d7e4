"""Pareto-rank asynchronous successive halving (MO-ASHA), without Ray.

Asynchronous successive halving (ASHA; Li et al. 2020) stops a trial at a *rung* (after
``grace_period · reduction_factor**k`` epochs) unless it is among the best ``1/reduction_factor``
of the trials that have reached that rung so far. MO-ASHA (Schmucker et al. 2021,
"Multi-objective Asynchronous Successive Halving") ranks them on several objectives at once:
by non-dominated sorting, ties within a front broken by NSGA-II's crowding distance (the larger
first, a front's extreme points first of all), then by arrival at the rung.

The rule here, at a rung that ``n`` trials have reached (the new one included): the trial goes
on when its place in that order is among the first ``max(1, floor(n / reduction_factor))``,
and stops otherwise. The first trial at a rung always goes on, as in Ray Tune's ASHA.

This module is the whole decision: :class:`ParetoHalving` takes each trial's per-epoch metrics
and answers ``continue`` or ``stop``. The Ray Tune scheduler (``tuner``) and the replay of a
finished sweep feed it the same records, so a replay makes the decisions a real run makes. It
is hand-made because no maintained library offers it: Ray Tune's schedulers rank one metric,
Optuna's pruners do not prune multi-objective studies, and Syne Tune's MO-ASHA lives outside
Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from service.analysis.pareto import nondomination_ranks

__all__ = [
    "CONTINUE",
    "STOP",
    "Decision",
    "ParetoHalving",
    "crowding_distances",
    "milestones",
    "pareto_order",
    "replay",
]

CONTINUE: Literal["continue"] = "continue"
STOP: Literal["stop"] = "stop"


def milestones(grace_period: int, reduction_factor: float, max_epochs: int) -> tuple[int, ...]:
    """The rungs' epochs: ``ceil(grace_period · reduction_factor**k)`` below ``max_epochs`` (a
    trial that has run every epoch has nothing left to save)."""
    if grace_period < 1 or reduction_factor <= 1 or max_epochs < 1:
        raise ValueError(
            f"grace_period {grace_period} must be >= 1, reduction_factor {reduction_factor} "
            f"> 1 and max_epochs {max_epochs} >= 1"
        )
    found: list[int] = []
    k = 0
    while (epoch := math.ceil(grace_period * reduction_factor**k - 1e-9)) < max_epochs:
        if not found or epoch > found[-1]:
            found.append(epoch)
        k += 1
    return tuple(found)


def crowding_distances(points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """NSGA-II's crowding distance of each point of one front (rows: points, columns: objectives):
    per objective, the gap between a point's two neighbours in sorted order divided by the
    objective's range, summed; the extreme points of an objective get infinity. Fronts of one or
    two points are all extreme."""
    values = np.asarray(points, dtype=np.float64)
    count = len(values)
    distance = np.zeros(count)
    if count <= 2:
        return np.full(count, np.inf)
    for column in values.T:
        order = np.argsort(column, kind="stable")
        low, high = column[order[0]], column[order[-1]]
        distance[order[0]] = distance[order[-1]] = np.inf
        if high == low:
            continue
        gaps = (column[order[2:]] - column[order[:-2]]) / (high - low)
        distance[order[1:-1]] += gaps
    return distance


def pareto_order(points: npt.ArrayLike) -> list[int]:
    """Row indices from best to worst, all objectives minimised: by non-dominated rank, then by
    crowding distance within the front (larger first), then by row (earlier first). Rows with a
    missing or infinite value come last, in row order."""
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"points: expected rows of objective values, got shape {values.shape}")
    finite = np.isfinite(values).all(axis=1)
    rows = np.flatnonzero(finite)
    order: list[int] = []
    if len(rows):
        minimised = {str(i): "min" for i in range(values.shape[1])}
        ranks = nondomination_ranks(values[rows], minimised)
        for rank in sorted(set(ranks.tolist())):
            members = rows[ranks == rank]
            crowding = crowding_distances(values[members])
            keyed = sorted(
                zip(members.tolist(), crowding.tolist(), strict=True),
                key=lambda item: (-item[1], item[0]),
            )
            order.extend(row for row, _ in keyed)
    order.extend(np.flatnonzero(~finite).tolist())
    return order


@dataclass(frozen=True)
class Decision:
    """What the rule decided for ``trial`` on reaching the rung at ``milestone`` epochs: its
    ``place`` (0 = best) among the ``reached`` trials there, of which ``kept`` go on."""

    trial: str
    milestone: int
    action: Literal["continue", "stop"]
    place: int
    reached: int
    kept: int


class ParetoHalving:
    """MO-ASHA's decisions for one sweep (see the module docstring).

    ``metrics`` maps each ranked metric to its direction (``min`` or ``max``, from the
    objectives registry); ``max_epochs`` is a trial's full length. :meth:`on_result` takes a
    trial's record after an epoch and answers :data:`CONTINUE` or :data:`STOP`;
    :attr:`decisions` keeps every decision, :meth:`state` and :meth:`from_state` carry the rungs
    through a JSON file.
    """

    def __init__(
        self,
        metrics: Mapping[str, str],
        grace_period: int,
        reduction_factor: float,
        max_epochs: int,
    ) -> None:
        bad = {name: d for name, d in metrics.items() if d not in ("min", "max")}
        if not metrics or bad:
            raise ValueError(f"metrics: expected names with 'min' or 'max', got {dict(metrics)}")
        self.metrics = dict(metrics)
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.max_epochs = max_epochs
        self.milestones = milestones(grace_period, reduction_factor, max_epochs)
        # milestone -> trial -> its values there, minimised, in order of arrival
        self.rungs: dict[int, dict[str, list[float]]] = {m: {} for m in self.milestones}
        self.decisions: list[Decision] = []
        self.stopped: dict[str, int] = {}  # trial -> the epoch it was stopped at

    def _vector(self, values: Mapping[str, Any]) -> list[float]:
        out = []
        for name, direction in self.metrics.items():
            value = values.get(name)
            number = float(value) if isinstance(value, int | float) else math.nan
            out.append(-number if direction == "max" else number)
        return out

    def on_result(self, trial: str, epoch: int, values: Mapping[str, Any]) -> str:
        """The decision after ``trial``'s epoch ``epoch`` (1-based) with metrics ``values``."""
        if trial in self.stopped:
            return STOP
        for milestone in self.milestones:
            if epoch < milestone or trial in self.rungs[milestone]:
                continue
            rung = self.rungs[milestone]
            rung[trial] = self._vector(values)
            names = list(rung)
            place = pareto_order([rung[name] for name in names]).index(names.index(trial))
            kept = max(1, math.floor(len(names) / self.reduction_factor + 1e-9))
            action = CONTINUE if place < kept else STOP
            self.decisions.append(Decision(trial, milestone, action, place, len(names), kept))
            if action == STOP:
                self.stopped[trial] = epoch
                return STOP
        return CONTINUE

    def state(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "grace_period": self.grace_period,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
            "rungs": {str(m): rung for m, rung in self.rungs.items()},
            "decisions": [asdict(d) for d in self.decisions],
            "stopped": self.stopped,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ParetoHalving:
        rule = cls(
            state["metrics"], state["grace_period"], state["reduction_factor"], state["max_epochs"]
        )
        rule.rungs = {int(m): dict(rung) for m, rung in state["rungs"].items()}
        rule.decisions = [Decision(**d) for d in state["decisions"]]
        rule.stopped = {str(k): int(v) for k, v in state["stopped"].items()}
        return rule


def replay(
    rule: ParetoHalving, records: Sequence[tuple[str, int, Mapping[str, Any]]]
) -> dict[str, int]:
    """Feed ``(trial, epoch, metrics)`` records in the order a run reported them; returns the
    epochs each trial would have run (its stop epoch, or its last record)."""
    ran: dict[str, int] = {}
    for trial, epoch, values in records:
        if trial in rule.stopped:
            continue
        ran[trial] = epoch
        rule.on_result(trial, epoch, values)
    return ran
