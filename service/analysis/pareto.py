"""The empirical Pareto front of a sweep: nondominated set, ranks, hypervolume and knee point.

The objectives are metrics of the registry (:mod:`service.objectives`), the five front
metrics by default, with the registry's directions; a mapping of other column names to
``"min"``/``"max"`` can be given instead. As in Optuna,
the maths runs on plain numpy arrays already turned into minimisation
(:func:`to_minimisation` negates the ``max`` columns); the algorithms themselves are
moocore's (nondominated filter, nondominated sorting, exact hypervolume), not ours.

Conventions:

- *Dominance*: ``a`` dominates ``b`` when ``a`` is no worse in every chosen objective and
  strictly better in at least one. Duplicates of a nondominated point are all nondominated
  and share a rank.
- *Ranks*: nondominated sorting; rank 0 is the front, rank 1 the front of the rest, and so on.
- *Hypervolume*: the measure of the objective-space region that the points dominate and that
  dominates the reference point, in the product of the objectives' units (e.g. % × M params ×
  M FLOPs × % × %). The reference is given in the original units and directions (for a
  ``max`` objective it is a *low* value). Points that do not strictly dominate the reference
  add nothing. Compare hypervolumes only under the same reference point.
- *Default reference* (:func:`default_reference`): the front's nadir (its worst value per
  objective) moved 10 % of the front's range (nadir minus ideal) further in the worse
  direction; where that range is 0, by 10 % of the nadir's magnitude, or by 1 if that is 0.
- *Knee* (:func:`knee_point`): after min-max normalisation of each objective over the front
  (ideal → 0, nadir → 1; a constant objective → 0), the front point closest in Euclidean
  distance to the ideal point; ties go to the lowest row index.
- *Missing values* (:func:`pareto_info`): a row with NaN in any chosen objective (a failed or
  unevaluated trial) takes no part: it is not on the front, its rank is -1, and it counts
  neither for the hypervolume, the default reference nor the knee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt
import pandas as pd

from service.errors import ConfigError, ObjectiveError
from service.objectives import DIRECTIONS, FRONT_METRICS, METRICS
from service.objectives import directions as registry_directions
from service.results.table import STOPPED, frame_records

REFERENCE_MARGIN = 0.1

Objectives = Sequence[str] | Mapping[str, str]
FloatArray = npt.NDArray[np.float64]


class ParetoInfo(NamedTuple):
    """The Pareto analysis of a results table; row indices are positions (``df.iloc``)."""

    objectives: tuple[str, ...]
    front: tuple[int, ...]  # rows on the front, ascending
    ranks: npt.NDArray[np.int64]  # one per row; -1 for rows with a missing objective
    hypervolume: float  # 0.0 when no row has every objective
    reference: tuple[float, ...] | None  # None only when no row has every objective
    knee: int | None  # None only when the front is empty


def directions(objectives: Objectives) -> dict[str, str]:
    """Each chosen objective's direction, ``"min"`` or ``"max"``, in the given order.

    A sequence names metrics of the registry (:mod:`service.objectives`); a mapping gives any
    column names with their directions.
    """
    if isinstance(objectives, str):
        raise ObjectiveError(
            f"objectives: got {objectives!r}; expected a list of names among "
            + ", ".join(FRONT_METRICS)
        )
    if isinstance(objectives, Mapping):
        chosen = dict(objectives)
        bad = {name: d for name, d in chosen.items() if d not in DIRECTIONS}
        if bad:
            raise ObjectiveError(f"objectives: got directions {bad}; expected 'min' or 'max'")
    else:
        names = list(objectives)
        unknown = [name for name in names if name not in METRICS]
        if unknown:
            raise ObjectiveError(
                f"objectives: unknown objective(s) {', '.join(map(repr, unknown))}; "
                f"expected a subset of {', '.join(METRICS)}"
            )
        if len(set(names)) != len(names):
            raise ObjectiveError(f"objectives: got {names}; expected no repeated objective")
        chosen = dict(registry_directions(names))
    if not chosen:
        raise ObjectiveError(
            "objectives: got none; expected at least one of " + ", ".join(FRONT_METRICS)
        )
    return chosen


def to_minimisation(values: npt.ArrayLike, objectives: Objectives) -> FloatArray:
    """``values`` (rows of points, one column per objective) with ``max`` columns negated."""
    points = _as_points(values, objectives, name="values")
    return points * _signs(objectives)


def nondominated_mask(values: npt.ArrayLike, objectives: Objectives) -> npt.NDArray[np.bool_]:
    """True for each row that no other row dominates (duplicates of such a row included)."""
    points = to_minimisation(values, objectives)
    _require_finite(points)
    if len(points) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(moocore.is_nondominated(points, keep_weakly=True), dtype=bool)


def nondomination_ranks(values: npt.ArrayLike, objectives: Objectives) -> npt.NDArray[np.int64]:
    """Each row's nondomination rank: 0 for the front, 1 for the front of the rest, ..."""
    points = to_minimisation(values, objectives)
    _require_finite(points)
    if len(points) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(moocore.pareto_rank(points), dtype=np.int64)


