"""Tests of the results table: rows read from trial directories written as the core writes them.

The directories hold ``metrics.jsonl``, ``metrics.json`` and ``config.json`` with the keys
`search_core.search` and `search_core.evaluate` write, built from real genotypes (`BUNDLED`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from search_core.errors import ConfigError, E2RNASError
from search_core.genotypes import BUNDLED, Genotype
from service.results.table import (
    FLOAT_COLUMNS,
    FRONT_METRICS,
    OBJECTIVE_COLUMNS,
    PAPER_METRICS,
    RESULT_COLUMNS,
    RETRAIN_DIR,
    TEXT_COLUMNS,
    TrialResultError,
    package_versions,
    results_frame,
    trial_row,
)

OBJECTIVES = ("val", "ood", "adv", "nop", "flops")


def search_record(
    epoch: int, genotype: Genotype, objectives: tuple[str, ...] = OBJECTIVES
) -> dict[str, Any]:
    """One epoch's record as `search_core.search.Search.run_epoch` returns it."""
    record: dict[str, Any] = {"epoch": epoch}
    for k, name in enumerate(OBJECTIVES):
        record[f"{name}_loss"] = 1.0 / (epoch + k) if name in objectives else None
    record.update(
        mgda_weights=[1.0 / len(objectives)] * len(objectives),
        objectives=list(objectives),
        train_loss=2.0 / epoch,
        params_m=0.5 + epoch / 100,
        flops_m=60.0 + epoch,
        genotype=genotype.to_json(),
        genotype_hash=genotype.genotype_hash(),
        lr=0.025 / epoch,
        seconds=10.0 * epoch,
    )
    return record


