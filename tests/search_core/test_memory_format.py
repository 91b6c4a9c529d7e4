"""``channels_last``: the search and the retrain in NHWC memory compute what they compute in
NCHW memory (float32 rounding apart), their convolutions still run NHWC after the optimiser
steps and after a resume. ``autocast=bf16``: the supernet's convolutions run in bfloat16
while losses, gradients and weights stay float32."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F_nn

from search_core.config import preset
from search_core.evaluate import Retrain, eval_preset
from search_core.genotypes import BUNDLED
from search_core.search import Search

SEARCH_LOSSES = ("val_loss", "ood_loss", "adv_loss", "nop_loss", "flops_loss", "train_loss")


def conv_layouts(net: torch.nn.Module, forward: Callable[[], object]) -> set[str]:
    """The memory layouts of every convolution's output with more than one channel and one
    pixel (where NCHW and NHWC differ) during ``forward()``."""
    seen: set[str] = set()

    def record(_module: torch.nn.Module, _inputs: object, out: torch.Tensor) -> None:
        if out.shape[1] > 1 and out.shape[2] * out.shape[3] > 1:
            nhwc = out.is_contiguous(memory_format=torch.channels_last)
            seen.add("nhwc" if nhwc and not out.is_contiguous() else "nchw")

    hooks = [
        m.register_forward_hook(record) for m in net.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            forward()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


def tiny_search(layout: bool, **changes: object) -> Search:
    config = preset(
        "cpu-tiny",
        {"batch_size": 8, "steps_per_epoch": 2, "threads": 1, "channels_last": layout, **changes},
    )
    return Search(config)


def search_layouts(search: Search) -> set[str]:
    x, _ = search.data.batch(torch.arange(8), None, augment=False)
    return conv_layouts(search.net, lambda: search.net(x))


def test_a_search_epoch_is_the_same_in_either_memory_format() -> None:
    nchw, nhwc = tiny_search(False), tiny_search(True)
    assert search_layouts(nchw) == {"nchw"} and search_layouts(nhwc) == {"nhwc"}
    want, got = nchw.run_epoch(), nhwc.run_epoch()
    assert search_layouts(nhwc) == {"nhwc"}  # SGD, its momentum and θ' kept the layout
    for a, b in zip(nchw.net.alphas(), nhwc.net.alphas(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)
    for p, q in zip(nchw.net.parameters(), nhwc.net.parameters(), strict=True):
        assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)
    for key in SEARCH_LOSSES:
        assert got[key] == pytest.approx(want[key], rel=1e-4), key


def test_a_channels_last_search_resumes_channels_last(tmp_path: Path) -> None:
    source = tiny_search(True)
    source.run_epoch()
    fresh = tiny_search(True)
    fresh.load_state_dict(source.state_dict(), tmp_path / "checkpoint.pt")
    assert search_layouts(fresh) == {"nhwc"}
    for p, q in zip(source.net.parameters(), fresh.net.parameters(), strict=True):
        assert torch.equal(p, q)


def test_a_retrain_step_is_the_same_in_either_memory_format() -> None:
    """The training loss and every gradient at the same weights agree to float32's rounding;
    after an epoch the NHWC run still runs NHWC. (Trajectories are not compared: this tiny
    retrain's first steps amplify rounding differences about twentyfold per step.)"""
    runs = []
    for layout in (False, True):
        config = eval_preset(
            "cpu-tiny",
            {"epochs": 2, "steps_per_epoch": 2, "channels_last": layout, "threads": 1},
        )
        runs.append(Retrain(BUNDLED["darts_v2"], config, "retrain"))
    nchw, nhwc = runs
    x, y = nchw.data.batch(torch.arange(16), None, augment=False)
    losses, grads = [], []
    for run in runs:
        logits, aux = run.net(x)
        loss = F_nn.cross_entropy(logits, y) + 0.4 * F_nn.cross_entropy(aux, y)
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, list(run.net.parameters())))
    assert float(losses[1]) == pytest.approx(float(losses[0]), rel=1e-5)
    for g, h in zip(*grads, strict=True):
        assert torch.allclose(h, g, rtol=0, atol=1e-4 * float(g.abs().max()) + 1e-8)
    assert conv_layouts(nchw.net, lambda: nchw.net(x)) == {"nchw"}
    assert conv_layouts(nhwc.net, lambda: nhwc.net(x)) == {"nhwc"}
    nhwc.train_epoch()
    assert conv_layouts(nhwc.net, lambda: nhwc.net(x)) == {"nhwc"}


def test_bf16_autocast_runs_the_cells_in_bf16_and_keeps_the_rest_float32() -> None:
    full, half = tiny_search(False), tiny_search(False, autocast="bf16")
    seen: list[torch.dtype] = []
    conv = next(m for m in half.net.modules() if isinstance(m, torch.nn.Conv2d))
    hook = conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    x, y = half.data.batch(torch.arange(8), None, augment=False)
    logits = half.net(x)
    hook.remove()
    assert seen == [torch.bfloat16] and logits.dtype == torch.float32
    # The same α gradient of the training loss, to bf16's three digits.
    grads = []
    for search in (full, half):
        loss = F_nn.cross_entropy(search.net(x), y)
        alpha_grads = torch.autograd.grad(loss, search.net.alphas())
        grads.append(torch.cat([g.flatten() for g in alpha_grads]))
    assert float(F_nn.cosine_similarity(grads[0], grads[1], dim=0)) > 0.99
    assert not torch.equal(grads[0], grads[1])  # it did compute in another precision
    want, got = full.run_epoch(), half.run_epoch()
    for key in ("val_loss", "adv_loss", "train_loss"):
        assert got[key] == pytest.approx(want[key], rel=0.05), key
    assert got["ood_loss"] == pytest.approx(want["ood_loss"], rel=0.2)  # a small KL, ~0.05
    assert all(p.dtype == torch.float32 for p in half.net.parameters())
