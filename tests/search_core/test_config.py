"""Presets and checked overrides."""

from __future__ import annotations

import pytest

from search_core.config import PRESETS, SearchConfig, from_mapping, preset
from search_core.errors import ConfigError


def test_paper_preset_is_section_iv_b_2() -> None:
    c = preset("paper")
    assert (c.layers, c.init_channels, c.batch_size, c.epochs) == (8, 16, 64, 50)
    assert (c.lr, c.lr_min, c.momentum, c.weight_decay, c.grad_clip) == (
        0.025,
        0.001,
        0.9,
        3e-4,
        5.0,
    )
    assert (c.arch_lr, c.arch_beta1, c.arch_beta2, c.arch_weight_decay) == (3e-4, 0.5, 0.999, 1e-3)
    assert c.epsilon == pytest.approx(2 / 255) and c.train_portion == 0.5
    assert (c.eval_layers, c.eval_init_channels) == (20, 36)
    assert c.objectives == ("val", "ood", "adv", "nop", "flops")
    assert c.weighting == "mgda" and c.ood_in_lower and not c.adv_train_in_lower


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_takes_one_epoch(name: str) -> None:
    assert preset(name, {"epochs": "1"}).epochs == 1


def test_string_overrides_are_coerced() -> None:
    c = preset(
        "cpu-tiny", {"L": "2.5", "F": "400", "ood_in_lower": "false", "objectives": "val,adv"}
    )
    assert (c.L, c.F, c.ood_in_lower, c.objectives) == (2.5, 400.0, False, ("val", "adv"))


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"L": -1}, "L"),
        ({"F": "-3"}, "F"),
        ({"L": None}, "L"),
        ({"epochs": "two"}, "epochs"),
        ({"epoch": 3}, "epoch"),
        ({"weighting": "pareto"}, "weighting"),
        ({"objectives": "val,speed"}, "objectives"),
        ({"train_portion": 1.5}, "train_portion"),
        ({"ood_in_lower": "maybe"}, "ood_in_lower"),
        ({"init_channels": 5}, "init_channels"),
        # Values that used to pass and only failed inside a trial (issue 10, item 8).
        ({"dataset": "cifar11"}, "dataset: got 'cifar11'.*did you mean 'cifar10'"),
        ({"ood_dataset": "cifar10"}, "ood_dataset: got 'cifar10', the in-distribution set"),
        ({"device": "cudaXYZ"}, r"device: got 'cudaXYZ'; expected cpu, cuda, cuda:N or mps"),
        ({"device": "cuda:0\n"}, "device"),
        ({"seed": 2**70}, r"seed: got 1180591620717411303424; expected 0 to 4294967295"),
        ({"seed": -1}, "seed: got -1"),
        (
            {"init_channels": 1_000_000},
            "init_channels: got 1000000; expected an even number 2 to 1024",
        ),
        ({"eval_init_channels": 2048}, "eval_init_channels"),
        ({"epochs": 1e20}, "epochs: got 100000000000000000000; expected 1 to 10000 epochs"),
        ({"layers": 10_000}, "layers: got 10000; expected 3 to 100"),
        ({"batch_size": 10**9}, "batch_size"),
        (
            {"L": 1e308},
            r"L: got 1e\+308; expected a lower bound >= 0 and <= 10000 on parameters",
        ),
        ({"F": "1e308"}, r"F: got 1e\+308; expected a lower bound >= 0 and <= 100000 on FLOPs"),
        ({"L": "1e999"}, "L: got '1e999'; expected a finite number"),
        ({"seed": "9" * 10_000}, r"seed: got '9999.*\.\.\.9'; expected an integer"),
    ],
)
def test_bad_values_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        from_mapping(changes)


def test_unknown_key_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        from_mapping({"epoch": 3})


def test_unknown_preset() -> None:
    with pytest.raises(ConfigError, match="preset"):
        preset("huge")


def test_round_trip_through_a_dict() -> None:
    c = preset("cpu-tiny", {"seed": 3})
    assert from_mapping(c.to_dict()) == c
    assert isinstance(c, SearchConfig)


# -- backbones --------------------------------------------------------------------------------


def test_each_backbone_brings_its_papers_schedule() -> None:
    """PC-DARTS section 4.2 and P-DARTS section 4.1 (and their train_search.py defaults)."""
    pc = preset("paper", {"backbone": "pc_darts"})
    assert (pc.pc_k, pc.batch_size, pc.lr, pc.lr_min, pc.arch_lr) == (4, 256, 0.1, 0.0, 6e-4)
    assert (pc.arch_warmup_epochs, pc.epochs, pc.layers, pc.init_channels) == (15, 50, 8, 16)
    assert pc.order == "second"  # the E2RNAS paper's eq. 9 on every backbone
    pd = preset("paper", {"backbone": "pdarts"})
    assert pd.pdarts_stage_layers == (5, 11, 17) and pd.layers == 17
    assert pd.pdarts_stage_ops == (8, 5, 3) and pd.pdarts_stage_dropout == (0.0, 0.4, 0.7)
    assert (pd.epochs, pd.total_epochs, pd.arch_warmup_epochs) == (25, 75, 10)
    assert (pd.batch_size, pd.lr, pd.lr_min, pd.arch_lr, pd.arch_grad_clip) == (
        96,
        0.025,
        0.0,
        6e-4,
        5.0,
    )
    assert pd.pdarts_skip_limit == 2
    cifar100 = preset("paper", {"backbone": "pdarts", "dataset": "cifar100"})
    assert cifar100.pdarts_stage_dropout == (0.1, 0.2, 0.3)
    assert preset("paper") == preset("paper", {"backbone": "darts"})


