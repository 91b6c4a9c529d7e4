"""``e2rnas search``, ``evaluate`` and ``count``: one search, one evaluation, one genotype's size.

``search`` runs (or resumes) one search, optionally followed by an evaluation of its genotype;
``evaluate`` retrains a genotype and measures the five front metrics (or resumes the retrain);
``count`` prints the size of a genotype's evaluation network (``--json``: with the genotype
and the network's settings, under keys scripts can rely on). torch loads only once the input
is known to be good, so bad input answers at once.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from search_core.config import INT_LIMITS, MAX_CHANNELS, PRESETS, SearchConfig, preset
from search_core.eval_config import (
    EVAL_PRESETS,
    PROXY_EPOCHS,
    EvalConfig,
    check_genotype,
    proxy_config,
    retrain_config,
)
from search_core.layout import MIN_IMAGENET_INPUT_SIZE, MIN_INPUT_SIZE
from service.cli.common import (
    CommandLineError,
    Commands,
    SearchProgress,
    add_settings_arguments,
    check_env_roots,
    check_out,
    config_layers,
    interrupted,
    load_eval_config,
    removed_on_failure,
)

if TYPE_CHECKING:
    from search_core.search import SearchResult

__all__ = ["add_count", "add_evaluate", "add_search"]


def add_search(commands: Commands) -> None:
    parser = commands.add_parser(
        "search",
        help="run or resume one E2RNAS search",
        description=(
            "Run one E2RNAS search and write genotype.json, genotype.py, metrics.jsonl, "
            "config.json and checkpoint.pt under --out. Settings: the preset, overridden by "
            "the --config file, overridden by each --set."
        ),
    )
    add_settings_arguments(parser, PRESETS, "L=2.5")
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


def _eval_config(evaluate: str | None, config: SearchConfig, preset_name: str) -> EvalConfig | None:
    """The evaluation's config after a search, or None without ``--evaluate``."""
    if evaluate == "retrain":
        # A search preset without an evaluation preset of its name (``authors``) retrains
        # as the paper does, as a sweep's evaluation does.
        return retrain_config(config, preset_name if preset_name in EVAL_PRESETS else "paper")
    if evaluate == "proxy":
        return proxy_config(config)
    return None


def _print_search(result: SearchResult, metrics_name: str) -> None:
    print(f"results in {result.out_dir}:")
    for name in ("genotype.json", "genotype.py", metrics_name):
        print(f"  {result.out_dir / name}")
    if not result.records:  # resumed from a finished search whose metrics.jsonl is gone
        print(f"genotype {result.genotype.genotype_hash()}")
    else:
        last = result.records[-1]
        print(
            f"genotype {last['genotype_hash']}  params_m {last['params_m']:.6f}  "
            f"flops_m {last['flops_m']:.6f}"
        )


def _search(args: argparse.Namespace) -> int:
    preset_name, values = config_layers(
        args.preset, args.config, args.settings or [], list(PRESETS)
    )
    config = preset(preset_name, values)
    # The evaluation's settings are checked before the search spends any time.
    eval_config = _eval_config(args.evaluate, config, preset_name)
    check_env_roots([config] if eval_config is None else [config, eval_config])
    # torch loads only once the input is known to be good: bad input answers at once.
    from search_core.search import CHECKPOINT, METRICS, load_checkpoint, run_search

    out: Path = args.out
    check_out(out)
    try:
        with (
            removed_on_failure(out, keeps=CHECKPOINT),
            SearchProgress(config.total_epochs) as progress,
        ):
            result = run_search(
                config, out, resume=args.resume, reporter=progress.report, progress=progress
            )
    except KeyboardInterrupt:
        return interrupted(out / CHECKPOINT)
    _print_search(result, METRICS)
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
        return interrupted(out / evaluate.CHECKPOINT)
    _print_metrics(out / evaluate.METRICS_FILE, metrics)
    return 0


# -- evaluate ------------------------------------------------------------------------------


def add_evaluate(commands: Commands) -> None:
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
    add_settings_arguments(parser, EVAL_PRESETS, "epochs=50")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from DIR/eval_checkpoint.pt if it exists",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    config = load_eval_config(args.preset, args.config, args.settings or [])
    check_env_roots([config])
    out: Path = args.out
    check_out(out)
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
        return interrupted(out / evaluate.CHECKPOINT)
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


