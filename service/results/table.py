"""The results table: one row per trial, read from the trial's directory (docs/ARCHITECTURE.md).

A row holds the contract columns `RESULT_COLUMNS`, in that order, then every swept value under
its config key (``L``, ``F``, ``seed``, ablation flags), sorted by key. ``backbone`` is a
contract column although it is a config key too: every row names the backbone its search ran
on, read from the search's ``config.json`` whether the sweep varied it or not (a ``config.json``
from before backbones existed is a DARTS search). The search objectives are those of the last
epoch in ``metrics.jsonl``, ``grad_norms`` and ``effective_weights`` those of the last epoch that
measured them (a warm-up epoch does not); the five front metrics and ``PAPER_METRICS`` (NaN in
rows from before them) come from the evaluation's ``metrics.json``. A trial without an
evaluation has ``evaluation == "none"``, ``params_m``/``flops_m`` of its last searched genotype
(exact sizes, not estimates) and NaN for the other front metrics. ``search_options`` holds the
``SEARCH_OPTIONS`` keys its ``config.json`` has. Lists and objects (``mgda_weights``,
``grad_norms``, ``genotype``, ``search_options``, ``versions``) are stored as JSON text so that
every cell is a scalar the database and CSV can hold.

Missing and corrupt files are told apart on purpose. A trial without ``metrics.jsonl`` (or with
an empty one) never finished an epoch, which happens in a sweep when a trial is killed or
crashes: it gets a row with status ``"failed"`` and NaN metrics. ``search_epochs`` is the epoch
of the last record: every epoch for a finished search, fewer for one that a scheduler stopped
(status ``"stopped"``, never evaluated). A file that exists but cannot be read or parsed is
not a normal outcome and raises `TrialResultError`, naming the file, line and problem.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from search_core.genotypes import Genotype
from service.errors import ConfigError, GenotypeError, TrialResultError
from service.objectives import FRONT_METRICS, PAPER_METRICS, PROXY_METRICS, SEARCH_OBJECTIVES

__all__ = [
    "CONFIG_COLUMNS",
    "EVALUATIONS",
    "FLOAT_COLUMNS",
    "FRONT_METRICS",
    "OBJECTIVE_COLUMNS",
    "PAPER_METRICS",
    "RESULT_COLUMNS",
    "RETRAIN_DIR",
    "SEARCH_NORMS",
    "SEARCH_OPTIONS",
    "STOPPED",
    "TEXT_COLUMNS",
    "TRIAL_STATUSES",
    "TrialResultError",
    "frame_records",
    "package_versions",
    "plain_value",
    "read_search_records",
    "results_frame",
    "trial_row",
]

SEARCH_METRICS = "metrics.jsonl"
EVAL_METRICS = "metrics.json"
SEARCH_CONFIG = "config.json"
RETRAIN_DIR = "retrain"  # a two-stage sweep's second stage, inside the trial's directory

OBJECTIVE_COLUMNS: tuple[str, ...] = SEARCH_OBJECTIVES
EVALUATIONS: tuple[str, ...] = ("none", "proxy", "retrain")
STOPPED = "stopped"
TRIAL_STATUSES: tuple[str, ...] = ("done", STOPPED, "failed")
"""A row's ``status``: its search (and evaluation) finished, a scheduler stopped it early, or
it failed (or never finished an epoch)."""
SEARCH_NORMS: tuple[str, ...] = ("grad_norms", "effective_weights")
"""Per-objective lists of the search epochs that moved α: mean ‖g_k‖ and γ_k‖g_k‖ of eq. (1)."""
SEARCH_OPTIONS: tuple[str, ...] = (
    "adv_lower_form",
    "adv_train_in_lower",
    "cost_scale",
    "kl_reduction",
    "mgda_on",
    "ood_upper_scale",
)
"""The search config keys ``search_options`` keeps: the paper's text or the authors' code."""

RESULT_COLUMNS: tuple[str, ...] = (
    "sweep_id",
    "trial_id",
    "status",
    "backbone",
    *OBJECTIVE_COLUMNS,
    "mgda_weights",
    *SEARCH_NORMS,
    *FRONT_METRICS,
    *PROXY_METRICS,
    *PAPER_METRICS,
    "latency_ms",
    "evaluation",
    "genotype",
    "genotype_hash",
    "search_epochs",
    "search_seconds",
    "eval_seconds",
    "device",
    "search_options",
    "versions",
)
"""The fixed contract columns of the results table and ``front.csv``, in order."""

FLOAT_COLUMNS: tuple[str, ...] = (
    *OBJECTIVE_COLUMNS,
    *FRONT_METRICS,
    *PROXY_METRICS,
    *PAPER_METRICS,
    "latency_ms",
    "search_epochs",
    "search_seconds",
    "eval_seconds",
)
"""Contract columns held as float64 (NaN where unknown)."""

TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in RESULT_COLUMNS if c not in FLOAT_COLUMNS)
"""Contract columns held as text (pandas ``str``; missing is NaN)."""

CONFIG_COLUMNS: tuple[str, ...] = ("backbone",)
"""Contract columns that are search config keys: a sweep may vary them, and the row takes
their value from the trial's ``config.json``."""

