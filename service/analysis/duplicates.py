"""Genotypes found by several trials of a sweep: one architecture reached from several
configurations (bounds on the same side of the starting estimate follow the same trajectory,
since the |N̂ − L| gradient depends on L only through its sign) or from several seeds of one.

Only finished trials count; a trial without a genotype hash (failed before one was derived)
takes no part. Each trial's configuration label (``F=0.9_L=0.07``,
:func:`service.analysis.robust.configuration_labels`) comes from the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["DuplicateGroup", "duplicate_groups", "has_hash", "twin_configurations"]


class DuplicateGroup(NamedTuple):
    """Finished trials that found one genotype."""

    genotype_hash: str
    trials: tuple[str, ...]  # table order
    configurations: tuple[str, ...]  # their distinct configurations, table order


def has_hash(frame: pd.DataFrame) -> npt.NDArray[np.bool_]:
    """Rows with a genotype hash (the table's text columns hold a missing one as NaN, or as
    the text ``nan``/``None`` after a round trip through ``str``)."""
    hashes = frame["genotype_hash"]
    blank = hashes.astype(str).isin(["", "nan", "None"])
    return np.asarray(hashes.notna() & ~blank, dtype=bool)


def duplicate_groups(table: pd.DataFrame, labels: Sequence[str]) -> tuple[DuplicateGroup, ...]:
    """Groups of two or more finished trials that found one genotype (its hash), those
    reached from the most configurations first; ``labels`` are the rows' configurations."""
    if "genotype_hash" not in table.columns or "trial_id" not in table.columns:
        return ()
    if len(labels) != len(table):
        raise ValueError(f"labels: got {len(labels)} for {len(table)} rows")
    chosen = has_hash(table)
    if "status" in table.columns:
        chosen = chosen & (table["status"] == "done").to_numpy(dtype=bool)
    known = table[chosen]
    labels = [label for label, keep in zip(labels, chosen, strict=True) if keep]
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for trial, genotype, label in zip(
        known["trial_id"], known["genotype_hash"], labels, strict=True
    ):
        trials, configurations = groups.setdefault(str(genotype), ([], []))
        trials.append(str(trial))
        if label not in configurations:
            configurations.append(label)
    found = [
        DuplicateGroup(genotype, tuple(trials), tuple(configurations))
        for genotype, (trials, configurations) in groups.items()
        if len(trials) > 1
    ]
    return tuple(
        sorted(found, key=lambda g: (-len(g.configurations), -len(g.trials), g.genotype_hash))
    )


def twin_configurations(
    table: pd.DataFrame, labels: Sequence[str], seed_key: str
) -> tuple[tuple[str, ...], ...]:
    """Groups of configurations that found the same genotype under every seed, in table
    order: one architecture per seed, whichever of them was searched. A configuration counts
    only when every one of its trials finished with a genotype."""
    if "genotype_hash" not in table.columns or seed_key not in table.columns:
        return ()
    chosen = has_hash(table)
    if "status" in table.columns:
        chosen = chosen & (table["status"] == "done").to_numpy(dtype=bool)
    found: dict[str, dict[str, str] | None] = {}
    rows = zip(chosen, labels, table[seed_key], table["genotype_hash"], strict=True)
    for keep, label, seed, genotype in rows:
        by_seed = found.setdefault(label, {})
        if by_seed is not None:
            by_seed[str(seed)] = str(genotype)
        if not keep:
            found[label] = None
    groups: dict[tuple[tuple[str, str], ...], list[str]] = {}
    for label, genotypes in found.items():
        if genotypes:
            groups.setdefault(tuple(sorted(genotypes.items())), []).append(label)
    return tuple(tuple(group) for group in groups.values() if len(group) > 1)
