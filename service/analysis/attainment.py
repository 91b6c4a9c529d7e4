"""Empirical attainment surfaces of a sweep's seeds over two columns.

Each seed value's valid runs (finished, every chosen column present:
:func:`service.analysis.robust.valid_rows`) form one set, as one run of a stochastic
optimiser does in the EAF literature. A point is *attained* by a set when some point of the
set weakly dominates it; the k % *attainment surface* is the boundary of the region attained
by at least k % of the sets (moocore's EAF, whose k % level is attained by at least
ceil(k·n/100) of the n sets). The 50 % surface is the median front over seeds; the spread
between the 25 % and 75 % ones is the front's seed sensitivity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pandas as pd

from service.analysis.pareto import directions, to_minimisation
from service.analysis.robust import SEED, valid_rows
from service.errors import ConfigError
from service.results.table import plain_value

__all__ = ["DEFAULT_PERCENTILES", "Attainment", "attainment_surfaces"]

DEFAULT_PERCENTILES = (25.0, 50.0, 75.0)


class Attainment(NamedTuple):
    """Empirical attainment surfaces of the seeds' sets over two columns."""

    x: str
    y: str
    sets: tuple[str, ...]  # the seed values, one set each ("all" without a seed column)
    surfaces: dict[float, tuple[tuple[float, float], ...]]  # percentile → points, best x first


def _seed_text(value: object) -> str:
    """A seed as its set's name: ``3``, not ``3.0`` from a float column."""
    plain = plain_value(value)
    if isinstance(plain, float) and plain.is_integer():
        return str(int(plain))
    return str(plain)


def attainment_surfaces(
    table: pd.DataFrame,
    axes: Mapping[str, str],
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    seed_key: str = SEED,
) -> Attainment:
    """The k % attainment surfaces over the two columns of ``axes`` (name → ``"min"`` or
    ``"max"``), one set per seed value: each surface's points are the minimal points that at
    least k % of the sets attain, in the columns' units, sorted by x."""
    chosen = directions(axes)
    if len(chosen) != 2:
        raise ConfigError(f"axes: got {list(chosen)}; expected two columns")
    bad = [p for p in percentiles if not 0.0 < float(p) <= 100.0]
    if bad or not percentiles:
        raise ConfigError(f"percentiles: got {list(percentiles)}; expected numbers in (0, 100]")
    x, y = chosen
    frame = table.reset_index(drop=True)
    valid = valid_rows(frame, [x, y])
    if seed_key in frame.columns:
        valid &= frame[seed_key].notna().to_numpy(dtype=bool)  # a run of no known seed
        sets = np.array([_seed_text(v) for v in frame.loc[valid, seed_key]], dtype=object)
    else:
        sets = np.full(int(valid.sum()), "all", dtype=object)
    codes, names = pd.factorize(sets, sort=True)
    points = to_minimisation(frame.loc[valid, [x, y]].to_numpy(np.float64), chosen)
    wanted = [float(p) for p in percentiles]
    surfaces: dict[float, tuple[tuple[float, float], ...]] = {p: () for p in wanted}
    if len(points):
        order = np.argsort(codes, kind="stable")  # moocore.eaf reads each set's rows as a block
        found = np.asarray(moocore.eaf(points[order], sets=codes[order] + 1, percentiles=wanted))
        signs = np.where(np.array(list(chosen.values())) == "max", -1.0, 1.0)
        for p in wanted:
            rows = found[np.isclose(found[:, 2], p)][:, :2]
            rows = rows[np.argsort(rows[:, 0], kind="stable")] * signs
            surfaces[p] = tuple((float(a), float(b)) for a, b in rows)
    return Attainment(x, y, tuple(str(n) for n in names), surfaces)
