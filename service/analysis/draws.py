"""Draws of one valid run per configuration, and the front of each draw (hand-made; see
:mod:`~service.analysis.robust` for why).

A configuration with one valid run is *fixed*: its run is in every draw. Only the *varying*
ones (two runs or more) are drawn, so a draw is one position per varying configuration:

- *Random draws*: ``default_rng(random_seed).integers(0, counts, size=(resamples, varying))``,
  ``counts`` the varying configurations' valid runs in order of first appearance; column c is
  the position of the drawn run among configuration c's valid runs in table order.
- *Every combination*: the mixed-radix numbers 0 ... combinations − 1, the last varying
  configuration's digit fastest (as ``itertools.product`` orders them).
- *Front of a draw*: a drawn run is on it when no other drawn run strictly dominates it. From
  one matrix ``D`` of strict dominance between valid runs: a run is dominated when a fixed run
  dominates it (computed once for all draws) or a drawn varying run does, so a draw costs
  ``varying × configurations`` look-ups (a one-seed sweep: one draw, nothing to look up).
  Batches of draws are gathered at once, at most :data:`GATHER` booleans each.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["GATHER", "Draws", "dominance_matrix"]

GATHER = 4_000_000  # booleans looked up at once: a batch of draws × varying × configurations

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def dominance_matrix(points: npt.ArrayLike) -> BoolArray:
    """``D[i, j]``: row i strictly dominates row j (no worse anywhere, better somewhere), for
    points already in minimisation."""
    values = np.asarray(points, dtype=np.float64)
    size = len(values)
    no_worse = np.ones((size, size), dtype=bool)
    better = np.zeros((size, size), dtype=bool)
    for column in values.T:  # one objective at a time: n² memory, not n²·m
        no_worse &= column[:, None] <= column[None, :]
        better |= column[:, None] < column[None, :]
    return no_worse & better


class Draws:
    """The valid runs of the configurations that have some (``members``: each one's runs,
    indices into ``points``), as draws are made of them."""

    def __init__(self, points: FloatArray, members: Sequence[IntArray]) -> None:
        self.points = points
        self.width = len(members)
        counts = np.array([len(m) for m in members], dtype=np.int64)
        self.varying = np.flatnonzero(counts > 1)
        self.fixed = np.flatnonzero(counts == 1)
        self.counts = counts[self.varying]
        self.fixed_runs = np.array([members[int(c)][0] for c in self.fixed], dtype=np.int64)
        self.padded = np.zeros((len(self.varying), int(self.counts.max(initial=1))), np.int64)
        for row, config in enumerate(self.varying):
            self.padded[row, : counts[config]] = members[int(config)]
        self.combinations = math.prod(int(c) for c in self.counts)
        self.dominates = dominance_matrix(points)
        # Runs a fixed run dominates: dominated in every draw.
        self.beaten: BoolArray = np.asarray(self.dominates[self.fixed_runs].any(axis=0))

    def cost(self, draws: int) -> int:
        """Booleans looked up for ``draws`` draws."""
        return draws * len(self.varying) * self.width

    def random(self, rng: np.random.Generator, resamples: int) -> IntArray:
        """``resamples`` random draws (the module's stream), one row each."""
        return rng.integers(0, self.counts, size=(resamples, len(self.varying)), dtype=np.int64)

    def every(self, start: int = 0, stop: int | None = None) -> IntArray:
        """Combinations ``start`` to ``stop`` (default: all) as draws, one row each."""
        stop = self.combinations if stop is None else stop
        numbers = np.arange(start, stop, dtype=np.int64)[:, None]
        strides = np.cumprod(np.append(1, self.counts[::-1][:-1]))[::-1]
        return np.asarray((numbers // strides) % self.counts, dtype=np.int64)

    def batches(self, picks: IntArray | None) -> Iterator[tuple[IntArray, BoolArray]]:
        """The draws ``picks`` (None: every combination) in batches: each draw's runs and
        which of them are on its front, one column per configuration (fixed ones first)."""
        total = self.combinations if picks is None else len(picks)
        size = max(1, GATHER // max(1, len(self.varying) * self.width))
        for start in range(0, total, size):
            stop = min(total, start + size)
            chosen = self.every(start, stop) if picks is None else picks[start:stop]
            drawn = self.padded[np.arange(len(self.varying)), chosen]  # [b, v]
            runs = np.concatenate(
                [np.broadcast_to(self.fixed_runs, (stop - start, len(self.fixed))), drawn], axis=1
            )
            beaten = self.dominates[drawn[:, :, None], runs[:, None, :]].any(axis=1)
            yield runs, ~(beaten | self.beaten[runs])

    def shares(self, picks: IntArray | None, fronts: list[FloatArray] | None = None) -> FloatArray:
        """Each configuration's share of draws that put it on the front, in ``members``
        order; each draw's front (as points) appended to ``fronts`` when it is given, so that
        the hypervolumes of the same draws need no second pass."""
        total = self.combinations if picks is None else len(picks)
        counts = np.zeros(len(self.fixed) + len(self.varying), dtype=np.int64)
        for runs, front in self.batches(picks):
            counts += front.sum(axis=0)
            if fronts is not None:
                fronts.extend(
                    self.points[chosen[kept]] for chosen, kept in zip(runs, front, strict=True)
                )
        shares = np.empty(self.width, dtype=np.float64)
        shares[np.concatenate([self.fixed, self.varying])] = counts / max(1, total)
        return shares

    def fronts(self, picks: IntArray | None) -> Iterator[FloatArray]:
        """Each draw's front, as points."""
        for runs, front in self.batches(picks):
            for chosen, kept in zip(runs, front, strict=True):
                yield self.points[chosen[kept]]
