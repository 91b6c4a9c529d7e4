"""Pareto-rank asynchronous successive halving (MO-ASHA), without Ray.

Asynchronous successive halving (ASHA; Li et al. 2020) stops a trial at a *rung* (after
``grace_period · reduction_factor**k`` epochs) unless it is among the best ``1/reduction_factor``
of the trials that have reached that rung so far. MO-ASHA (Schmucker et al. 2021,
"Multi-objective Asynchronous Successive Halving") ranks them on several objectives at once:
by non-dominated sorting, ties within a front broken by NSGA-II's crowding distance (the larger
first, a front's extreme points first of all) or by hypervolume contribution (the larger first,
objectives scaled over the front), then by arrival at the rung.

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

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt

from service.analysis.pareto import nondomination_ranks
from service.files import write_json_atomically
from service.objectives import directions
from service.orchestration.points import search_epochs
from service.orchestration.rundir import (
    SCHEDULER_FILE,
    TRIALS_DIR,
    read_scheduler_state,
    trial_key,
    trial_name,
)
from service.orchestration.spec import SweepSpec

__all__ = [
    "CONTINUE",
    "STOP",
    "Decision",
    "ParetoHalving",
    "SweepRungs",
    "crowding_distances",
    "hypervolume_contributions",
    "milestones",
    "pareto_order",
    "replay",
    "rule_for",
]

logger = logging.getLogger(__name__)
TIE_BREAKS = ("crowding", "hypervolume")
REFERENCE_OFFSET = 0.1  # the reference point of hypervolume_contributions, past the scaled worst
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


def hypervolume_contributions(points: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Each point's exclusive hypervolume within one front (rows: points, columns: objectives,
    minimised): what the front's hypervolume loses without it. Each objective is scaled to
    [0, 1] over the front (a constant one to 0) and the reference point is 1.1 in each, so
    that no unit outweighs another and the extreme points contribute too."""
    values = np.asarray(points, dtype=np.float64)
    if len(values) == 0:
        return np.zeros(0)
    low, high = values.min(axis=0), values.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    scaled = (values - low) / span
    reference = np.full(values.shape[1], 1.0 + REFERENCE_OFFSET)
    if values.shape[1] == 1:  # moocore wants two objectives; one is a line
        ordered = np.sort(scaled[:, 0])
        second = ordered[1] if len(ordered) > 1 else reference[0]
        return np.where(scaled[:, 0] == ordered[0], second - ordered[0], 0.0)
    return np.asarray(moocore.hv_contributions(scaled, ref=reference), dtype=np.float64)


