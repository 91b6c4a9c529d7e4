"""``e2rnas pareto``, ``export``, ``robust`` and ``report``: a finished sweep's front, files,
seed robustness and report page.

``pareto`` prints the nondominated trials with the hypervolume and the knee, ``export`` writes
the front's genotypes and tables, ``robust`` ranks the configurations by how often a change of
seed keeps them on the front, all from the sweep's database; ``report`` rewrites the report
page, e.g. with other projections.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from service.cli.common import CommandLineError, Commands, check_out, objectives_arg
from service.orchestration.points import check_axes, plottable_columns, sweep_objectives
from service.orchestration.rundir import read_sweep_state, spec_of

__all__ = ["add_export", "add_pareto", "add_report", "add_robust"]


def _front_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory and ``--objectives`` of the commands that read a sweep's front."""
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    parser.add_argument(
        "--objectives",
        metavar="A,B,...",
        help="front metrics to use (default: the sweep's objectives)",
    )


def add_pareto(commands: Commands) -> None:
    parser = commands.add_parser(
        "pareto",
        help="print a sweep's Pareto front from its stored results",
        description=(
            "Read the sweep's results from its database and print the nondominated trials, "
            "the hypervolume and the knee point."
        ),
    )
    _front_arguments(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the answer of GET /api/sweeps/{id}/pareto instead (the finished trials)",
    )
    parser.set_defaults(handler=_pareto)


def _front_objectives(run_dir: Path, text: str | None) -> Any:
    from service.analysis.pareto import directions

    names = objectives_arg(text)
    if names is None:
        return sweep_objectives(spec_of(run_dir))
    return directions(names)


def _pareto(args: argparse.Namespace) -> int:
    from service.analysis.pareto import pareto_answer, pareto_info
    from service.orchestration.collect import stored_table
    from service.results.table import RESULT_COLUMNS

    objectives = _front_objectives(args.run_dir, args.objectives)
    frame = stored_table(args.run_dir)
    if args.json:
        print(json.dumps(pareto_answer(frame, objectives), indent=2, allow_nan=False))
        return 0
    info = pareto_info(frame, objectives)
    swept = [c for c in frame.columns if c not in RESULT_COLUMNS]
    shown = ["trial_id", *swept, *info.objectives, "genotype_hash"]
    front = frame.iloc[list(info.front)][list(dict.fromkeys(shown))]
    print(f"front of {len(front)} of {len(frame)} trials over {', '.join(info.objectives)}:")
    if len(front):
        print(front.to_string(index=False))
    print(f"hypervolume {info.hypervolume:.6g}  reference {info.reference}")
    if info.knee is not None:
        print(f"knee {frame.iloc[info.knee]['trial_id']}")
    return 0


