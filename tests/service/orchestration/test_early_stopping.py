"""MO-ASHA in a real sweep: the sweep file's ``scheduler`` section, the Ray Tune scheduler, the
``stopped`` rows it leaves, its resume, and the replay of a finished sweep.

The real run is the session's reference sweep (``tests/sweepkit.py``) with ``scheduler:
mo_asha`` and one trial at a time; its decisions must be those of ``e2rnas replay`` on the
reference itself (a FIFO sweep of the same grid, replayed trial after trial). The unit tests
of the decision rule against brute force are ``test_mo_asha.py``.
"""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import sys
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd  # type: ignore[import-untyped, unused-ignore]
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from sweepkit import ASHA_SETTING, EPOCHS, SharedRun, asha_text, run_to_end, sweep_text

from service import cli
from service.errors import ConfigError, SweepStateError
from service.orchestration.mo_asha import ParetoHalving, replay
from service.orchestration.replay import parse_settings, replay_sweep, settings_grid
from service.orchestration.rundir import (
    SCHEDULER_FILE,
    read_scheduler_state,
    sweep_progress,
    trial_states,
)
from service.orchestration.spec import parse_sweep
from service.orchestration.tuner import ParetoHalvingScheduler
from service.results.table import read_search_records, trial_row

SEARCH_COLUMNS = ("val_loss", "ood_loss", "adv_loss", "nop_loss", "flops_loss", "mgda_weights")


# -- bad settings: refused before anything runs, naming the field ---------------------------


