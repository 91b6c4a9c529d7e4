"""Seed robustness of a sweep's front: which configurations stay on it when the seed changes.

DARTS-style searches are seed-sensitive, so a front read from one seed per grid point does not
say which of its points are real. With several seeds per point, this module answers that:

- *Configuration*: a trial's swept values without the seed (the results table's swept columns,
  and ``backbone`` where the trials have several, minus ``seed``); its *runs* are its trials,
  its *valid runs* those that take part in a front (finished, every objective present; as
  the API's ``/pareto`` takes them).
- *Spread*: per configuration, of each objective and each other front metric the results
  hold, the mean, standard deviation (ddof 1, NaN for a single run), min and max over its
  valid runs; and how many distinct genotypes they found.
- *Draw*: one valid run per configuration, each chosen uniformly and independently (what a
  sweep run with a single seed per point could have given). Configurations without a valid
  run take no part.
- *Dominance probability*: the probability that a draw puts the configuration on the draw's
  front (nondominated among the drawn runs; equal points are all nondominated, as in
  :mod:`~service.analysis.pareto`). Exact, by enumerating every combination of runs, when
  there are at most ``exact_limit`` of them and their cost is within :data:`WORK_LIMIT`;
  else the share of ``resamples`` random draws (:mod:`~service.analysis.draws` says how they
  are drawn and ranked; ``random_seed`` and ``resamples`` are recorded in the answer, so any
  number can be replayed).
- *Hypervolume interval*: what the sweep's hypervolume could have been with one seed per
  configuration (a bootstrap over seeds: the draws above), beside the *pooled* hypervolume of
  all seeds together. Each draw's hypervolume is taken against one reference (by default the
  worst value of every valid run, not only of the front, moved 10 % of their range as in
  :func:`~service.analysis.pareto.default_reference`, so that every draw's front counts),
  exact over every combination when there are at most ``resamples`` of them, else over the
  random draws; the answer is their mean and their percentile interval at ``confidence``
  (numpy's linear quantiles). Two sweeps compared this way must share the reference (the
  compare page passes one).
- *Attainment surfaces*: in :mod:`~service.analysis.attainment`.
- *Duplicates*: in :mod:`~service.analysis.duplicates`.

What is hand-made here, and why: moocore computes the front, the hypervolume and the EAF of
given sets, but nothing gives the probability, over draws, that a configuration is on the
front. It is computed from one matrix of strict dominance between every pair of valid runs
(O(n²·m) once), so that a batch of draws costs one numpy gather instead of one front per
draw (:mod:`~service.analysis.draws`); the reference tests compute each draw's front with
moocore instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal, NamedTuple

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import numpy.typing as npt
import pandas as pd

from service.analysis.draws import Draws
from service.analysis.duplicates import (
    DuplicateGroup,
    duplicate_groups,
    has_hash,
    twin_configurations,
)
from service.analysis.pareto import REFERENCE_MARGIN, Objectives, directions, to_minimisation
from service.errors import ConfigError
from service.objectives import FRONT_METRICS
from service.results.table import RESULT_COLUMNS, plain_value

__all__ = [
    "DEFAULT_RANDOM_SEED",
    "DEFAULT_RESAMPLES",
    "EXACT_LIMIT",
    "MAX_RESAMPLES",
    "SEED",
    "WORK_LIMIT",
    "HypervolumeInterval",
    "RobustInfo",
    "configuration_keys",
    "configuration_labels",
    "robust_info",
    "valid_rows",
]

SEED = "seed"
DEFAULT_RESAMPLES = 1000
DEFAULT_RANDOM_SEED = 0
DEFAULT_CONFIDENCE = 0.95
EXACT_LIMIT = 100_000
MAX_RESAMPLES = 10_000  # a request costs about 0.15 ms per draw (bench/robust.py)
WORK_LIMIT = 500_000_000  # dominance look-ups of one answer (draws × varying × configurations)
DONE = "done"
_NOT_KEYS = frozenset({*RESULT_COLUMNS, "front_rank"})

Method = Literal["exact", "bootstrap"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


class HypervolumeInterval(NamedTuple):
    """The hypervolume of one draw of one seed per configuration, over the draws."""

    pooled: float  # of every valid run (all seeds together)
    mean: float  # over the draws (0.0 without a valid run)
    low: float  # the interval's bounds: the draws' (1 - confidence) / 2 quantiles
    high: float
    confidence: float
    method: Method  # every combination, or the random draws
    draws: int
    reference: tuple[float, ...] | None  # original units and directions; None without runs


class RobustInfo(NamedTuple):
    """The seed robustness of a results table over ``objectives``."""

    objectives: dict[str, str]
    seed_key: str | None  # None when the table has no seed column
    keys: tuple[str, ...]  # the configuration columns
    table: pd.DataFrame  # one row per configuration, most probably on the front first
    method: Method  # of the dominance probabilities
    combinations: int  # of one valid run per configuration
    resamples: int  # draws behind the probabilities (= combinations when exact)
    random_seed: int
    hypervolume: HypervolumeInterval
    duplicates: tuple[DuplicateGroup, ...]
    twins: tuple[tuple[str, ...], ...]  # configurations with one genotype per seed
    runs: tuple[int, int]  # the fewest and the most valid runs of a configuration
    note: str | None  # why the answer says little (one run each, no valid run)
    # Where the trials span several backbones, each one's hypervolume interval against the
    # same reference (so that two backbones compare with error bars).
    by_backbone: dict[str, HypervolumeInterval]


def configuration_keys(table: pd.DataFrame, seed_key: str = SEED) -> tuple[str, ...]:
    """The columns that make a configuration: the swept ones without the seed, and
    ``backbone`` first where the table holds several."""
    keys = [c for c in table.columns if c not in _NOT_KEYS and c != seed_key]
    if "backbone" in table.columns and table["backbone"].nunique(dropna=True) > 1:
        keys.insert(0, "backbone")
    return tuple(keys)


def configuration_labels(table: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """Each row's configuration as text, ``F=0.9_L=0.07`` (keys sorted), ``all`` without keys."""
    if not keys:
        return ["all"] * len(table)
    ordered = sorted(keys)
    columns = [table[key].tolist() for key in ordered]
    return [
        "_".join(f"{key}={plain_value(value)}" for key, value in zip(ordered, values, strict=True))
        for values in zip(*columns, strict=True)
    ]


