"""Cost of one search step in forward+backward units, measured side by side in one process.

One unit is one supernet forward+backward (gradients of θ and α) on one batch of the same
config. The script times that unit, a DARTS step (single objective, plain train loss in the
lower level, same code path) and an E2RNAS step (five objectives), each first- and second-
order, the second order both with exact batched Hessian-vector products and with DARTS's
finite differences, and prints each as milliseconds and units.

    python bench/step_cost.py --preset cpu-tiny
    python bench/step_cost.py --preset paper --set device=cuda --repeats 20
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F_nn
from timing import interleaved

from search_core.bilevel import BilevelStep
from search_core.config import SearchConfig, preset
from search_core.cost import build_cost_tables
from search_core.model_search import SearchNetwork
from search_core.objectives import PixelBox

SHAPES = {"digits": (1, 8, 5), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}


def _variants(base: SearchConfig) -> dict[str, SearchConfig]:
    darts = base.replace(objectives="val", ood_in_lower=False)
    return {
        "DARTS 1st order": darts.replace(order="first"),
        "DARTS 2nd order (exact HVP)": darts.replace(order="second", hessian="exact"),
        "DARTS 2nd order (finite diff.)": darts.replace(
            order="second", hessian="finite_difference"
        ),
        "E2RNAS 1st order": base.replace(order="first"),
        "E2RNAS 2nd order (exact HVP)": base.replace(order="second", hessian="exact"),
        "E2RNAS 2nd order (finite diff.)": base.replace(
            order="second", hessian="finite_difference"
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    config = preset(args.preset, overrides)
    device = torch.device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    in_ch, size, classes = SHAPES.get(config.dataset, (3, 32, 10))
    torch.manual_seed(config.seed)

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(config.batch_size, in_ch, size, size, device=device)
        return x, torch.randint(0, classes, (config.batch_size,), device=device)

    train, val, ood = batch(), batch(), batch()[0]
    costs = build_cost_tables(
        config.eval_layers, config.eval_init_channels, classes, size, in_ch, config.nodes
    ).to(device)
    box = PixelBox.for_normalisation(config.epsilon, [0.5] * in_ch, [0.25] * in_ch, device)

    def fresh() -> SearchNetwork:
        torch.manual_seed(config.seed)
        return SearchNetwork(
            classes, config.layers, config.init_channels, size, in_ch, config.nodes
        ).to(device)

    net = fresh()

    def unit() -> None:
        loss = F_nn.cross_entropy(net(train[0]), train[1])
        torch.autograd.grad(loss, list(net.parameters()))

    calls: dict[str, Callable[[], object]] = {"unit: supernet forward+backward": unit}
    for name, variant in _variants(config).items():
        step = BilevelStep(fresh(), variant, costs, box)
        calls[name] = functools.partial(step.step, train, val, ood)
    seconds = interleaved(calls, device, args.repeats, args.warmup)
    unit_s = seconds["unit: supernet forward+backward"]
    print(
        f"config: preset={args.preset} layers={config.layers} C={config.init_channels} "
        f"input={in_ch}x{size}x{size} batch={config.batch_size} device={device} "
        f"threads={torch.get_num_threads()} repeats={args.repeats}"
    )
    print(f"{'step':34s} {'ms':>10s} {'units':>7s}")
    for name, value in seconds.items():
        print(f"{name:34s} {value * 1e3:10.1f} {value / unit_s:7.2f}")


if __name__ == "__main__":
    main()