LEGACY_BACKBONE = "darts"
"""The backbone of a search whose ``config.json`` has no ``backbone``: written before the
other backbones existed, it searched DARTS's supernet."""

_VERSION_PACKAGES = ("torch", "torchvision", "e2rnas-sweeps", "ray")


@functools.cache
def package_versions() -> str:
    """JSON text of the installed versions of torch, torchvision, this project and Ray.

    Read from package metadata, so Ray is never imported; a package not installed is left out.
    """
    versions: dict[str, str] = {}
    for name in _VERSION_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return json.dumps(versions, sort_keys=True)


def _float(value: object, where: str) -> float:
    """``value`` as a float; None means unknown (NaN)."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TrialResultError(f"{where}: expected a number or null, got {value!r}")
    return float(value)


def _json_floats(value: object, where: str) -> str:
    """A list of numbers as JSON text of floats."""
    if not isinstance(value, list):
        raise TrialResultError(f"{where}: expected a list, got {value!r}")
    return json.dumps([_float(v, where) for v in value])


def read_search_records(path: Path) -> list[dict[str, Any]]:
    """The per-epoch records of a search's ``metrics.jsonl``; [] when there is none."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TrialResultError(f"{path}: cannot read: {err}") from None
    records: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise TrialResultError(f"{path}:{number}: invalid JSON: {err.msg}") from None
        if not isinstance(record, dict):
            raise TrialResultError(
                f"{path}:{number}: expected a JSON object per line, got {type(record).__name__}"
            )
        records.append(record)
    return records