def valid_rows(table: pd.DataFrame, columns: Sequence[str]) -> BoolArray:
    """Rows that take part in a front over ``columns``: every one a finite number, and the
    trial finished (``done``: not failed, not stopped early)."""
    values = table[list(columns)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    valid = np.isfinite(values).all(axis=1)
    if "status" in table.columns:
        valid &= (table["status"] == DONE).to_numpy(dtype=bool)
    return np.asarray(valid, dtype=bool)


def _check_columns(table: pd.DataFrame, names: Sequence[str]) -> None:
    missing = [name for name in names if name not in table.columns]
    if missing:
        raise ConfigError(f"objectives: column(s) {missing} not in the results")


def _check_settings(resamples: int, random_seed: int, confidence: float, exact_limit: int) -> None:
    if isinstance(resamples, bool) or not 1 <= int(resamples) <= MAX_RESAMPLES:
        raise ConfigError(
            f"resamples: got {resamples!r}; expected a whole number from 1 to {MAX_RESAMPLES}"
        )
    if isinstance(random_seed, bool) or not 0 <= int(random_seed) < 2**63:
        raise ConfigError(f"random_seed: got {random_seed!r}; expected a whole number >= 0")
    if not 0.0 < float(confidence) < 1.0:
        raise ConfigError(f"confidence: got {confidence!r}; expected a number between 0 and 1")
    if int(exact_limit) < 1:
        raise ConfigError(f"exact_limit: got {exact_limit!r}; expected a whole number >= 1")


def _enclosing(points: FloatArray) -> FloatArray:
    """The worst value of every run moved 10 % of the runs' range further (in minimisation),
    so that every draw's front counts; a zero range as in ``default_reference``."""
    worst = points.max(axis=0)
    span = worst - points.min(axis=0)
    fallback = np.where(worst != 0, np.abs(worst), 1.0 / REFERENCE_MARGIN)
    return np.asarray(worst + REFERENCE_MARGIN * np.where(span > 0, span, fallback))


def _interval(
    draws: Draws,
    picks: IntArray,
    chosen: dict[str, str],
    reference: npt.ArrayLike | None,
    confidence: float,
    fronts: Iterable[FloatArray] | None = None,
) -> HypervolumeInterval:
    """The hypervolume of the draws: exact over every combination when there are no more of
    them than random draws, else over the random draws (their fronts, when already drawn)."""
    if not len(draws.points):
        return HypervolumeInterval(0.0, 0.0, 0.0, 0.0, confidence, "exact", 0, None)
    if reference is None:
        ref = _enclosing(draws.points)
    else:
        ref = to_minimisation(np.asarray(reference, dtype=np.float64)[None, :], chosen)[0]
        if not np.isfinite(ref).all():
            shown = np.asarray(reference, dtype=np.float64).tolist()
            raise ConfigError(f"reference: got {shown}; expected finite numbers")
    pooled = float(moocore.hypervolume(draws.points, ref=ref))
    method: Method = "exact" if draws.combinations <= len(picks) else "bootstrap"
    if fronts is None:
        fronts = draws.fronts(None if method == "exact" else picks)
    values = np.array([moocore.hypervolume(front, ref=ref) for front in fronts])
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [tail, 1.0 - tail])
    return HypervolumeInterval(
        pooled=pooled,
        mean=float(values.mean()),
        low=float(low),
        high=float(high),
        confidence=float(confidence),
        method=method,
        draws=len(values),
        reference=tuple(float(v) for v in to_minimisation([ref], chosen)[0]),
    )


