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
