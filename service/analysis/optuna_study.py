"""A sweep's results as a multi-objective Optuna study, for Optuna's own tools to open.

``optuna-dashboard URL`` and ``optuna.visualization`` read studies from an Optuna storage;
:func:`export_study` writes one sweep's results table there as a study, through Optuna's
maintained API (``create_study``, ``create_trial``, ``add_trials``), never its tables, so the
study reads like one Optuna ran itself:

- *directions*: each objective's direction from the registry (:mod:`service.objectives`),
  the objectives being the sweep's front objectives unless the caller chose others; their
  names are the study's metric names, which the dashboard and the plots put on the axes.
- *params*: the trial's swept values, every column that is no contract column of the results
  table, and ``backbone`` where the grid sweeps it or the trials span several
  (:func:`param_distributions`). A key the strategy samples in a range (the optuna
  strategy's L and F) gets ``FloatDistribution(low, high)``, the distribution Ray Tune's
  OptunaSearch sampled it from; any other key a ``CategoricalDistribution`` of the grid's
  values, then of any value the rows hold that the grid does not list. A value that is no
  number, string or boolean is written as JSON text.
- *values and state* (:func:`study_trials`): a ``done`` trial with every objective is
  COMPLETE with the objectives as values; a ``stopped`` one (a scheduler stopped it early)
  is PRUNED, and so is a ``done`` one missing an objective (a two-stage sweep's trial the
  proxy left out of the retrain): neither takes part in a front (:mod:`.pareto`); a
  ``failed`` one is FAIL. A trial still running or not yet started is *skipped*: the store
  has no row for it (while a sweep runs, the service stores its finished trials only), so a
  partly finished sweep exports what has finished, and exporting it again later adds the
  rest; a trial an interrupted driver left unfinished is stored as failed by ``collect``, so
  it is FAIL until a resume finishes it. The study's ``best_trials`` are therefore the
  front of the done trials, :func:`.pareto.pareto_answer`'s.
- *user attributes*: ``trial_id``, the table's ``status``, ``backbone``, and where the trial
  derived one, ``genotype`` (its JSON text) and ``genotype_hash``; the study's own are the
  sweep's id (:data:`SWEEP_ATTR`) and the objectives with their directions.

Exporting again must not duplicate trials, and must not destroy a study it did not write: an
export *replaces* the study that an earlier export of the same sweep wrote under that name
(the study's :data:`SWEEP_ATTR` says which sweep), and *refuses* any other study of that
name, another sweep's export or an Optuna search's own study (``strategy.storage`` of a sweep
file), naming the field to change. Every trial is built and checked before the old study is
deleted, so bad input leaves it as it was; a failure while the trials are added leaves a
part of the study, already marked as this sweep's, which the next export replaces.

A storage URL may hold a password: it is shown masked (:mod:`service.results.urls`), and
``env:VARIABLE`` names a variable that holds it. A storage opened that way pickles as the
reference (:func:`open_storage`), since Ray Tune pickles its searcher, study and storage
included, into the experiment's directory.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from service.analysis.pareto import Objectives, directions
from service.errors import ConfigError, StoreError
from service.results.table import RESULT_COLUMNS, TRIAL_STATUSES, plain_value
from service.results.urls import ENV_PREFIX, masked_url, resolve_url

__all__ = [
    "SWEEP_ATTR",
    "StudyExport",
    "export_study",
    "open_storage",
    "param_distributions",
    "study_trials",
]

SWEEP_ATTR = "e2rnas_sweep_id"
"""The study's user attribute naming the sweep whose export it is."""
_OPTUNA_DIRECTIONS = {"min": StudyDirection.MINIMIZE, "max": StudyDirection.MAXIMIZE}
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_EXPECTED_URL = (
    "expected an SQLAlchemy URL such as sqlite:////abs/path/optuna.db, or env:VARIABLE naming "
    "a variable that holds one"
)
_Choice = None | bool | int | float | str


class StudyExport(NamedTuple):
    """What :func:`export_study` wrote."""

    study_name: str
    storage: str  # masked
    states: dict[str, int]  # trials by Optuna state name, e.g. {"COMPLETE": 7, "FAIL": 1}
    replaced: bool  # an earlier export of the same sweep was replaced