def add_export(commands: Commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a sweep's Pareto-front genotypes and tables, or its trials as an Optuna study",
        description=(
            "Write genotypes.json, genotypes.py (DARTS format), front.csv and front.parquet "
            "of the sweep's Pareto front, and robust.csv (its configurations ranked by "
            "dominance probability over the seeds, see 'e2rnas robust'), read from its "
            "database, into --out. With --optuna-storage, write every finished trial as a "
            "multi-objective Optuna study there (complete, pruned or failed; swept values as "
            "params, the objectives as values), for optuna-dashboard and optuna.visualization."
        ),
    )
    _front_arguments(parser)
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR2",
        help="output directory (needed without --optuna-storage)",
    )
    parser.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="an Optuna RDB storage, e.g. sqlite:////abs/path/optuna.db (or env:VARIABLE naming "
        "one), to write the sweep's trials to as a study",
    )
    parser.add_argument(
        "--study-name",
        metavar="NAME",
        help="the study's name (default: the sweep's name); an earlier export of this sweep "
        "under that name is replaced, any other study of that name is refused",
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from service.analysis.export import export_front
    from service.analysis.pareto import front_of
    from service.analysis.robust import robust_info
    from service.analysis.robustview import robust_csv_frame
    from service.orchestration.collect import stored_table

    if args.out is None and args.optuna_storage is None:
        raise CommandLineError("export: expected --out DIR2, --optuna-storage URL or both")
    if args.study_name is not None and args.optuna_storage is None:
        raise CommandLineError("--study-name: names a study of --optuna-storage; give that too")
    if args.out is not None:
        check_out(args.out)
    objectives = _front_objectives(args.run_dir, args.objectives)
    frame = stored_table(args.run_dir)
    if args.optuna_storage is not None:  # first: a bad URL stops the command before any file
        _export_study(args, frame, objectives)
    if args.out is not None:
        robust = robust_csv_frame(robust_info(frame, objectives))
        paths = export_front(front_of(frame, objectives), args.out, robust)
        for path in paths.values():
            print(path)
    return 0


def _export_study(args: argparse.Namespace, frame: Any, objectives: Any) -> None:
    """The sweep's trials as an Optuna study: its grid's values and its strategy's ranges
    are the params' distributions, its name the default study name."""
    from service.analysis.optuna_study import export_study, param_distributions

    spec = spec_of(args.run_dir)
    space = param_distributions(frame, spec.grid, spec.strategy.ranges)
    done = export_study(
        frame,
        objectives,
        args.optuna_storage,
        spec.name if args.study_name is None else args.study_name,
        read_sweep_state(args.run_dir)["sweep_id"],
        distributions=space,
        fields=("--optuna-storage", "--study-name"),
    )
    words = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    counts = ", ".join(f"{n} {words[state]}" for state, n in sorted(done.states.items()))
    replaced = "; replaced the earlier export" if done.replaced else ""
    print(
        f"optuna study {done.study_name!r} in {done.storage}: {sum(done.states.values())} "
        f"trials ({counts or 'none'}){replaced}"
    )


# -- robust --------------------------------------------------------------------------------


def add_robust(commands: Commands) -> None:
    parser = commands.add_parser(
        "robust",
        help="which configurations stay on a sweep's front when the seed changes",
        description=(
            "Read the sweep's results from its database and print its configurations (swept "
            "values without the seed) ranked by dominance probability (the chance that one "
            "seed per configuration puts it on the front: exact over every combination when "
            "there are few enough, else from --resamples draws), with each objective's "
            "mean ± std over the seeds, the hypervolume of one seed per configuration with "
            "its 95%% interval, and the genotypes found by several trials."
        ),
    )
    _front_arguments(parser)
    parser.add_argument(
        "--resamples",
        type=int,
        metavar="N",
        help="random draws when the combinations are too many to enumerate (default 1000, "
        "as the API's)",
    )
    parser.add_argument(
        "--random-seed", type=int, default=0, metavar="S", help="the draws' seed (default 0)"
    )
    parser.add_argument(
        "--limit", type=int, default=None, metavar="N", help="print the first N configurations"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the answer of GET /api/sweeps/{id}/robust instead (with the attainment "
        "surfaces over the sweep's 2-D projection)",
    )
    parser.set_defaults(handler=_robust)


def _robust(args: argparse.Namespace) -> int:
    from service.analysis.attainment import attainment_surfaces
    from service.analysis.robust import DEFAULT_RESAMPLES, robust_info
    from service.analysis.robustview import robust_record, robust_text
    from service.objectives import METRICS
    from service.orchestration.collect import stored_table

    if args.limit is not None and args.limit < 1:
        raise CommandLineError(f"--limit: got {args.limit}; expected a whole number >= 1")
    objectives = _front_objectives(args.run_dir, args.objectives)
    frame = stored_table(args.run_dir)
    resamples = DEFAULT_RESAMPLES if args.resamples is None else args.resamples
    info = robust_info(frame, objectives, resamples=resamples, random_seed=args.random_seed)
    if not args.json:
        print(robust_text(info, args.limit))
        return 0
    axes = spec_of(args.run_dir).report.projection_2d
    attainment = None
    if all(name in METRICS for name in axes):
        attainment = attainment_surfaces(frame, {n: METRICS[n].direction for n in axes})
    print(json.dumps(robust_record(info, attainment), indent=2, allow_nan=False))
    return 0


# -- report --------------------------------------------------------------------------------


def add_report(commands: Commands) -> None:
    parser = commands.add_parser(
        "report",
        help="rewrite a finished sweep's report page",
        description=(
            "Write the interactive report (report.html) of the sweep in DIR again from its "
            "results.parquet, with the projections' axes of the flags, else of the sweep "
            "file's report: section."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    parser.add_argument(
        "--projection-2d", metavar="X,Y", help="columns of the 2-D projection, e.g. L,params_m"
    )
    parser.add_argument(
        "--projection-3d",
        metavar="X,Y,Z",
        help="columns of the 3-D projection, e.g. test_error,params_m,flops_m",
    )
    parser.add_argument(
        "--out", type=Path, metavar="FILE", help="where to write it (default: DIR/report.html)"
    )
    parser.set_defaults(handler=_report)


def _report(args: argparse.Namespace) -> int:
    from service.orchestration.collect import write_run_report

    run_dir: Path = args.run_dir
    spec = spec_of(run_dir)
    choices = plottable_columns(spec)
    axes: dict[str, tuple[str, ...] | None] = {}
    for flag, text, size in (
        ("--projection-2d", args.projection_2d, 2),
        ("--projection-3d", args.projection_3d, 3),
    ):
        names = None if text is None else [name.strip() for name in text.split(",")]
        axes[flag] = None if names is None else check_axes(names, size, flag, choices)
    if args.out is not None and args.out.is_dir():
        raise CommandLineError(f"--out {args.out}: is a directory; expected the report's file")
    path = write_run_report(run_dir, args.out, axes["--projection-2d"], axes["--projection-3d"])
    print(f"report: {path}  (open it in a browser: file://{path.resolve()})")
    return 0