def hypervolume(values: npt.ArrayLike, objectives: Objectives, reference: npt.ArrayLike) -> float:
    """The hypervolume of the rows against ``reference``, given in the original units and
    directions (see the module's conventions)."""
    points = to_minimisation(values, objectives)
    _require_finite(points)
    ref = _reference_min(reference, objectives, points.shape[1])
    if len(points) == 0:
        return 0.0
    return float(moocore.hypervolume(points, ref=ref))


def default_reference(values: npt.ArrayLike, objectives: Objectives) -> FloatArray:
    """The front's nadir moved 10 % of the front's range further in the worse direction, in
    the original units and directions (see the module's conventions)."""
    points = to_minimisation(values, objectives)
    _require_finite(points)
    if len(points) == 0:
        raise ConfigError("values: got no rows; a default reference needs at least one point")
    front = points[nondominated_mask(points, _all_min(points.shape[1]))]
    nadir = front.max(axis=0)
    span = nadir - front.min(axis=0)
    fallback = np.where(nadir != 0, np.abs(nadir), 1.0 / REFERENCE_MARGIN)
    margin = REFERENCE_MARGIN * np.where(span > 0, span, fallback)
    return np.asarray((nadir + margin) * _signs(objectives), dtype=np.float64)


def knee_point(values: npt.ArrayLike, objectives: Objectives) -> int:
    """The row index of the knee: the front point closest to the ideal point after min-max
    normalisation over the front (see the module's conventions)."""
    points = to_minimisation(values, objectives)
    _require_finite(points)
    if len(points) == 0:
        raise ConfigError("values: got no rows; a knee point needs at least one point")
    rows = np.flatnonzero(nondominated_mask(points, _all_min(points.shape[1])))
    front = points[rows]
    ideal = front.min(axis=0)
    span = front.max(axis=0) - ideal
    scaled = (front - ideal) / np.where(span > 0, span, 1.0)
    distance = np.linalg.norm(scaled, axis=1)
    return int(rows[int(np.argmin(distance))])  # argmin returns the first of ties


