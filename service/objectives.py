"""The registry of objectives: every metric a sweep optimises or reports, defined once.

Each :class:`Metric` has its name (the results column), its direction (``min`` or ``max``),
its unit, a label for axes and tables, and its kind:

- ``front``: the five front metrics of the empirical Pareto front (docs/ARCHITECTURE.md,
  "Units and names"), measured by the evaluation after each search;
- ``search``: the five upper-level objectives of eq. (7) at the end of the search (the losses
  of eqs. 2-7), which are also the front of a sweep without an evaluation, with the exact
  sizes of the derived genotype;
- ``other``: numbers of each trial worth plotting whose direction is still meaningful, among
  them the evaluation's paper-protocol measures (:data:`PAPER_METRICS`), which a sweep may
  choose as objectives of its front (:data:`EVALUATED_OBJECTIVES`).

Validation, Pareto analysis, figures, the report, exports, the REST API and (through
``GET /api/objectives``) the web pages read directions and labels from here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from service.errors import ObjectiveError

__all__ = [
    "DEFAULT_PROJECTION_2D",
    "DEFAULT_PROJECTION_3D",
    "DIRECTIONS",
    "EPOCH_METRICS",
    "EVALUATED_OBJECTIVES",
    "FRONT_METRICS",
    "METRICS",
    "PAPER_METRICS",
    "PROXY_METRICS",
    "SEARCH_OBJECTIVES",
    "UNEVALUATED_OBJECTIVES",
    "Direction",
    "Metric",
    "axis_label",
    "direction",
    "directions",
    "registry",
]

Direction = Literal["min", "max"]
Kind = Literal["front", "search", "other"]
DIRECTIONS: tuple[Direction, ...] = ("min", "max")


@dataclass(frozen=True)
class Metric:
    """One metric: its column name, direction, unit, label and kind."""

    name: str
    direction: Direction
    unit: str
    label: str
    kind: Kind


_ALL: tuple[Metric, ...] = (
    Metric("test_error", "min", "%", "Test error", "front"),
    Metric("params_m", "min", "M params", "Parameters", "front"),
    Metric("flops_m", "min", "M MACs", "FLOPs (multiply-accumulates)", "front"),
    Metric("pgd_acc", "max", "%", "Accuracy under PGD", "front"),
    Metric("ood_aupr", "max", "%", "OoD detection AUPR", "front"),
    Metric("val_loss", "min", "", "Validation loss (eq. 2)", "search"),
    Metric("ood_loss", "min", "", "OoD loss (eq. 3)", "search"),
    Metric("adv_loss", "min", "", "Adversarial loss (eq. 4)", "search"),
    Metric("nop_loss", "min", "", "Parameter-count loss (eqs. 5, 7)", "search"),
    Metric("flops_loss", "min", "", "FLOPs loss (eqs. 6, 7)", "search"),
    Metric("latency_ms", "min", "ms", "Latency, batch 1", "other"),
)

_ALL = (
    *_ALL,
    # The proxy's measures of a two-stage sweep, whose front metrics are the retrain's.
    Metric("proxy_test_error", "min", "%", "Test error (proxy)", "other"),
    Metric("proxy_params_m", "min", "M params", "Parameters (proxy)", "other"),
    Metric("proxy_flops_m", "min", "M MACs", "FLOPs (proxy)", "other"),
    Metric("proxy_pgd_acc", "max", "%", "Accuracy under PGD (proxy)", "other"),
    Metric("proxy_ood_aupr", "max", "%", "OoD detection AUPR (proxy)", "other"),
    # Measured by the same evaluation as the front metrics (search_core.evaluate.measure):
    # the protocol of the authors' scripts behind the paper's tables, to compare with them,
    # and the FPR at 95 % TPR with the in-distribution images as positives.
    Metric("ood_aupr_paper", "max", "%", "OoD AUPR, authors' protocol", "other"),
    Metric("pgd_acc_paper", "max", "%", "Accuracy under PGD, authors' protocol", "other"),
    Metric("ood_fpr95_in", "min", "%", "OoD FPR at 95 % TPR (in-distribution)", "other"),
)

METRICS: dict[str, Metric] = {metric.name: metric for metric in _ALL}
"""Every known metric by name."""

FRONT_METRICS: tuple[str, ...] = tuple(m.name for m in _ALL if m.kind == "front")
"""The five front metrics, in the order of the results table."""

SEARCH_OBJECTIVES: tuple[str, ...] = tuple(m.name for m in _ALL if m.kind == "search")
"""The five search objectives (losses) of eq. (7), in the paper's order."""

PROXY_METRICS: tuple[str, ...] = tuple(f"proxy_{name}" for name in FRONT_METRICS)
"""A two-stage sweep's proxy measures of the front metrics, in the same order."""

PAPER_METRICS: tuple[str, ...] = ("ood_aupr_paper", "pgd_acc_paper", "ood_fpr95_in")
"""What the evaluation measures beside the front metrics: the OoD AUPR and the PGD accuracy
by the authors' protocol (ε = 1/255, no random start), and the FPR at 95 % TPR with the
in-distribution images as positives. Results columns, no objectives unless a sweep asks."""

EVALUATED_OBJECTIVES: tuple[str, ...] = (*FRONT_METRICS, *PAPER_METRICS)
"""What an evaluated sweep may choose as its front's objectives (``strategy.objectives``)."""

UNEVALUATED_OBJECTIVES: tuple[str, ...] = (
    "val_loss",
    "ood_loss",
    "adv_loss",
    "params_m",
    "flops_m",
)
"""The front of a sweep without an evaluation: the search's losses and the exact sizes."""

EPOCH_METRICS: tuple[str, ...] = (*SEARCH_OBJECTIVES, "params_m", "flops_m")
"""What a search reports every epoch that a scheduler may rank trials on: the five losses and
the exact sizes of the genotype derived at that epoch."""

DEFAULT_PROJECTION_2D: tuple[str, str] = ("test_error", "params_m")
DEFAULT_PROJECTION_3D: tuple[str, str, str] = ("test_error", "params_m", "pgd_acc")
"""The axes of the report's and the pages' projections unless a sweep chooses others."""


def direction(name: str) -> Direction:
    """The direction of a known metric (ObjectiveError naming the choices otherwise)."""
    try:
        return METRICS[name].direction
    except KeyError:
        raise ObjectiveError(
            f"objectives: unknown objective {name!r}; expected one of {', '.join(METRICS)}"
        ) from None


def directions(names: Iterable[str]) -> dict[str, Direction]:
    """Each named metric's direction, in the given order."""
    return {name: direction(name) for name in names}


def axis_label(name: str) -> str:
    """An axis title: the column name with its direction, e.g. ``pgd_acc (max)``; a column
    that is no metric (``L``, ``seed``) keeps its bare name."""
    metric = METRICS.get(name)
    return f"{name} ({metric.direction})" if metric is not None else name


def registry() -> list[dict[str, Any]]:
    """The registry as JSON data (``GET /api/objectives``)."""
    return [asdict(metric) for metric in _ALL]
