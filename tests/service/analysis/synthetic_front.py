"""The synthetic sweep of the figure and report tests, with its front worked out by hand.

A 3×3 grid over L and F, one seed, with bundled genotypes; its front over the five front
metrics is rows 0, 4 and 8, which ``test_synthetic_front_matches_brute_force`` checks against
a brute-force dominance test. The test modules put this directory on ``sys.path``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from search_core.genotypes import BUNDLED
from service.objectives import FRONT_METRICS, directions

OBJECTIVES = directions(FRONT_METRICS)
# test_error, params_m, flops_m, pgd_acc, ood_aupr; rows 0, 4, 8 are the front.
METRICS = (
    (3.0, 1.0, 100.0, 40.0, 90.0),
    (4.0, 1.5, 200.0, 35.0, 85.0),
    (5.0, 1.5, 300.0, 30.0, 80.0),
    (4.0, 2.0, 150.0, 38.0, 88.0),
    (2.5, 2.0, 200.0, 45.0, 92.0),
    (3.0, 2.5, 250.0, 44.0, 91.0),
    (3.5, 3.0, 300.0, 39.0, 80.0),
    (2.6, 3.0, 300.0, 44.0, 91.0),
    (2.0, 3.5, 400.0, 50.0, 95.0),
)
FRONT = (0, 4, 8)
# Rows 0 and 8 share a genotype, so the front has two distinct ones.
GENOTYPE_NAMES = (
    "darts_v2", "darts_v1", "pdarts", "darts_v1", "pc_darts",
    "pdarts", "darts_v1", "pc_darts", "darts_v2",
)  # fmt: skip
GRID_L = (1.0, 2.0, 3.0)
GRID_F = (100.0, 200.0, 300.0)


def sweep_frame() -> pd.DataFrame:
    """The synthetic sweep's results table (no trial_id column, as a hand-made table)."""
    rows: list[dict[str, Any]] = []
    for i, (metrics, name) in enumerate(zip(METRICS, GENOTYPE_NAMES, strict=True)):
        genotype = BUNDLED[name]
        row: dict[str, Any] = {
            "L": GRID_L[i // 3],
            "F": GRID_F[i % 3],
            "seed": 0,
            "evaluation": "proxy",
            "genotype": genotype.dumps(),
            "genotype_hash": genotype.genotype_hash(),
        }
        row.update(zip(OBJECTIVES, metrics, strict=True))
        rows.append(row)
    return pd.DataFrame(rows)


def brute_force_front(values: npt.NDArray[np.float64]) -> list[int]:
    """Rows no other row dominates, values already in minimisation form."""
    return [
        i for i, a in enumerate(values) if not any((b <= a).all() and (b < a).any() for b in values)
    ]