@pytest.mark.parametrize(
    ("scheduler", "expected"),
    [
        ("{kind: mo_asha, metrics: [test_error]}", "scheduler.metrics: expected distinct names"),
        ("{kind: mo_asha, reduction_factor: 1}", "scheduler.reduction_factor: expected a factor"),
        ("{kind: mo_asha, reduction_factor: 0.5}", "scheduler.reduction_factor"),
        ("{kind: mo_asha, grace_period: 4}", "scheduler.grace_period: 4 is not below"),
        ("{kind: mo_asha, grace_period: 0}", "scheduler.grace_period"),
        ("{kind: fifo, grace_period: 2}", "grace_period: used only by kind mo_asha"),
        ("{kind: hyperband}", "scheduler.kind"),
        ("{kind: mo_asha, tie_break: random}", "scheduler.tie_break"),
        ("{kind: mo_asha, max_rungs: 0}", "scheduler.max_rungs"),
        ("{kind: mo_asha, rungs: 3}", "scheduler.rungs: unknown key"),
    ],
)
def test_bad_scheduler_settings_are_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], scheduler: str, expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(sweep_text("bad") + f"scheduler: {scheduler}\n", encoding="utf-8")
    out = tmp_path / "run"
    assert cli.main(["sweep", "run", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert expected in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_metric_the_search_never_measures_is_refused() -> None:
    text = sweep_text("x").replace(
        "    order: first\n", "    order: first\n    objectives: [val]\n"
    )
    with pytest.raises(ConfigError, match=r"scheduler\.metrics: adv_loss is not among"):
        parse_sweep(text + "scheduler: {kind: mo_asha}\n")
    # Ranked on what that search reports, the same file is accepted.
    spec = parse_sweep(text + "scheduler: {kind: mo_asha, metrics: [val_loss, params_m]}\n")
    assert spec.scheduler.ranked == ("val_loss", "params_m")


def test_a_grace_period_inside_the_warm_up_is_refused() -> None:
    text = sweep_text("x").replace(
        "    order: first\n", "    order: first\n    arch_warmup_epochs: 2\n"
    )
    with pytest.raises(ConfigError, match=r"scheduler\.grace_period: 2 falls in the search's warm"):
        parse_sweep(text + "scheduler: {kind: mo_asha, grace_period: 2}\n")
    spec = parse_sweep(text + "scheduler: {kind: mo_asha, grace_period: 3}\n")
    assert spec.scheduler.grace == 3


# -- the Ray Tune scheduler without a cluster: decisions, state file, restore ----------------


def _records(seed: int, trials: int, epochs: int) -> list[tuple[str, int, dict[str, Any]]]:
    """Random search records, trials interleaved as an asynchronous sweep reports them."""
    import random

    rng = random.Random(seed)
    progress = dict.fromkeys(range(trials), 0)
    out = []
    while any(e < epochs for e in progress.values()):
        trial = rng.choice([t for t, e in progress.items() if e < epochs])
        progress[trial] += 1
        values = {name: rng.random() for name in ("val_loss", "adv_loss", "params_m")}
        out.append((f"L={trial}", progress[trial], values))
    return out


def _spec() -> Any:
    text = sweep_text("unit").replace("    epochs: 4\n", "    epochs: 9\n")
    return parse_sweep(
        text + "scheduler: {kind: mo_asha, metrics: [val_loss, adv_loss, params_m]}\n"
    )


def _feed(
    scheduler: ParetoHalvingScheduler, records: list[tuple[str, int, dict[str, Any]]]
) -> dict[str, str]:
    """Each trial's last answer; a stopped trial reports nothing more, as under Tune."""
    answers: dict[str, str] = {}
    for name, epoch, values in records:
        if answers.get(name) == "STOP":
            continue
        trial = SimpleNamespace(config={"L": float(name[2:])}, trial_id=f"t_{name}")
        result = {**values, "epoch": epoch, "phase": "search"}
        answers[name] = scheduler.on_trial_result(None, trial, result)
    return answers


@pytest.mark.parametrize("seed", range(4))
def test_the_tune_scheduler_answers_as_the_rule_and_a_restore_goes_on_the_same(
    tmp_path: Path, seed: int
) -> None:
    spec = _spec()
    records = [(f"L={n[2:]}.0", e, v) for n, e, v in _records(seed, 12, 9)]
    # The rule alone, fed the same records: what the Tune scheduler must answer.
    rule = ParetoHalving({"val_loss": "min", "adv_loss": "min", "params_m": "min"}, 1, 3, 9)
    replay(rule, records)
    whole = tmp_path / "whole"
    whole.mkdir()
    uninterrupted = ParetoHalvingScheduler(spec, whole)
    answers = _feed(uninterrupted, records)
    stopped = read_scheduler_state(whole)["stopped"]
    assert stopped == rule.stopped and stopped  # some trials stopped, at the rule's epochs
    assert {n for n, a in answers.items() if a == "STOP"} == set(rule.stopped)
    # A driver that dies halfway: Tune unpickles the scheduler it pickled at the start, which
    # reads the rungs back from scheduler.json.
    halted = tmp_path / "halted"
    halted.mkdir()
    first = ParetoHalvingScheduler(spec, halted)
    blank = pickle.dumps(first)
    half = len(records) // 2
    _feed(first, records[:half])
    restored = pickle.loads(blank)
    assert restored.rungs._rule is None
    # A stopped trial that reports again (its stop was not recorded by Tune) stops again.
    _feed(restored, records[half:])
    assert read_scheduler_state(halted) == read_scheduler_state(whole)


def test_a_trial_restored_past_a_rung_enters_it_with_that_epoch_s_record(tmp_path: Path) -> None:
    """The driver died after a trial's checkpoint of epoch 1 but before it ranked it: the
    restored trial's next report is epoch 2, and the rung at 1 gets epoch 1's record from
    the trial's metrics.jsonl, as in an uninterrupted run."""
    spec = _spec()
    first_values = {"val_loss": 0.5, "adv_loss": 0.5, "params_m": 0.5}
    better_at_1 = {"val_loss": 0.1, "adv_loss": 0.1, "params_m": 0.1}
    worse_at_2 = {"val_loss": 0.9, "adv_loss": 0.9, "params_m": 0.9}
    trial_dir = tmp_path / "trials" / "F=0.6_L=2.0"
    trial_dir.mkdir(parents=True)
    lines = [{"epoch": 1, **better_at_1}, {"epoch": 2, **worse_at_2}]
    (trial_dir / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8"
    )
    scheduler = ParetoHalvingScheduler(spec, tmp_path)
    first = SimpleNamespace(config={"F": 0.6, "L": 1.0}, trial_id="a_00000")
    late = SimpleNamespace(config={"F": 0.6, "L": 2.0}, trial_id="a_00001")
    search = {"phase": "search"}
    assert scheduler.on_trial_result(None, first, {**first_values, "epoch": 1, **search}) == (
        "CONTINUE"
    )
    # Ranked on epoch 2's values the trial would stop (dominated, one of two kept); on epoch
    # 1's, which dominate the first trial's, it goes on.
    assert scheduler.on_trial_result(None, late, {**worse_at_2, "epoch": 2, **search}) == (
        "CONTINUE"
    )
    state = read_scheduler_state(tmp_path)
    assert state["rungs"]["1"]["F=0.6_L=2.0"] == [0.1, 0.1, 0.1]
    assert state["stopped"] == {}
    # Without the trial's record the rung takes the values at hand, and it stops.
    (trial_dir / "metrics.jsonl").unlink()
    other = ParetoHalvingScheduler(spec, tmp_path / "trials")
    other.on_trial_result(None, first, {**first_values, "epoch": 1, **search})
    assert other.on_trial_result(None, late, {**worse_at_2, "epoch": 2, **search}) == "STOP"


def test_reports_other_than_search_epochs_pass_through(tmp_path: Path) -> None:
    scheduler = ParetoHalvingScheduler(_spec(), tmp_path)
    trial = SimpleNamespace(config={"L": 1.0}, trial_id="a_00000")
    assert scheduler.on_trial_result(None, trial, {"phase": "done", "epoch": 9}) == "CONTINUE"
    assert scheduler.on_trial_result(None, trial, {"phase": "search"}) == "CONTINUE"
    assert not (tmp_path / SCHEDULER_FILE).exists()


# -- stopped trials in the run directory and the results table --------------------------------


def test_a_stopped_trial_is_stopped_in_states_progress_and_its_row(tmp_path: Path) -> None:
    trial_dir = tmp_path / "trials" / "L=1"
    trial_dir.mkdir(parents=True)
    (trial_dir / "trial.json").write_text(
        json.dumps({"trial_key": "L=1", "point": {"L": 1}, "status": "running"}), encoding="utf-8"
    )
    genotype = {
        "normal": [["skip_connect", 0], ["skip_connect", 1]],
        "normal_concat": [2],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1]],
        "reduce_concat": [2],
    }
    lines = [
        {"epoch": e, "val_loss": 1.0 / e, "params_m": 0.1 * e, "flops_m": e, "seconds": 2.0,
         "genotype": genotype}
        for e in (1, 2, 3)
    ]  # fmt: skip
    (trial_dir / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8"
    )
    (trial_dir / "checkpoint.pt").write_bytes(b"x")
    (trial_dir / "metrics.json").write_text(json.dumps({"mode": "proxy", "test_error": 5.0}))
    (tmp_path / SCHEDULER_FILE).write_text(json.dumps({"stopped": {"L=1": 2}}), encoding="utf-8")
    (state,) = trial_states(tmp_path)
    assert (state["status"], state["stopped_at"], state["epochs"]) == ("stopped", 2, 2)
    progress = sweep_progress(tmp_path, 3)
    assert progress == {
        "total": 3, "pending": 2, "running": 0, "done": 0, "stopped": 1, "failed": 0,
        "epochs": 2,
    }  # fmt: skip
    row = trial_row("s", "L=1", {"L": 1}, trial_dir, "stopped", stopped_at=2)
    # The epoch it was stopped at, not the one it ran on while the stop was on its way; and
    # no evaluation, although a metrics.json is there.
    assert (row["status"], row["search_epochs"], row["val_loss"]) == ("stopped", 2.0, 0.5)
    assert row["params_m"] == 0.2 and row["evaluation"] == "none"
    assert math.isnan(row["test_error"]) and row["search_seconds"] == 4.0


