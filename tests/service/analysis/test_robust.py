"""Tests of the seed robustness (:mod:`service.analysis.robust`) and of the attainment
surfaces (:mod:`service.analysis.attainment`) against independent references written plainly
here: every combination of one valid run per configuration enumerated with
``itertools.product``, each combination's front taken with moocore's nondominated filter
(:func:`service.analysis.pareto.nondominated_mask`) instead of the module's dominance matrix;
a plain loop of single random draws replaying the documented random stream, with moocore's
hypervolume of each draw's points; pandas ``groupby`` for the spreads; a brute-force
attainment count over the grid of the data's coordinates for the EAF; and hand-made tables
for the duplicates and the edge cases."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

from service.analysis.attainment import attainment_surfaces
from service.analysis.duplicates import DuplicateGroup, duplicate_groups, twin_configurations
from service.analysis.pareto import nondominated_mask
from service.analysis.robust import MAX_RESAMPLES, robust_info
from service.errors import ConfigError

FloatArray = npt.NDArray[np.float64]

OBJECTIVES = {"test_error": "min", "params_m": "min", "pgd_acc": "max"}
OBJECTIVES2 = {"test_error": "min", "params_m": "min"}
NAMES = list(OBJECTIVES)
# A stopped trial better than anything a finished one reaches: on every front if it counted.
STOPPED_VALUES = {"test_error": -1.0, "params_m": -1.0, "pgd_acc": 10.0}


def minimised(values: FloatArray, objectives: Mapping[str, str]) -> FloatArray:
    signs = np.array([-1.0 if d == "max" else 1.0 for d in objectives.values()])
    return np.asarray(values * signs, dtype=np.float64)


def random_table(
    rng: np.random.Generator, configurations: int, most_runs: int, least_runs: int = 1
) -> pd.DataFrame:
    """A shuffled results table over the swept keys ``L`` and ``F`` (small integers), with
    objectives among 0, 1 and 2 (ties and duplicates), failed rows (NaN objectives, some
    only partly; the second configuration's with every value, better than anything), stopped
    rows with values that would dominate everything, and a first configuration without any
    valid run."""
    grid = list(itertools.product(range(1, 4), range(1, 4)))
    chosen = rng.choice(len(grid), size=configurations, replace=False)
    rows: list[dict[str, object]] = []
    for c, index in enumerate(chosen):
        L, F = grid[int(index)]
        kinds = ["done"] * (0 if c == 0 else int(rng.integers(least_runs, most_runs + 1)))
        if c in (0, 1) or rng.random() < 0.4:
            kinds.append("failed")
        if c in (0, 1) or rng.random() < 0.3:
            kinds.append("stopped")
        for seed, kind in enumerate(kinds):
            row: dict[str, object] = {
                "trial_id": f"t{len(rows)}",
                "status": kind,
                "L": L,
                "F": F,
                "seed": seed,
                "genotype_hash": f"h{int(rng.integers(0, 3))}",
            }
            if kind == "done":
                row.update({name: float(rng.integers(0, 3)) for name in NAMES})
            elif kind == "stopped" or c == 1:
                row.update(STOPPED_VALUES)
            else:  # failed: no value, or only some
                row.update({name: np.nan for name in NAMES})
                row["params_m"] = float(rng.integers(0, 3)) if rng.random() < 0.5 else np.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


def valid_runs_by_configuration(table: pd.DataFrame) -> dict[tuple[int, int], list[int]]:
    """Each configuration (``L``, ``F``), in order of first appearance, with the positions of
    its valid runs (finished, every objective a number) in table order."""
    runs: dict[tuple[int, int], list[int]] = {}
    for i in range(len(table)):
        row = table.iloc[i]
        found = runs.setdefault((int(row["L"]), int(row["F"])), [])
        values = [float(row[name]) for name in NAMES]
        if row["status"] == "done" and all(math.isfinite(v) for v in values):
            found.append(i)
    return runs


def label(L: int, F: int) -> str:
    return f"F={F}_L={L}"


def probabilities_by_label(table: pd.DataFrame) -> dict[str, float]:
    return dict(zip(table["configuration"], table["dominance_probability"], strict=True))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_exact_dominance_probability_enumerates_every_combination(seed: int) -> None:
    """Reference: every combination of one valid run per configuration (itertools.product),
    the front of each with moocore's nondominated filter, counted per configuration."""
    rng = np.random.default_rng(seed)
    table = random_table(rng, configurations=6, most_runs=3)
    runs = valid_runs_by_configuration(table)
    drawn = {key: rows for key, rows in runs.items() if rows}
    values = table[NAMES].to_numpy(np.float64)
    hits = dict.fromkeys(drawn, 0)
    combinations = 0
    for combination in itertools.product(*drawn.values()):
        on_front = nondominated_mask(values[list(combination)], OBJECTIVES)
        for key, hit in zip(drawn, on_front, strict=True):
            hits[key] += int(hit)
        combinations += 1
    expected = {label(*key): np.nan for key in runs}
    expected.update({label(*key): hits[key] / combinations for key in drawn})

    info = robust_info(table, OBJECTIVES)
    assert info.method == "exact"
    assert info.combinations == combinations == math.prod(len(r) for r in drawn.values())
    assert info.resamples == combinations
    assert info.keys == ("L", "F")
    assert info.seed_key == "seed"
    got = probabilities_by_label(info.table)
    assert sorted(got) == sorted(expected)
    labels = sorted(expected)
    np.testing.assert_allclose(
        [got[k] for k in labels], [expected[k] for k in labels], rtol=1e-12, atol=0
    )
    assert info.runs == (min(map(len, drawn.values())), max(map(len, drawn.values())))
    assert (info.note is None) == (info.runs[1] > 1)


@pytest.mark.parametrize(
    ("seed", "configurations", "hypervolume_method"),
    [(0, 4, "exact"), (1, 4, "exact"), (2, 7, "bootstrap"), (3, 7, "bootstrap")],
)
def test_bootstrap_replays_the_documented_random_stream(
    seed: int, configurations: int, hypervolume_method: str
) -> None:
    """Reference: a plain loop of single draws ``rng.integers(0, counts)`` from
    ``numpy.random.default_rng(random_seed)`` (numpy 2 gives the same stream as the module's
    one array of shape (resamples, configurations)): counts are the valid-run counts of the
    configurations that have two or more, in order of first appearance in the table (one
    with a single valid run has it in every draw), and a draw's entry is a position among
    that configuration's valid runs in table order. Each draw's
    front comes from moocore's nondominated filter and its hypervolume from
    ``moocore.hypervolume`` of all its points (dominated ones add nothing). The
    hypervolume interval is over every combination when there are no more of them than
    resamples (3 drawn configurations of 2 or 3 runs: at most 27 <= 500), else over the
    same random draws (6 drawn configurations of 3 or 4 runs: at least 729 > 500)."""
    resamples, random_seed, confidence = 500, 17 + seed, 0.9
    rng_table = np.random.default_rng(seed)
    least, most = (3, 4) if hypervolume_method == "bootstrap" else (2, 3)
    table = random_table(rng_table, configurations, most_runs=most, least_runs=least)
    runs = valid_runs_by_configuration(table)
    drawn = {key: rows for key, rows in runs.items() if rows}
    varying = [key for key, rows in drawn.items() if len(rows) > 1]
    counts = np.array([len(drawn[key]) for key in varying])
    combinations = int(np.prod(counts))
    assert (combinations > resamples) == (hypervolume_method == "bootstrap")
    values = table[NAMES].to_numpy(np.float64)
    valid_points = minimised(values[sorted(i for r in drawn.values() for i in r)], OBJECTIVES)

    info = robust_info(
        table,
        OBJECTIVES,
        resamples=resamples,
        random_seed=random_seed,
        confidence=confidence,
        exact_limit=1,
    )
    assert info.method == "bootstrap"
    assert info.resamples == resamples and info.random_seed == random_seed
    assert info.combinations == combinations

    # The default reference: the worst valid value moved 10 % of the valid range, in
    # minimisation (a zero range: 10 % of the magnitude, or 1).
    worst, best = valid_points.max(axis=0), valid_points.min(axis=0)
    margin = [
        0.1 * (w - b) if w > b else (0.1 * abs(w) if w != 0 else 1.0)
        for w, b in zip(worst, best, strict=True)
    ]
    reference = worst + np.array(margin)
    hv = info.hypervolume
    assert hv.reference is not None
    np.testing.assert_allclose(minimised(np.array(hv.reference), OBJECTIVES), reference)

    rng = np.random.default_rng(random_seed)
    hits = np.zeros(len(drawn))
    sampled_volumes = []
    for _ in range(resamples):
        picks = dict(zip(varying, rng.integers(0, counts), strict=True))
        rows = [group[int(picks.get(key, 0))] for key, group in drawn.items()]
        hits += nondominated_mask(values[rows], OBJECTIVES)
        sampled_volumes.append(
            float(moocore.hypervolume(minimised(values[rows], OBJECTIVES), ref=reference))
        )
    got = probabilities_by_label(info.table)
    np.testing.assert_allclose(
        [got[label(*key)] for key in drawn], hits / resamples, rtol=1e-12, atol=0
    )
    assert all(np.isnan(got[label(*key)]) for key in runs if key not in drawn)

    if hypervolume_method == "exact":
        volumes = [
            float(moocore.hypervolume(minimised(values[list(c)], OBJECTIVES), ref=reference))
            for c in itertools.product(*drawn.values())
        ]
    else:
        volumes = sampled_volumes
    tail = (1 - confidence) / 2
    assert hv.method == hypervolume_method
    assert hv.draws == len(volumes)
    assert hv.confidence == confidence
    assert hv.mean == pytest.approx(np.mean(volumes), rel=1e-12)
    assert hv.low == pytest.approx(np.quantile(volumes, tail), rel=1e-12)
    assert hv.high == pytest.approx(np.quantile(volumes, 1 - tail), rel=1e-12)
    assert hv.pooled == pytest.approx(
        float(moocore.hypervolume(valid_points, ref=reference)), rel=1e-12
    )
    assert hv.low <= hv.mean <= hv.high <= hv.pooled


def test_a_given_reference_is_used() -> None:
    """Reference: moocore's hypervolume of every valid run against the given point, turned
    into minimisation by hand (the ``max`` column negated)."""
    table = random_table(np.random.default_rng(5), configurations=4, most_runs=3)
    given = [4.0, 3.5, -0.5]  # original directions: a low PGD accuracy
    info = robust_info(table, OBJECTIVES, reference=given)
    assert info.hypervolume.reference == tuple(given)
    runs = valid_runs_by_configuration(table)
    rows = sorted(i for r in runs.values() for i in r)
    points = minimised(table[NAMES].to_numpy(np.float64)[rows], OBJECTIVES)
    expected = float(moocore.hypervolume(points, ref=np.array([4.0, 3.5, 0.5])))
    assert info.hypervolume.pooled == pytest.approx(expected, rel=1e-12)
    default = robust_info(table, OBJECTIVES)
    assert default.hypervolume.reference != tuple(given)
    with pytest.raises(ConfigError, match="reference"):
        robust_info(table, OBJECTIVES, reference=[np.nan, 1.0, 1.0])


def brute_surface(points: FloatArray, sets: list[str], level: int) -> list[tuple[float, float]]:
    """The minimal points, among every (x_i, y_j) of the data's coordinates, that at least
    ``level`` sets attain (a set attains a point when one of its points is <= in both)."""
    candidates = [(a, b) for a in np.unique(points[:, 0]) for b in np.unique(points[:, 1])]
    by_set = {s: points[[i for i, t in enumerate(sets) if t == s]] for s in set(sets)}
    attained = [
        (a, b)
        for a, b in candidates
        if sum(bool(np.any((p[:, 0] <= a) & (p[:, 1] <= b))) for p in by_set.values()) >= level
    ]
    minimal = [
        (a, b)
        for a, b in attained
        if not any(c <= a and d <= b and (c, d) != (a, b) for c, d in attained)
    ]
    return sorted((float(a), float(b)) for a, b in minimal)


def random_attainment_table(rng: np.random.Generator, seeds: int) -> pd.DataFrame:
    """Rows of several seeds interleaved in random order (as a sweep's table holds them),
    values among 0 to 5, a failed row and a stopped row that would dominate everything."""
    rows: list[dict[str, object]] = []
    for seed in range(seeds):
        for _ in range(int(rng.integers(1, 5))):
            x, y = rng.integers(0, 6, size=2)
            rows.append({"status": "done", "seed": seed, "x": float(x), "y": float(y)})
    rows.append({"status": "failed", "seed": 0, "x": np.nan, "y": -100.0})
    rows.append({"status": "stopped", "seed": 1, "x": -100.0, "y": -100.0})
    table = pd.DataFrame(rows)
    table.insert(0, "trial_id", [f"t{i}" for i in range(len(table))])
    return table.iloc[rng.permutation(len(table))].reset_index(drop=True)


PERCENTILES = [10.0, 25.0, 40.0, 50.0, 60.0, 75.0, 90.0, 100.0]


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
@pytest.mark.parametrize(
    ("x_direction", "y_direction"), [("min", "min"), ("min", "max"), ("max", "min")]
)
def test_attainment_surfaces_match_a_brute_force_count(
    seed: int, x_direction: str, y_direction: str
) -> None:
    """Reference: every (x_i, y_j) of the data's coordinates (in minimisation) attained by at
    least ceil(p·n/100) of the n seeds' sets, its minimal points. That level is moocore's
    convention, found by comparing its EAF with this count for every level. The rows are
    shuffled, so the seeds' rows are interleaved as in a sweep's table: moocore's ``eaf``
    takes each set's size from ``np.unique(sets)`` and then reads the rows in blocks of
    those sizes, so it needs the rows grouped by set (sorted by set label). The
    percentiles are integers and n <= 8, so p·n/100 is computed without a rounding that
    could cross an integer."""
    rng = np.random.default_rng(seed)
    seeds = int(rng.integers(1, 9))
    table = random_attainment_table(rng, seeds)
    axes = {"x": x_direction, "y": y_direction}
    done = table[table["status"] == "done"]
    points = minimised(done[["x", "y"]].to_numpy(np.float64), axes)
    sets = [str(s) for s in done["seed"]]
    found = attainment_surfaces(table, axes, PERCENTILES, seed_key="seed")
    assert (found.x, found.y) == ("x", "y")
    assert found.sets == tuple(str(s) for s in range(seeds))
    assert list(found.surfaces) == PERCENTILES
    sx, sy = (-1.0 if d == "max" else 1.0 for d in (x_direction, y_direction))
    for p in PERCENTILES:
        expected = brute_surface(points, sets, math.ceil(p * seeds / 100))
        # Best x first, in the columns' own directions.
        assert found.surfaces[p] == tuple((sx * a, sy * b) for a, b in expected), p


def test_attainment_without_a_seed_column_is_the_front_of_one_set() -> None:
    """Reference: with one set, every level is the set's front (moocore's filter)."""
    table = random_attainment_table(np.random.default_rng(9), 3).drop(columns="seed")
    done = table[table["status"] == "done"]
    values = done[["x", "y"]].to_numpy(np.float64)
    front = {
        tuple(map(float, p)) for p in values[nondominated_mask(values, {"x": "min", "y": "min"})]
    }
    found = attainment_surfaces(table, {"x": "min", "y": "min"}, [50.0, 100.0])
    assert found.sets == ("all",)
    for p in (50.0, 100.0):
        assert found.surfaces[p] == tuple(sorted(front))


def test_attainment_rejects_bad_settings_and_handles_no_valid_run() -> None:
    table = random_attainment_table(np.random.default_rng(1), 2)
    with pytest.raises(ConfigError, match="axes"):
        attainment_surfaces(table, {"x": "min"})
    for bad in ([0.0], [150.0], []):
        with pytest.raises(ConfigError, match="percentiles"):
            attainment_surfaces(table, {"x": "min", "y": "min"}, bad)
    failed = table.assign(x=np.nan)
    found = attainment_surfaces(failed, {"x": "min", "y": "min"}, [50.0])
    assert found.surfaces == {50.0: ()} and found.sets == ()


def test_duplicate_groups_on_a_hand_made_table() -> None:
    """Reference: the groups written out by hand; the one reached from two configurations
    first, then by number of trials, then by hash; failed, stopped and blank hashes left
    out."""
    rows = [
        ("t0", "done", 3, 0, "a2"),
        ("t1", "done", 3, 1, "a2"),
        ("t2", "done", 1, 0, "b3"),
        ("t3", "done", 1, 1, "z1"),
        ("t4", "failed", 2, 0, "z1"),  # failed: its hash is not a finding
        ("t5", "done", 2, 1, "z1"),
        ("t6", "done", 3, 2, "a2"),
        ("t7", "done", 1, 2, "b3"),
        ("t8", "done", 4, 0, "a4"),
        ("t9", "done", 4, 1, "a4"),
        ("t10", "stopped", 4, 2, "c5"),  # stopped: not finished
        ("t11", "done", 2, 2, "c5"),
        ("t12", "done", 2, 3, ""),  # blank hashes are no genotype
        ("t13", "done", 1, 3, ""),
        ("t14", "done", 4, 3, None),
        ("t15", "done", 3, 3, None),
    ]
    table = pd.DataFrame(rows, columns=["trial_id", "status", "L", "seed", "genotype_hash"])
    table["test_error"] = [np.nan if r[1] == "failed" else 1.0 for r in rows]
    table["params_m"] = 2.0
    expected = (
        DuplicateGroup("z1", ("t3", "t5"), ("L=1", "L=2")),
        DuplicateGroup("a2", ("t0", "t1", "t6"), ("L=3",)),
        DuplicateGroup("a4", ("t8", "t9"), ("L=4",)),
        DuplicateGroup("b3", ("t2", "t7"), ("L=1",)),
    )
    labels = [f"L={value}" for value in table["L"]]
    assert duplicate_groups(table, labels) == expected
    info = robust_info(table, {"test_error": "min", "params_m": "min"})
    assert info.keys == ("L",)
    assert info.duplicates == expected
    genotypes = dict(zip(info.table["configuration"], info.table["genotypes"], strict=True))
    # Distinct hashes among valid runs: the stopped c5 and blank or missing hashes do not
    # count, as for the groups.
    assert (genotypes["L=1"], genotypes["L=2"], genotypes["L=3"], genotypes["L=4"]) == (2, 2, 1, 1)
    assert duplicate_groups(table.drop(columns="genotype_hash"), labels) == ()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_spreads_and_counts_match_pandas(seed: int) -> None:
    """Reference: pandas groupby over the valid runs (finished, every objective a number) of
    each (L, F): mean, std (ddof 1), min and max, distinct hashes; and the table
    sorted by probability (highest first, NaN last), then label."""
    table = random_table(np.random.default_rng(seed), configurations=6, most_runs=4)
    info = robust_info(table, OBJECTIVES)
    result = info.table.set_index("configuration")
    keyed = table.assign(configuration=[label(L, F) for L, F in zip(table.L, table.F, strict=True)])
    valid = keyed[(keyed["status"] == "done") & keyed[NAMES].notna().all(axis=1)]
    labels = sorted(keyed["configuration"].unique())
    assert sorted(result.index) == labels
    grouped = valid.groupby("configuration")
    for name in NAMES:
        for stat in ("mean", "std", "min", "max"):
            expected = grouped[name].agg(stat).reindex(labels)
            np.testing.assert_allclose(
                result.loc[labels, f"{name}_{stat}"].to_numpy(np.float64),
                expected.to_numpy(np.float64),
                rtol=1e-12,
            )
    counts = keyed.groupby("configuration").size().reindex(labels)
    assert result.loc[labels, "runs"].tolist() == counts.tolist()
    valid_counts = grouped.size().reindex(labels, fill_value=0)
    assert result.loc[labels, "valid_runs"].tolist() == valid_counts.tolist()
    hashes = grouped["genotype_hash"].nunique().reindex(labels, fill_value=0)
    assert result.loc[labels, "genotypes"].tolist() == hashes.tolist()
    assert result.loc[labels, "L"].tolist() == [int(k.split("L=")[1]) for k in labels]
    order = info.table["dominance_probability"].fillna(-1.0).tolist()
    assert order == sorted(order, reverse=True)
    for p in set(order):
        tied = info.table["configuration"][info.table["dominance_probability"].fillna(-1.0) == p]
        assert tied.tolist() == sorted(tied)


def test_one_trial() -> None:
    table = pd.DataFrame(
        {
            "trial_id": ["t0"],
            "status": ["done"],
            "L": [2],
            "seed": [0],
            "genotype_hash": ["h"],
            "test_error": [3.0],
            "params_m": [1.0],
            "pgd_acc": [40.0],
        }
    )
    info = robust_info(table, OBJECTIVES)
    assert info.table["dominance_probability"].tolist() == [1.0]
    assert info.method == "exact" and info.combinations == 1 and info.runs == (1, 1)
    assert info.note is not None and "one run" in info.note
    hv = info.hypervolume
    # One point: a zero range, so the reference is 10 % of each magnitude further.
    assert hv.reference == pytest.approx((3.3, 1.1, 36.0))
    assert hv.pooled == pytest.approx(0.3 * 0.1 * 4.0)
    assert hv.pooled == hv.mean == hv.low == hv.high
    assert info.duplicates == ()


def test_all_failed_table() -> None:
    table = pd.DataFrame(
        {
            "trial_id": ["t0", "t1", "t2"],
            "status": ["failed", "failed", "stopped"],
            "L": [1, 2, 2],
            "seed": [0, 0, 1],
            "genotype_hash": [None, "h", "h"],
            "test_error": [np.nan, 2.0, 1.0],
            "params_m": [np.nan, np.nan, 1.0],
            "pgd_acc": [np.nan, 3.0, 50.0],
        }
    )
    info = robust_info(table, OBJECTIVES)
    assert info.note is not None and "No trial has every objective" in info.note
    hv = info.hypervolume
    assert (hv.pooled, hv.mean, hv.low, hv.high, hv.draws, hv.reference) == (0, 0, 0, 0, 0, None)
    assert info.runs == (0, 0)
    assert info.table["dominance_probability"].isna().all()
    assert info.table["valid_runs"].tolist() == [0, 0]
    assert info.table["genotypes"].tolist() == [0, 0]
    assert info.table["test_error_mean"].isna().all()
    assert info.duplicates == ()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_without_a_seed_column_each_configuration_is_one_run(seed: int) -> None:
    """Reference: with one run per configuration every draw is the whole table, so the
    probability is the pooled front's membership (moocore's filter) and the interval has no
    width."""
    rng = np.random.default_rng(seed)
    grid = list(itertools.product(range(1, 4), range(1, 4)))
    values = rng.integers(0, 3, size=(len(grid), len(NAMES))).astype(np.float64)
    values[0] = np.nan  # one failed configuration
    table = pd.DataFrame(values, columns=NAMES)
    table.insert(0, "trial_id", [f"t{i}" for i in range(len(grid))])
    table.insert(1, "status", ["failed"] + ["done"] * (len(grid) - 1))
    table["L"] = [L for L, _ in grid]
    table["F"] = [F for _, F in grid]
    info = robust_info(table, OBJECTIVES)
    assert info.seed_key is None
    assert info.note is not None and "one run" in info.note and "no seed column" in info.note
    front = nondominated_mask(values[1:], OBJECTIVES)
    expected = {label(L, F): float(f) for (L, F), f in zip(grid[1:], front, strict=True)}
    got = probabilities_by_label(info.table)
    assert np.isnan(got.pop(label(*grid[0])))
    assert got == expected
    hv = info.hypervolume
    assert hv.low == hv.high == pytest.approx(hv.mean) and hv.mean == pytest.approx(hv.pooled)


def test_bad_settings_raise_config_errors() -> None:
    table = random_table(np.random.default_rng(0), configurations=3, most_runs=2)
    for settings in (
        {"resamples": 0},
        {"resamples": 100_001},
        {"resamples": True},
        {"confidence": 1.5},
        {"confidence": 0.0},
        {"exact_limit": 0},
    ):
        with pytest.raises(ConfigError, match=next(iter(settings))):
            robust_info(table, OBJECTIVES, **settings)
    with pytest.raises(ConfigError, match="objectives: column"):
        robust_info(table, {"test_error": "min", "flops_m": "min"})


def test_twin_configurations_found_one_genotype_under_every_seed() -> None:
    """Reference: written out by hand. L=1 and L=2 found h0 under seed 0 and h1 under seed 1;
    L=3 matches them under seed 0 only; L=4 would match but its seed 1 failed; L=5 and L=6
    are twins of their own."""
    rows = [
        (1, 0, "h0", "done"),
        (1, 1, "h1", "done"),
        (2, 0, "h0", "done"),
        (2, 1, "h1", "done"),
        (3, 0, "h0", "done"),
        (3, 1, "h9", "done"),
        (4, 0, "h0", "done"),
        (4, 1, "h1", "failed"),
        (5, 0, "h5", "done"),
        (6, 0, "h5", "done"),
    ]
    table = pd.DataFrame(rows, columns=["L", "seed", "genotype_hash", "status"])
    labels = [f"L={value}" for value in table["L"]]
    assert twin_configurations(table, labels, "seed") == (("L=1", "L=2"), ("L=5", "L=6"))
    assert twin_configurations(table.drop(columns="seed"), labels, "seed") == ()
    table["trial_id"] = [f"t{i}" for i in range(len(table))]
    table["test_error"] = 1.0
    info = robust_info(table, {"test_error": "min"})
    assert info.twins == (("L=1", "L=2"), ("L=5", "L=6"))


def test_attainment_leaves_out_runs_of_no_known_seed() -> None:
    """A row whose seed is missing is no set of its own: seeds 0 and 1 (stored as floats,
    named 0 and 1) are the two sets, and the 100 % surface is what both attain."""
    table = pd.DataFrame(
        {
            "seed": [0.0, 1.0, 0.0, np.nan],
            "x": [1.0, 2.0, 3.0, 0.0],
            "y": [3.0, 2.0, 1.0, 0.0],
            "status": "done",
        }
    )
    found = attainment_surfaces(table, {"x": "min", "y": "min"}, [50.0, 100.0])
    assert found.sets == ("0", "1")
    assert found.surfaces[50.0] == ((1.0, 3.0), (2.0, 2.0), (3.0, 1.0))
    assert found.surfaces[100.0] == ((2.0, 3.0), (3.0, 2.0))


def test_many_configurations_of_one_seed_and_of_two() -> None:
    """More configurations than numpy has dimensions (64): a one-seed grid of 100 points is
    one draw, its probabilities the front's; with two seeds each, the exact path enumerates
    only the varying configurations and agrees with a fixed-stream bootstrap of the same."""
    rng = np.random.default_rng(11)
    one = pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(100)],
            "status": "done",
            "L": np.arange(100) * 0.01,
            "seed": 0,
            "test_error": rng.integers(0, 20, 100).astype(float),
            "params_m": rng.integers(0, 20, 100).astype(float),
        }
    )
    info = robust_info(one, OBJECTIVES2)
    assert (info.method, info.combinations, info.runs) == ("exact", 1, (1, 1))
    front = set(one["L"][nondominated_mask(one[list(OBJECTIVES2)].to_numpy(), OBJECTIVES2)])
    on = set(info.table[info.table["dominance_probability"] == 1.0]["L"])
    assert on == front and set(info.table["dominance_probability"]) <= {0.0, 1.0}
    # 70 configurations with one run and 4 with two: 16 combinations, enumerated.
    second = one.iloc[:4].assign(
        seed=1, trial_id=lambda f: f["trial_id"] + "b", test_error=lambda f: f["test_error"] + 3
    )
    two = pd.concat([one.iloc[:74], second], ignore_index=True)
    exact = robust_info(two, OBJECTIVES2)
    assert (exact.method, exact.combinations) == ("exact", 16)
    labels = sorted(set(two["L"]))
    groups = {L: two[two["L"] == L][list(OBJECTIVES2)].to_numpy() for L in labels}
    counts = dict.fromkeys(labels, 0)
    for points in itertools.product(*(groups[L] for L in labels)):
        for L, flag in zip(labels, nondominated_mask(np.array(points), OBJECTIVES2), strict=True):
            counts[L] += int(flag)
    got = dict(zip(exact.table["L"], exact.table["dominance_probability"], strict=True))
    assert got == pytest.approx({L: counts[L] / 16 for L in labels})


