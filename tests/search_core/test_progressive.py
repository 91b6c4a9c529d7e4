"""P-DARTS (`search_core.progressive`) on hand-made α: the search-space approximation between
stages, the skip-connect dropout schedule and the final skip-connect limit, with the expected
masks and cells written out; the supernet of a stage; and a search killed in its second stage
that resumes to exactly the α, masks and genotype of an uninterrupted run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch

from search_core.config import preset
from search_core.genotypes import PRIMITIVES
from search_core.model_search import MixedOp, SearchNetwork
from search_core.progressive import (
    full_mask,
    limit_skip_connections,
    masked_softmax,
    pdarts_genotype,
    prune_ops,
    skip_dropout_rate,
    stage_plan,
)
from search_core.search import CHECKPOINT, Search, SearchResult, load_checkpoint, run_search

OPS = {name: o for o, name in enumerate(PRIMITIVES)}


def row(**weights: float) -> list[float]:
    """An α row whose softmax is exactly ``weights`` (by op name), 0.001 on every other
    non-``none`` op and the rest of the mass on ``none``, which no rule ranks."""
    w = [0.001] * len(PRIMITIVES)
    for name, value in weights.items():
        w[OPS[name]] = value
    w[OPS["none"]] = 0.0
    w[OPS["none"]] = 1.0 - sum(w)
    assert w[OPS["none"]] > 0
    return [math.log(v) for v in w]


def test_pruning_keeps_each_edges_strongest_ops_none_included() -> None:
    """Stage 1 → 2 keeps 5 of 8 ops per edge, stage 2 → 3 keeps 3 of those 5."""
    alpha = torch.zeros(2, len(PRIMITIVES))
    alpha[0] = torch.tensor([0.5, 0.1, 0.2, 0.9, 1.0, -0.3, 0.0, 0.4])
    # all equal: the weakest go in index order, as the authors' repeated argmin drops them
    mask = full_mask(2)
    second = prune_ops(masked_softmax(alpha, mask), mask, 5)
    names = [[PRIMITIVES[o] for o in range(8) if second[e, o]] for e in range(2)]
    assert names[0] == ["none", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "dil_conv_5x5"]
    assert names[1] == list(PRIMITIVES[3:])

    # a new stage's α: entries of pruned ops (here huge) must not count
    alpha = torch.full((2, len(PRIMITIVES)), 100.0)
    alpha[0, [OPS["none"], OPS["avg_pool_3x3"], OPS["skip_connect"]]] = torch.tensor(
        [2.0, 0.5, 1.0]
    )
    alpha[0, [OPS["sep_conv_3x3"], OPS["dil_conv_5x5"]]] = torch.tensor([0.7, -1.0])
    alpha[1, 3:] = torch.tensor([0.0, 3.0, 1.0, 3.0, -2.0])
    weights = masked_softmax(alpha, second)
    assert float(weights[~second].abs().sum()) == 0.0
    assert torch.allclose(weights.sum(dim=1), torch.ones(2))
    third = prune_ops(weights, second, 3)
    names = [[PRIMITIVES[o] for o in range(8) if third[e, o]] for e in range(2)]
    assert names[0] == ["none", "skip_connect", "sep_conv_3x3"]
    assert names[1] == ["sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3"]


def test_pruned_ops_get_no_gradient() -> None:
    mask = full_mask(3)
    mask[1, [0, 4, 6]] = False
    alpha = torch.randn(3, len(PRIMITIVES), requires_grad=True)
    (grad,) = torch.autograd.grad((masked_softmax(alpha, mask) * torch.randn(3, 8)).sum(), alpha)
    assert float(grad[~mask].abs().sum()) == 0.0
    assert float(grad[mask].abs().min()) > 0.0


def test_skip_dropout_schedule_of_a_stage() -> None:
    """Linear fall while α is frozen, then exp(−0.2 per epoch) from the initial rate."""
    assert skip_dropout_rate(0.4, 0, 25, 10) == pytest.approx(0.4 * 24 / 25)
    assert skip_dropout_rate(0.4, 9, 25, 10) == pytest.approx(0.4 * 15 / 25)
    assert skip_dropout_rate(0.4, 10, 25, 10) == pytest.approx(0.4)
    assert skip_dropout_rate(0.4, 12, 25, 10) == pytest.approx(0.4 * math.exp(-0.4))
    assert skip_dropout_rate(0.0, 12, 25, 10) == 0.0


# A normal cell (4 nodes) whose DARTS cell has four skip-connects: rows are edges in
# (node, input) order; each comment gives the row's strongest non-none ops.
SKIPPY = [
    row(skip_connect=0.60, sep_conv_3x3=0.30),  # n0 in0
    row(sep_conv_3x3=0.70),  # n0 in1
    row(skip_connect=0.50, dil_conv_3x3=0.20),  # n1 in0
    row(sep_conv_5x5=0.45),  # n1 in1
    row(avg_pool_3x3=0.30),  # n1 in2
    row(skip_connect=0.40, sep_conv_3x3=0.35),  # n2 in0
    row(dil_conv_5x5=0.30),  # n2 in1
    row(sep_conv_3x3=0.55),  # n2 in2
    row(max_pool_3x3=0.10),  # n2 in3
    row(skip_connect=0.65, avg_pool_3x3=0.05),  # n3 in0
    row(dil_conv_3x3=0.35),  # n3 in1
    row(sep_conv_5x5=0.20),  # n3 in2
    row(skip_connect=0.25),  # n3 in3
    row(sep_conv_3x3=0.30),  # n3 in4
]


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        (
            None,
            [
                ("sep_conv_3x3", 1),
                ("skip_connect", 0),
                ("skip_connect", 0),
                ("sep_conv_5x5", 1),
                ("sep_conv_3x3", 2),
                ("skip_connect", 0),
                ("skip_connect", 0),
                ("dil_conv_3x3", 1),
            ],
        ),
        # the weakest kept skip (n2 in0, 0.40) gives way to its edge's sep_conv_3x3 (0.35)
        (
            3,
            [
                ("sep_conv_3x3", 1),
                ("skip_connect", 0),
                ("skip_connect", 0),
                ("sep_conv_5x5", 1),
                ("sep_conv_3x3", 2),
                ("sep_conv_3x3", 0),
                ("skip_connect", 0),
                ("dil_conv_3x3", 1),
            ],
        ),
        # then n1 in0 (0.50) falls to dil_conv_3x3 (0.20), and node 1 keeps input 2 instead
        (
            2,
            [
                ("sep_conv_3x3", 1),
                ("skip_connect", 0),
                ("sep_conv_5x5", 1),
                ("avg_pool_3x3", 2),
                ("sep_conv_3x3", 2),
                ("sep_conv_3x3", 0),
                ("skip_connect", 0),
                ("dil_conv_3x3", 1),
            ],
        ),
    ],
)
def test_skip_connect_limit_on_a_hand_made_cell(
    limit: int | None, expected: list[tuple[str, int]]
) -> None:
    alpha_normal = torch.tensor(SKIPPY, dtype=torch.float64)
    alpha_reduce = torch.zeros_like(alpha_normal)
    masks = full_mask(14), full_mask(14)
    genotype = pdarts_genotype(alpha_normal, alpha_reduce, *masks, skip_limit=limit)
    assert list(genotype.normal) == expected
    # the reduction cell is never limited
    assert genotype.reduce == pdarts_genotype(alpha_normal, alpha_reduce, *masks).reduce


def test_the_limit_leaves_other_weights_alone() -> None:
    weights = masked_softmax(torch.tensor(SKIPPY, dtype=torch.float64), full_mask(14))
    limited = limit_skip_connections(weights, 4, 2)
    changed = (limited != weights).nonzero().tolist()
    assert changed == [[2, OPS["skip_connect"]], [5, OPS["skip_connect"]]]
    assert float(limited[2, OPS["skip_connect"]]) == 0.0


def test_a_stage_supernet_builds_only_the_surviving_ops() -> None:
    mask = full_mask(14)
    mask[:, [OPS["max_pool_3x3"], OPS["sep_conv_5x5"], OPS["dil_conv_5x5"]]] = False
    mask[0, OPS["none"]] = False
    net = SearchNetwork(
        3,
        layers=3,
        init_channels=4,
        input_size=6,
        in_channels=1,
        op_masks=(mask, mask.clone()),
        skip_limit=2,
    )
    cell = net.cells[0]
    assert [PRIMITIVES[o] for o in cell.ops[0].indices] == [
        "avg_pool_3x3",
        "skip_connect",
        "sep_conv_3x3",
        "dil_conv_3x3",
    ]
    assert net(torch.randn(2, 1, 6, 6)).shape == (2, 3)
    # the masks travel with the network's state, for the proxy's inherited weights
    assert torch.equal(net.state_dict()["op_mask_normal"], mask)
    normal, _ = net.op_weights()
    assert float(normal.detach()[~mask].abs().sum()) == 0.0


def test_skip_dropout_drops_the_identity_only() -> None:
    op = MixedOp(3, 1, candidates=[OPS["skip_connect"], OPS["avg_pool_3x3"]])
    weights = torch.zeros(len(PRIMITIVES))
    weights[OPS["skip_connect"]] = 1.0
    x = torch.rand(4, 3, 5, 5) + 1.0
    assert torch.equal(op(x, weights), x)
    op.skip_dropout = 0.5
    torch.manual_seed(0)
    out = op(x, weights)
    dropped = out == 0
    assert 0 < int(dropped.sum()) < x.numel()
    assert torch.allclose(out[~dropped], 2.0 * x[~dropped])  # inverted dropout
    strided = MixedOp(4, 2, candidates=[OPS["skip_connect"]])
    assert strided.identity == (False,)  # a strided skip-connect is a convolution


def test_stage_plan_follows_the_config() -> None:
    config = preset("paper", {"backbone": "pdarts"})
    plan = stage_plan(config)
    assert [(s.layers, s.ops, s.dropout, s.first_epoch) for s in plan] == [
        (5, 8, 0.0, 0),
        (11, 5, 0.4, 25),
        (17, 3, 0.7, 50),
    ]
    assert [s.layers for s in stage_plan(preset("paper"))] == [8]


# -- a search killed in its second stage ----------------------------------------------------


def tiny_pdarts() -> Any:
    """Three stages of two epochs (one warm-up) at 3, 3 and 4 cells, two steps each."""
    return preset(
        "cpu-tiny",
        {
            "backbone": "pdarts",
            "layers": 4,
            "pdarts_stage_layers": "3,3,4",
            "batch_size": 8,
            "steps_per_epoch": 2,
            "pdarts_stage_dropout": "0.2,0.4,0.6",
            "threads": 1,
        },
    )


class KilledError(Exception):
    """Stands for the process dying right after a checkpoint."""


def architecture(out: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(out / CHECKPOINT)
    net = state["net"]
    return {
        "stage": torch.tensor(state["stage"]),
        "alpha_normal": net["alpha_normal"],
        "alpha_reduce": net["alpha_reduce"],
        "mask_normal": state["op_masks"][0],
        "mask_reduce": state["op_masks"][1],
    }


@pytest.fixture(scope="module")
def whole_pdarts(tmp_path_factory: pytest.TempPathFactory) -> tuple[SearchResult, Path]:
    """The uninterrupted tiny P-DARTS search (the tests only read it) and its directory."""
    out = tmp_path_factory.mktemp("pdarts") / "whole"
    return run_search(tiny_pdarts(), out), out


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [2, 3])
def test_a_search_killed_in_its_second_stage_resumes_exactly(
    whole_pdarts: tuple[SearchResult, Path], tmp_path: Path, killed_after: int
) -> None:
    """Epoch 2's checkpoint holds the second stage's new supernet, epoch 3's its first epoch."""
    config = tiny_pdarts()
    whole, whole_dir = whole_pdarts

    def kill(record: dict[str, Any], _: Path) -> None:
        if record["epoch"] == killed_after:
            raise KilledError

    out = tmp_path / "killed"
    with pytest.raises(KilledError):
        run_search(config, out, reporter=kill)
    assert int(load_checkpoint(out / CHECKPOINT)["stage"]) == 1  # the second stage
    resumed = run_search(config, out, resume=True)

    assert resumed.genotype == whole.genotype
    want, got = architecture(whole_dir), architecture(out)
    assert int(want["stage"]) == 2
    for key, value in want.items():
        assert torch.equal(got[key], value), key
    timing = ("seconds", "ended_at")
    strip = [{k: v for k, v in r.items() if k not in timing} for r in whole.records]
    assert [{k: v for k, v in r.items() if k not in timing} for r in resumed.records] == strip
    # the ops did shrink 8 → 5 → 3, and α moved in the stages' second epochs only
    assert int(want["mask_normal"].sum(dim=1).max()) == 3
    assert [r["arch_updates"] for r in whole.records] == [False, True] * 3