def test_a_damaged_scheduler_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / SCHEDULER_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(SweepStateError, match=r"scheduler\.json: cannot read the scheduler"):
        read_scheduler_state(tmp_path)


# -- replay settings ---------------------------------------------------------------------------


def test_replay_settings_are_parsed_into_a_grid() -> None:
    values = parse_settings(["grace_period=1,2", "metrics=val_loss+params_m,flops_m"])
    assert values == {"grace_period": [1, 2], "metrics": [("val_loss", "params_m"), ("flops_m",)]}
    assert settings_grid(values) == [
        {"metrics": ("val_loss", "params_m"), "grace_period": 1},
        {"metrics": ("val_loss", "params_m"), "grace_period": 2},
        {"metrics": ("flops_m",), "grace_period": 1},
        {"metrics": ("flops_m",), "grace_period": 2},
    ]
    assert settings_grid({}) == [{}]
    assert parse_settings(["max_rungs=1,all"]) == {"max_rungs": [1, None]}


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("grace=1", "KEY=V1"),
        ("grace_period=0", "grace_period: expected a whole number >= 1"),
        ("grace_period=1.5", "grace_period: expected a whole number >= 1"),
        ("reduction_factor=1", "reduction_factor: expected a number > 1"),
        ("metrics=test_error", "metrics: expected distinct names"),
        ("metrics=", "KEY=V1"),
        ("tie_break=nearest", "tie_break: expected one of crowding, hypervolume"),
        ("max_rungs=0", "max_rungs: expected a whole number >= 1 or all"),
    ],
)
def test_bad_replay_settings_name_the_pair(pair: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        parse_settings([pair])


# -- a real MO-ASHA sweep, and its replay --------------------------------------------------------


@pytest.fixture(scope="module")
def asha_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("asha")
    path = folder / "asha.yaml"
    path.write_text(asha_text("asha"), encoding="utf-8")
    run_dir = folder / "run"
    done = run_to_end(path, run_dir, folder)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, done.stderr


def _reference_record(reference: SharedRun, trial: str, epoch: int) -> Mapping[str, Any]:
    records = read_search_records(reference.run_dir / "trials" / trial / "metrics.jsonl")
    return next(r for r in records if r["epoch"] == epoch)


@pytest.mark.integration
@pytest.mark.slow
def test_a_real_mo_asha_sweep_stops_trials_and_records_them(
    asha_run: tuple[Path, str], reference_sweep: SharedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, log = asha_run
    stopped = read_scheduler_state(run_dir)["stopped"]
    assert stopped, "the scheduler stopped no trial"
    assert "stopped at epoch" in log
    frame = pd.read_parquet(run_dir / "results.parquet")
    assert len(frame) == 2 and set(frame["status"]) == {"done", "stopped"}
    reference = reference_sweep.frame()
    for _, row in frame.iterrows():
        if row["status"] == "done":  # ran as in the reference, to the bit
            (same,) = reference[reference["trial_id"] == row["trial_id"]].to_dict("records")
            assert row["search_epochs"] == EPOCHS
            assert all(row[c] == same[c] for c in (*SEARCH_COLUMNS, "test_error", "genotype"))
            continue
        # Stopped: the epoch it reached and that epoch's search record; never evaluated.
        epoch = stopped[row["trial_id"]]
        assert row["search_epochs"] == epoch < EPOCHS
        expected = _reference_record(reference_sweep, row["trial_id"], epoch)
        assert row["val_loss"] == expected["val_loss"]
        assert row["params_m"] == expected["params_m"]
        assert row["evaluation"] == "none" and math.isnan(row["test_error"])
        assert not (run_dir / "trials" / row["trial_id"] / "metrics.json").exists()
    # The database holds the same statuses; the front and its export leave stopped ones out.
    with sqlite3.connect(run_dir / "results.db") as db:
        stored = dict(db.execute("select trial_id, status from trials").fetchall())
        assert stored == dict(zip(frame["trial_id"], frame["status"], strict=True))
        (progress,) = db.execute("select progress from sweeps").fetchone()
        assert json.loads(progress)["stopped"] == len(stopped)
    front = pd.read_csv(run_dir / "export" / "front.csv")
    assert set(front["trial_id"]).isdisjoint(stopped)
    assert "stopped early by the scheduler" in (run_dir / "report.html").read_text()
    assert cli.main(["sweep", "status", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"{len(stopped)} stopped early" in out
    assert any(
        f"{name}: stopped, epochs {epoch}/{EPOCHS}" in out for name, epoch in stopped.items()
    )


@pytest.mark.integration
@pytest.mark.slow
def test_replay_of_the_fifo_sweep_stops_what_the_real_run_stopped(
    asha_run: tuple[Path, str], reference_sweep: SharedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir, _ = asha_run
    real = read_scheduler_state(run_dir)
    (replayed,) = replay_sweep(
        reference_sweep.run_dir, [ASHA_SETTING], order="trials", include_fifo=False
    )
    assert replayed.stopped == real["stopped"]
    # The replay's decisions are the real scheduler's, one by one, and those of the rule fed
    # the reference's records by hand, trial after trial.
    assert real["decisions"] == [asdict(d) for d in _decisions_by_hand(reference_sweep)]
    # The CLI's table: FIFO spends every epoch and keeps the whole front; the setting spends
    # what its trials ran.
    assert cli.main(["replay", str(reference_sweep.run_dir), "--set", "reduction_factor=2",
                     "--order", "trials", "--json"]) == 0  # fmt: skip
    fifo, asha = json.loads(capsys.readouterr().out)
    assert (fifo["scheduler"], fifo["epochs_ratio"], fifo["hypervolume_ratio"]) == ("fifo", 1, 1)
    assert fifo["search_epochs"] == 2 * EPOCHS and fifo["stopped"] == 0
    assert asha["stopped"] == len(real["stopped"])
    assert asha["search_epochs"] == sum(
        real["stopped"].get(name, EPOCHS) for name in ("F=0.6_L=0.03", "F=0.6_L=0.08")
    )
    assert asha["epochs_ratio"] == asha["search_epochs"] / fifo["search_epochs"]
    assert 0 < asha["hypervolume_ratio"] <= 1


def _decisions_by_hand(reference: SharedRun) -> list[Any]:
    rule = ParetoHalving(
        {name: "min" for name in parse_sweep(asha_text("asha")).scheduler.ranked}, 1, 2, EPOCHS
    )  # every default metric is minimised
    records = [
        (name, r["epoch"], r)
        for name in ("F=0.6_L=0.03", "F=0.6_L=0.08")
        for r in read_search_records(reference.run_dir / "trials" / name / "metrics.jsonl")
    ]
    replay(rule, records)
    return rule.decisions


@pytest.mark.integration
@pytest.mark.slow
def test_replay_refuses_a_sweep_with_stopped_trials(asha_run: tuple[Path, str]) -> None:
    run_dir, _ = asha_run
    with pytest.raises(SweepStateError, match="was stopped early by the sweep's scheduler"):
        replay_sweep(run_dir)
