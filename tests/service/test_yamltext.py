"""User YAML: no anchors or aliases (the alias bomb), bounded size and depth, YAML 1.2 floats."""

from __future__ import annotations

import math

import pytest
import yaml

from service.cli.common import parse_setting
from service.errors import CommandLineError, SweepSyntaxError
from service.orchestration.spec import parse_sweep
from service.yamltext import MAX_DEPTH, MAX_NODES, excerpt, load_yaml, read_yaml

# Nine levels of nine aliases: 9**9 (387 million) strings from a few hundred bytes.
ALIAS_BOMB = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
)


def test_the_alias_bomb_is_refused_before_it_is_built() -> None:
    assert len(ALIAS_BOMB) < 400
    with pytest.raises(SweepSyntaxError, match=r"body: malformed YAML: line 1, .*anchors"):
        parse_sweep(ALIAS_BOMB, source="body")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: &n x\n", "anchors and aliases"),
        ("a: 1\nb: *a\n", "alias"),
        ("x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nested deeper"),
        ("x: [" + ",".join(["1"] * MAX_NODES) + "]", f"more than {MAX_NODES} values"),
    ],
)
def test_anchors_depth_and_size_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SweepSyntaxError, match=problem):
        load_yaml(text, "f.yaml")


def test_a_document_within_the_limits_loads_as_safe_load_does() -> None:
    text = "name: q\ngrid:\n  L: [0.02, 1]\n  F: [2.5]\n  seed: [0, 1]\nflag: true\nnone: null\n"
    assert read_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    ("text", "value"),
    [("1e-3", 1e-3), ("2E5", 2e5), ("-1.5e+2", -150.0), (".5", 0.5), ("3", 3), ("1.", 1.0)],
)
def test_numbers_are_read_as_yaml_1_2_reads_them(text: str, value: float) -> None:
    parsed = read_yaml(text)
    assert parsed == value and type(parsed) is type(value)
    assert parse_setting(f"L={text}") == ("L", value)


def test_special_floats_and_strings_stay_what_they_were() -> None:
    assert math.isinf(read_yaml(".inf")) and math.isnan(read_yaml(".nan"))
    for text in ("1e", "e5", "1.2.3", "cifar10", "0x1f"):
        assert read_yaml(text) == yaml.safe_load(text)


def test_a_bound_written_in_exponent_form_is_a_number() -> None:
    spec = parse_sweep(
        "name: q\nsearch: {preset: cpu-tiny}\ngrid:\n  L: [1e-3, 2e-2]\n  F: [3E-1]\n"
    )
    assert spec.grid == {"L": [1e-3, 2e-2], "F": [0.3]}


def test_set_values_get_the_same_limits() -> None:
    with pytest.raises(CommandLineError, match=r"--set L: .*anchors"):
        parse_setting("L=&a 1")


def test_echoed_values_are_cut_short() -> None:
    assert excerpt("x" * 1000).endswith("...x'") and len(excerpt("x" * 1000)) == 80
    assert excerpt([1, 2]) == "[1, 2]"
