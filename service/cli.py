"""The ``e2rnas`` command line: one parser and one handler per subcommand.

``search`` runs (or resumes) one search, optionally followed by an evaluation of its genotype;
``evaluate`` retrains a genotype and measures the five front metrics (or resumes the retrain);
``count`` prints the size of a genotype's evaluation network. ``sweep run|resume|status|submit``
runs a sweep file on Ray Tune (:mod:`service.tune_runner`, the only module that talks to Ray),
``pareto`` prints a sweep's front from its stored results, ``export`` writes the front's
genotypes and tables and ``report`` rewrites a sweep's report page, e.g. with other
projections. Every error the project raises on purpose (:class:`~search_core.errors.E2RNASError`)
ends the command with one line ``e2rnas: error: ...`` on stderr and exit code 2, never a
traceback; Ctrl-C ends it with exit code 130. A later subcommand adds an ``_add_<name>`` parser
builder to ``_COMMANDS`` and a handler it sets as the parser's default.

A search's or an evaluation's configuration is layered, preset < ``--config`` file <
``--set KEY=VALUE``; the layers are merged into one mapping and checked as a whole by
:func:`search_core.config.preset` or :func:`search_core.eval_config.eval_preset`, and both read
their data before they create the output directory, so bad input leaves nothing behind.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import yaml
from tqdm import tqdm

from search_core.config import PRESETS, SearchConfig, preset
from search_core.errors import E2RNASError
from search_core.eval_config import (
    EVAL_PRESETS,
    PROXY_EPOCHS,
    EvalConfig,
    check_genotype,
    eval_preset,
    proxy_config,
    retrain_config,
)

PROG = "e2rnas"
DEFAULT_PRESET = "paper"
EXIT_BAD_INPUT = 2
EXIT_OS_ERROR = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C

Handler = Callable[[argparse.Namespace], int]
# argparse's subparsers type is private and generic only in its stubs, so it is named by string.
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CommandLineError(E2RNASError, ValueError):
    """An argument or a file named on the command line is malformed."""


# -- configuration: preset < --config file < --set ----------------------------------------


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """Where and what a YAML error is, on one line."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    return " ".join(str(exc).split())