def test_the_exact_limit_switches_to_draws() -> None:
    table = random_table(np.random.default_rng(3), configurations=6, most_runs=3, least_runs=2)
    combinations = robust_info(table, OBJECTIVES).combinations
    assert robust_info(table, OBJECTIVES, exact_limit=combinations).method == "exact"
    drawn = robust_info(table, OBJECTIVES, exact_limit=combinations - 1, resamples=50)
    assert (drawn.method, drawn.resamples) == ("bootstrap", 50)


def test_settings_at_their_limits() -> None:
    table = random_table(np.random.default_rng(4), configurations=4, most_runs=2)
    assert robust_info(table, OBJECTIVES, resamples=MAX_RESAMPLES).hypervolume.draws > 0
    for bad in ({"resamples": MAX_RESAMPLES + 1}, {"random_seed": -1}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            robust_info(table, OBJECTIVES, **bad)  # type: ignore[arg-type]


def test_the_budget_caps_draws_or_refuses_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past WORK_LIMIT look-ups, fewer draws are made (and recorded), or a strict request is
    refused naming resamples."""
    import service.analysis.robust as robust

    table = random_table(np.random.default_rng(5), configurations=6, most_runs=3, least_runs=2)
    info = robust_info(table, OBJECTIVES, exact_limit=1, resamples=400)
    per_draw = 400  # a stand-in budget: WORK_LIMIT // per-draw cost draws at most
    monkeypatch.setattr(robust, "WORK_LIMIT", per_draw)
    capped = robust_info(table, OBJECTIVES, exact_limit=1, resamples=400)
    assert capped.method == "bootstrap" and 1 <= capped.resamples < info.resamples
    with pytest.raises(ConfigError, match="resamples: 400 draws"):
        robust_info(table, OBJECTIVES, exact_limit=1, resamples=400, strict=True)


def test_each_backbone_gets_its_interval_against_the_shared_reference() -> None:
    """Two backbones: each one's interval is that of its trials alone, against the whole
    sweep's reference; its pooled hypervolume is moocore's over its valid runs."""
    rng = np.random.default_rng(8)
    parts = []
    for backbone in ("darts", "pc_darts"):
        part = random_table(rng, configurations=4, most_runs=3, least_runs=2)
        parts.append(part.assign(backbone=backbone, trial_id=part["trial_id"] + backbone))
    table = pd.concat(parts, ignore_index=True)
    info = robust_info(table, OBJECTIVES, resamples=200)
    assert info.keys[0] == "backbone" and set(info.by_backbone) == {"darts", "pc_darts"}
    reference = info.hypervolume.reference
    assert reference is not None
    for backbone, interval in info.by_backbone.items():
        part = table[table["backbone"] == backbone]
        alone = robust_info(part, OBJECTIVES, resamples=200, reference=reference)
        assert interval == alone.hypervolume and interval.reference == reference
        valid = part[(part["status"] == "done") & part[NAMES].notna().all(axis=1)]
        points = minimised(valid[NAMES].to_numpy(np.float64), OBJECTIVES)
        ref = minimised(np.array(reference), OBJECTIVES)
        assert interval.pooled == pytest.approx(float(moocore.hypervolume(points, ref=ref)))
    assert robust_info(parts[0], OBJECTIVES).by_backbone == {}
