"""``e2rnas replay``: what an early-stopping scheduler would have cost and found on a finished
sweep, replayed from its logged per-epoch records with no training
(:mod:`service.orchestration.replay`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from service.cli.common import Commands

__all__ = ["add_replay"]


def add_replay(commands: Commands) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay a finished sweep through a scheduler: epochs saved, hypervolume kept",
        description=(
            "Feed the per-epoch search records of the finished sweep in DIR (run with "
            "scheduler kind fifo) through MO-ASHA's decisions, with no training, and print "
            "for FIFO and for each setting the search epochs it would have spent / the "
            "grid's, and the hypervolume of the front of the trials it would have let "
            "finish / the whole front's (the sweep's front metrics and reference point). "
            "Each --set lists values; every combination is one row of the table."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    parser.add_argument(
        "--scheduler", choices=("mo_asha",), default="mo_asha", help="the scheduler to replay"
    )
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=V1[,V2...]",
        help=(
            "a setting and its values: grace_period=1,2  reduction_factor=2,3  "
            "metrics=val_loss+params_m,params_m+flops_m  tie_break=crowding,hypervolume  "
            "max_rungs=1,all (default: the sweep file's scheduler section, else grace 1, "
            "factor 3, the five default metrics, crowding, every rung)"
        ),
    )
    parser.add_argument(
        "--order",
        choices=("arrival", "trials"),
        default="arrival",
        help=(
            "arrival: the records in the order the sweep produced them (default); trials: "
            "one trial after another, as a sweep run one trial at a time"
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the table as JSON records")
    parser.set_defaults(handler=_replay)


def _replay(args: argparse.Namespace) -> int:
    from service.orchestration.replay import (
        format_table,
        parse_settings,
        replay_sweep,
        replay_table,
        settings_grid,
    )
    from service.results.table import frame_records

    settings = settings_grid(parse_settings(args.settings))
    outcomes = replay_sweep(args.run_dir, settings, order=args.order)
    table = replay_table(outcomes)
    if args.json:
        print(json.dumps(frame_records(table), indent=2))
        return 0
    print(format_table(table))
    return 0