def pareto_info(
    df: pd.DataFrame,
    objectives: Objectives | None = None,
    reference: npt.ArrayLike | None = None,
) -> ParetoInfo:
    """The Pareto analysis of a results table (one row per trial) over the chosen objective
    columns, all five front metrics by default; rows missing an objective take no part, nor
    do trials a scheduler stopped early (``status`` ``stopped``: their search never ended, so
    even a sweep ranked on search losses leaves them off the front)."""
    chosen = directions(FRONT_METRICS if objectives is None else objectives)
    names = tuple(chosen)
    missing = [name for name in names if name not in df.columns]
    if missing:
        raise ConfigError(
            f"objectives: column(s) {', '.join(map(repr, missing))} not in the results; "
            f"its columns are {', '.join(map(str, df.columns))}"
        )
    try:
        table = df[list(names)].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"objectives: columns {list(names)} are not numeric ({error})") from None
    valid = ~np.isnan(table).any(axis=1)
    if "status" in df.columns:
        valid &= (df["status"] != STOPPED).to_numpy(dtype=bool)
    if np.isinf(table[valid]).any():
        raise ConfigError(f"objectives: columns {list(names)} hold an infinite value")
    rows = np.flatnonzero(valid)
    points = table[rows]
    ranks = np.full(len(df), -1, dtype=np.int64)
    if len(rows) == 0:
        ref = None if reference is None else _reference_min(reference, chosen, len(names))
        return ParetoInfo(
            objectives=names,
            front=(),
            ranks=ranks,
            hypervolume=0.0,
            reference=None if ref is None else tuple(float(v) for v in ref * _signs(chosen)),
            knee=None,
        )
    ranks[rows] = nondomination_ranks(points, chosen)
    ref_values = default_reference(points, chosen) if reference is None else reference
    ref_checked = _reference_min(ref_values, chosen, len(names)) * _signs(chosen)
    return ParetoInfo(
        objectives=names,
        front=tuple(int(i) for i in rows[ranks[rows] == 0]),
        ranks=ranks,
        hypervolume=hypervolume(points, chosen, ref_checked),
        reference=tuple(float(v) for v in ref_checked),
        knee=int(rows[knee_point(points, chosen)]),
    )


# -- helpers -------------------------------------------------------------------------------


def _signs(objectives: Objectives) -> FloatArray:
    return np.array([-1.0 if d == "max" else 1.0 for d in directions(objectives).values()])


def _all_min(columns: int) -> dict[str, str]:
    return {f"objective_{i}": "min" for i in range(columns)}


def _as_points(values: npt.ArrayLike, objectives: Objectives, name: str) -> FloatArray:
    try:
        points = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{name}: expected an array of numbers ({error})") from None
    columns = len(directions(objectives))
    if points.ndim != 2 or points.shape[1] != columns:
        raise ConfigError(
            f"{name}: got an array of shape {points.shape}; expected (rows, {columns}), "
            f"one column per objective"
        )
    return points


def _require_finite(points: FloatArray) -> None:
    bad = np.flatnonzero(~np.isfinite(points).all(axis=1))
    if len(bad):
        raise ConfigError(
            f"values: rows {bad.tolist()} hold NaN or infinity; expected finite numbers "
            "(pareto_info leaves out rows with a missing objective)"
        )


def _reference_min(reference: npt.ArrayLike, objectives: Objectives, columns: int) -> FloatArray:
    try:
        ref = np.asarray(reference, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"reference: expected numbers ({error})") from None
    if ref.shape != (columns,) or not np.isfinite(ref).all():
        raise ConfigError(
            f"reference: got {np.asarray(reference).tolist()!r}; expected {columns} finite "
            "numbers, one per objective"
        )
    return ref * _signs(objectives)


def pareto_answer(every: pd.DataFrame, objectives: Objectives) -> dict[str, object]:
    """The front of a sweep's finished (``done``) trials as plain JSON values: ``objectives``,
    ``front`` (records), ``ranks`` (trial_id → rank; -1 for trials without one, failed ones
    included), ``hypervolume``, ``reference`` and ``knee`` (a trial_id): the answer of the
    API's ``/pareto`` and of ``e2rnas pareto --json``."""
    chosen = directions(objectives)
    frame = every[every["status"] == "done"].reset_index(drop=True)
    info = pareto_info(frame, chosen)
    records = frame_records(frame)
    ranks = {str(trial): -1 for trial in every["trial_id"]}
    ranks.update({str(frame["trial_id"].iloc[i]): int(r) for i, r in enumerate(info.ranks)})
    return {
        "objectives": chosen,
        "front": [records[i] for i in info.front],
        "ranks": ranks,
        "hypervolume": float(info.hypervolume),
        "reference": None if info.reference is None else list(info.reference),
        "knee": None if info.knee is None else str(frame["trial_id"].iloc[info.knee]),
    }


def front_of(frame: pd.DataFrame, objectives: Objectives) -> pd.DataFrame:
    """The nondominated rows of a results table over ``objectives``."""
    info = pareto_info(frame, objectives)
    return frame.iloc[list(info.front)].reset_index(drop=True)
