"""MO-ASHA's decisions (``service.orchestration.mo_asha``) against brute-force references.

The references are written plainly, loop by loop, from the definitions: dominance between two
points, fronts peeled off one at a time, NSGA-II's crowding distance, and the rung rule of the
module docstring replayed record by record.
"""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from service.orchestration.mo_asha import (
    CONTINUE,
    STOP,
    ParetoHalving,
    crowding_distances,
    hypervolume_contributions,
    milestones,
    pareto_order,
    replay,
)


def _dominates(a: list[float], b: list[float]) -> bool:
    return all(x <= y for x, y in zip(a, b, strict=True)) and a != b


def _fronts(points: list[list[float]]) -> list[list[int]]:
    left = list(range(len(points)))
    fronts = []
    while left:
        front = [i for i in left if not any(_dominates(points[j], points[i]) for j in left)]
        fronts.append(front)
        left = [i for i in left if i not in front]
    return fronts


def _crowding(points: list[list[float]]) -> list[float]:
    n = len(points)
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for m in range(len(points[0])):
        order = sorted(range(n), key=lambda i: (points[i][m], i))
        low, high = points[order[0]][m], points[order[-1]][m]
        distance[order[0]] = distance[order[-1]] = math.inf
        if high == low:
            continue
        for k in range(1, n - 1):
            distance[order[k]] += (points[order[k + 1]][m] - points[order[k - 1]][m]) / (high - low)
    return distance


def _hypervolume(points: list[list[float]], reference: list[float]) -> float:
    """The volume dominated by ``points`` below ``reference``, by brute force: every cell of
    the grid of their coordinates, counted when some point is at or below its lower corner."""
    import itertools

    axes = [sorted({p[m] for p in points} | {reference[m]}) for m in range(len(reference))]
    total = 0.0
    for cell in itertools.product(*(range(len(axis) - 1) for axis in axes)):
        low = [axes[m][k] for m, k in enumerate(cell)]
        if any(all(p[m] <= low[m] for m in range(len(low))) for p in points):
            total += math.prod(axes[m][k + 1] - axes[m][k] for m, k in enumerate(cell))
    return total


def _contributions(points: list[list[float]]) -> list[float]:
    """Each point's exclusive hypervolume, objectives scaled to [0, 1], reference 1.1."""
    columns = list(zip(*points, strict=True))
    scaled = [
        [
            (v - min(c)) / (max(c) - min(c)) if max(c) > min(c) else 0.0
            for v, c in zip(p, columns, strict=True)
        ]
        for p in points
    ]
    reference = [1.1] * len(columns)
    whole = _hypervolume(scaled, reference)
    return [
        whole - _hypervolume(scaled[:i] + scaled[i + 1 :], reference) for i in range(len(points))
    ]


def _order(points: list[list[float]], tie_break: str = "crowding") -> list[int]:
    finite = [i for i, p in enumerate(points) if all(math.isfinite(v) for v in p)]
    out: list[int] = []
    measure = _crowding if tie_break == "crowding" else _contributions
    for front in _fronts([points[i] for i in finite]):
        rows = [finite[i] for i in front]
        crowd = [round(c, 12) for c in measure([points[r] for r in rows])]
        out.extend(r for _, r in sorted(zip([-c for c in crowd], rows, strict=True)))
    return out + [i for i in range(len(points)) if i not in finite]