def pareto_order(points: npt.ArrayLike, tie_break: str = "crowding") -> list[int]:
    """Row indices from best to worst, all objectives minimised: by non-dominated rank, then
    within the front by crowding distance (``tie_break="crowding"``) or by hypervolume
    contribution (``"hypervolume"``), larger first, then by row (earlier first). Rows with a
    missing or infinite value come last, in row order."""
    values = np.asarray(points, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"points: expected rows of objective values, got shape {values.shape}")
    if tie_break not in TIE_BREAKS:
        raise ValueError(f"tie_break: expected one of {', '.join(TIE_BREAKS)}, got {tie_break!r}")
    finite = np.isfinite(values).all(axis=1)
    rows = np.flatnonzero(finite)
    order: list[int] = []
    if len(rows):
        minimised = {str(i): "min" for i in range(values.shape[1])}
        ranks = nondomination_ranks(values[rows], minimised)
        measure = crowding_distances if tie_break == "crowding" else hypervolume_contributions
        for rank in sorted(set(ranks.tolist())):
            members = rows[ranks == rank]
            crowding = measure(values[members])
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
    objectives registry); ``max_epochs`` is a trial's full length; ``max_rungs`` keeps only
    the first rungs of the geometric series (1: one halving). :meth:`on_result` takes a
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
        tie_break: str = "crowding",
        max_rungs: int | None = None,
    ) -> None:
        if tie_break not in TIE_BREAKS:
            raise ValueError(
                f"tie_break: expected one of {', '.join(TIE_BREAKS)}, got {tie_break!r}"
            )
        self.tie_break = tie_break
        bad = {name: d for name, d in metrics.items() if d not in ("min", "max")}
        if not metrics or bad:
            raise ValueError(f"metrics: expected names with 'min' or 'max', got {dict(metrics)}")
        self.metrics = dict(metrics)
        self.grace_period = grace_period
        self.reduction_factor = reduction_factor
        self.max_epochs = max_epochs
        if max_rungs is not None and max_rungs < 1:
            raise ValueError(f"max_rungs: expected None or at least 1, got {max_rungs}")
        self.max_rungs = max_rungs
        found = milestones(grace_period, reduction_factor, max_epochs)
        self.milestones = found if max_rungs is None else found[:max_rungs]
        # milestone -> trial -> its values there, minimised, in order of arrival
        self.rungs: dict[int, dict[str, list[float]]] = {m: {} for m in self.milestones}
        self.decisions: list[Decision] = []
        self.stopped: dict[str, int] = {}  # trial -> the epoch it was stopped at
        self.last: dict[str, dict[str, float]] = {}  # trial -> its last finite values

    def _vector(self, trial: str, values: Mapping[str, Any]) -> list[float]:
        """The trial's ranked values, minimised; a metric this epoch did not measure (an
        epoch of a P-DARTS stage's warm-up trains θ alone) keeps the trial's last value."""
        last = self.last.setdefault(trial, {})
        out = []
        for name, direction in self.metrics.items():
            value = values.get(name)
            number = value if isinstance(value, int | float) else math.nan
            if not isinstance(value, bool) and math.isfinite(number):
                last[name] = float(number)
            number = last.get(name, math.nan)
            out.append(-number if direction == "max" else number)
        return out

    def on_result(self, trial: str, epoch: int, values: Mapping[str, Any]) -> str:
        """The decision after ``trial``'s epoch ``epoch`` (1-based) with metrics ``values``."""
        if trial in self.stopped:
            return STOP
        vector = self._vector(trial, values)
        for milestone in self.milestones:
            if epoch < milestone or trial in self.rungs[milestone]:
                continue
            rung = self.rungs[milestone]
            rung[trial] = vector
            names = list(rung)
            vectors = [rung[name] for name in names]
            place = pareto_order(vectors, self.tie_break).index(names.index(trial))
            kept = max(1, math.floor(len(names) / self.reduction_factor + 1e-9))
            action = CONTINUE if place < kept else STOP
            self.decisions.append(Decision(trial, milestone, action, place, len(names), kept))
            if action == STOP:
                self.stopped[trial] = epoch
                return STOP
        return CONTINUE

    def missed(self, trial: str, epoch: int) -> list[int]:
        """The rungs below ``epoch`` that ``trial`` passed without a record there (a trial
        restored from a checkpoint newer than the last record its driver saw)."""
        return [m for m in self.milestones if m < epoch and trial not in self.rungs[m]]

    def state(self) -> dict[str, Any]:
        return {
            # Pairs, not an object: a JSON writer may sort an object's keys, and the rungs'
            # vectors follow this order.
            "metrics": [[name, direction] for name, direction in self.metrics.items()],
            "grace_period": self.grace_period,
            "reduction_factor": self.reduction_factor,
            "max_epochs": self.max_epochs,
            "tie_break": self.tie_break,
            "max_rungs": self.max_rungs,
            "rungs": {str(m): rung for m, rung in self.rungs.items()},
            "decisions": [asdict(d) for d in self.decisions],
            "stopped": self.stopped,
            "last": self.last,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> ParetoHalving:
        metrics = dict(state["metrics"])  # pairs (a mapping is taken too)
        rule = cls(
            metrics,
            state["grace_period"],
            state["reduction_factor"],
            state["max_epochs"],
            state.get("tie_break", "crowding"),
            state.get("max_rungs"),
        )
        rule.rungs = {int(m): dict(rung) for m, rung in state["rungs"].items()}
        rule.decisions = [Decision(**d) for d in state["decisions"]]
        rule.stopped = {str(k): int(v) for k, v in state["stopped"].items()}
        rule.last = {str(k): dict(v) for k, v in state.get("last", {}).items()}
        return rule


def rule_for(spec: SweepSpec, **settings: Any) -> ParetoHalving:
    """The rule of a sweep whose ``scheduler`` is ``mo_asha``, with ``settings``
    (``metrics``, ``grace_period``, ``reduction_factor``, ``tie_break``, ``max_rungs``: None
    for no cap) replacing the spec's;
    ranked metrics take their directions from the objectives registry."""
    scheduler = spec.scheduler
    metrics = settings.get("metrics") or scheduler.ranked
    return ParetoHalving(
        directions(metrics),
        int(settings.get("grace_period") or scheduler.grace),
        float(settings.get("reduction_factor") or scheduler.factor),
        search_epochs(spec),
        str(settings.get("tie_break") or scheduler.ties),
        settings.get("max_rungs", scheduler.max_rungs),
    )


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


class SweepRungs:
    """The rule of one sweep's run, as its driver keeps it: the answer to each reported search
    epoch (:meth:`on_result`), with the state in the run directory's ``scheduler.json``.

    The state is written whole after every change, before the answer goes back to Tune, and
    read back on the first report after a restore (Tune pickles the scheduler with the Tuner
    at the start, so what it unpickles holds no rungs), so ``sweep resume`` goes on with the
    same rungs. A trial restored from a checkpoint newer than the rule's last record of it
    (the driver died in between) first enters the rungs it passed with that epoch's record
    from its ``metrics.jsonl``, as in an uninterrupted run (with no shared filesystem, the
    record at hand stands in for it).
    """

    def __init__(self, spec: SweepSpec, run_dir: Path) -> None:
        self._spec = spec
        self._run_dir = Path(run_dir)
        self._rule: ParetoHalving | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_rule": None}  # the state lives in scheduler.json

    @property
    def rule(self) -> ParetoHalving:
        if self._rule is None:
            state = read_scheduler_state(self._run_dir)
            self._rule = ParetoHalving.from_state(state) if state else rule_for(self._spec)
        return self._rule

    def stopped_count(self) -> int:
        return 0 if self._rule is None else len(self._rule.stopped)

    def on_result(
        self, config: Mapping[str, Any], tune_trial_id: str, result: Mapping[str, Any]
    ) -> str:
        """:data:`CONTINUE` or :data:`STOP` for a trial's report (only search epochs count)."""
        epoch = result.get("epoch")
        if result.get("phase") != "search" or not isinstance(epoch, int):
            return CONTINUE
        rule = self.rule
        name = trial_name(self._spec, config, tune_trial_id)
        if name in rule.stopped:  # reported again: Tune had not recorded the stop yet
            return STOP
        before = (len(rule.decisions), dict(rule.last.get(name, {})))
        action: str = CONTINUE
        for missed in rule.missed(name, epoch):
            record = _search_record(self._run_dir / TRIALS_DIR / name, missed)
            if record is not None and rule.on_result(name, missed, record) == STOP:
                action = STOP
                break
        if action == CONTINUE:
            action = rule.on_result(name, epoch, result)
        if (len(rule.decisions), rule.last.get(name, {})) != before:
            write_json_atomically(self._run_dir / SCHEDULER_FILE, rule.state())
        if action == STOP:
            decision = rule.decisions[-1]
            logger.info(
                "trial %s: stopped at epoch %d (rung %d: place %d of %d, %d kept)",
                trial_key(config),
                rule.stopped[name],
                decision.milestone,
                decision.place + 1,
                decision.reached,
                decision.kept,
            )
        return action


def _search_record(trial_dir: Path, epoch: int) -> dict[str, Any] | None:
    """The record of ``epoch`` in a trial directory's ``metrics.jsonl`` (None when the driver
    cannot read it: no shared filesystem, or a line cut short)."""
    try:
        lines = (trial_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return next((r for r in records if isinstance(r, dict) and r.get("epoch") == epoch), None)