def parse_setting(item: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, value); VALUE is read as YAML and an empty VALUE is None."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CommandLineError(f"--set {item!r}: expected KEY=VALUE, e.g. --set L=2.5")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommandLineError(
            f"--set {key}: cannot read {text!r} as a YAML value ({_yaml_problem(exc)}); "
            "expected a number, true/false or a string (quote it)"
        ) from None
    return key, value


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping of config keys in a YAML file (an empty file is an empty mapping)."""
    expected = "expected a YAML mapping of config keys, e.g. 'L: 2.5'"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise CommandLineError(
            f"--config {path}: cannot read the file ({reason}); {expected}"
        ) from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CommandLineError(
            f"--config {path}: malformed YAML at {_yaml_problem(exc)}; {expected}"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise CommandLineError(f"--config {path}: got a {type(values).__name__}; {expected}")
    for key in values:
        if not isinstance(key, str):
            raise CommandLineError(f"--config {path}: key {key!r} is not a name; {expected}")
    return values


def config_layers(
    preset_name: str | None,
    config_file: Path | None,
    settings: Sequence[str],
    presets: Sequence[str],
) -> tuple[str, dict[str, Any]]:
    """The preset's name and the overrides on it: the config file's keys, then ``--set``.

    The preset is ``preset_name``, else the file's ``preset:`` key, else ``paper``.
    """
    values = read_config_file(config_file) if config_file is not None else {}
    file_preset = values.pop("preset", None)
    if file_preset is not None and not isinstance(file_preset, str):
        raise CommandLineError(
            f"--config {config_file}: preset: got {file_preset!r}; "
            f"expected one of {', '.join(presets)}"
        )
    if preset_name is None:
        preset_name = file_preset if file_preset is not None else DEFAULT_PRESET
    for item in settings:
        key, value = parse_setting(item)
        values[key] = value
    return preset_name, values


def load_search_config(
    preset_name: str | None, config_file: Path | None, settings: Sequence[str]
) -> SearchConfig:
    """The checked search configuration: a preset, then the config file, then ``--set``."""
    return preset(*config_layers(preset_name, config_file, settings, list(PRESETS)))


def load_eval_config(
    preset_name: str | None, config_file: Path | None, settings: Sequence[str]
) -> EvalConfig:
    """The checked evaluation configuration: a preset, then the config file, then ``--set``."""
    return eval_preset(*config_layers(preset_name, config_file, settings, list(EVAL_PRESETS)))


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise CommandLineError(f"--out {out}: is a file; expected a directory for the outputs")


def _interrupted(checkpoint: Path) -> int:
    if checkpoint.exists():
        kept = f"the last checkpoint {checkpoint} is kept"
    else:
        kept = "no epoch had finished, so there is no checkpoint yet"
    print(
        f"{PROG}: interrupted; {kept}; run the same command with --resume to continue",
        file=sys.stderr,
    )
    return EXIT_INTERRUPTED


# -- search --------------------------------------------------------------------------------


class SearchProgress:
    """A tqdm bar on stderr over every step of a search or a retrain, and the size after each
    epoch of a search.

    The bar is created at the first step, when the number of steps per epoch is known (and the
    data has loaded), so an error before the training starts prints nothing but itself.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs
        self.bar: Any = None  # tqdm ships no type hints

    def __call__(self, epoch: int, step: int, steps_per_epoch: int) -> None:
        done = epoch * steps_per_epoch + step
        if self.bar is None:
            self.bar = tqdm(
                total=self.epochs * steps_per_epoch,
                initial=done - 1,  # a resumed search starts part of the way
                file=sys.stderr,
                unit="step",
                dynamic_ncols=True,
            )
        self.bar.set_description(f"epoch {epoch + 1}/{self.epochs}", refresh=False)
        self.bar.update(done - self.bar.n)

    def report(self, record: dict[str, Any], checkpoint_dir: Path) -> None:
        if self.bar is not None:
            self.bar.set_postfix(
                params_m=f"{record['params_m']:.4g}", flops_m=f"{record['flops_m']:.4g}"
            )

    def __enter__(self) -> SearchProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.bar is not None:
            self.bar.close()