def _read_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    if not path.exists():
        return None
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise TrialResultError(f"{path}: cannot read: {err}") from None
    except json.JSONDecodeError as err:
        raise TrialResultError(
            f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(obj, dict):
        raise TrialResultError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _genotype(obj: object, where: str) -> Genotype:
    try:
        return Genotype.from_json(obj, source=where)
    except GenotypeError as err:
        raise TrialResultError(str(err)) from None


def _epoch(record: Mapping[str, Any], line: int) -> int:
    """A search record's epoch (its line number in a record without one)."""
    epoch = record.get("epoch", line)
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else line


def _empty_row(sweep_id: str, trial_id: str, status: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(RESULT_COLUMNS)
    row.update(dict.fromkeys(FLOAT_COLUMNS, math.nan))
    row.update(
        sweep_id=sweep_id,
        trial_id=trial_id,
        status=status,
        evaluation="none",
        versions=package_versions(),
    )
    return row


def _search_columns(row: dict[str, Any], records: list[dict[str, Any]], path: Path) -> Genotype:
    """Fill the search's columns of ``row`` from its last record; returns its genotype."""
    last = records[-1]
    where = f"{path}: last record"
    for key in OBJECTIVE_COLUMNS:
        row[key] = _float(last.get(key), f"{where}: {key}")
    weights = last.get("mgda_weights")
    if weights is not None:
        row["mgda_weights"] = _json_floats(weights, f"{where}: mgda_weights")
    for key in SEARCH_NORMS:
        got = [(_epoch(r, i), r[key]) for i, r in enumerate(records, 1) if r.get(key) is not None]
        if got:
            row[key] = _json_floats(got[-1][1], f"{path}: epoch {got[-1][0]}: {key}")
    for key in ("params_m", "flops_m"):
        row[key] = _float(last.get(key), f"{where}: {key}")
    if "genotype" not in last:
        raise TrialResultError(f"{where}: missing key 'genotype'")
    row["search_seconds"] = sum(_float(r.get("seconds"), f"{path}: seconds") for r in records)
    row["search_epochs"] = _float(last.get("epoch", len(records)), f"{where}: epoch")
    return _genotype(last["genotype"], f"{where}: genotype")


def _evaluation_columns(
    row: dict[str, Any], evaluation: dict[str, Any], path: Path
) -> Genotype | None:
    """Fill the evaluation's columns of ``row``; returns the genotype it evaluated, if named."""
    mode = evaluation.get("mode")
    if mode not in EVALUATIONS[1:]:
        raise TrialResultError(
            f"{path}: mode: expected one of {', '.join(EVALUATIONS[1:])}, got {mode!r}"
        )
    row["evaluation"] = mode
    for key in (*FRONT_METRICS, *PAPER_METRICS, "latency_ms", "eval_seconds"):
        row[key] = _float(evaluation.get(key), f"{path}: {key}")
    if isinstance(evaluation.get("device"), str):
        row["device"] = evaluation["device"]
    if "genotype" in evaluation:
        return _genotype(evaluation["genotype"], f"{path}: genotype")
    return None


def _evaluations(
    row: dict[str, Any], evaluation: dict[str, Any], trial_dir: Path, two_stage: bool
) -> Genotype | None:
    """Fill the evaluation's columns of ``row`` (a two-stage sweep's proxy into ``proxy_*``,
    its retrain, if any, into the front metrics and PAPER_METRICS); returns its genotype."""
    genotype = _evaluation_columns(row, evaluation, trial_dir / EVAL_METRICS)
    if not two_stage:
        return genotype
    for name, proxy in zip(FRONT_METRICS, PROXY_METRICS, strict=True):
        row[proxy], row[name] = row[name], math.nan
    row.update(dict.fromkeys(PAPER_METRICS, math.nan))  # the retrain's, like the front's
    where = trial_dir / RETRAIN_DIR / EVAL_METRICS
    retrained = _read_object(where)
    if retrained is None:
        return genotype
    return _evaluation_columns(row, retrained, where) or genotype


def trial_row(
    sweep_id: str,
    trial_id: str,
    swept: Mapping[str, Any],
    trial_dir: Path,
    status: str,
    backbone: str | None = None,
    stopped_at: int | None = None,
    two_stage: bool = False,
) -> dict[str, Any]:
    """The results row of one trial, read from ``trial_dir``.

    ``swept`` holds the trial's swept values by config key; a key that is also a contract
    column is refused, but for `CONFIG_COLUMNS`, whose value the row reads from the trial's
    ``config.json`` (a trial that never wrote one takes the swept value, else ``backbone``,
    the one its sweep configured). A directory without search metrics gives status
    ``"failed"``; corrupt files raise `TrialResultError` (see the module docstring).

    ``stopped_at`` is the epoch at which the sweep's scheduler stopped the trial (status
    ``"stopped"``): the row has the search's columns of that epoch (not of one run while the
    stop was on its way) and no evaluation. A ``two_stage`` sweep's proxy measures go to
    ``proxy_*``; its front metrics and PAPER_METRICS are the retrain's, empty without one.
    """
    for name, value in (("sweep_id", sweep_id), ("trial_id", trial_id), ("status", status)):
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: expected a non-empty string, got {value!r}")
    clash = sorted(set(swept) & set(RESULT_COLUMNS) - set(CONFIG_COLUMNS))
    if clash:
        raise ConfigError(
            f"swept: keys {clash} are contract columns of the results table; "
            "expected config keys such as L, F, seed"
        )
    trial_dir = Path(trial_dir)
    records = read_search_records(trial_dir / SEARCH_METRICS)
    evaluation = None if stopped_at is not None else _read_object(trial_dir / EVAL_METRICS)
    if stopped_at is not None:
        records = [r for i, r in enumerate(records, 1) if _epoch(r, i) <= stopped_at]
    config = _read_object(trial_dir / SEARCH_CONFIG)
    row = _empty_row(sweep_id, trial_id, status if records else "failed")
    row.update({key: value for key, value in swept.items() if key not in CONFIG_COLUMNS})
    row["backbone"] = swept.get("backbone", backbone)
    if config is not None:
        if isinstance(config.get("device"), str):
            row["device"] = config["device"]
        found = config.get("backbone", LEGACY_BACKBONE)
        if not isinstance(found, str):
            raise TrialResultError(
                f"{trial_dir / SEARCH_CONFIG}: backbone: expected a string, got {found!r}"
            )
        row["backbone"] = found
        options = {key: config[key] for key in SEARCH_OPTIONS if key in config}
        row["search_options"] = json.dumps(options, sort_keys=True) if options else None
    if not records:
        return row
    genotype = _search_columns(row, records, trial_dir / SEARCH_METRICS)
    if evaluation is not None:
        genotype = _evaluations(row, evaluation, trial_dir, two_stage) or genotype
    row["genotype"] = genotype.dumps()
    row["genotype_hash"] = genotype.genotype_hash()
    return row


def results_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The results table of ``rows``: contract columns first, then swept keys sorted.

    Contract floats are float64 and contract text columns pandas ``str`` (ids included);
    swept columns keep the dtype pandas infers from their values.
    """
    records = [dict(row) for row in rows]
    missing = sorted({c for row in records for c in RESULT_COLUMNS if c not in row})
    if missing:
        raise ConfigError(f"rows: missing contract columns {missing}")
    swept = sorted({key for row in records for key in row if key not in RESULT_COLUMNS})
    columns = [*RESULT_COLUMNS, *swept]
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in FLOAT_COLUMNS:
        frame[column] = frame[column].astype("float64")
    for column in TEXT_COLUMNS:
        frame[column] = frame[column].astype("str")
    return frame


def plain_value(value: Any) -> Any:
    """A frame cell as a plain Python value: numpy scalars unwrapped; NaN and pandas' missing
    values as None."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def frame_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of a table as JSON records: plain values (:func:`plain_value`), infinities
    as None too, since JSON has no number for them."""
    records: list[dict[str, Any]] = []
    for record in frame.to_dict(orient="records"):
        row = {str(key): plain_value(value) for key, value in record.items()}
        for key, value in row.items():
            if isinstance(value, float) and not math.isfinite(value):
                row[key] = None
        records.append(row)
    return records
