"""The registry of objectives and the table of errors: each fact defined once, used everywhere."""

from __future__ import annotations

import pytest

from search_core.evaluate import FRONT_METRICS as MEASURED
from search_core.evaluate import PAPER_METRICS as MEASURED_BESIDE
from service import errors
from service.analysis.pareto import directions as pareto_directions
from service.objectives import (
    EVALUATED_OBJECTIVES,
    FRONT_METRICS,
    METRICS,
    PAPER_METRICS,
    SEARCH_OBJECTIVES,
    UNEVALUATED_OBJECTIVES,
    axis_label,
    direction,
    directions,
    registry,
)
from service.orchestration.points import sweep_objectives
from service.orchestration.spec import parse_sweep
from service.results.table import OBJECTIVE_COLUMNS, RESULT_COLUMNS


def test_the_front_metrics_are_the_papers_five_with_their_directions() -> None:
    assert directions(FRONT_METRICS) == {
        "test_error": "min",
        "params_m": "min",
        "flops_m": "min",
        "pgd_acc": "max",
        "ood_aupr": "max",
    }
    assert FRONT_METRICS == MEASURED  # what the evaluation measures is what the front ranks
    assert SEARCH_OBJECTIVES == OBJECTIVE_COLUMNS
    assert set(FRONT_METRICS) | set(SEARCH_OBJECTIVES) <= set(RESULT_COLUMNS)
    assert set(UNEVALUATED_OBJECTIVES) <= set(METRICS)


def test_every_user_of_directions_reads_the_registry() -> None:
    assert pareto_directions(list(METRICS)) == {name: m.direction for name, m in METRICS.items()}
    quick = parse_sweep(
        {"name": "q", "search": {"preset": "cpu-tiny"}, "grid": {"L": [1], "F": [1]}}
    )
    assert sweep_objectives(quick) == directions(FRONT_METRICS)
    unevaluated = parse_sweep(
        {
            "name": "n",
            "search": {"preset": "cpu-tiny"},
            "evaluation": {"mode": "none"},
            "grid": {"L": [1], "F": [1]},
        }
    )
    assert sweep_objectives(unevaluated) == directions(UNEVALUATED_OBJECTIVES)


OPTUNA = {
    "kind": "optuna",
    "num_samples": 2,
    "L": {"low": 0.1, "high": 1},
    "F": {"low": 0.3, "high": 1},
}


def test_the_paper_protocol_measures_are_objectives_only_where_a_sweep_asks() -> None:
    assert directions(PAPER_METRICS) == {
        "ood_aupr_paper": "max",
        "pgd_acc_paper": "max",
        "ood_fpr95_in": "min",
    }
    assert PAPER_METRICS == MEASURED_BESIDE  # what the evaluation measures beside the front
    assert all(
        METRICS[name].kind == "other" and METRICS[name].unit == "%" for name in PAPER_METRICS
    )
    assert set(PAPER_METRICS) <= set(RESULT_COLUMNS)
    assert (*FRONT_METRICS, *PAPER_METRICS) == EVALUATED_OBJECTIVES
    by_default = parse_sweep({"name": "d", "search": {"preset": "cpu-tiny"}, "strategy": OPTUNA})
    assert sweep_objectives(by_default) == directions(FRONT_METRICS)
    chosen = ["test_error", "pgd_acc_paper", "ood_fpr95_in"]
    asked = parse_sweep(
        {
            "name": "a",
            "search": {"preset": "cpu-tiny"},
            "strategy": {**OPTUNA, "objectives": chosen},
        }
    )
    assert sweep_objectives(asked) == {
        "test_error": "min",
        "pgd_acc_paper": "max",
        "ood_fpr95_in": "min",
    }
    # a two-stage sweep picks its retrains on the proxy's measures, which have no such column
    two_stage = {
        "name": "t",
        "search": {"preset": "cpu-tiny"},
        "strategy": {**OPTUNA, "objectives": chosen},
        "evaluation": {"mode": "two_stage", "retrain": {"max": 2}},
    }
    with pytest.raises(
        errors.ConfigError,
        match=r"strategy\.objectives: pgd_acc_paper, ood_fpr95_in: a two_stage evaluation",
    ):
        parse_sweep(two_stage)
    with pytest.raises(errors.ConfigError, match=r"strategy\.objectives: expected distinct names"):
        parse_sweep({**two_stage, "strategy": {**OPTUNA, "objectives": ["ood_fpr95"]}})


def test_labels_and_the_json_form() -> None:
    assert axis_label("pgd_acc") == "pgd_acc (max)" and axis_label("L") == "L"
    assert [entry["name"] for entry in registry()] == list(METRICS)
    assert all(set(entry) == {"name", "direction", "unit", "label", "kind"} for entry in registry())


def test_an_unknown_objective_names_the_choices() -> None:
    with pytest.raises(
        errors.ObjectiveError, match=r"objectives: unknown objective 'bogus'.*test_error"
    ):
        direction("bogus")


@pytest.mark.parametrize(
    ("error", "code", "status"),
    [
        (errors.UnknownSweepError("x", "id"), 2, 404),
        (errors.SweepConflictError("x"), 2, 409),
        (errors.SweepSyntaxError("x"), 2, 400),
        (errors.ObjectiveError("x"), 2, 422),
        (errors.ConfigError("x"), 2, 422),
        (errors.GenotypeError("x"), 2, 422),
        (errors.JobError("x"), 2, 503),
        (errors.StoreError("x"), 2, 503),
        (errors.StorageError("x"), 2, 500),
        (errors.CommandLineError("x"), 2, 500),
    ],
)
def test_one_table_maps_each_error_to_exit_code_and_status(
    error: errors.E2RNASError, code: int, status: int
) -> None:
    assert errors.exit_code(error) == code
    assert errors.http_status(error) == status
