"""Two-stage fronts: a proxy for every trial, the full retrain for the proxy front only.

With ``evaluation.mode: two_stage`` each trial's search is followed by the cheap proxy
evaluation (its ``metrics.json``). When every search has ended, :func:`choose_retrains`
takes the proxy front (over the proxy's measures of the sweep's front metrics, ``proxy_*``),
keeps one trial per architecture (genotype hash; the first trial reaching it stands for the
others) and, when ``retrain.max`` is lower than what is left, keeps those with the largest
hypervolume contribution. Its choice is written once to ``two_stage.json``, so a resumed sweep
retrains the same trials. The tuner then runs one Ray Tune trial per chosen trial
(:func:`retrain_trial`, the second stage), each retraining the genotype with the full protocol
into ``trials/<key>/retrain/`` and resuming there after a restart; a finished retrain is read
back, never redone. :func:`summarize` records what the second stage saved (retrains not run)
and how well the proxy predicted the retrain (Kendall's τ per front metric over the retrained
trials; :func:`service.analysis.gallery.proxy_agreement`, which the two-stage figure shows too).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import moocore  # type: ignore[import-untyped, unused-ignore]
import numpy as np
import pandas as pd

from search_core.genotypes import Genotype
from service.analysis.gallery import proxy_agreement
from service.analysis.pareto import pareto_info, to_minimisation
from service.errors import SweepStateError
from service.files import write_json_atomically
from service.orchestration.points import retrain_config_for, search_config_for, sweep_objectives
from service.orchestration.rundir import TRIALS_DIR, read_state_file, read_trial_info
from service.orchestration.spec import SweepSpec
from service.results.table import EVAL_METRICS, RETRAIN_DIR

__all__ = [
    "TWO_STAGE_FILE",
    "choose_retrains",
    "proxy_objectives",
    "read_two_stage",
    "retrain_one",
    "summarize",
]

TWO_STAGE_FILE = "two_stage.json"
logger = logging.getLogger(__name__)


def proxy_objectives(spec: SweepSpec) -> dict[str, str]:
    """The proxy's measures of the sweep's front metrics, with their directions."""
    return {f"proxy_{name}": d for name, d in sweep_objectives(spec).items()}


def read_two_stage(run_dir: Path) -> dict[str, Any]:
    """The run directory's ``two_stage.json``; {} before the first stage has ended."""
    fix = "restore it (removing it chooses again from the proxy front)"
    path = Path(run_dir) / TWO_STAGE_FILE
    return read_state_file(path, "the second stage's choice", fix, "chosen")


def choose_retrains(run_dir: Path, spec: SweepSpec, frame: pd.DataFrame) -> dict[str, Any]:
    """The trials the second stage retrains (see the module docstring), chosen once: the
    choice already in ``two_stage.json`` is returned as it is. ``frame`` is the first stage's
    results table."""
    run_dir = Path(run_dir)
    chosen = read_two_stage(run_dir)
    if chosen:
        return chosen
    done = frame[frame["status"] == "done"].reset_index(drop=True)
    objectives = proxy_objectives(spec)
    info = pareto_info(done, objectives)
    front = done.iloc[list(info.front)]
    stands_for: dict[str, list[str]] = {}
    first: dict[str, str] = {}
    for trial_id, genotype_hash in zip(front["trial_id"], front["genotype_hash"], strict=True):
        if genotype_hash in first:
            stands_for[first[genotype_hash]].append(str(trial_id))
        else:
            first[genotype_hash] = str(trial_id)
            stands_for[str(trial_id)] = []
    unique = list(stands_for)
    cap = spec.evaluation.retrain.max if spec.evaluation.retrain is not None else None
    picked = unique
    if cap is not None and len(unique) > cap:
        rows = done.set_index("trial_id").loc[unique, list(objectives)].to_numpy(float)
        points = to_minimisation(rows, objectives)
        reference = to_minimisation(np.array([info.reference]), objectives)[0]
        contribution = moocore.hv_contributions(points, ref=reference)
        best = sorted(range(len(unique)), key=lambda i: (-contribution[i], i))[:cap]
        picked = [unique[i] for i in sorted(best)]
    state = {
        "proxy_front": [str(t) for t in front["trial_id"]],
        "chosen": picked,
        "same_genotype": {t: stands_for[t] for t in picked if stands_for[t]},
        "max": cap,
        "first_stage_trials": len(done),
    }
    write_json_atomically(run_dir / TWO_STAGE_FILE, state)
    return state


def retrain_one(spec: SweepSpec, run_dir: Path, trial_key: str) -> dict[str, Any]:
    """Retrain the genotype of the first stage's trial ``trial_key`` with the full protocol
    into its ``retrain/`` directory (resuming one cut short); a finished retrain is read back."""
    from search_core.evaluate import run_evaluation

    trial_dir = Path(run_dir) / TRIALS_DIR / trial_key
    out = trial_dir / RETRAIN_DIR
    if (out / EVAL_METRICS).exists():
        found: dict[str, Any] = json.loads((out / EVAL_METRICS).read_text(encoding="utf-8"))
        return found
    point = read_trial_info(trial_dir).get("point")
    if not isinstance(point, dict):
        raise SweepStateError(f"{trial_dir}: no readable trial.json; its retrain cannot start")
    path = trial_dir / "genotype.json"
    genotype = Genotype.loads(path.read_text(encoding="utf-8"), source=str(path))
    config = retrain_config_for(spec, search_config_for(spec, point))
    return run_evaluation(genotype, config, out, resume=True)


def summarize(run_dir: Path, frame: pd.DataFrame) -> dict[str, Any]:
    """What the second stage saved and how well the proxy predicted, added to
    ``two_stage.json``: retrains run and saved (first-stage trials not retrained), and
    Kendall's τ between each proxy measure and the retrain's over the retrained trials (None
    with fewer than two, or where one side is constant)."""
    state = read_two_stage(run_dir)
    if not state:
        return {}
    retrained = frame[frame["evaluation"] == "retrain"]
    tau = proxy_agreement(frame)
    state["summary"] = {
        "retrained": len(retrained),
        "saved": int(state.get("first_stage_trials", 0)) - len(retrained),
        "kendall_tau": tau,
    }
    write_json_atomically(Path(run_dir) / TWO_STAGE_FILE, state)
    shown = ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in tau.items())
    logger.info(
        "two stages: %d of the %d trials retrained (%d retrains saved); Kendall's tau, "
        "proxy vs retrain: %s",
        len(retrained),
        state.get("first_stage_trials", 0),
        state["summary"]["saved"],
        shown,
    )
    return state