def test_the_authors_variants_are_first_order_and_pc_darts_keeps_darts_schedule() -> None:
    pc = preset("authors", {"backbone": "pc_darts"})
    assert (pc.order, pc.batch_size, pc.lr, pc.lr_min, pc.arch_lr, pc.arch_warmup_epochs) == (
        "first",
        64,
        0.025,
        0.001,
        3e-4,
        0,
    )
    pd = preset("authors", {"backbone": "pdarts"})
    assert pd.order == "first"
    assert pd.replace(order="second") == preset("paper", {"backbone": "pdarts"})
    assert preset("authors") == preset("paper")


def test_overrides_win_over_the_backbones_schedule() -> None:
    c = preset("paper", {"backbone": "pc_darts", "batch_size": 32, "arch_warmup_epochs": 0})
    assert (c.batch_size, c.arch_warmup_epochs, c.lr) == (32, 0, 0.1)
    stages = preset(
        "cpu-tiny",
        {
            "backbone": "pdarts",
            "pdarts_stage_layers": "3, 5",
            "layers": 5,
            "pdarts_stage_ops": [8, 4],
            "pdarts_stage_dropout": "0.1,0.3",
        },
    )
    assert stages.pdarts_stage_layers == (3, 5) and stages.total_epochs == 4
    assert from_mapping(stages.to_dict()) == stages


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"backbone": "pc-darts"}, "backbone: got 'pc-darts'; expected one of darts, pc_darts"),
        ({"backbone": "pc_darts", "pc_k": 3}, "pc_k: got 3; expected a divisor of init_channels"),
        ({"backbone": "pc_darts", "init_channels": 6}, "pc_k: got 4; expected a divisor"),
        ({"backbone": "pdarts", "layers": 8}, "pdarts_stage_layers: got (5, 11, 17); expected its"),
        (
            {"backbone": "pdarts", "pdarts_stage_ops": "8,5"},
            "pdarts_stage_ops: got (8, 5); expected",
        ),
        ({"backbone": "pdarts", "pdarts_stage_ops": "8,6,2"}, "pdarts_stage_ops: got (8, 6, 2)"),
        ({"backbone": "pdarts", "pdarts_stage_ops": "7,5,3"}, "pdarts_stage_ops: got (7, 5, 3)"),
        ({"backbone": "pdarts", "pdarts_stage_layers": "11,5,17"}, "pdarts_stage_layers: got"),
        ({"backbone": "pdarts", "pdarts_stage_layers": "2,11,17"}, "at least 3 cells"),
        ({"backbone": "pdarts", "pdarts_stage_dropout": "0,0.4,1"}, "pdarts_stage_dropout: got"),
        ({"backbone": "pdarts", "pdarts_stage_dropout": "0,x,1"}, "pdarts_stage_dropout[1]: got"),
        ({"backbone": "pdarts", "arch_warmup_epochs": 25}, "arch_warmup_epochs: got 25"),
        ({"arch_warmup_epochs": -1}, "arch_warmup_epochs: got -1"),
        ({"pdarts_skip_limit": -1}, "pdarts_skip_limit: got -1"),
        ({"arch_grad_clip": -1}, "arch_grad_clip: got -1.0"),
    ],
)
def test_bad_backbone_settings_are_refused_naming_the_key(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        preset("paper", changes)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_key_of_another_backbone_is_not_checked() -> None:
    """pc_k must divide the channels of a PC-DARTS search only; P-DARTS's stages likewise."""
    assert preset("paper", {"pc_k": 3, "init_channels": 16}).pc_k == 3
    assert preset("paper", {"pdarts_stage_layers": "4"}).layers == 8


def test_the_limits_themselves_are_allowed() -> None:
    c = from_mapping(
        {"seed": 2**32 - 1, "epochs": 10_000, "init_channels": 1024, "L": 1e4, "F": 1e5}
    )
    assert (c.seed, c.epochs, c.init_channels, c.L, c.F) == (2**32 - 1, 10_000, 1024, 1e4, 1e5)
    for device in ("cpu", "cuda", "cuda:3", "mps"):
        assert from_mapping({"device": device}).device == device
    assert from_mapping({"dataset": "imagefolder:pets"}).dataset == "imagefolder:pets"


def test_error_messages_echo_an_excerpt_of_long_values() -> None:
    with pytest.raises(ConfigError) as error:
        from_mapping({"dataset": "x" * 10_000})
    assert len(str(error.value)) < 300