def add_count(commands: Commands) -> None:
    parser = commands.add_parser(
        "count",
        help="print the params_m and flops_m of a genotype's evaluation network",
        description=(
            "Build the evaluation network of GENOTYPE and print params_m, its parameters in "
            "millions (auxiliary head excluded), and flops_m, the multiply-adds of one image "
            "in millions: the units of L and F, counted on the built network. --dataset "
            "imagenet counts DARTS's ImageNet network (the mobile setting of the paper's "
            "Table V) instead of its CIFAR one."
        ),
    )
    parser.add_argument(
        "genotype",
        metavar="GENOTYPE",
        help="a bundled name (darts_v1, darts_v2, pc_darts, pdarts), a .json file, "
        "or a DARTS genotypes.py file (file.py:NAME selects one)",
    )
    parser.add_argument(
        "--dataset",
        choices=tuple(COUNT_DEFAULTS),
        default="cifar",
        help="the network: DARTS's CIFAR one (default; 10 classes, 20 cells, C=36, 32x32) or "
        "its ImageNet one (1000 classes, 14 cells, C=48, 224x224); the flags below "
        "override these defaults",
    )
    parser.add_argument("--classes", type=int, metavar="N", help="output classes")
    parser.add_argument("--layers", type=int, metavar="N", help="cells")
    parser.add_argument(
        "--init-channels", type=int, metavar="N", help="channels of the first cells"
    )
    parser.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        help=f"image height and width, at least {MIN_INPUT_SIZE} "
        f"({MIN_IMAGENET_INPUT_SIZE} for imagenet)",
    )
    parser.add_argument(
        "--in-channels", type=int, default=3, metavar="N", help="image channels (default: 3)"
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object instead: " + ", ".join(COUNT_KEYS),
    )
    parser.set_defaults(handler=_count)


# The keys of count --json, in order: GENOTYPE as given, the genotype (its hash and its JSON
# form), the network it was counted on, and its size.
_NETWORK_KEYS = ("classes", "layers", "init_channels", "input_size", "in_channels")
COUNT_KEYS = (
    "source",
    "genotype_hash",
    "genotype",
    "dataset",
    *_NETWORK_KEYS,
    "params_m",
    "flops_m",
)

# The defaults of count per --dataset: DARTS's CIFAR network and its ImageNet one.
COUNT_DEFAULTS: dict[str, dict[str, int]] = {
    "cifar": {"classes": 10, "layers": 20, "init_channels": 36, "input_size": 32},
    "imagenet": {"classes": 1000, "layers": 14, "init_channels": 48, "input_size": 224},
}


def _check_count_args(args: argparse.Namespace) -> None:
    for key, value in COUNT_DEFAULTS[args.dataset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    low_layers, high_layers, _ = INT_LIMITS["eval_layers"]
    imagenet = args.dataset == "imagenet"
    low_size = MIN_IMAGENET_INPUT_SIZE if imagenet else MIN_INPUT_SIZE
    for flag, value, low, high in (
        ("--classes", args.classes, 1, 100_000),
        ("--layers", args.layers, low_layers, high_layers),
        ("--input-size", args.input_size, low_size, 1024),
        ("--in-channels", args.in_channels, 1, 64),
    ):
        if not low <= value <= high:
            halvings = "five times: 32 -> ... -> 1" if imagenet else "twice: 4 -> 2 -> 1"
            why = (
                f" (the network halves the image {halvings})"
                if flag == "--input-size" and value < low
                else ""
            )
            raise CommandLineError(f"{flag}: got {value}; expected {low} to {high}{why}")
    if not 2 <= args.init_channels <= MAX_CHANNELS or args.init_channels % 2:
        raise CommandLineError(
            f"--init-channels: got {args.init_channels}; expected an even number 2 to "
            f"{MAX_CHANNELS}"
        )


def _count(args: argparse.Namespace) -> int:
    _check_count_args(args)
    from search_core.genotypes import load_genotype

    genotype = load_genotype(args.genotype)  # a bad file is refused before torch is imported
    from search_core.model_eval import (
        EvalNetwork,
        ImageNetNetwork,
        count_flops_m,
        count_params_m,
    )

    network = ImageNetNetwork if args.dataset == "imagenet" else EvalNetwork
    net = network(
        genotype,
        num_classes=args.classes,
        layers=args.layers,
        init_channels=args.init_channels,
        input_size=args.input_size,
        in_channels=args.in_channels,
    )
    size = {
        "params_m": count_params_m(net),
        "flops_m": count_flops_m(net, args.input_size, args.in_channels),
    }
    _print_count(args, genotype.genotype_hash(), genotype.to_json(), size)
    return 0


def _print_count(
    args: argparse.Namespace, genotype_hash: str, genotype: dict[str, Any], size: dict[str, float]
) -> None:
    """The size as text, or with ``--json`` as one object of :data:`COUNT_KEYS`; both print
    the floats in full (shortest round-trip form), so the text's numbers are the JSON's."""
    if args.json:
        answer = {
            "source": args.genotype,
            "genotype_hash": genotype_hash,
            "genotype": genotype,
            "dataset": args.dataset,
            **{key: getattr(args, key) for key in _NETWORK_KEYS},
            **size,
        }
        print(json.dumps(answer))
        return
    print(
        f"{args.genotype} (genotype {genotype_hash}) on {args.dataset}: {args.classes} classes, "
        f"{args.layers} cells, C={args.init_channels}, {args.input_size}x{args.input_size}x"
        f"{args.in_channels} input"
    )
    print(f"params_m {size['params_m']!r}  flops_m {size['flops_m']!r}")
