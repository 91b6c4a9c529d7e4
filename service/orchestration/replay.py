"""Sweep replay: what a scheduler would have cost and found on a finished sweep, for free.

A sweep run to the end (``scheduler: fifo``) logged every trial's search record of every
epoch (``metrics.jsonl``). :func:`replay_sweep` feeds those records, in the order the sweep
produced them, through the same decision code the Ray Tune scheduler runs
(:class:`~service.orchestration.mo_asha.ParetoHalving`), with no training, and measures:

- the search epochs the scheduler would have spent ÷ the grid's (every trial to its end);
- the hypervolume of the front of the trials it would have let finish ÷ the hypervolume of the
  whole sweep's front, both over the sweep's front metrics and from the sweep's reference point
  (that of :func:`service.analysis.pareto.pareto_info` on all its finished trials).

Orders: ``arrival`` replays the records by the wall-clock end of their epoch (``ended_at``),
which is what the driver saw; ``trials`` replays one trial after another in the order Tune
started them (the counter of its grid trial ids; a search algorithm's trials by the end of
their first epoch), which is what a sweep run one trial at a time sees. A replayed trial that the
scheduler stops is charged the epochs up to its stop; its later records are skipped.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from service.analysis.pareto import pareto_info
from service.errors import ConfigError, SweepStateError
from service.objectives import EPOCH_METRICS
from service.orchestration.collect import results_table
from service.orchestration.mo_asha import TIE_BREAKS, ParetoHalving, replay, rule_for
from service.orchestration.points import sweep_objectives
from service.orchestration.rundir import spec_of, trial_states
from service.results.table import read_search_records

__all__ = [
    "ORDERS",
    "SETTING_KEYS",
    "Replayed",
    "format_table",
    "parse_settings",
    "replay_sweep",
    "replay_table",
    "settings_grid",
]

ORDERS = ("arrival", "trials")
SETTING_KEYS = ("metrics", "grace_period", "reduction_factor", "tie_break", "max_rungs")
Record = tuple[str, int, Mapping[str, Any]]


@dataclass(frozen=True)
class Replayed:
    """One scheduler's replay: its setting, the epochs each trial would have run, the trials
    it stopped (at which epoch), the cost, the hypervolumes (``full_*``: every trial), the size
    of the front of the trials it let finish and how many of the whole front those include."""

    scheduler: str
    setting: dict[str, Any]
    ran: dict[str, int]
    stopped: dict[str, int]
    epochs: int
    full_epochs: int
    hypervolume: float
    full_hypervolume: float
    finished: int
    front: int
    front_kept: int  # trials of the whole sweep's front among those it let finish

    @property
    def epoch_ratio(self) -> float:
        return self.epochs / self.full_epochs if self.full_epochs else math.nan

    @property
    def hypervolume_ratio(self) -> float:
        if self.full_hypervolume > 0:
            return self.hypervolume / self.full_hypervolume
        return math.nan


def parse_settings(pairs: Sequence[str]) -> dict[str, list[Any]]:
    """``--set key=v1,v2`` pairs as each setting's values (``metrics`` values are sets of
    names joined by ``+``); unknown keys and bad values are ConfigErrors naming the pair."""
    found: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or key not in SETTING_KEYS or not text.strip():
            raise ConfigError(
                f"--set {pair!r}: expected KEY=V1[,V2...] with KEY one of "
                f"{', '.join(SETTING_KEYS)}, e.g. --set grace_period=1,2"
            )
        values: list[Any] = []
        for item in (part.strip() for part in text.split(",")):
            values.append(_setting_value(pair, key, item))
        found[key] = values
    return found


def _setting_value(pair: str, key: str, item: str) -> Any:
    if key == "max_rungs" and item == "all":
        return None
    if key == "tie_break":
        if item not in TIE_BREAKS:
            raise ConfigError(
                f"--set {pair!r}: tie_break: expected one of {', '.join(TIE_BREAKS)}, got {item!r}"
            )
        return item
    if key == "metrics":
        names = tuple(name.strip() for name in item.split("+"))
        unknown = [name for name in names if name not in EPOCH_METRICS]
        if unknown or len(set(names)) != len(names):
            raise ConfigError(
                f"--set {pair!r}: metrics: expected distinct names among "
                f"{', '.join(EPOCH_METRICS)} joined by '+', got {item!r}"
            )
        return names
    whole = key in ("grace_period", "max_rungs")
    try:
        number = int(item) if whole else float(item)
    except ValueError:
        number = math.nan
    if not (number >= 1 if whole else number > 1) or not math.isfinite(number):
        expected = "a whole number >= 1" if whole else "a number > 1"
        if key == "max_rungs":
            expected += " or all"
        raise ConfigError(f"--set {pair!r}: {key}: expected {expected}, got {item!r}")
    return number


def settings_grid(values: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every combination of the settings' values (keys left out take the sweep's)."""
    keys = [key for key in SETTING_KEYS if key in values]
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(values[k] for k in keys))
    ]