class _ReferencedStorage(optuna.storages.RDBStorage):
    """An RDB storage opened through ``env:VARIABLE``; it pickles as that reference and
    resolves it again when unpickled, so the URL never lands in a pickle."""

    def __init__(self, reference: str, field: str) -> None:
        self.reference = reference
        self.field = field
        super().__init__(_resolve(reference, field))

    def __getstate__(self) -> dict[Any, Any]:
        state = super().__getstate__()
        state["url"] = self.reference
        return state

    def __setstate__(self, state: dict[Any, Any]) -> None:
        state = dict(state, url=_resolve(state["reference"], state["field"]))
        super().__setstate__(state)


def open_storage(url: str, field: str = "storage") -> optuna.storages.RDBStorage:
    """The Optuna RDB storage at ``url`` (an SQLAlchemy URL, or ``env:VARIABLE``), its tables
    created if new; ``field`` names the argument in the errors: ConfigError for text that is
    no URL, StoreError naming the database's reason when it cannot be opened."""
    if not isinstance(url, str) or not (url.startswith(ENV_PREFIX) or _URL.match(url)):
        raise ConfigError(f"{field}: got {masked_url(str(url))!r}; {_EXPECTED_URL}")
    resolved = _resolve(url, field)
    if not _URL.match(resolved):
        raise ConfigError(f"{field}: {url} holds no URL; {_EXPECTED_URL}")
    try:
        if url.startswith(ENV_PREFIX):
            return _ReferencedStorage(url, field)
        return optuna.storages.RDBStorage(resolved)
    # SQLAlchemy's errors (a URL it cannot parse, no server, no such directory) and a missing
    # driver's ImportError; this layer may not import SQLAlchemy to name its exception types.
    except Exception as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        password = urlsplit(resolved).password if "://" in resolved else None
        if password:
            reason = reason.replace(password, "***")
        raise StoreError(
            f"{field} {masked_url(url)}: cannot open an Optuna storage there ({reason})"
        ) from None


def _resolve(url: str, field: str) -> str:
    return resolve_url(url, field, "the Optuna storage's SQLAlchemy URL")


def param_distributions(
    frame: pd.DataFrame,
    grid: Mapping[str, Sequence[Any]] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, BaseDistribution]:
    """Each swept key's Optuna distribution: ``FloatDistribution`` over its range where
    ``ranges`` gives one, else ``CategoricalDistribution`` of the ``grid``'s values followed
    by any other value in the rows (see the module's docstring)."""
    grid, ranges = dict(grid or {}), dict(ranges or {})
    space: dict[str, BaseDistribution] = {}
    for key in _swept_keys(frame, grid):
        if key in ranges:
            low, high = ranges[key]
            space[key] = FloatDistribution(float(low), float(high))
            continue
        choices: list[_Choice] = []
        for value in [*grid.get(key, ()), *frame[key]]:
            choice = _choice(value)
            if choice not in choices:
                choices.append(choice)
        space[key] = CategoricalDistribution(choices)
    return space


def _swept_keys(frame: pd.DataFrame, grid: Mapping[str, Sequence[Any]]) -> list[str]:
    keys = [str(c) for c in frame.columns if c not in RESULT_COLUMNS]
    if "backbone" in frame.columns and ("backbone" in grid or frame["backbone"].nunique() > 1):
        keys.append("backbone")
    return sorted(keys)


def _choice(value: Any) -> _Choice:
    """A cell as a value Optuna stores: a plain scalar, NaN as None, anything else JSON."""
    plain = plain_value(value)
    if plain is None or isinstance(plain, bool | int | float | str):
        return plain
    return json.dumps(plain, sort_keys=True)