def _reference_run(
    records: list[tuple[str, int, dict[str, float]]],
    metrics: dict[str, str],
    rungs: tuple[int, ...],
    eta: float,
    tie_break: str = "crowding",
) -> tuple[list[tuple[str, int, str]], dict[str, int]]:
    seen: dict[int, list[tuple[str, list[float]]]] = {m: [] for m in rungs}
    stopped: dict[str, int] = {}
    decisions = []
    for trial, epoch, values in records:
        if trial in stopped:
            continue
        for m in rungs:
            if epoch < m or any(name == trial for name, _ in seen[m]):
                continue
            vector = [values[k] if d == "min" else -values[k] for k, d in metrics.items()]
            seen[m].append((trial, vector))
            place = _order([v for _, v in seen[m]], tie_break).index(len(seen[m]) - 1)
            keep = max(1, int(len(seen[m]) // eta))
            action = CONTINUE if place < keep else STOP
            decisions.append((trial, m, action))
            if action == STOP:
                stopped[trial] = epoch
                break
    return decisions, stopped


def test_milestones_are_the_geometric_rungs_below_the_last_epoch() -> None:
    assert milestones(1, 3, 27) == (1, 3, 9)
    assert milestones(1, 3, 28) == (1, 3, 9, 27)
    assert milestones(2, 2, 20) == (2, 4, 8, 16)
    assert milestones(1, 1.5, 5) == (1, 2, 3, 4)  # ceil(1.5) = 2, ceil(2.25) = 3, ceil(3.375) = 4
    assert milestones(1, 1.2, 3) == (1, 2)  # ceil(1.2) = ceil(1.44) = 2: one rung, not two
    assert milestones(4, 3, 4) == ()
    for bad in ((0, 3, 9), (1, 1.0, 9), (1, 3, 0)):
        with pytest.raises(ValueError):
            milestones(*bad)


def test_crowding_distance_of_a_hand_made_front() -> None:
    # Four points on a line x + y = 3: the ends are extreme; the inner ones have gaps 2/3 + 2/3.
    points = [[0, 3], [1, 2], [2, 1], [3, 0]]
    got = crowding_distances(points)
    assert np.isinf(got[0]) and np.isinf(got[3])
    assert got[1] == pytest.approx(4 / 3) and got[2] == pytest.approx(4 / 3)
    assert np.isinf(crowding_distances([[1, 2], [2, 1]])).all()


def test_pareto_order_of_a_hand_made_table() -> None:
    points = [
        [3.0, 3.0],  # rank 1
        [1.0, 4.0],  # front, extreme
        [2.0, 2.0],  # front, inner
        [4.0, 1.0],  # front, extreme
        [5.0, 5.0],  # rank 2
        [math.nan, 0.0],  # missing: last
    ]
    assert pareto_order(points) == [1, 3, 2, 0, 4, 5]


@pytest.mark.parametrize("seed", range(30))
def test_ranks_crowding_and_order_match_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    n, m = rng.randint(1, 14), rng.randint(1, 5)
    # Few distinct values, so that ties and duplicate points occur.
    points = [[float(rng.randint(0, 4)) for _ in range(m)] for _ in range(n)]
    for front in _fronts(points):
        got = crowding_distances(np.array([points[i] for i in front]))
        expected = _crowding([points[i] for i in front])
        assert np.allclose(got, expected, equal_nan=False), (front, got, expected)
    assert pareto_order(points) == _order(points)


def test_max_rungs_keeps_the_first_rungs_only() -> None:
    assert ParetoHalving({"val_loss": "min"}, 1, 3, 30).milestones == (1, 3, 9, 27)
    one = ParetoHalving({"val_loss": "min"}, 1, 3, 30, max_rungs=1)
    assert one.milestones == (1,)
    assert ParetoHalving.from_state(one.state()).milestones == (1,)
    # Past its only rung, a trial that went on is never ranked again.
    assert one.on_result("a", 1, {"val_loss": 1.0}) == CONTINUE
    assert one.on_result("b", 1, {"val_loss": 0.5}) == CONTINUE  # better: 2 // 3 = 0 -> 1 kept
    assert one.on_result("a", 9, {"val_loss": 9.0}) == CONTINUE
    assert [d.milestone for d in one.decisions] == [1, 1]


def test_hypervolume_contributions_of_a_hand_made_front() -> None:
    # Scaled to [0, 1]: (0, 1), (0.5, 0.5), (1, 0); reference (1.1, 1.1). Each extreme point
    # alone dominates a 0.1 x 0.5 strip, the middle one a 0.5 x 0.5 square.
    got = hypervolume_contributions([[1.0, 30.0], [2.0, 20.0], [3.0, 10.0]])
    np.testing.assert_allclose(got, [0.05, 0.25, 0.05])


@pytest.mark.parametrize("seed", range(20))
def test_hypervolume_contributions_match_brute_force(seed: int) -> None:
    rng = random.Random(500 + seed)
    dims = rng.choice([2, 3])
    points = [[float(rng.randint(0, 6)) for _ in range(dims)] for _ in range(rng.randint(1, 7))]
    front = [points[i] for i in _fronts(points)[0]]
    np.testing.assert_allclose(hypervolume_contributions(front), _contributions(front), atol=1e-12)
    assert pareto_order(points, "hypervolume") == _order(points, "hypervolume")


@pytest.mark.parametrize("tie_break", ["crowding", "hypervolume"])
@pytest.mark.parametrize("seed", range(40))
def test_decisions_at_every_rung_match_the_reference(seed: int, tie_break: str) -> None:
    rng = random.Random(1000 + seed)
    metrics = {"val_loss": "min", "params_m": "min", "ood_aupr": "max"}
    chosen = dict(rng.sample(sorted(metrics.items()), rng.randint(1, 3)))
    eta, grace, epochs = rng.choice([2, 3, 4]), rng.choice([1, 2]), rng.randint(3, 12)
    trials = [f"t{i}" for i in range(rng.randint(2, 20))]
    # Trials start at different times and report in interleaved order, as asynchronous ones do.
    records: list[tuple[str, int, dict[str, Any]]] = []
    progress = dict.fromkeys(trials, 0)
    while any(e < epochs for e in progress.values()):
        trial = rng.choice([t for t, e in progress.items() if e < epochs])
        progress[trial] += 1
        values = {k: float(rng.randint(0, 5)) for k in metrics}
        records.append((trial, progress[trial], values))
    rule = ParetoHalving(chosen, grace, eta, epochs, tie_break)
    ran = replay(rule, records)
    decisions, stopped = _reference_run(records, chosen, rule.milestones, eta, tie_break)
    assert [(d.trial, d.milestone, d.action) for d in rule.decisions] == decisions
    assert rule.stopped == stopped
    for trial in trials:
        assert ran[trial] == stopped.get(trial, epochs)
    # The first trial at each rung always goes on.
    for milestone in rule.milestones:
        firsts = [d for d in rule.decisions if d.milestone == milestone and d.reached == 1]
        assert all(d.action == CONTINUE for d in firsts)


def test_a_dominated_trial_is_stopped_and_a_stopped_one_stays_stopped() -> None:
    rule = ParetoHalving({"val_loss": "min", "params_m": "min"}, 1, 2, 4)
    assert rule.on_result("a", 1, {"val_loss": 1.0, "params_m": 1.0}) == CONTINUE
    assert rule.on_result("b", 1, {"val_loss": 2.0, "params_m": 2.0}) == STOP  # dominated
    assert rule.on_result("c", 1, {"val_loss": 0.5, "params_m": 3.0}) == STOP  # 3 // 2 = 1 kept
    assert rule.on_result("b", 2, {"val_loss": 0.0, "params_m": 0.0}) == STOP
    assert rule.stopped == {"b": 1, "c": 1}
    assert rule.on_result("a", 2, {"val_loss": 1.0, "params_m": 1.0}) == CONTINUE


def test_state_round_trips_through_json() -> None:
    import json

    rule = ParetoHalving({"val_loss": "min", "flops_m": "min"}, 1, 3, 9)
    for i, trial in enumerate("abcde"):
        rule.on_result(trial, 1, {"val_loss": float(i % 3), "flops_m": float(4 - i)})
    again = ParetoHalving.from_state(json.loads(json.dumps(rule.state())))
    assert again.state() == rule.state()
    assert again.on_result("f", 1, {"val_loss": 9.0, "flops_m": 9.0}) == rule.on_result(
        "f", 1, {"val_loss": 9.0, "flops_m": 9.0}
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (({}, 1, 3, 9), "metrics"),
        (({"val_loss": "up"}, 1, 3, 9), "metrics"),
        (({"val_loss": "min"}, 0, 3, 9), "grace_period"),
        (({"val_loss": "min"}, 1, 1, 9), "reduction_factor"),
        (({"val_loss": "min"}, 1, 3, 9, "random"), "tie_break"),
        (({"val_loss": "min"}, 1, 3, 9, "crowding", 0), "max_rungs"),
    ],
)
def test_bad_settings_are_refused(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ParetoHalving(*args)