def _records(run_dir: Path, order: str) -> tuple[list[Record], dict[str, int]]:
    """Every search record of the sweep's finished trials in the replay's order, and each
    trial's full number of epochs. A sweep with trials stopped early cannot be replayed: what
    they would have done later was never measured."""
    per_trial: list[tuple[str, str, list[dict[str, Any]]]] = []
    for info in trial_states(run_dir):
        if info.get("status") == "stopped":
            raise SweepStateError(
                f"{run_dir}: trial {info['trial_key']} was stopped early by the sweep's "
                "scheduler; a replay needs every trial's every epoch: replay a sweep run "
                "with scheduler kind fifo"
            )
        if info.get("status") != "done":
            continue
        records = read_search_records(Path(info["dir"]) / "metrics.jsonl")
        per_trial.append((str(info["trial_key"]), str(info.get("tune_trial_id", "")), records))
    full = {name: len(records) for name, _, records in per_trial}
    if order == "trials":
        per_trial.sort(key=lambda item: (*_start_order(item[1], item[2]), item[0]))
        flat: list[Record] = [(n, int(r["epoch"]), r) for n, _, recs in per_trial for r in recs]
        return flat, full
    keyed = [
        (float(r.get("ended_at", math.inf)), index, int(r["epoch"]), name, r)
        for index, (name, _, records) in enumerate(per_trial)
        for r in records
    ]
    keyed.sort(key=lambda item: item[:3])
    return [(name, epoch, r) for _, _, epoch, name, r in keyed], full


def _start_order(tune_trial_id: str, records: Sequence[Mapping[str, Any]]) -> tuple[float, ...]:
    """The order Tune started a trial in: the counter it numbers grid trials with
    (``<experiment>_<counter>``), else (a search algorithm's ids) the end of its first epoch."""
    counter = tune_trial_id.rpartition("_")[2]
    if counter.isdigit():
        return (0.0, float(counter))
    first = records[0].get("ended_at") if records else None
    return (1.0, float(first) if isinstance(first, int | float) else math.inf)


def replay_sweep(
    run_dir: Path,
    settings: Sequence[Mapping[str, Any]] = ({},),
    order: Literal["arrival", "trials"] = "arrival",
    include_fifo: bool = True,
) -> list[Replayed]:
    """Replay the finished sweep in ``run_dir`` under FIFO (unless ``include_fifo`` is False)
    and MO-ASHA with each of ``settings`` (keys of :data:`SETTING_KEYS`; the rest from the
    sweep file's ``scheduler`` section, else MO-ASHA's defaults)."""
    if order not in ORDERS:
        raise ConfigError(f"--order: expected one of {', '.join(ORDERS)}, got {order!r}")
    run_dir = Path(run_dir).resolve()
    spec = spec_of(run_dir)
    records, full = _records(run_dir, order)
    if not records:
        raise SweepStateError(f"{run_dir}: no finished trial to replay")
    frame = results_table(run_dir)
    done = frame[frame["status"] == "done"].reset_index(drop=True)
    objectives = sweep_objectives(spec)
    whole = pareto_info(done, objectives)
    full_epochs = sum(full.values())
    front_ids = {str(done.loc[i, "trial_id"]) for i in whole.front}
    outcomes = []
    if include_fifo:
        outcomes.append(
            Replayed(
                "fifo", {}, dict(full), {}, full_epochs, full_epochs,
                whole.hypervolume, whole.hypervolume, len(full), len(whole.front),
                len(whole.front),
            )
        )  # fmt: skip
    for setting in settings:
        rule = rule_for(spec, **setting)
        ran = replay(rule, records)
        finished = done[~done["trial_id"].isin(list(rule.stopped))].reset_index(drop=True)
        kept = pareto_info(finished, objectives, reference=whole.reference)
        outcomes.append(
            Replayed(
                "mo_asha", _setting_of(rule), ran, dict(rule.stopped), sum(ran.values()),
                full_epochs, kept.hypervolume, whole.hypervolume, len(finished),
                len(kept.front), len(front_ids - set(rule.stopped)),
            )
        )  # fmt: skip
    return outcomes


def _setting_of(rule: ParetoHalving) -> dict[str, Any]:
    return {
        "metrics": tuple(rule.metrics),
        "grace_period": rule.grace_period,
        "reduction_factor": rule.reduction_factor,
        "tie_break": rule.tie_break,
        "max_rungs": "all" if rule.max_rungs is None else rule.max_rungs,
    }


def replay_table(outcomes: Sequence[Replayed]) -> pd.DataFrame:
    """The replays as a table: one row per scheduler setting (its keys as columns, the ranked
    metrics shortened: ``val+params+flops``), then what it stopped, spent and kept."""
    rows = []
    for outcome in outcomes:
        setting = {key: "-" for key in SETTING_KEYS}
        if outcome.scheduler != "fifo":
            setting = {**outcome.setting, "metrics": _short(outcome.setting["metrics"])}
        rows.append(
            {
                "scheduler": outcome.scheduler,
                **setting,
                "stopped": len(outcome.stopped),
                "finished": outcome.finished,
                "front": outcome.front,
                "front_kept": outcome.front_kept,
                "search_epochs": outcome.epochs,
                "epochs_ratio": outcome.epoch_ratio,
                "hypervolume": outcome.hypervolume,
                "hypervolume_ratio": outcome.hypervolume_ratio,
            }
        )
    return pd.DataFrame(rows)


def _short(metrics: Sequence[str]) -> str:
    return "+".join(name.removesuffix("_loss").removesuffix("_m") for name in metrics)


def format_table(table: pd.DataFrame) -> str:
    """:func:`replay_table` as text: ratios as percentages."""
    percent = "{:.1%}".format
    return str(
        table.to_string(
            index=False,
            formatters={
                "epochs_ratio": percent,
                "hypervolume_ratio": percent,
                "hypervolume": "{:.4g}".format,
            },
        )
    )
