"""Cost of one search step in forward+backward units, and its peak memory, per backbone.

One unit is one supernet forward+backward (gradients of θ and the architecture) on one batch.
Everything is measured side by side in one process (times round-robin, medians; see
``timing.py``), so the ratios hold on a busy machine.

Table 1, on the DARTS supernet: a DARTS step (single objective, plain train loss in the lower
level, same code path) and an E2RNAS step (five objectives), each first- and second-order, the
second order both with exact batched Hessian-vector products and with DARTS's finite
differences, and the second order with eq. (1) solved on the direct gradients
(``mgda_on=direct``: one Hessian-vector product instead of three).

Table 1 also gives both finite-difference rows with the 2K shifted networks run the other
way than ``fd_batch=auto`` runs them (vmapped for the default's six, looped for direct's two),
and with ``--peaks`` each row's peak memory.

Table 2, one E2RNAS step (the config's order and Hessian) on each backbone at the same batch,
input size and init channels: DARTS and PC-DARTS at the config's depth, and each stage of
P-DARTS at its own depth and ops per edge (the ops that pruning a seeded random α keeps). Each
row gives the step in units of its own supernet and in units of the DARTS supernet, and the
step's peak memory beside the DARTS step's (``memory.py`` says how it is measured).

Table 3 (``--tables formats``), the unit and the config's E2RNAS step in float32 and under
bf16 autocast, each in NCHW and channels-last memory, and their speed-ups over float32 NCHW.

Table 4 (``--tables phases``), the passes of the config's E2RNAS step each timed alone (in a
round-robin of their own), their sum, and what the whole step adds to it.

    python bench/step_cost.py --preset cpu-tiny
    python bench/step_cost.py --set dataset=cifar10 --set layers=5 --set init_channels=8 \
        --set batch_size=32 --tables variants --peaks
    python bench/step_cost.py --preset paper --set batch_size=16 --tables backbones
    python bench/step_cost.py --preset paper --set device=cuda --repeats 20 \
        --tables variants,formats
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F_nn
from memory import peak_bytes
from timing import interleaved

from search_core import bilevel, mgda
from search_core.bilevel import BilevelStep
from search_core.config import SearchConfig, preset
from search_core.cost import CostTables, build_cost_tables
from search_core.layout import edge_inputs
from search_core.model_search import SearchNetwork
from search_core.objectives import PixelBox
from search_core.ops import autocast_dtype, memory_format
from search_core.progressive import full_mask, masked_softmax, prune_ops, stage_plan

SHAPES = {"digits": (1, 8, 5), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}
Batch = tuple[torch.Tensor, torch.Tensor]


class Bench:
    """The batches, cost tables and attack box every measured step shares."""

    def __init__(self, config: SearchConfig) -> None:
        self.config = config
        self.device = torch.device(config.device)
        self.in_ch, self.size, self.classes = SHAPES.get(config.dataset, (3, 32, 10))
        torch.manual_seed(config.seed)
        self.train, self.val, self.ood = self.batch(), self.batch(), self.batch()[0]
        self.costs: CostTables = build_cost_tables(
            config.eval_layers,
            config.eval_init_channels,
            self.classes,
            self.size,
            self.in_ch,
            config.nodes,
        ).to(self.device)
        self.box = PixelBox.for_normalisation(
            config.epsilon, [0.5] * self.in_ch, [0.25] * self.in_ch, self.device
        )

    def batch(self) -> Batch:
        b = self.config.batch_size
        x = torch.randn(b, self.in_ch, self.size, self.size, device=self.device)
        return x, torch.randint(0, self.classes, (b,), device=self.device)

    def network(
        self,
        config: SearchConfig,
        layers: int | None = None,
        masks: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> SearchNetwork:
        torch.manual_seed(config.seed)
        partial = config.backbone == "pc_darts"
        net = SearchNetwork(
            self.classes,
            layers or config.layers,
            config.init_channels,
            self.size,
            self.in_ch,
            config.nodes,
            partial_k=config.pc_k if partial else 1,
            edge_normalization=partial,
            op_masks=masks,
            skip_limit=config.pdarts_skip_limit if masks is not None else None,
        ).to(self.device)
        net.to(memory_format=memory_format(config.channels_last))
        net.autocast = autocast_dtype(config.autocast)
        return net

    def unit(self, net: SearchNetwork) -> Callable[[], object]:
        def forward_backward() -> None:
            loss = F_nn.cross_entropy(net(self.train[0]), self.train[1])
            torch.autograd.grad(loss, list(net.parameters()))

        return forward_backward

    def step(self, net: SearchNetwork, config: SearchConfig) -> Callable[[], object]:
        step = BilevelStep(net, config, self.costs, self.box)
        return functools.partial(step.step, self.train, self.val, self.ood)


def variant_calls(bench: Bench) -> dict[str, Callable[[], object]]:
    """Table 1: DARTS and E2RNAS steps on the DARTS supernet."""
    base = bench.config.replace(backbone="darts")
    darts = base.replace(objectives="val", ood_in_lower=False)
    variants = {
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
        "E2RNAS 2nd, MGDA on direct (exact HVP)": base.replace(
            order="second", hessian="exact", mgda_on="direct"
        ),
        "E2RNAS 2nd, MGDA on direct (finite diff.)": base.replace(
            order="second", hessian="finite_difference", mgda_on="direct"
        ),
        # The other way to run the central differences' 2K shifted networks than the
        # default (fd_batch=auto: a loop over six, one vmapped call for two).
        "E2RNAS 2nd order (finite diff., vmapped)": base.replace(
            order="second", hessian="finite_difference", fd_batch="vmap"
        ),
        "E2RNAS 2nd, MGDA on direct (finite diff., looped)": base.replace(
            order="second", hessian="finite_difference", mgda_on="direct", fd_batch="loop"
        ),
    }
    calls = {"unit: supernet forward+backward": bench.unit(bench.network(base))}
    for name, variant in variants.items():
        calls[name] = bench.step(bench.network(variant), variant)
    # The same default step with eq. (1) solved by the masked tensor loop (what every device
    # ran before the CPU got its host loop): the solver's share of a step, side by side.
    default = variants["E2RNAS 2nd order (finite diff.)"]
    calls["E2RNAS 2nd order (finite diff.), masked FW"] = masked_solver(
        bench.step(bench.network(default), default)
    )
    return calls


def phase_calls(bench: Bench) -> dict[str, Callable[[], object]]:
    """Table 4: the passes of the config's E2RNAS step, each timed alone at the same state:
    the lower level (L_tr and L_ood, ∇θ), the upper level at θ' (val, OoD, FGSM's input
    gradient, adversarial; ∇α and ∇θ'), and the central differences or exact products of
    eq. (9) on the upper level's v_k. What the step adds to their sum is the solver, the cost
    model and the two updates. (It calls the step's own pieces, which are private.)"""
    config = bench.config.replace(backbone="darts")
    net = bench.network(config)
    step = BilevelStep(net, config, bench.costs, bench.box)
    xi = config.lr
    g_tr, _, _, lower = step._lower_grads(bench.train, bench.ood, keep_graph=False)
    params: list[torch.Tensor] = (
        step._unrolled(g_tr, xi) if config.order == "second" else list(step.theta)
    )
    _, _, vectors = step._upper(params, bench.val, bench.ood)
    calls: dict[str, Callable[[], object]] = {
        "unit: supernet forward+backward": bench.unit(net),
        "lower level (2 passes, ∇θ)": functools.partial(step._lower_grads, bench.train, bench.ood),
        "upper level (4 passes at θ')": functools.partial(
            step._upper, params, bench.val, bench.ood
        ),
    }
    if config.order == "second" and config.hessian == "finite_difference":
        calls[f"central differences ({2 * len(vectors)} passes, ∇α)"] = functools.partial(
            step._hvp_finite_difference, lower, vectors
        )
    calls["the whole step"] = functools.partial(step.step, bench.train, bench.val, bench.ood)
    return calls


def print_phases(seconds: dict[str, float]) -> None:
    unit_name, whole_name = "unit: supernet forward+backward", "the whole step"
    unit_s, whole = seconds[unit_name], seconds[whole_name]
    total = sum(v for name, v in seconds.items() if name not in (unit_name, whole_name))
    print(f"{'pass (E2RNAS step)':42s} {'ms':>10s} {'units':>7s}")
    for name, value in seconds.items():
        print(f"{name:42s} {value * 1e3:10.1f} {value / unit_s:7.2f}")
    print(f"{'sum of the passes':42s} {total * 1e3:10.1f} {total / unit_s:7.2f}")
    print(f"{'the rest (solver, costs, updates)':42s} {(whole - total) * 1e3:10.1f} ")


FORMATS = {
    "float32, NCHW": {"channels_last": False, "autocast": "none"},
    "float32, channels-last": {"channels_last": True, "autocast": "none"},
    "bf16 autocast, NCHW": {"channels_last": False, "autocast": "bf16"},
    "bf16 autocast, channels-last": {"channels_last": True, "autocast": "bf16"},
}


def format_calls(bench: Bench) -> dict[str, Callable[[], object]]:
    """Table 3: the unit and the config's E2RNAS step in each memory format and precision
    (``channels_last``, ``autocast``), before and after, in one run."""
    calls: dict[str, Callable[[], object]] = {}
    for label, changes in FORMATS.items():
        config = bench.config.replace(backbone="darts", **changes)
        calls[f"unit [{label}]"] = bench.unit(bench.network(config))
        calls[f"step [{label}]"] = bench.step(bench.network(config), config)
    return calls


def print_formats(seconds: dict[str, float]) -> None:
    base_unit, base_step = (seconds[f"{kind} [{next(iter(FORMATS))}]"] for kind in ("unit", "step"))
    print(
        f"{'format (E2RNAS step)':30s} {'unit ms':>9s} {'step ms':>9s} {'own units':>9s} "
        f"{'unit speed-up':>13s} {'step speed-up':>13s}"
    )
    for label in FORMATS:
        unit, step = seconds[f"unit [{label}]"], seconds[f"step [{label}]"]
        print(
            f"{label:30s} {unit * 1e3:9.1f} {step * 1e3:9.1f} {step / unit:9.2f} "
            f"{base_unit / unit:13.2f} {base_step / step:13.2f}"
        )


def masked_solver(call: Callable[[], object]) -> Callable[[], object]:
    """``call`` with eq. (1) solved by 250 masked iterations of tensor operations."""

    def min_norm_masked(
        grads: torch.Tensor, max_iter: int = 250, tol: float = 1e-6
    ) -> torch.Tensor:
        rows = grads.detach().double()
        return mgda._away_step_frank_wolfe(rows @ rows.T, max_iter, tol).to(grads.dtype)

    def run() -> object:
        original = bilevel.min_norm_weights  # type: ignore[attr-defined]
        bilevel.min_norm_weights = min_norm_masked  # type: ignore[attr-defined]
        try:
            return call()
        finally:
            bilevel.min_norm_weights = original  # type: ignore[attr-defined]

    return run


def stage_masks(config: SearchConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Masks of each P-DARTS stage: the ops that pruning a seeded random α keeps."""
    generator = torch.Generator().manual_seed(config.seed)
    n_edges = len(edge_inputs(config.nodes))
    masks = (full_mask(n_edges), full_mask(n_edges))
    found = [masks]
    for stage in stage_plan(config)[1:]:
        pruned = []
        for mask in masks:
            alpha = torch.randn(mask.shape, generator=generator)
            pruned.append(prune_ops(masked_softmax(alpha, mask), mask, stage.ops))
        masks = (pruned[0], pruned[1])
        found.append(masks)
    return found


def backbone_calls(
    bench: Bench, preset_name: str, overrides: dict[str, str]
) -> tuple[dict[str, Callable[[], object]], dict[str, str]]:
    """Table 2: each backbone's step and its own unit, at the base config's batch and shapes
    (the backbone's preset gives K and the stages); the step's name maps to its unit's."""
    base = bench.config
    same = {
        "batch_size": base.batch_size,
        "init_channels": base.init_channels,
        "order": base.order,
        "hessian": base.hessian,
        "arch_warmup_epochs": 0,
        "device": base.device,
    }
    calls: dict[str, Callable[[], object]] = {}
    units: dict[str, str] = {}
    for backbone in ("darts", "pc_darts", "pdarts"):
        config = preset(preset_name, {**overrides, "backbone": backbone, **same})
        if backbone != "pdarts":
            config = config.replace(layers=base.layers)
            net = bench.network(config)
            label = f"{backbone} ({base.layers} cells" + (
                f", K={config.pc_k})" if backbone == "pc_darts" else ")"
            )
            calls[f"unit {label}"] = bench.unit(net)
            calls[label] = bench.step(net, config)
            units[label] = f"unit {label}"
            continue
        for stage, masks in zip(stage_plan(config), stage_masks(config), strict=True):
            net = bench.network(config, stage.layers, masks)
            label = f"pdarts stage {stage.index + 1} ({stage.layers} cells, {stage.ops} ops)"
            calls[f"unit {label}"] = bench.unit(net)
            calls[label] = bench.step(net, config)
            units[label] = f"unit {label}"
    return calls, units


def print_variants(seconds: dict[str, float], peaks: dict[str, int]) -> None:
    unit_s = seconds["unit: supernet forward+backward"]
    head = f"{'step (DARTS supernet)':50s} {'ms':>10s} {'units':>7s}"
    print(head + (f" {'peak MiB':>9s}" if peaks else ""))
    for name, value in seconds.items():
        peak = f" {peaks[name] / 2**20:9.1f}" if peaks else ""
        print(f"{name:50s} {value * 1e3:10.1f} {value / unit_s:7.2f}{peak}")


def print_backbones(
    seconds: dict[str, float], units: dict[str, str], peaks: dict[str, int]
) -> None:
    darts = next(iter(units))
    darts_unit, darts_peak = seconds[units[darts]], peaks[darts]
    print(
        f"{'E2RNAS step':42s} {'ms':>9s} {'own units':>9s} {'DARTS units':>11s} "
        f"{'vs DARTS':>8s} {'peak MiB':>9s} {'vs DARTS':>8s}"
    )
    for label, unit in units.items():
        step_s = seconds[label]
        print(
            f"{label:42s} {step_s * 1e3:9.1f} {step_s / seconds[unit]:9.2f} "
            f"{step_s / darts_unit:11.2f} {step_s / seconds[darts]:8.2f} "
            f"{peaks[label] / 2**20:9.1f} {peaks[label] / darts_peak:8.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--tables", default="variants,backbones", help="variants, backbones, formats, phases"
    )
    parser.add_argument(
        "--peaks", action="store_true", help="add each variant's peak memory (one more call each)"
    )
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    config = preset(args.preset, overrides)
    if config.threads:
        torch.set_num_threads(config.threads)
    bench = Bench(config)
    tables = args.tables.split(",")
    variants = variant_calls(bench) if "variants" in tables else {}
    backbones, units = (
        backbone_calls(bench, args.preset, overrides) if "backbones" in tables else ({}, {})
    )
    formats = format_calls(bench) if "formats" in tables else {}
    phases = phase_calls(bench) if "phases" in tables else {}
    seconds = interleaved(
        {**variants, **backbones, **formats}, bench.device, args.repeats, args.warmup
    )
    phase_seconds = interleaved(phases, bench.device, args.repeats, args.warmup)
    print(
        f"config: preset={args.preset} layers={config.layers} C={config.init_channels} "
        f"input={bench.in_ch}x{bench.size}x{bench.size} batch={config.batch_size} "
        f"order={config.order} hessian={config.hessian} fd_batch={config.fd_batch} "
        f"channels_last={config.channels_last} autocast={config.autocast} device={bench.device} "
        f"threads={torch.get_num_threads()} repeats={args.repeats}"
    )
    if variants:
        peaks = (
            {name: peak_bytes(call, bench.device) for name, call in variants.items()}
            if args.peaks
            else {}
        )
        print_variants({name: seconds[name] for name in variants}, peaks)
    if units:
        peaks = {label: peak_bytes(backbones[label], bench.device) for label in units}
        print_backbones(seconds, units, peaks)
    if formats:
        print_formats(seconds)
    if phases:
        print_phases(phase_seconds)


if __name__ == "__main__":
    main()