def write_trial(
    trial_dir: Path,
    genotypes: list[Genotype],
    mode: str | None = None,
    objectives: tuple[str, ...] = OBJECTIVES,
) -> list[dict[str, Any]]:
    """A trial directory: one search epoch per genotype, then an evaluation when ``mode``."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    records = [search_record(e, g, objectives) for e, g in enumerate(genotypes, start=1)]
    (trial_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (trial_dir / "config.json").write_text(json.dumps({"device": "cpu", "seed": 0}))
    if mode is not None:
        final = genotypes[-1]
        metrics = {
            "test_error": 2.76,
            "params_m": 3.349342,
            "flops_m": 528.1,
            "pgd_acc": 41.5,
            "ood_aupr": 88.25,
            "ood_aupr_paper": 33.5,
            "pgd_acc_paper": 52.25,
            "ood_fpr95_in": 41.0,
            "latency_ms": 4.5,
            "latency_device": "cuda (NVIDIA H200)",
            "clean_acc": 97.24,
            "mode": mode,
            "device": "cuda",
            "eval_seconds": 1234.5,
            "final_train_acc": 99.0,
            "genotype": final.to_json(),
            "genotype_hash": final.genotype_hash(),
            "settings": {"epochs": 600},
        }
        (trial_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return records


def test_row_of_a_searched_and_retrained_trial(tmp_path: Path) -> None:
    genotypes = [BUNDLED["darts_v1"], BUNDLED["darts_v2"]]
    records = write_trial(tmp_path / "t0", genotypes, mode="retrain")
    swept = {"L": 2.5, "F": 400.0, "seed": 1}
    row = trial_row("sw1", "t0", swept, tmp_path / "t0", "completed")
    assert list(row)[: len(RESULT_COLUMNS)] == list(RESULT_COLUMNS)
    assert {k: row[k] for k in swept} == swept
    assert row["status"] == "completed"
    for key in OBJECTIVE_COLUMNS:
        assert row[key] == records[-1][key]
    assert json.loads(row["mgda_weights"]) == records[-1]["mgda_weights"]
    assert row["evaluation"] == "retrain"
    assert (row["test_error"], row["params_m"], row["flops_m"]) == (2.76, 3.349342, 528.1)
    assert (row["pgd_acc"], row["ood_aupr"], row["latency_ms"]) == (41.5, 88.25, 4.5)
    assert row["search_seconds"] == 10.0 + 20.0
    assert row["eval_seconds"] == 1234.5
    assert row["device"] == "cuda"
    assert Genotype.loads(row["genotype"]) == BUNDLED["darts_v2"]
    assert row["genotype_hash"] == BUNDLED["darts_v2"].genotype_hash()
    versions = json.loads(row["versions"])
    assert {"torch", "torchvision", "e2rnas-sweeps"} <= set(versions)


def test_row_of_a_search_without_evaluation(tmp_path: Path) -> None:
    records = write_trial(tmp_path / "t1", [BUNDLED["pdarts"]], objectives=("val", "flops"))
    row = trial_row("sw1", "t1", {"L": 1.0}, tmp_path / "t1", "completed")
    assert row["evaluation"] == "none"
    # the exact size of the searched genotype stands in for the evaluated one
    assert (row["params_m"], row["flops_m"]) == (records[-1]["params_m"], records[-1]["flops_m"])
    for key in ("test_error", "pgd_acc", "ood_aupr", "latency_ms", "eval_seconds"):
        assert math.isnan(row[key]), key
    # objectives the search did not use are NaN, not zero
    assert row["val_loss"] == records[-1]["val_loss"]
    for key in ("ood_loss", "adv_loss", "nop_loss"):
        assert math.isnan(row[key]), key
    assert row["device"] == "cpu"  # from the search's config.json
    assert row["genotype_hash"] == BUNDLED["pdarts"].genotype_hash()


def test_missing_search_metrics_give_a_failed_row(tmp_path: Path) -> None:
    (tmp_path / "t2").mkdir()
    row = trial_row("sw1", "t2", {"L": 1.0}, tmp_path / "t2", "completed")
    assert row["status"] == "failed"
    assert row["genotype"] is None and row["genotype_hash"] is None
    assert all(math.isnan(row[key]) for key in FLOAT_COLUMNS)
    empty = tmp_path / "t3"
    empty.mkdir()
    (empty / "metrics.jsonl").write_text("")
    assert trial_row("sw1", "t3", {}, empty, "running")["status"] == "failed"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("metrics.jsonl", '{"epoch": 1}\n{not json\n', "metrics.jsonl:2: invalid JSON"),
        ("metrics.jsonl", "[1, 2]\n", "expected a JSON object per line"),
        ("metrics.json", "{", "invalid JSON at line 1"),
        ("metrics.json", '{"mode": "final"}', "mode: expected one of proxy, retrain"),
        ("metrics.json", '{"mode": "proxy", "test_error": "low"}', "test_error: expected a number"),
    ],
)
def test_corrupt_files_raise_with_file_and_problem(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    write_trial(tmp_path / "t", [BUNDLED["darts_v2"]], mode="proxy")
    (tmp_path / "t" / name).write_text(text)
    with pytest.raises(TrialResultError, match=message) as info:
        trial_row("sw1", "t", {}, tmp_path / "t", "completed")
    assert isinstance(info.value, E2RNASError)
    assert name in str(info.value)


def test_a_bad_genotype_in_the_metrics_is_an_error(tmp_path: Path) -> None:
    records = write_trial(tmp_path / "t", [BUNDLED["darts_v2"]])
    records[-1]["genotype"]["normal"][0] = ["conv_7x7", 0]
    (tmp_path / "t" / "metrics.jsonl").write_text(json.dumps(records[-1]) + "\n")
    with pytest.raises(TrialResultError, match="unknown op 'conv_7x7'"):
        trial_row("sw1", "t", {}, tmp_path / "t", "completed")


def test_swept_keys_may_not_shadow_contract_columns(tmp_path: Path) -> None:
    write_trial(tmp_path / "t", [BUNDLED["darts_v2"]])
    with pytest.raises(ConfigError, match=r"\['status'\]"):
        trial_row("sw1", "t", {"status": "x"}, tmp_path / "t", "completed")
    with pytest.raises(ConfigError, match="trial_id"):
        trial_row("sw1", "", {}, tmp_path / "t", "completed")


def test_results_frame_columns_and_dtypes(tmp_path: Path) -> None:
    write_trial(tmp_path / "a", [BUNDLED["darts_v1"]], mode="proxy")
    write_trial(tmp_path / "b", [BUNDLED["pc_darts"]])
    (tmp_path / "c").mkdir()
    rows = [
        trial_row("sw1", "007", {"seed": 1, "L": 2.5, "F": 400.0}, tmp_path / "a", "completed"),
        trial_row("sw1", "008", {"seed": 2, "L": 3.0, "F": 500.0}, tmp_path / "b", "completed"),
        trial_row("sw1", "009", {"seed": 3, "L": 3.5, "F": 600.0}, tmp_path / "c", "errored"),
    ]
    frame = results_frame(rows)
    assert list(frame.columns) == [*RESULT_COLUMNS, "F", "L", "seed"]
    assert len(frame) == 3
    for column in FLOAT_COLUMNS:
        assert frame[column].dtype == "float64", column
    for column in TEXT_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[column].dtype), column
    assert frame["trial_id"].tolist() == ["007", "008", "009"]  # ids stay text
    assert frame["seed"].dtype == "int64" and frame["L"].dtype == "float64"
    assert frame["evaluation"].tolist() == ["proxy", "none", "none"]
    assert frame["status"].tolist() == ["completed", "completed", "failed"]
    assert frame["genotype"].isna().tolist() == [False, False, True]
    assert frame.loc[1, FRONT_METRICS[0]] != frame.loc[1, FRONT_METRICS[0]]  # NaN test_error


def test_results_frame_of_no_rows_has_the_contract_columns() -> None:
    frame = results_frame([])
    assert list(frame.columns) == list(RESULT_COLUMNS)
    assert frame["params_m"].dtype == "float64"


def test_results_frame_refuses_rows_without_contract_columns() -> None:
    with pytest.raises(ConfigError, match="missing contract columns"):
        results_frame([{"sweep_id": "s", "trial_id": "t"}])


def test_package_versions_is_json_of_installed_packages() -> None:
    versions = json.loads(package_versions())
    assert versions["e2rnas-sweeps"] == "0.1.0"
    assert all(isinstance(v, str) for v in versions.values())


def test_every_row_names_its_backbone_swept_or_not(tmp_path: Path) -> None:
    """From config.json, whatever the sweep varied; a config.json from before backbones is a
    DARTS search; a trial that never wrote one takes the swept or configured backbone."""
    write_trial(tmp_path / "old", [BUNDLED["darts_v2"]])
    assert trial_row("sw1", "old", {"L": 1.0}, tmp_path / "old", "done")["backbone"] == "darts"

    write_trial(tmp_path / "pc", [BUNDLED["pc_darts"]])
    config = tmp_path / "pc" / "config.json"
    config.write_text(json.dumps({"device": "cpu", "backbone": "pc_darts"}))
    swept = {"L": 1.0, "backbone": "pc_darts"}
    row = trial_row("sw1", "pc", swept, tmp_path / "pc", "done", backbone="pc_darts")
    assert row["backbone"] == "pc_darts"
    frame = results_frame([row])
    assert list(frame.columns) == [*RESULT_COLUMNS, "L"]  # a contract column, not a swept one

    (tmp_path / "never").mkdir()
    unstarted = trial_row("sw1", "never", {"L": 1.0}, tmp_path / "never", "done", "pdarts")
    assert (unstarted["status"], unstarted["backbone"]) == ("failed", "pdarts")
    swept_only = trial_row("sw1", "never", {"backbone": "pdarts"}, tmp_path / "never", "done")
    assert swept_only["backbone"] == "pdarts"


def test_a_backbone_that_is_not_text_is_a_corrupt_config(tmp_path: Path) -> None:
    write_trial(tmp_path / "t", [BUNDLED["darts_v2"]])
    (tmp_path / "t" / "config.json").write_text(json.dumps({"backbone": 3}))
    with pytest.raises(TrialResultError, match=r"config\.json: backbone: expected a string"):
        trial_row("sw1", "t", {}, tmp_path / "t", "done")


# -- the paper-protocol measures, the search's diagnostics and options ----------------------


def rewrite_evaluation(path: Path, **changes: Any) -> None:
    """Change keys of a ``metrics.json``; a change to None removes the key."""
    metrics = json.loads(path.read_text())
    metrics.update(changes)
    path.write_text(json.dumps({k: v for k, v in metrics.items() if v is not None}))


def test_the_paper_metrics_come_from_the_evaluation_and_are_nan_before_it(
    tmp_path: Path,
) -> None:
    write_trial(tmp_path / "t", [BUNDLED["darts_v2"]], mode="retrain")
    row = trial_row("sw1", "t", {}, tmp_path / "t", "done")
    assert [row[name] for name in PAPER_METRICS] == [33.5, 52.25, 41.0]
    assert set(PAPER_METRICS) <= set(FLOAT_COLUMNS) and set(PAPER_METRICS) <= set(RESULT_COLUMNS)
    old = dict.fromkeys(PAPER_METRICS)  # a metrics.json written before they were measured
    rewrite_evaluation(tmp_path / "t" / "metrics.json", **old)
    row = trial_row("sw1", "t", {}, tmp_path / "t", "done")
    assert all(math.isnan(row[name]) for name in PAPER_METRICS)
    assert row["pgd_acc"] == 41.5  # the front metrics are read as before
    rewrite_evaluation(tmp_path / "t" / "metrics.json", pgd_acc_paper="high")
    with pytest.raises(TrialResultError, match=r"metrics\.json: pgd_acc_paper: expected a number"):
        trial_row("sw1", "t", {}, tmp_path / "t", "done")


def test_a_two_stage_row_takes_the_paper_metrics_of_the_retrain(tmp_path: Path) -> None:
    trial = tmp_path / "t"
    write_trial(trial, [BUNDLED["darts_v2"]], mode="proxy")
    row = trial_row("sw1", "t", {}, trial, "done", two_stage=True)
    assert row["proxy_pgd_acc"] == 41.5 and math.isnan(row["pgd_acc"])
    assert all(math.isnan(row[name]) for name in PAPER_METRICS)  # not retrained: none
    (trial / RETRAIN_DIR).mkdir()
    (trial / RETRAIN_DIR / "metrics.json").write_text((trial / "metrics.json").read_text())
    rewrite_evaluation(trial / RETRAIN_DIR / "metrics.json", mode="retrain", ood_aupr_paper=31.0)
    row = trial_row("sw1", "t", {}, trial, "done", two_stage=True)
    assert (row["evaluation"], row["pgd_acc"], row["proxy_pgd_acc"]) == ("retrain", 41.5, 41.5)
    assert [row[name] for name in PAPER_METRICS] == [31.0, 52.25, 41.0]


def write_norms(trial_dir: Path, norms: list[list[float] | str | None]) -> None:
    """Give the search's records ``grad_norms`` and ``effective_weights`` (twice the norms),
    one entry per record, None as a warm-up epoch reports them; "absent" leaves them out."""
    path = trial_dir / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    for record, value in zip(records, norms, strict=True):
        if value == "absent":
            record.pop("grad_norms", None)
            record.pop("effective_weights", None)
            continue
        doubled = [2 * v for v in value] if isinstance(value, list) else value
        record.update(grad_norms=value, effective_weights=doubled)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def test_gradient_norms_and_effective_weights_of_the_last_epoch_that_has_them(
    tmp_path: Path,
) -> None:
    trial = tmp_path / "t"
    write_trial(trial, [BUNDLED["darts_v1"], BUNDLED["darts_v2"], BUNDLED["darts_v2"]])
    write_norms(trial, [None, [0.5, 1, 2, 0.25, 3], "absent"])
    row = trial_row("sw1", "t", {}, trial, "done")
    assert json.loads(row["grad_norms"]) == [0.5, 1.0, 2.0, 0.25, 3.0]
    assert json.loads(row["effective_weights"]) == [1.0, 2.0, 4.0, 0.5, 6.0]
    assert "grad_norms" in TEXT_COLUMNS and "effective_weights" in TEXT_COLUMNS
    write_norms(trial, [[1, 1, 1, 1, 1], [2, 2, 2, 2, 2], [3, 3, 3, 3, 3]])
    stopped = trial_row("sw1", "t", {}, trial, "stopped", stopped_at=2)
    assert json.loads(stopped["grad_norms"]) == [2.0] * 5  # the epochs it ran before the stop
    write_norms(trial, [None, None, "absent"])  # warm-up epochs, then a search of old
    row = trial_row("sw1", "t", {}, trial, "done")
    assert row["grad_norms"] is None and row["effective_weights"] is None
    write_norms(trial, [None, "big", None])
    with pytest.raises(TrialResultError, match=r"metrics\.jsonl: epoch 2: grad_norms: expected"):
        trial_row("sw1", "t", {}, trial, "done")


def test_search_options_are_the_options_config_json_has(tmp_path: Path) -> None:
    trial = tmp_path / "t"
    write_trial(trial, [BUNDLED["darts_v2"]])
    assert trial_row("sw1", "t", {}, trial, "done")["search_options"] is None  # none given
    config = {
        "device": "cpu",
        "ood_upper_scale": 50.0,
        "mgda_on": "direct",
        "cost_scale": 7.5,
        "kl_reduction": "per_class",
        "adv_train_in_lower": False,
        "adv_lower_form": "fgsm",
        "seed": 0,
    }
    (trial / "config.json").write_text(json.dumps(config))
    row = trial_row("sw1", "t", {}, trial, "done")
    assert row["search_options"] == (
        '{"adv_lower_form": "fgsm", "adv_train_in_lower": false, "cost_scale": 7.5, '
        '"kl_reduction": "per_class", "mgda_on": "direct", "ood_upper_scale": 50.0}'
    )
    (trial / "config.json").write_text(json.dumps({"device": "cpu", "mgda_on": "direct"}))
    assert trial_row("sw1", "t", {}, trial, "done")["search_options"] == '{"mgda_on": "direct"}'
    frame = results_frame([row])
    assert frame.loc[0, "search_options"] == row["search_options"]
