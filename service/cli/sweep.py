"""``e2rnas sweep run|resume|status|submit``: a sweep file on Ray Tune, or as a Ray Job.

``run`` checks the whole file, then runs every trial on an embedded local Ray (or the file's
``ray.address``) and prints where the results, database, export and report are; ``resume``
continues an interrupted sweep (both hold the run directory's driver lock, so a second driver on
it is refused at once); ``status`` shows a run directory's trials or a submitted job's
state; ``submit`` sends the sweep to a cluster's job server. Ray loads only once the input is
known to be good.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from service.cli.common import PROG, CommandLineError, Commands, check_out, removed_on_failure
from service.errors import EXIT_FAILED, EXIT_INTERRUPTED
from service.orchestration import jobs
from service.orchestration.addresses import GCS_PORT, check_address
from service.orchestration.dataroots import check_data_roots, roots_from_env
from service.orchestration.driverlock import driver_lock
from service.orchestration.points import check_local_gpu, search_epochs
from service.orchestration.rundir import (
    EXPORT_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    SWEEP_FILE,
    read_sweep_state,
    spec_of,
    trial_states,
)
from service.orchestration.spec import SweepSpec, is_uri, load_sweep
from service.results.urls import masked_url

__all__ = ["add_sweep", "run_dir_for"]


def add_sweep(commands: Commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run, resume, watch or submit a sweep of searches on Ray",
        description=(
            "Run a sweep file (sweeps/*.yaml) on an embedded local Ray or a Ray cluster, "
            "resume an interrupted one, show its progress, or submit it as a Ray Job."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    _add_run_and_resume(actions)
    _add_status_and_submit(actions)


def _add_run_and_resume(actions: Commands) -> None:
    run = actions.add_parser(
        "run",
        help="run a sweep file",
        description=(
            "Check the whole sweep FILE, then run every trial with Ray Tune and write "
            "results.parquet, the results database and the Pareto front's export files "
            "under the run directory."
        ),
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the sweep's YAML file")
    run.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run directory (default: the file's storage.path/<name>)",
    )
    run.add_argument(
        "--address", metavar="ADDR", help="Ray cluster (HOST:PORT); default: the file's ray.address"
    )
    run.set_defaults(handler=_sweep_run)
    resume = actions.add_parser(
        "resume",
        help="resume an interrupted sweep",
        description="Continue the sweep in DIR; finished trials are not run again.",
    )
    resume.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    resume.add_argument("--address", metavar="ADDR", help="Ray cluster (HOST:PORT)")
    resume.set_defaults(handler=_sweep_resume)


def _add_status_and_submit(actions: Commands) -> None:
    status = actions.add_parser(
        "status",
        help="show a sweep's progress, or a submitted job's status",
        description=(
            "With a run directory: the sweep's status and each trial's epochs. With a job id: "
            "the Ray Job's status at --address (default: $RAY_ADDRESS). Exits 1 when the "
            "sweep or the job failed (or was stopped), 0 otherwise."
        ),
    )
    status.add_argument("target", metavar="DIR|JOB_ID")
    status.add_argument("--address", metavar="URL", help="jobs server, http://HOST:8265")
    status.add_argument(
        "--json", action="store_true", help="print the status as one JSON object instead"
    )
    status.set_defaults(handler=_sweep_status)
    submit = actions.add_parser(
        "submit",
        help="submit a sweep file to a Ray cluster as a Ray Job",
        description=(
            "Check the sweep FILE, then submit 'e2rnas sweep run FILE' to the jobs server at "
            "--address, with a temporary directory holding only the file as the job's "
            "working directory; prints the job id."
        ),
    )
    submit.add_argument("file", type=Path, metavar="FILE", help="the sweep's YAML file")
    submit.add_argument(
        "--address", required=True, metavar="URL", help="jobs server, http://HOST:8265"
    )
    submit.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="run directory, on a filesystem the head node shares "
        "(default: ./<storage.path>/<name>, made absolute)",
    )
    submit.set_defaults(handler=_sweep_submit)


def run_dir_for(out: Path | None, storage_path: str, name: str) -> Path:
    # With storage on a filesystem URI, Tune's state lives there; the run directory (results,
    # report, exports) stays on this machine, under ./runs unless --out says otherwise.
    default_root = Path("runs") if is_uri(storage_path) else Path(storage_path)
    run_dir = out if out is not None else default_root / name
    check_out(run_dir)
    return run_dir.resolve()


def _print_outputs(run_dir: Path) -> None:
    state = read_sweep_state(run_dir)
    export = run_dir / EXPORT_DIR
    print(f"sweep {state['sweep_id']}: {state['status']}")
    print(f"results:  {run_dir / RESULTS_FILE}")
    print(f"database: {masked_url(str(state['database_url']))}")
    for path in sorted(export.iterdir()) if export.is_dir() else []:
        print(f"export:   {path}")
    report = run_dir / REPORT_FILE
    if report.exists():
        print(f"report:   {report}  (open it in a browser: file://{report})")
    if str(state["database_url"]).startswith("sqlite:"):
        print(
            f"service:  e2rnas serve --database-url {state['database_url']}  then open "
            f"http://127.0.0.1:8000/sweeps/{state['sweep_id']}"
        )


def _check_env_roots(spec: SweepSpec) -> None:
    roots = roots_from_env()
    if roots is not None:  # set by the user or by the service that submitted this job
        check_data_roots(spec, roots)


def _sweep_run(args: argparse.Namespace) -> int:
    spec = load_sweep(args.file)
    _check_env_roots(spec)
    run_dir = run_dir_for(args.out, spec.storage.path, spec.name)
    address = args.address or spec.ray.address
    if address and address != "auto":
        check_address(address, GCS_PORT)
    if not address and not os.environ.get("RAY_ADDRESS"):
        check_local_gpu(spec)  # a cluster (or a Ray Job's) checks its GPUs when placing trials
    # The lock first: a second driver hears that one runs, not that a sweep.json exists.
    with removed_on_failure(run_dir, keeps=SWEEP_FILE), driver_lock(run_dir):
        if (run_dir / SWEEP_FILE).exists():
            raise CommandLineError(
                f"--out {run_dir}: already holds a sweep; continue it with "
                f"'{PROG} sweep resume {run_dir}' or choose another --out"
            )
        from service.orchestration.tuner import run_sweep  # Ray loads once the input is good

        run_sweep(spec, run_dir, address=address)
    return _finish(run_dir)


def _finish(run_dir: Path) -> int:
    _print_outputs(run_dir)
    status = read_sweep_state(run_dir)["status"]
    if status == "interrupted":
        print(
            f"{PROG}: interrupted; continue with '{PROG} sweep resume {run_dir}'",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    if status != "done":
        print(
            f"{PROG}: some trials failed; see '{PROG} sweep status {run_dir}'",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


def _sweep_resume(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir.resolve()
    spec = spec_of(run_dir)
    _check_env_roots(spec)
    address = args.address or spec.ray.address
    if address and address != "auto":
        check_address(address, GCS_PORT)
    with driver_lock(run_dir):
        from service.orchestration.tuner import run_sweep

        run_sweep(spec, run_dir, address=address, resume=True)
    return _finish(run_dir)


def _sweep_status(args: argparse.Namespace) -> int:
    target = Path(args.target)
    if (target / SWEEP_FILE).exists():
        state = read_sweep_state(target)
        spec = spec_of(target)
        trials = trial_states(target)
        done = sum(1 for t in trials if t.get("status") == "done")
        stopped = sum(1 for t in trials if t.get("status") == "stopped")
        rows = [
            {
                "trial_key": trial["trial_key"],
                "status": trial["status"],
                "epochs": trial["epochs"],
                "total_epochs": search_epochs(spec, trial["point"]),
            }
            for trial in trials
        ]
        if args.json:
            answer = {
                "sweep_id": state["sweep_id"],
                "status": state["status"],
                "total": state["trials"],
                "done": done,
                "stopped": stopped,
                "trials": rows,
            }
            print(json.dumps(answer, indent=2))
        else:
            early = f", {stopped} stopped early" if stopped else ""
            print(
                f"sweep {state['sweep_id']}: {state['status']}, {done}/{state['trials']} "
                f"trials done{early}"
            )
            for row in rows:
                print(
                    f"  {row['trial_key']}: {row['status']}, epochs "
                    f"{row['epochs']}/{row['total_epochs']}"
                )
        return EXIT_FAILED if state["status"] == "failed" else 0
    if target.exists() or "/" in args.target:
        raise CommandLineError(f"{target}: not the run directory of a sweep (no sweep.json)")
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise CommandLineError(
            f"{args.target}: not a run directory; for a job id give --address http://HOST:8265"
        )
    status, logs = jobs.job_status(args.target, address)
    tail = logs.strip().splitlines()[-5:]
    if args.json:
        print(json.dumps({"job_id": args.target, "status": status, "logs": tail}, indent=2))
    else:
        print(f"job {args.target}: {status}")
        for line in tail:
            print(f"  {line}")
    return EXIT_FAILED if status in ("FAILED", "STOPPED") else 0


def _sweep_submit(args: argparse.Namespace) -> int:
    spec = load_sweep(args.file)
    _check_env_roots(spec)
    run_dir = run_dir_for(args.out, spec.storage.path, spec.name)
    job_id = jobs.submit_sweep(args.file, args.address, run_dir)
    print(job_id)
    print(f"run directory: {run_dir}", file=sys.stderr)
    return 0