def _add_settings_arguments(
    parser: argparse.ArgumentParser, presets: Iterable[str], example: str
) -> None:
    """--preset, --config, --set and --out, shared by the commands that take settings."""
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help=f"base settings: {', '.join(presets)} (default: the config file's preset:, "
        f"else {DEFAULT_PRESET})",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="YAML mapping of config keys")
    parser.add_argument(
        "--set",
        dest="settings",
        action="append",
        metavar="KEY=VALUE",
        help=f"override one config key, VALUE read as YAML (repeatable), e.g. --set {example}",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output directory")


def _add_search(commands: Commands) -> None:
    parser = commands.add_parser(
        "search",
        help="run or resume one E2RNAS search",
        description=(
            "Run one E2RNAS search and write genotype.json, genotype.py, metrics.jsonl, "
            "config.json and checkpoint.pt under --out. Settings: the preset, overridden by "
            "the --config file, overridden by each --set."
        ),
    )
    _add_settings_arguments(parser, PRESETS, "L=2.5")
    parser.add_argument(
        "--resume", action="store_true", help="continue from DIR/checkpoint.pt if it exists"
    )
    parser.add_argument(
        "--evaluate",
        choices=("proxy", "retrain"),
        help="after the search, evaluate its genotype and write DIR/metrics.json: 'proxy' "
        "fine-tunes the derived network at the search's size from the supernet's weights "
        f"for {PROXY_EPOCHS} epochs, "
        "'retrain' trains the evaluation network with the evaluation preset of the same name",
    )
    parser.set_defaults(handler=_search)


def _search(args: argparse.Namespace) -> int:
    preset_name, values = config_layers(
        args.preset, args.config, args.settings or [], list(PRESETS)
    )
    config = preset(preset_name, values)
    # The evaluation's settings are checked before the search spends any time.
    eval_config: EvalConfig | None = None
    if args.evaluate == "retrain":
        eval_config = retrain_config(config, preset_name)
    elif args.evaluate == "proxy":
        eval_config = proxy_config(config)
    # torch loads only once the input is known to be good: bad input answers at once.
    from search_core.search import CHECKPOINT, METRICS, load_checkpoint, run_search

    out: Path = args.out
    _check_out(out)
    try:
        with SearchProgress(config.epochs) as progress:
            result = run_search(
                config, out, resume=args.resume, reporter=progress.report, progress=progress
            )
    except KeyboardInterrupt:
        return _interrupted(out / CHECKPOINT)
    print(f"results in {result.out_dir}:")
    for name in ("genotype.json", "genotype.py", METRICS):
        print(f"  {result.out_dir / name}")
    if not result.records:  # resumed from a finished search whose metrics.jsonl is gone
        print(f"genotype {result.genotype.genotype_hash()}")
    else:
        last = result.records[-1]
        print(
            f"genotype {last['genotype_hash']}  params_m {last['params_m']:.6f}  "
            f"flops_m {last['flops_m']:.6f}"
        )
    if eval_config is None:
        return 0
    from search_core import evaluate

    try:
        with SearchProgress(eval_config.epochs) as progress:
            if args.evaluate == "retrain":
                metrics = evaluate.run_evaluation(
                    result.genotype, eval_config, out, resume=args.resume, progress=progress
                )
            else:
                supernet = load_checkpoint(out / CHECKPOINT)["net"]
                metrics = evaluate.run_proxy(
                    result.genotype,
                    config,
                    out,
                    progress=progress,
                    resume=args.resume,
                    supernet_state=supernet,
                )
    except KeyboardInterrupt:
        return _interrupted(out / evaluate.CHECKPOINT)
    _print_metrics(out / evaluate.METRICS_FILE, metrics)
    return 0


# -- evaluate ------------------------------------------------------------------------------


def _add_evaluate(commands: Commands) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="retrain a genotype and measure the five front metrics",
        description=(
            "Train the evaluation network of GENOTYPE from scratch (IV-B-3), then measure "
            "test_error, params_m, flops_m, pgd_acc, ood_aupr and the batch-1 latency, and "
            "write them with the settings to DIR/metrics.json; a checkpoint is written to "
            "DIR/eval_checkpoint.pt after every epoch. Settings: the preset, overridden by the "
            "--config file, overridden by each --set."
        ),
    )
    parser.add_argument(
        "genotype",
        metavar="GENOTYPE",
        help="a bundled name (darts_v1, darts_v2, pc_darts, pdarts), a .json file, "
        "or a DARTS genotypes.py file (file.py:NAME selects one)",
    )
    _add_settings_arguments(parser, EVAL_PRESETS, "epochs=50")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/eval_checkpoint.pt if it exists",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    config = load_eval_config(args.preset, args.config, args.settings or [])
    out: Path = args.out
    _check_out(out)
    # torch loads only once the settings are known to be good, and the rest of the
    # evaluation (torchvision, scikit-learn) once the genotype is: bad input answers at once.
    from search_core.errors import GenotypeError
    from search_core.genotypes import load_genotype

    genotype = load_genotype(args.genotype)
    try:
        check_genotype(genotype, config)
    except GenotypeError as exc:
        raise CommandLineError(f"GENOTYPE {args.genotype!r}: {exc}") from None
    from search_core import evaluate

    try:
        with SearchProgress(config.epochs) as progress:
            metrics = evaluate.run_evaluation(
                genotype, config, out, resume=args.resume, progress=progress
            )
    except KeyboardInterrupt:
        return _interrupted(out / evaluate.CHECKPOINT)
    _print_metrics(out / evaluate.METRICS_FILE, metrics)
    return 0


def _print_metrics(path: Path, metrics: dict[str, Any]) -> None:
    print(f"metrics ({metrics['mode']}) in {path}:")
    print(
        f"test_error {metrics['test_error']:.2f}  params_m {metrics['params_m']:.6f}  "
        f"flops_m {metrics['flops_m']:.6f}  pgd_acc {metrics['pgd_acc']:.2f}  "
        f"ood_aupr {metrics['ood_aupr']:.2f}  latency_ms {metrics['latency_ms']:.3f} "
        f"({metrics['latency_device']})"
    )


# -- count ---------------------------------------------------------------------------------