def _shares(
    draws: Draws, picks: IntArray, exact: bool
) -> tuple[FloatArray, list[FloatArray] | None]:
    """The dominance probabilities, and each draw's front when the hypervolumes are over the
    same draws (both every combination, or both the random ones): one pass serves both."""
    same = exact == (draws.combinations <= len(picks))
    fronts: list[FloatArray] | None = [] if same else None
    return draws.shares(None if exact else picks, fronts), fronts


def _affordable(draws: Draws, resamples: int, strict: bool) -> int:
    """``resamples``, or as many as :data:`WORK_LIMIT` allows: fewer when not ``strict``, a
    ConfigError naming ``resamples`` when strict."""
    if draws.cost(resamples) <= WORK_LIMIT:
        return resamples
    most = max(1, WORK_LIMIT // max(1, draws.cost(1)))
    if strict:
        raise ConfigError(
            f"resamples: {resamples} draws over {draws.width} configurations exceed the "
            f"budget of {WORK_LIMIT:.0e} look-ups; ask for at most {most}"
        )
    return most


def robust_info(
    table: pd.DataFrame,
    objectives: Objectives,
    *,
    seed_key: str = SEED,
    resamples: int = DEFAULT_RESAMPLES,
    random_seed: int = DEFAULT_RANDOM_SEED,
    confidence: float = DEFAULT_CONFIDENCE,
    exact_limit: int = EXACT_LIMIT,
    reference: npt.ArrayLike | None = None,
    strict: bool = False,
) -> RobustInfo:
    """The seed robustness of a results table (one row per trial) over ``objectives``: spreads
    and dominance probability per configuration, the hypervolume interval and the duplicate
    genotypes (see the module's docstring for each). Past :data:`WORK_LIMIT`, fewer draws are
    made (and recorded), or, when ``strict``, a ConfigError names ``resamples``."""
    _check_settings(resamples, random_seed, confidence, exact_limit)
    chosen = directions(objectives)
    names = list(chosen)
    _check_columns(table, names)
    frame = table.reset_index(drop=True)
    keys = configuration_keys(frame, seed_key)
    labels = configuration_labels(frame, keys)
    codes, uniques = pd.factorize(np.asarray(labels, dtype=object))
    valid = valid_rows(frame, names)
    points = to_minimisation(frame.loc[valid, names].to_numpy(np.float64), chosen)
    valid_codes = codes[valid]
    members = [np.flatnonzero(valid_codes == c) for c in range(len(uniques))]
    drawn = np.array([c for c, runs in enumerate(members) if len(runs)], dtype=np.int64)
    draws = Draws(points, [members[c] for c in drawn])
    resamples = _affordable(draws, int(resamples), strict)
    picks = draws.random(np.random.default_rng(random_seed), resamples)
    exact = draws.combinations <= exact_limit and draws.cost(draws.combinations) <= WORK_LIMIT
    method: Method = "exact" if exact else "bootstrap"
    probability = np.full(len(uniques), np.nan)
    probability[drawn], fronts = _shares(draws, picks, exact)

    result = _ranked(frame, keys, names, (codes, uniques), valid, probability)
    counts = [len(members[c]) for c in drawn] or [0]
    runs = (min(counts), max(counts))
    seed = seed_key if seed_key in frame.columns else None
    hypervolume = _interval(draws, picks, chosen, reference, confidence, fronts)
    settings = _Settings(resamples, int(random_seed), confidence, hypervolume.reference, strict)
    by_backbone = _by_backbone(frame, chosen, keys, settings)
    return RobustInfo(
        objectives=chosen,
        seed_key=seed,
        keys=keys,
        table=result,
        method=method,
        combinations=draws.combinations,
        resamples=draws.combinations if method == "exact" else int(resamples),
        random_seed=int(random_seed),
        hypervolume=hypervolume,
        duplicates=duplicate_groups(frame, labels),
        twins=twin_configurations(frame, labels, seed_key) if seed else (),
        runs=runs,
        note=_note(runs, len(drawn), seed),
        by_backbone=by_backbone,
    )


class _Settings(NamedTuple):
    resamples: int
    random_seed: int
    confidence: float
    reference: tuple[float, ...] | None
    strict: bool


def _by_backbone(
    frame: pd.DataFrame, chosen: dict[str, str], keys: Sequence[str], settings: _Settings
) -> dict[str, HypervolumeInterval]:
    """Each backbone's hypervolume interval, its trials alone, against the shared reference;
    none where the trials have one backbone, or no valid run."""
    found: dict[str, HypervolumeInterval] = {}
    if "backbone" not in keys or settings.reference is None:
        return found
    for backbone in sorted({str(b) for b in frame["backbone"].dropna()}):
        part = frame[frame["backbone"].astype(str) == backbone]
        found[backbone] = robust_info(part, chosen, **settings._asdict()).hypervolume
    return found


def _ranked(
    frame: pd.DataFrame,
    keys: Sequence[str],
    names: Sequence[str],
    factorized: tuple[IntArray, npt.NDArray[np.object_]],
    valid: BoolArray,
    probability: FloatArray,
) -> pd.DataFrame:
    """One row per configuration, the most probably on the front first: its key values, runs,
    valid runs, distinct genotypes, dominance probability and spreads (of the objectives
    ``names`` and of the other front metrics the table holds)."""
    names = [*names, *(m for m in FRONT_METRICS if m in frame.columns and m not in names)]
    codes, uniques = factorized
    size = len(uniques)
    result = pd.DataFrame({"configuration": uniques.astype(str)})
    first = np.unique(codes, return_index=True)[1]  # factorize numbers them in order
    for key in keys:
        result[key] = frame[key].iloc[first].to_numpy()
    result["runs"] = np.bincount(codes, minlength=size)
    result["valid_runs"] = np.bincount(codes[valid], minlength=size)
    result["genotypes"] = _distinct_genotypes(frame, codes, valid, size)
    result["dominance_probability"] = probability
    result = pd.concat([result, _spreads(frame, names, codes, valid, size)], axis=1)
    return result.sort_values(
        ["dominance_probability", "configuration"], ascending=[False, True], na_position="last"
    ).reset_index(drop=True)


def _note(runs: tuple[int, int], configurations: int, seed: str | None) -> str | None:
    if configurations == 0:
        return "No trial has every objective yet: no configuration can be drawn."
    if runs[1] <= 1:
        why = "the results have no seed column" if seed is None else "one seed each"
        return (
            f"Each configuration has one run ({why}): its dominance probability is 0 or 1 and "
            "the hypervolume interval has no width; sweep several seeds (grid: seed: [0, 1, 2])."
        )
    return None


def _spreads(
    frame: pd.DataFrame, names: Sequence[str], codes: IntArray, valid: BoolArray, size: int
) -> pd.DataFrame:
    values = frame.loc[valid, list(names)].astype(np.float64)
    grouped = values.groupby(codes[valid])
    columns: dict[str, pd.Series] = {}
    for name in names:
        for stat in ("mean", "std", "min", "max"):
            columns[f"{name}_{stat}"] = grouped[name].agg(stat).reindex(range(size))
    return pd.DataFrame(columns).reset_index(drop=True)


def _distinct_genotypes(
    frame: pd.DataFrame, codes: IntArray, valid: BoolArray, size: int
) -> list[int]:
    if "genotype_hash" not in frame.columns:
        return [0] * size
    hashes = frame["genotype_hash"].where(valid & has_hash(frame))
    distinct = hashes.groupby(codes).nunique().reindex(range(size), fill_value=0)
    return [int(n) for n in distinct]