def test_resuming_rebuilds_the_stage_the_checkpoint_names(tmp_path: Path) -> None:
    """A checkpoint from the third stage loads into a search that starts in the first."""
    config = tiny_pdarts()
    search = Search(config)
    search._next_stage()
    search._next_stage()
    state = search.state_dict()
    fresh = Search(config)
    fresh.load_state_dict(state, tmp_path / CHECKPOINT)
    assert fresh.stage == 2 and len(fresh.net.cells) == 4
    assert fresh.masks is not None and search.masks is not None
    assert all(torch.equal(a, b) for a, b in zip(fresh.masks, search.masks, strict=True))
    assert int(fresh.masks[0].sum(dim=1).max()) == 3


def test_the_proxy_inherits_a_pruned_supernets_weights() -> None:
    """With α one-hot on the genotype's ops inside the stage's masks (``none`` on the edges it
    drops), the P-DARTS supernet computes the derived network; after inheriting its weights,
    whose places on an edge count only the surviving ops, the evaluation network computes the
    same function (train-mode batch norm; no pooling ops, whose supernet copies add a BN)."""
    from search_core.cost import one_hot_weights
    from search_core.genotypes import Genotype
    from search_core.model_eval import EvalNetwork, inherit_supernet_weights

    torch.manual_seed(0)
    normal = [("sep_conv_3x3", 0), ("dil_conv_5x5", 1), ("skip_connect", 0), ("sep_conv_5x5", 2)]
    reduce = [("dil_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 2), ("dil_conv_5x5", 0)]
    genotype = Genotype(normal, [2, 3], reduce, [2, 3])
    masks = []
    for w in one_hot_weights(genotype):
        mask = torch.zeros(5, len(PRIMITIVES), dtype=torch.bool)
        mask[:, [OPS["none"], OPS["dil_conv_3x3"], OPS["sep_conv_5x5"]]] = True
        mask |= w > 0
        masks.append(mask)
    supernet = SearchNetwork(
        4,
        layers=4,
        init_channels=4,
        input_size=8,
        in_channels=1,
        steps=2,
        op_masks=(masks[0], masks[1]),
    ).double()
    with torch.no_grad():
        for alpha, w in zip(supernet.alphas(), one_hot_weights(genotype), strict=True):
            alpha.copy_(torch.where(w > 0, 40.0, 0.0))
            alpha[:, 0] = torch.where(w.sum(1) == 0, 40.0, 0.0)
    net = EvalNetwork(genotype, 4, layers=4, init_channels=4, input_size=8, in_channels=1)
    net = net.double().train()
    assert inherit_supernet_weights(net, genotype, supernet.state_dict()) > 10
    x = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    assert torch.allclose(net(x)[0], supernet(x), atol=1e-8)