def _add_count(commands: Commands) -> None:
    parser = commands.add_parser(
        "count",
        help="print the params_m and flops_m of a genotype's evaluation network",
        description=(
            "Build the evaluation network of GENOTYPE and print one JSON object "
            '{"params_m": ..., "flops_m": ...}: parameters in millions (auxiliary head '
            "excluded) and multiply-adds of one image in millions, the units of L and F."
        ),
    )
    parser.add_argument(
        "genotype",
        metavar="GENOTYPE",
        help="a bundled name (darts_v1, darts_v2, pc_darts, pdarts), a .json file, "
        "or a DARTS genotypes.py file (file.py:NAME selects one)",
    )
    parser.add_argument(
        "--classes", type=int, default=10, metavar="N", help="output classes (default: 10)"
    )
    parser.add_argument("--layers", type=int, default=20, metavar="N", help="cells (default: 20)")
    parser.add_argument(
        "--init-channels",
        type=int,
        default=36,
        metavar="N",
        help="channels of the first cells (default: 36)",
    )
    parser.add_argument(
        "--input-size",
        type=int,
        default=32,
        metavar="N",
        help="image height and width (default: 32)",
    )
    parser.add_argument(
        "--in-channels", type=int, default=3, metavar="N", help="image channels (default: 3)"
    )
    parser.set_defaults(handler=_count)


def _count(args: argparse.Namespace) -> int:
    for flag, value in (
        ("--classes", args.classes),
        ("--input-size", args.input_size),
        ("--in-channels", args.in_channels),
    ):
        if value < 1:
            raise CommandLineError(f"{flag}: got {value}; expected an integer >= 1")
    if args.init_channels < 2 or args.init_channels % 2:
        raise CommandLineError(
            f"--init-channels: got {args.init_channels}; expected an even number >= 2"
        )
    from search_core.genotypes import load_genotype
    from search_core.model_eval import EvalNetwork, count_flops_m, count_params_m

    genotype = load_genotype(args.genotype)
    net = EvalNetwork(
        genotype,
        num_classes=args.classes,
        layers=args.layers,
        init_channels=args.init_channels,
        input_size=args.input_size,
        in_channels=args.in_channels,
    )
    params_m = count_params_m(net)
    flops_m = count_flops_m(net, args.input_size, args.in_channels)
    print(json.dumps({"params_m": params_m, "flops_m": flops_m}))
    return 0


# -- sweeps --------------------------------------------------------------------------------