def study_trials(
    frame: pd.DataFrame,
    objectives: Objectives,
    distributions: Mapping[str, BaseDistribution],
) -> list[FrozenTrial]:
    """One Optuna trial per row of the results table, states and values as the module's
    docstring says; ConfigError naming the trial when a row does not fit."""
    names = list(directions(objectives))
    missing = [name for name in [*names, "status"] if name not in frame.columns]
    if missing:
        raise ConfigError(
            f"objectives: column(s) {', '.join(map(repr, missing))} not in the results; "
            f"its columns are {', '.join(map(str, frame.columns))}"
        )
    try:
        values = frame[names].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"objectives: columns {names} are not numeric ({error})") from None
    trials = []
    for position, (_, row) in enumerate(frame.iterrows()):
        label = str(row.get("trial_id", position))
        try:
            trials.append(_trial(row, values[position], distributions))
        except ValueError as error:
            raise ConfigError(f"trial {label}: {error}") from None
    return trials


def _trial(
    row: pd.Series, values: np.ndarray, distributions: Mapping[str, BaseDistribution]
) -> FrozenTrial:
    status = row["status"]
    if status not in TRIAL_STATUSES:
        raise ValueError(f"status: got {status!r}; expected one of {', '.join(TRIAL_STATUSES)}")
    complete = status == "done" and not np.isnan(values).any()
    if complete:
        state = TrialState.COMPLETE
    elif status == "failed":
        state = TrialState.FAIL
    else:  # stopped early, or done without every objective: off the front either way
        state = TrialState.PRUNED
    params: dict[str, Any] = {}
    for key, distribution in distributions.items():
        value = _choice(row[key])
        if value is None and isinstance(distribution, FloatDistribution):
            continue
        params[key] = value
    keys = ("trial_id", "status", "backbone", "genotype", "genotype_hash")
    attrs = {key: _choice(row.get(key)) for key in keys}
    return optuna.trial.create_trial(
        state=state,
        values=[float(v) for v in values] if complete else None,
        params=params,
        distributions={key: distributions[key] for key in params},
        user_attrs={key: value for key, value in attrs.items() if value is not None},
    )


def export_study(
    frame: pd.DataFrame,
    objectives: Objectives,
    storage: str,
    study_name: str,
    sweep_id: str,
    *,
    distributions: Mapping[str, BaseDistribution] | None = None,
    fields: tuple[str, str] = ("storage", "study_name"),
) -> StudyExport:
    """Write the results table as the study ``study_name`` in the Optuna storage at
    ``storage``, replacing an earlier export of the sweep ``sweep_id`` there and refusing any
    other study of that name (see the module's docstring). ``distributions`` default to
    :func:`param_distributions` of the rows alone; ``fields`` name the storage and the study
    name in the errors (the command line's flags)."""
    storage_field, name_field = fields
    if not isinstance(study_name, str) or not study_name.strip():
        raise ConfigError(f"{name_field}: got {study_name!r}; expected a non-empty name")
    chosen = directions(objectives)
    space = param_distributions(frame) if distributions is None else dict(distributions)
    trials = study_trials(frame, chosen, space)
    opened = open_storage(storage, storage_field)
    try:
        with _quiet_optuna():
            replaced = _clear(opened, study_name, sweep_id, name_field, masked_url(storage))
            study = optuna.create_study(
                storage=opened,
                study_name=study_name,
                directions=[_OPTUNA_DIRECTIONS[d] for d in chosen.values()],
            )
            study.set_user_attr(SWEEP_ATTR, sweep_id)
            study.set_user_attr("objectives", dict(chosen))
            study.set_metric_names(list(chosen))
            study.add_trials(trials)
    finally:
        opened.engine.dispose()
    states = Counter(trial.state.name for trial in trials)
    return StudyExport(study_name, masked_url(storage), dict(states), replaced)


def _clear(
    storage: optuna.storages.RDBStorage, name: str, sweep_id: str, field: str, shown: str
) -> bool:
    """Delete the study ``name`` if an export of ``sweep_id`` wrote it (True), do nothing if
    there is none (False), refuse any other."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False
    owner = storage.get_study_user_attrs(study_id).get(SWEEP_ATTR)
    if owner != sweep_id:
        whose = "no export of a sweep" if owner is None else f"the export of sweep {owner!r}"
        raise ConfigError(
            f"{field}: {shown} already holds a study named {name!r}, written by {whose}; "
            f"choose another {field}, or delete that study (optuna delete-study) first"
        )
    optuna.delete_study(study_name=name, storage=storage)
    return True


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own info lines (a study created) and its experimental-API warning off: the
    command reports what it wrote in one line of its own."""
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)
