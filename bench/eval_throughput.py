"""Throughput of a retrain step and of the PGD attack, in forward+backward units, in one process.

One unit is a plain forward+backward of the evaluation network (cross-entropy of the main
logits, gradients of the weights) on one training batch of the preset. On the same network and
the same batch the script times one full training step of :mod:`search_core.evaluate` (batch
gather from the device-resident set, crop/flip, normalisation and Cutout on the device, the
auxiliary head's loss, gradient clipping, the SGD step) and one PGD attack of ``pgd_steps``
steps (IV-B-4). It prints each as milliseconds, images per second and units; the calls are
timed round-robin and the medians kept, so that load on a shared machine weighs on all alike.
The images are random, of the dataset's shape, so no dataset files are needed.

    python bench/eval_throughput.py --preset cpu-tiny
    python bench/eval_throughput.py --preset paper --set device=cuda --repeats 20
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
import torch.nn.functional as F_nn
from timing import interleaved

from search_core.attacks import pgd
from search_core.data import ImageSet
from search_core.eval_config import build_network, eval_preset
from search_core.evaluate import make_optimizer, train_step
from search_core.genotypes import load_genotype
from search_core.objectives import PixelBox
from search_core.search import DeviceData

SHAPES = {"digits": (1, 8, 5), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100)}
BATCHES_IN_SET = 8  # the device-resident set the training step gathers from


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--genotype", default="darts_v2", help="as for `e2rnas count`")
    parser.add_argument("--preset", default="cpu-tiny")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    config = eval_preset(args.preset, dict(item.split("=", 1) for item in args.set))
    device = torch.device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    in_ch, size, classes = SHAPES.get(config.dataset, (3, 32, 10))
    B = config.batch_size
    torch.manual_seed(config.seed)

    images = ImageSet(
        images=torch.randint(0, 256, (BATCHES_IN_SET * B, in_ch, size, size), dtype=torch.uint8),
        labels=torch.randint(0, classes, (BATCHES_IN_SET * B,)),
        num_classes=classes,
        mean=(0.5,) * in_ch,
        std=(0.25,) * in_ch,
        name=config.dataset,
    )
    data = DeviceData(images, device, augment=True)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    index = torch.arange(B, device=device)
    x, y = data.batch(index, None, augment=False)  # the same batch for the unit and the attack

    net = build_network(load_genotype(args.genotype), config, classes, size, in_ch).to(device)
    optimizer = make_optimizer(net, config)
    weights = list(net.parameters())
    box = PixelBox.for_normalisation(config.epsilon, images.mean, images.std, device)

    def unit() -> None:
        net.train()
        net.drop_path_prob = 0.0
        loss = F_nn.cross_entropy(net(x)[0], y)
        torch.autograd.grad(loss, weights, allow_unused=True)  # the aux head gets none

    def training_step() -> None:
        net.train()
        net.drop_path_prob = config.drop_path  # the last epoch's: the dearest
        train_step(net, optimizer, data, index, config, generator)

    def logits(inputs: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = net(inputs)[0]
        return out

    def attack() -> None:
        net.eval()
        pgd(logits, x, y, box, config.pgd_steps, config.pgd_step_scale, True, generator)

    unit_name = "unit: forward+backward"
    attack_name = f"PGD attack ({config.pgd_steps} steps)"
    calls: dict[str, Callable[[], object]] = {
        unit_name: unit,
        "training step (data, aux, clip, SGD)": training_step,
        attack_name: attack,
    }
    seconds = interleaved(calls, device, args.repeats, args.warmup)
    unit_s = seconds[unit_name]
    print(
        f"config: preset={args.preset} genotype={args.genotype} layers={config.layers} "
        f"C={config.init_channels} input={in_ch}x{size}x{size} batch={B} "
        f"auxiliary={config.auxiliary} cutout={config.cutout} device={device} "
        f"threads={torch.get_num_threads()} repeats={args.repeats}"
    )
    print(f"{'call':38s} {'ms':>9s} {'images/s':>10s} {'units':>7s}")
    for name, value in seconds.items():
        print(f"{name:38s} {value * 1e3:9.1f} {B / value:10.0f} {value / unit_s:7.2f}")
    train_s, attack_s = seconds["training step (data, aux, clip, SGD)"], seconds[attack_name]
    print(
        f"training: {B / train_s:.0f} images/s ({unit_s / train_s:.2f}x the unit's rate); "
        f"attack: {B / attack_s:.0f} images/s ({unit_s / attack_s:.2f}x the unit's rate)"
    )


if __name__ == "__main__":
    main()