def _add_sweep(commands: Commands) -> None:
    parser = commands.add_parser(
        "sweep",
        help="run, resume, watch or submit a sweep of searches on Ray",
        description=(
            "Run a sweep file (sweeps/*.yaml) on an embedded local Ray or a Ray cluster, "
            "resume an interrupted one, show its progress, or submit it as a Ray Job."
        ),
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
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
    status = actions.add_parser(
        "status",
        help="show a sweep's progress, or a submitted job's status",
        description=(
            "With a run directory: the sweep's status and each trial's epochs. With a job id: "
            "the Ray Job's status at --address (default: $RAY_ADDRESS)."
        ),
    )
    status.add_argument("target", metavar="DIR|JOB_ID")
    status.add_argument("--address", metavar="URL", help="jobs server, http://HOST:8265")
    status.set_defaults(handler=_sweep_status)
    submit = actions.add_parser(
        "submit",
        help="submit a sweep file to a Ray cluster as a Ray Job",
        description=(
            "Check the sweep FILE, then submit 'e2rnas sweep run FILE' to the jobs server at "
            "--address, with the file's directory as the job's working directory; prints "
            "the job id."
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


def _run_dir(out: Path | None, storage_path: str, name: str) -> Path:
    from service.sweep_config import is_uri

    # With storage on a filesystem URI, Tune's state lives there; the run directory (results,
    # report, exports) stays on this machine, under ./runs unless --out says otherwise.
    default_root = Path("runs") if is_uri(storage_path) else Path(storage_path)
    run_dir = out if out is not None else default_root / name
    _check_out(run_dir)
    return run_dir.resolve()


def _print_outputs(run_dir: Path) -> None:
    from service import tune_runner

    state = tune_runner.read_sweep_state(run_dir)
    export = run_dir / tune_runner.EXPORT_DIR
    print(f"sweep {state['sweep_id']}: {state['status']}")
    print(f"results:  {run_dir / tune_runner.RESULTS_FILE}")
    print(f"database: {state['database_url']}")
    for path in sorted(export.iterdir()) if export.is_dir() else []:
        print(f"export:   {path}")
    report = run_dir / tune_runner.REPORT_FILE
    if report.exists():
        print(f"report:   {report}  (open it in a browser: file://{report})")
    if str(state["database_url"]).startswith("sqlite:"):
        print(
            f"service:  e2rnas serve --database-url {state['database_url']}  then open "
            f"http://127.0.0.1:8000/sweeps/{state['sweep_id']}"
        )


def _sweep_run(args: argparse.Namespace) -> int:
    from service import tune_runner
    from service.sweep_config import load_sweep

    spec = load_sweep(args.file)
    run_dir = _run_dir(args.out, spec.storage.path, spec.name)
    if (run_dir / tune_runner.SWEEP_FILE).exists():
        raise CommandLineError(
            f"--out {run_dir}: already holds a sweep; continue it with "
            f"'{PROG} sweep resume {run_dir}' or choose another --out"
        )
    address = args.address or spec.ray.address
    if address and address != "auto":
        tune_runner.check_address(address, 6379)
    tune_runner.run_sweep(spec, run_dir, address=address)
    return _finish(run_dir)


def _finish(run_dir: Path) -> int:
    from service import tune_runner

    _print_outputs(run_dir)
    status = tune_runner.read_sweep_state(run_dir)["status"]
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
        return EXIT_OS_ERROR
    return 0


def _sweep_resume(args: argparse.Namespace) -> int:
    from service import tune_runner

    run_dir: Path = args.run_dir.resolve()
    spec = tune_runner.spec_of(run_dir)
    address = args.address or spec.ray.address
    if address and address != "auto":
        tune_runner.check_address(address, 6379)
    tune_runner.run_sweep(spec, run_dir, address=address, resume=True)
    return _finish(run_dir)


def _sweep_status(args: argparse.Namespace) -> int:
    from service import jobs, tune_runner

    target = Path(args.target)
    if (target / tune_runner.SWEEP_FILE).exists():
        state = tune_runner.read_sweep_state(target)
        spec = tune_runner.spec_of(target)
        trials = tune_runner.trial_states(target)
        total = tune_runner.search_epochs(spec)
        done = sum(1 for t in trials if t.get("status") == "done")
        print(f"sweep {state['sweep_id']}: {state['status']}, {done}/{state['trials']} trials done")
        for trial in trials:
            print(f"  {trial['trial_key']}: {trial['status']}, epochs {trial['epochs']}/{total}")
        return 0
    if target.exists() or "/" in args.target:
        raise CommandLineError(f"{target}: not the run directory of a sweep (no sweep.json)")
    address = args.address or os.environ.get("RAY_ADDRESS")
    if not address:
        raise CommandLineError(
            f"{args.target}: not a run directory; for a job id give --address http://HOST:8265"
        )
    status, logs = jobs.job_status(args.target, address)
    print(f"job {args.target}: {status}")
    tail = logs.strip().splitlines()[-5:]
    for line in tail:
        print(f"  {line}")
    return 0


def _sweep_submit(args: argparse.Namespace) -> int:
    from service import jobs
    from service.sweep_config import load_sweep

    spec = load_sweep(args.file)
    run_dir = _run_dir(args.out, spec.storage.path, spec.name)
    job_id = jobs.submit_sweep(args.file, args.address, run_dir)
    print(job_id)
    print(f"run directory: {run_dir}", file=sys.stderr)
    return 0


# -- pareto and export -----------------------------------------------------------------------


def _objectives_arg(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise CommandLineError(f"--objectives {text!r}: expected names separated by commas")
    return names


def _add_pareto(commands: Commands) -> None:
    parser = commands.add_parser(
        "pareto",
        help="print a sweep's Pareto front from its stored results",
        description=(
            "Read the sweep's results from its database and print the nondominated trials, "
            "the hypervolume and the knee point."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    parser.add_argument(
        "--objectives",
        metavar="A,B,...",
        help="front metrics to use (default: the sweep's objectives)",
    )
    parser.set_defaults(handler=_pareto)


def _front_objectives(run_dir: Path, text: str | None) -> Any:
    from service import tune_runner
    from service.pareto import directions

    names = _objectives_arg(text)
    if names is None:
        return tune_runner.sweep_objectives(tune_runner.spec_of(run_dir))
    return directions(names)


def _pareto(args: argparse.Namespace) -> int:
    from service import tune_runner
    from service.pareto import pareto_info
    from service.results import RESULT_COLUMNS

    objectives = _front_objectives(args.run_dir, args.objectives)
    frame = tune_runner.stored_table(args.run_dir)
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


def _add_export(commands: Commands) -> None:
    parser = commands.add_parser(
        "export",
        help="write a sweep's Pareto-front genotypes and tables",
        description=(
            "Write genotypes.json, genotypes.py (DARTS format), front.csv and front.parquet "
            "of the sweep's Pareto front, read from its database, into --out."
        ),
    )
    parser.add_argument("run_dir", type=Path, metavar="DIR", help="the sweep's run directory")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR2", help="output directory")
    parser.add_argument(
        "--objectives",
        metavar="A,B,...",
        help="front metrics to use (default: the sweep's objectives)",
    )
    parser.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from service import tune_runner
    from service.export import export_front

    _check_out(args.out)
    objectives = _front_objectives(args.run_dir, args.objectives)
    frame = tune_runner.stored_table(args.run_dir)
    paths = export_front(tune_runner.front_of(frame, objectives), args.out)
    for path in paths.values():
        print(path)
    return 0


# -- report --------------------------------------------------------------------------------


def _add_report(commands: Commands) -> None:
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
    from service import tune_runner
    from service.sweep_config import check_axes, plottable_columns

    run_dir: Path = args.run_dir
    spec = tune_runner.spec_of(run_dir)
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
    path = tune_runner.write_run_report(
        run_dir, args.out, axes["--projection-2d"], axes["--projection-3d"]
    )
    print(f"report: {path}  (open it in a browser: file://{path.resolve()})")
    return 0


# -- serve ---------------------------------------------------------------------------------


def _add_serve(commands: Commands) -> None:
    parser = commands.add_parser(
        "serve",
        help="run the web service (REST API and web pages)",
        description=(
            "Serve the REST API (/api, schema at /docs) and the web pages. Flags override the "
            "E2RNAS_* environment variables (E2RNAS_DATABASE_URL, E2RNAS_RAY_ADDRESS, "
            "E2RNAS_STORAGE, E2RNAS_API_TOKEN, ...). Without E2RNAS_API_TOKEN only loopback "
            "addresses may be bound."
        ),
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default 8000)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in --storage)")
    parser.add_argument(
        "--ray-address", help="a cluster's job server, http://HEAD:8265 (default: embedded Ray)"
    )
    parser.add_argument("--storage", type=Path, help="run directories (default runs/service)")
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    from service.settings import load_settings

    settings = load_settings(
        host=args.host,
        port=args.port,
        database_url=args.database_url,
        ray_address=args.ray_address,
        storage=args.storage,
    )
    import uvicorn

    from service.api import create_app

    app = create_app(settings)
    print(f"e2rnas service on http://{settings.host}:{settings.port}/", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning")
    return 0


# -- main ----------------------------------------------------------------------------------

_COMMANDS: tuple[Callable[[Commands], None], ...] = (
    _add_search,
    _add_evaluate,
    _add_count,
    _add_sweep,
    _add_pareto,
    _add_export,
    _add_report,
    _add_serve,
)


def _version() -> str:
    try:
        return importlib.metadata.version("e2rnas-sweeps")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="E2RNAS: search for accurate, small and robust architectures.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(commands)
    return parser


def _fail(message: str, code: int) -> int:
    print(f"{PROG}: error: {' '.join(message.split())}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one ``e2rnas`` command; the exit code is returned, never raised, except by argparse."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except E2RNASError as exc:
        return _fail(str(exc), EXIT_BAD_INPUT)
    except OSError as exc:  # writing the outputs: a full disk, a read-only directory
        where = f"{exc.filename}: " if exc.filename else ""
        return _fail(f"{where}{exc.strerror or exc}", EXIT_OS_ERROR)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
