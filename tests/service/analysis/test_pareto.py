"""Tests of the Pareto analysis against independent references written plainly here: an
O(n²) dominance check and peeling for the front and ranks, a sweep over sorted points for
2-D hypervolume, inclusion–exclusion over boxes for small sets in 3 to 5 dimensions, and
hand-made fronts for the knee, the reference and the ``max`` directions."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from search_core.errors import ConfigError
from service.analysis.pareto import (
    default_reference,
    hypervolume,
    knee_point,
    nondominated_mask,
    nondomination_ranks,
    pareto_info,
    to_minimisation,
)
from service.objectives import FRONT_METRICS, directions

OBJECTIVES = directions(FRONT_METRICS)

FloatArray = npt.NDArray[np.float64]
NAMES = list(OBJECTIVES)


def brute_minimised(values: FloatArray, names: list[str]) -> FloatArray:
    signs = np.array([-1.0 if OBJECTIVES[n] == "max" else 1.0 for n in names])
    return np.asarray(values * signs, dtype=np.float64)


def dominates(a: FloatArray, b: FloatArray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def brute_mask(points: FloatArray) -> list[bool]:
    return [
        not any(dominates(points[j], points[i]) for j in range(len(points)) if j != i)
        for i in range(len(points))
    ]


def brute_ranks(points: FloatArray) -> list[int]:
    ranks = [-1] * len(points)
    left = list(range(len(points)))
    rank = 0
    while left:
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left)]
        for i in front:
            ranks[i] = rank
        left = [i for i in left if i not in front]
        rank += 1
    return ranks


def sweep_hypervolume_2d(points: FloatArray, ref: FloatArray) -> float:
    inside = sorted(tuple(p) for p in points if p[0] < ref[0] and p[1] < ref[1])
    area, best_y = 0.0, ref[1]
    for (x, y), (next_x, _) in zip(inside, [*inside[1:], (ref[0], 0.0)], strict=True):
        best_y = min(best_y, y)
        area += (next_x - x) * (ref[1] - best_y)
    return area


def inclusion_exclusion_hypervolume(points: FloatArray, ref: FloatArray) -> float:
    total = 0.0
    for size in range(1, len(points) + 1):
        for subset in itertools.combinations(range(len(points)), size):
            corner = points[list(subset)].max(axis=0)
            total += (-1) ** (size + 1) * float(np.prod(np.clip(ref - corner, 0.0, None)))
    return total


def random_instance(
    rng: np.random.Generator, columns: int, rows: int
) -> tuple[FloatArray, list[str]]:
    names = [str(n) for n in rng.choice(NAMES, size=columns, replace=False)]
    if all(OBJECTIVES[n] == "min" for n in names):  # always mix directions
        names[-1] = "pgd_acc" if "pgd_acc" not in names[:-1] else "ood_aupr"
    values = rng.integers(0, 4, size=(rows, columns)).astype(np.float64)  # ties and duplicates
    values[rng.integers(0, rows)] = values[0]
    return values, names


@pytest.mark.parametrize("columns", [2, 3, 4, 5])
def test_front_and_ranks_match_brute_force(columns: int) -> None:
    rng = np.random.default_rng(columns)
    for _ in range(40):
        values, names = random_instance(rng, columns, int(rng.integers(1, 30)))
        points = brute_minimised(values, names)
        assert nondominated_mask(values, names).tolist() == brute_mask(points)
        assert nondomination_ranks(values, names).tolist() == brute_ranks(points)


def test_hypervolume_2d_matches_a_sweep() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        values, names = random_instance(rng, 2, int(rng.integers(1, 25)))
        values += rng.random(values.shape) * (rng.random() < 0.5)  # ties in half the cases
        reference = default_reference(values, names)
        expected = sweep_hypervolume_2d(
            brute_minimised(values, names), brute_minimised(reference[None, :], names)[0]
        )
        assert hypervolume(values, names, reference) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("columns", [3, 4, 5])
def test_hypervolume_matches_inclusion_exclusion(columns: int) -> None:
    rng = np.random.default_rng(100 + columns)
    for _ in range(15):
        values, names = random_instance(rng, columns, int(rng.integers(1, 9)))
        values += rng.random(values.shape)
        reference = default_reference(values, names)
        expected = inclusion_exclusion_hypervolume(
            brute_minimised(values, names), brute_minimised(reference[None, :], names)[0]
        )
        assert hypervolume(values, names, reference) == pytest.approx(expected, rel=1e-9)


def test_max_directions_are_negated() -> None:
    names = ["test_error", "pgd_acc"]
    values = np.array([[10.0, 90.0], [10.0, 80.0], [5.0, 60.0]])
    assert to_minimisation(values, names).tolist() == [[10, -90], [10, -80], [5, -60]]
    assert nondominated_mask(values, names).tolist() == [True, False, True]
    assert nondomination_ranks(values, names).tolist() == [0, 1, 0]
    # Reference in original directions: a high error, a low PGD accuracy.
    reference = np.array([20.0, 50.0])
    expected = 10 * 40 + 5 * 10  # the box of (10, 90) plus what (5, 60) adds
    assert hypervolume(values, names, reference) == pytest.approx(expected)
    assert hypervolume(values, names, [4.0, 50.0]) == 0.0  # nothing dominates it


def test_default_reference_is_the_nadir_plus_ten_percent() -> None:
    names = ["params_m", "ood_aupr"]
    values = np.array([[1.0, 50.0], [3.0, 90.0], [4.0, 40.0]])  # the last one is dominated
    # Front nadir (3, 50), ideal (1, 90): 10 % of the ranges (2, 40) further out.
    assert default_reference(values, names).tolist() == pytest.approx([3.2, 46.0])
    single = default_reference(np.array([[2.0, 0.0]]), names)
    assert single.tolist() == pytest.approx([2.2, -1.0])


def test_knee_on_a_hand_made_front() -> None:
    names = ["flops_m", "pgd_acc"]
    # Minimised: (0, 10), (1, 2), (3, 1), (10, 0) on the front, (5, 5) behind it.
    front = [[0.0, 90.0], [1.0, 98.0], [3.0, 99.0], [10.0, 100.0]]
    values = np.array([[5.0, 95.0], *front])
    # Normalised over the front: (0, 1), (0.1, 0.2), (0.3, 0.1), (1, 0).
    assert knee_point(values, names) == 2


def test_pareto_info_leaves_out_rows_with_missing_objectives() -> None:
    df = pd.DataFrame(
        {
            "trial_id": ["a", "b", "c", "d", "e"],
            "test_error": [5.0, 4.0, np.nan, 6.0, 3.0],
            "params_m": [2.0, 3.0, 1.0, 2.5, 4.0],
            "pgd_acc": [40.0, 30.0, 90.0, 35.0, 20.0],
        }
    )
    names = ["test_error", "params_m", "pgd_acc"]
    info = pareto_info(df, names)
    valid = [0, 1, 3, 4]
    assert info.objectives == tuple(names)
    assert info.ranks[2] == -1
    assert info.ranks[valid].tolist() == nondomination_ranks(df.loc[valid, names], names).tolist()
    assert info.front == (0, 1, 4)
    reference = default_reference(df.loc[valid, names], names)
    assert info.reference == pytest.approx(tuple(reference))
    assert info.hypervolume == pytest.approx(hypervolume(df.loc[valid, names], names, reference))
    assert info.knee == valid[knee_point(df.loc[valid, names], names)]
    given = pareto_info(df, names, reference=[10.0, 10.0, 0.0])
    assert given.reference == (10.0, 10.0, 0.0)
    assert given.hypervolume > info.hypervolume


def test_pareto_info_defaults_to_the_five_metrics_and_handles_no_valid_rows() -> None:
    df = pd.DataFrame({name: [1.0, np.nan] for name in OBJECTIVES})
    info = pareto_info(df)
    assert info.objectives == tuple(OBJECTIVES) and info.front == (0,) and info.knee == 0
    empty = pareto_info(df.iloc[1:])
    assert empty.front == () and empty.knee is None and empty.hypervolume == 0.0
    assert empty.ranks.tolist() == [-1]


def test_bad_objectives_name_the_argument() -> None:
    df = pd.DataFrame({"test_error": [1.0], "params_m": [1.0]})
    with pytest.raises(
        ConfigError,
        match=r"objectives: unknown objective\(s\) 'accuracy'.*"
        "test_error, params_m, flops_m, pgd_acc, ood_aupr",
    ):
        pareto_info(df, ["test_error", "accuracy"])
    with pytest.raises(ConfigError, match="objectives: column"):
        pareto_info(df, ["test_error", "pgd_acc"])
    with pytest.raises(ConfigError, match="values: got an array of shape"):
        nondominated_mask(np.zeros((3, 2)), ["test_error"])
    with pytest.raises(ConfigError, match="reference: got"):
        hypervolume(np.zeros((3, 2)), ["test_error", "params_m"], [1.0])
    with pytest.raises(ConfigError, match="values: rows"):
        nondominated_mask(np.array([[1.0, np.nan]]), ["test_error", "params_m"])
