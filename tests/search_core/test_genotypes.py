"""Tests of search_core.genotypes: the JSON and DARTS formats, the hash, the DARTS rule.

The independent references are the original DARTS-family text (executed against a
``collections.namedtuple`` as the original training code does) and a plain re-implementation
of the derivation rule that brute-forces every pair of edges.
"""

from __future__ import annotations

import builtins
import collections
import hashlib
import itertools
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
import torch

from search_core.derive import derive_genotype, softmax_rows
from search_core.errors import GenotypeError
from search_core.genotypes import BUNDLED, PRIMITIVES, Genotype, load_genotype

# A genotypes.py in the style of the DARTS family; the four genotype lines after NASNet are
# quoted verbatim: DARTS_V1 and DARTS_V2 of quark0/darts cnn/genotypes.py (as copied into
# yuhuixu1993/PC-DARTS genotypes.py), PC_DARTS_cifar of yuhuixu1993/PC-DARTS genotypes.py,
# PDARTS of chenxin061/pdarts genotypes.py. NASNet has ops outside this search space, as there.
ORIGINAL_FILE = """\
from collections import namedtuple

Genotype = namedtuple('Genotype', 'normal normal_concat reduce reduce_concat')

PRIMITIVES = [
    'none',
    'max_pool_3x3',
    'avg_pool_3x3',
    'skip_connect',
    'sep_conv_3x3',
    'sep_conv_5x5',
    'dil_conv_3x3',
    'dil_conv_5x5'
]

NASNet = Genotype(
  normal = [
    ('sep_conv_5x5', 1),
    ('sep_conv_3x3', 0),
    ('sep_conv_5x5', 0),
    ('sep_conv_3x3', 0),
    ('avg_pool_3x3', 1),
    ('skip_connect', 0),
    ('avg_pool_3x3', 0),
    ('avg_pool_3x3', 0),
    ('sep_conv_3x3', 1),
    ('skip_connect', 1),
  ],
  normal_concat = [2, 3, 4, 5, 6],
  reduce = [
    ('sep_conv_5x5', 1),
    ('sep_conv_7x7', 0),
    ('max_pool_3x3', 1),
    ('sep_conv_7x7', 0),
    ('avg_pool_3x3', 1),
    ('sep_conv_5x5', 0),
    ('skip_connect', 3),
    ('avg_pool_3x3', 2),
    ('sep_conv_3x3', 2),
    ('max_pool_3x3', 1),
  ],
  reduce_concat = [4, 5, 6],
)

DARTS_V1 = Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])
DARTS_V2 = Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])

PC_DARTS_cifar = Genotype(normal=[('sep_conv_3x3', 1), ('skip_connect', 0), ('sep_conv_3x3', 0), ('dil_conv_3x3', 1), ('sep_conv_5x5', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 0), ('dil_conv_3x3', 1)], normal_concat=range(2, 6), reduce=[('sep_conv_5x5', 1), ('max_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_5x5', 2), ('sep_conv_3x3', 0), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('sep_conv_3x3', 2)], reduce_concat=range(2, 6))
PDARTS = Genotype(normal=[('skip_connect', 0), ('dil_conv_3x3', 1), ('skip_connect', 0),('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3',0), ('dil_conv_5x5', 4)], normal_concat=range(2, 6), reduce=[('avg_pool_3x3', 0), ('sep_conv_5x5', 1), ('sep_conv_3x3', 0), ('dil_conv_5x5', 2), ('max_pool_3x3', 0), ('dil_conv_3x3', 1), ('dil_conv_3x3', 1), ('dil_conv_5x5', 3)], reduce_concat=range(2, 6))

DARTS = DARTS_V2
"""  # noqa: E501

ORIGINAL_NAMES = {
    "darts_v1": "DARTS_V1",
    "darts_v2": "DARTS_V2",
    "pc_darts": "PC_DARTS_cifar",
    "pdarts": "PDARTS",
}

DARTS_V2_TEXT = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), "
    "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), "
    "('dil_conv_3x3', 2)], normal_concat=range(2, 6), reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), "
    "('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], "
    "reduce_concat=range(2, 6))"
)

DartsGenotype = collections.namedtuple("DartsGenotype", "normal normal_concat reduce reduce_concat")


def plain(
    genotype: Any,
) -> tuple[list[tuple[str, int]], list[int], list[tuple[str, int]], list[int]]:
    """The fields of our Genotype or of DARTS's namedtuple, as plain lists to compare."""
    return (
        [tuple(edge) for edge in genotype.normal],
        list(genotype.normal_concat),
        [tuple(edge) for edge in genotype.reduce],
        list(genotype.reduce_concat),
    )


def run_as_darts(text: str) -> dict[str, Any]:
    """Executes DARTS-format text the way DARTS's genotypes.py would hold it."""
    namespace: dict[str, Any] = {"Genotype": DartsGenotype}
    exec(text, namespace)
    return namespace


# Bundled genotypes against the original text.


def test_bundled_names() -> None:
    assert list(BUNDLED) == ["darts_v1", "darts_v2", "pc_darts", "pdarts"]


@pytest.mark.parametrize(("key", "original"), ORIGINAL_NAMES.items())
def test_bundled_equals_the_original_text_executed(key: str, original: str) -> None:
    namespace: dict[str, Any] = {}
    exec(ORIGINAL_FILE, namespace)
    assert plain(BUNDLED[key]) == plain(namespace[original])


@pytest.mark.parametrize(("key", "original"), ORIGINAL_NAMES.items())
def test_parses_the_original_file_by_name(key: str, original: str) -> None:
    parsed = Genotype.from_darts_text(ORIGINAL_FILE, source="genotypes.py", name=original)
    assert parsed == BUNDLED[key]


def test_parses_an_alias_to_a_named_genotype() -> None:
    parsed = Genotype.from_darts_text(ORIGINAL_FILE, name="DARTS")
    assert parsed == BUNDLED["darts_v2"]


def test_several_genotypes_without_a_name_lists_the_names() -> None:
    with pytest.raises(GenotypeError, match=r"genotypes\.py: 5 genotypes found") as info:
        Genotype.from_darts_text(ORIGINAL_FILE, source="genotypes.py")
    for name in ("NASNet", "DARTS_V1", "DARTS_V2", "PC_DARTS_cifar", "PDARTS", "DARTS"):
        assert name in str(info.value)


def test_unknown_name_lists_the_available_names() -> None:
    with pytest.raises(GenotypeError, match=r"no genotype named 'E2RNAS'.*PDARTS"):
        Genotype.from_darts_text(ORIGINAL_FILE, source="genotypes.py", name="E2RNAS")


def test_selecting_a_genotype_outside_the_search_space_names_it() -> None:
    line = ORIGINAL_FILE.splitlines().index("NASNet = Genotype(") + 1
    with pytest.raises(GenotypeError) as info:
        Genotype.from_darts_text(ORIGINAL_FILE, source="genotypes.py", name="NASNet")
    assert str(info.value).startswith(
        f"genotypes.py:{line}: NASNet.reduce[1]: unknown op 'sep_conv_7x7'; expected one of none,"
    )


# JSON.


def test_json_has_the_documented_layout() -> None:
    assert BUNDLED["darts_v1"].to_json() == {
        "normal": [
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 0],
            ["skip_connect", 0],
            ["sep_conv_3x3", 1],
            ["skip_connect", 0],
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 0],
            ["skip_connect", 2],
        ],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [
            ["max_pool_3x3", 0],
            ["max_pool_3x3", 1],
            ["skip_connect", 2],
            ["max_pool_3x3", 0],
            ["max_pool_3x3", 0],
            ["skip_connect", 2],
            ["skip_connect", 2],
            ["avg_pool_3x3", 0],
        ],
        "reduce_concat": [2, 3, 4, 5],
    }


@pytest.mark.parametrize("key", list(BUNDLED))
def test_json_round_trip(key: str) -> None:
    genotype = BUNDLED[key]
    text = genotype.dumps()
    assert json.loads(text) == genotype.to_json()
    assert Genotype.loads(text) == genotype
    assert Genotype.from_json(json.loads(text)) == genotype
    assert hash(Genotype.loads(text)) == hash(genotype)


def test_lists_are_stored_as_tuples() -> None:
    genotype = Genotype.from_json(BUNDLED["pdarts"].to_json())
    assert isinstance(genotype.normal, tuple)
    assert all(isinstance(edge, tuple) for edge in genotype.normal + genotype.reduce)
    assert isinstance(genotype.reduce_concat, tuple)
    assert genotype.steps == 4


# DARTS text.


def test_darts_text_is_exact() -> None:
    assert BUNDLED["darts_v2"].to_darts_text() == DARTS_V2_TEXT
    assert BUNDLED["darts_v2"].to_darts_text("DARTS_V2") == "DARTS_V2 = " + DARTS_V2_TEXT


@pytest.mark.parametrize("key", list(BUNDLED))
def test_darts_text_round_trip(key: str) -> None:
    genotype = BUNDLED[key]
    assert Genotype.from_darts_text(genotype.to_darts_text()) == genotype
    assert Genotype.from_darts_text(genotype.to_darts_text("ARCH"), name="ARCH") == genotype


@pytest.mark.parametrize("key", list(BUNDLED))
def test_darts_text_loads_as_the_darts_namedtuple(key: str) -> None:
    genotype = BUNDLED[key]
    loaded = run_as_darts(genotype.to_darts_text("ARCH"))["ARCH"]
    assert isinstance(loaded, DartsGenotype)
    assert plain(loaded) == plain(genotype)
    assert isinstance(loaded.normal_concat, range)


def test_darts_text_writes_a_list_for_a_non_contiguous_concat() -> None:
    base = BUNDLED["darts_v1"]
    genotype = Genotype(base.normal, (5, 3, 2), base.reduce, (3,))
    text = genotype.to_darts_text("X")
    assert "normal_concat=[5, 3, 2]" in text
    assert "reduce_concat=range(3, 4)" in text
    assert plain(run_as_darts(text)["X"]) == plain(genotype)
    assert Genotype.from_darts_text(text) == genotype


def test_darts_text_rejects_a_bad_name() -> None:
    with pytest.raises(GenotypeError, match="name: 'not a name'"):
        BUNDLED["pdarts"].to_darts_text("not a name")


@pytest.mark.parametrize(
    "text",
    [
        # Positional arguments, tuples of tuples, list(range(...)), a module prefix.
        "Genotype({n}, list(range(2, 6)), {r}, [2, 3, 4, 5])",
        "genotypes.Genotype(normal={nt}, normal_concat=(2, 3, 4, 5), reduce={r},"
        " reduce_concat=range(2, 6))",
        # Some text around a single unnamed call, as in a log line pasted into a file.
        "# searched genotype\nimport os\nprint('x')\nGenotype(reduce={r}, normal={n},"
        " reduce_concat=range(2, 6), normal_concat=range(2, 6))\n",
    ],
)
def test_darts_text_accepts_the_spellings_darts_files_use(text: str) -> None:
    genotype = BUNDLED["pc_darts"]
    normal = [tuple(edge) for edge in genotype.normal]
    reduce = [tuple(edge) for edge in genotype.reduce]
    parsed = Genotype.from_darts_text(text.format(n=normal, nt=tuple(normal), r=reduce))
    assert parsed == genotype


def test_darts_text_is_never_evaluated(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("eval or exec was called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    assert Genotype.from_darts_text(DARTS_V2_TEXT) == BUNDLED["darts_v2"]
    hostile = DARTS_V2_TEXT.replace("normal=[", "normal=__import__('os').getcwd() or [", 1)
    with pytest.raises(GenotypeError, match=r"genotype:1: Genotype\.normal: expected a list"):
        Genotype.from_darts_text(hostile)


# Canonical form and hash.


def swap_node_edges(edges: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
    swapped: list[tuple[str, int]] = []
    for k in range(0, len(edges), 2):
        swapped += [edges[k + 1], edges[k]]
    return tuple(swapped)


@pytest.mark.parametrize("key", list(BUNDLED))
def test_hash_ignores_edge_order_within_a_node_and_concat_order(key: str) -> None:
    genotype = BUNDLED[key]
    permuted = Genotype(
        normal=swap_node_edges(genotype.normal),
        normal_concat=genotype.normal_concat[::-1],
        reduce=swap_node_edges(genotype.reduce),
        reduce_concat=genotype.reduce_concat[::-1],
    )
    assert permuted != genotype
    assert permuted.canonical() == genotype.canonical()
    assert permuted.genotype_hash() == genotype.genotype_hash()


def test_canonical_sorts_each_node_by_input_then_op() -> None:
    canonical = BUNDLED["darts_v1"].canonical()
    assert canonical.normal == (
        ("sep_conv_3x3", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("skip_connect", 0),
        ("sep_conv_3x3", 1),
        ("sep_conv_3x3", 0),
        ("skip_connect", 2),
    )
    assert canonical.reduce == (
        ("max_pool_3x3", 0),
        ("max_pool_3x3", 1),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("max_pool_3x3", 0),
        ("skip_connect", 2),
        ("avg_pool_3x3", 0),
        ("skip_connect", 2),
    )
    same_input = Genotype(
        normal=(("skip_connect", 1), ("max_pool_3x3", 1), *BUNDLED["pdarts"].normal[2:]),
        normal_concat=(2, 3, 4, 5),
        reduce=BUNDLED["pdarts"].reduce,
        reduce_concat=(2, 3, 4, 5),
    )
    assert same_input.canonical().normal[:2] == (("max_pool_3x3", 1), ("skip_connect", 1))


def test_hash_is_sha256_of_the_canonical_json() -> None:
    genotype = BUNDLED["pdarts"]
    # Written out by hand: each node's edges sorted by input, then op.
    canonical = {
        "normal": [
            ["skip_connect", 0],
            ["dil_conv_3x3", 1],
            ["skip_connect", 0],
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 1],
            ["sep_conv_3x3", 3],
            ["sep_conv_3x3", 0],
            ["dil_conv_5x5", 4],
        ],
        "normal_concat": [2, 3, 4, 5],
        "reduce": [
            ["avg_pool_3x3", 0],
            ["sep_conv_5x5", 1],
            ["sep_conv_3x3", 0],
            ["dil_conv_5x5", 2],
            ["max_pool_3x3", 0],
            ["dil_conv_3x3", 1],
            ["dil_conv_3x3", 1],
            ["dil_conv_5x5", 3],
        ],
        "reduce_concat": [2, 3, 4, 5],
    }
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    expected = hashlib.sha256(text.encode()).hexdigest()[:16]
    assert genotype.genotype_hash() == expected
    assert len(expected) == 16


def test_hash_differs_between_networks() -> None:
    hashes = {genotype.genotype_hash() for genotype in BUNDLED.values()}
    assert len(hashes) == len(BUNDLED)
    base = BUNDLED["pdarts"]
    other_op = Genotype(
        normal=(("skip_connect", 0), ("dil_conv_5x5", 1), *base.normal[2:]),
        normal_concat=base.normal_concat,
        reduce=base.reduce,
        reduce_concat=base.reduce_concat,
    )
    # The same eight edges, one moved from node 0 to node 1: a different network.
    normal = list(base.normal)
    normal[1], normal[2] = normal[2], normal[1]
    moved = Genotype(tuple(normal), base.normal_concat, base.reduce, base.reduce_concat)
    cells_swapped = Genotype(base.reduce, base.reduce_concat, base.normal, base.normal_concat)
    other_concat = Genotype(base.normal, (3, 4, 5), base.reduce, base.reduce_concat)
    variants = [base, other_op, moved, cells_swapped, other_concat]
    assert len({variant.genotype_hash() for variant in variants}) == len(variants)


# The DARTS derivation rule.


def row_of(node: int, source: int) -> int:
    """The alpha row of the edge from ``source`` into intermediate node ``node``."""
    return sum(i + 2 for i in range(node)) + source


def op_col(op: str) -> int:
    return PRIMITIVES.index(op)


def reference_derive(alpha: torch.Tensor, steps: int) -> list[tuple[str, int]]:
    """The DARTS rule written plainly: every pair of edges tried, softmax by hand."""
    none = PRIMITIVES.index("none")
    rows: list[list[float]] = alpha.tolist()
    weights: list[list[float]] = []
    for logits in rows:
        total = sum(math.exp(x) for x in logits)
        weights.append([math.exp(x) / total for x in logits])
    edges: list[tuple[str, int]] = []
    for node in range(steps):

        def strength(source: int, node: int = node) -> float:
            row = weights[row_of(node, source)]
            return max(w for k, w in enumerate(row) if k != none)

        pair = max(itertools.combinations(range(node + 2), 2), key=lambda p: sum(map(strength, p)))
        for source in sorted(pair, key=strength, reverse=True):
            row = weights[row_of(node, source)]
            best = max((w, k) for k, w in enumerate(row) if k != none)[1]
            edges.append((PRIMITIVES[best], source))
    return edges


def test_derive_picks_the_edges_and_ops_set_by_construction() -> None:
    # node: (stronger edge, weaker edge), each (op, input); the stronger is not always input 0.
    chosen = [
        (("sep_conv_5x5", 1), ("skip_connect", 0)),
        (("dil_conv_3x3", 2), ("max_pool_3x3", 0)),
        (("avg_pool_3x3", 1), ("sep_conv_3x3", 3)),
        (("dil_conv_5x5", 4), ("sep_conv_5x5", 2)),
    ]
    alpha_normal = torch.zeros(14, len(PRIMITIVES))
    for node, ((op1, src1), (op2, src2)) in enumerate(chosen):
        alpha_normal[row_of(node, src1), op_col(op1)] = 6.0
        alpha_normal[row_of(node, src2), op_col(op2)] = 4.0
    alpha_reduce = torch.zeros(14, len(PRIMITIVES))
    for node in range(4):
        alpha_reduce[row_of(node, node + 1), op_col("max_pool_3x3")] = 3.0
        alpha_reduce[row_of(node, 0), op_col("skip_connect")] = 2.0
    genotype = derive_genotype(alpha_normal, alpha_reduce)
    assert genotype.normal == tuple(edge for pair in chosen for edge in pair)
    assert genotype.reduce == tuple(
        edge for node in range(4) for edge in (("max_pool_3x3", node + 1), ("skip_connect", 0))
    )
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)


def test_derive_never_chooses_none() -> None:
    alpha = torch.zeros(14, len(PRIMITIVES))
    alpha[:, op_col("none")] = 10.0
    alpha[:, op_col("sep_conv_3x3")] = 1.0
    # Node 1: the edge from input 2 has the largest none of all, yet the strongest sep_conv.
    alpha[row_of(1, 2), op_col("none")] = 50.0
    alpha[row_of(1, 2), op_col("dil_conv_5x5")] = 49.5
    genotype = derive_genotype(alpha, alpha)
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    assert genotype.normal[:2] == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert genotype.normal[2] == ("dil_conv_5x5", 2)


def test_derive_with_none_dominating_every_row_still_picks_ops() -> None:
    alpha = torch.zeros(14, len(PRIMITIVES))
    alpha[:, op_col("none")] = 100.0
    genotype = derive_genotype(alpha, alpha)
    assert genotype.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4


def test_derive_breaks_ties_by_lower_input_then_primitives_order() -> None:
    genotype = derive_genotype(torch.zeros(14, 8), torch.zeros(14, 8))
    assert genotype.normal == (("max_pool_3x3", 0), ("max_pool_3x3", 1)) * 4
    alpha = torch.zeros(14, 8)
    for source in (2, 4):
        alpha[row_of(3, source), op_col("sep_conv_3x3")] = 3.0
        alpha[row_of(3, source), op_col("dil_conv_5x5")] = 3.0
    genotype = derive_genotype(alpha, alpha)
    assert genotype.normal[6:] == (("sep_conv_3x3", 2), ("sep_conv_3x3", 4))


def test_softmax_rows_is_torch_softmax_and_the_same_in_every_column() -> None:
    # torch.softmax's vectorised sum depends on where a row's large entry sits: on an AVX-512
    # CPU softmax([2, 0, ..., 0]) and the same row with the 2 in another column differ in the
    # last bit, in float32 and in float64, and a tie between two edges became an order.
    generator = torch.Generator().manual_seed(0)
    values = 3 * torch.randn(40, 8, generator=generator, dtype=torch.float64)
    values[0, 3] = -math.inf
    got = softmax_rows(values)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.softmax(values, dim=-1), rtol=1e-15, atol=1e-16)
    for i, j in itertools.permutations(range(8), 2):
        row_i, row_j = torch.zeros(8), torch.zeros(8)
        row_i[i] = row_j[j] = 2.0
        assert softmax_rows(row_i)[i].item() == softmax_rows(row_j)[j].item(), (i, j)
        assert softmax_rows(torch.stack([row_i, row_j])).max(dim=1).values.unique().numel() == 1


@pytest.mark.parametrize("columns", list(itertools.permutations(range(1, 8), 2)))
def test_equal_edges_tie_whichever_op_columns_hold_them(columns: tuple[int, int]) -> None:
    # Node 0: input 0's strongest op in one column, input 1's in another, at the same logit:
    # equally strong edges, so the lower input comes first.
    alpha = torch.zeros(14, 8)
    alpha[row_of(0, 0), columns[0]] = 2.0
    alpha[row_of(0, 1), columns[1]] = 2.0
    genotype = derive_genotype(alpha, alpha)
    assert genotype.normal[:2] == ((PRIMITIVES[columns[0]], 0), (PRIMITIVES[columns[1]], 1))


def test_derive_compares_softmax_weights_not_logits() -> None:
    alpha = torch.zeros(14, 8)
    # Input 0 has the larger logit but shares it with a second op: weight e^4/(2e^4+6) = 0.47;
    # input 1 has one op at e^3/(e^3+7) = 0.74, so input 1 is the stronger edge.
    alpha[row_of(0, 0), op_col("sep_conv_3x3")] = 4.0
    alpha[row_of(0, 0), op_col("skip_connect")] = 4.0
    alpha[row_of(0, 1), op_col("avg_pool_3x3")] = 3.0
    genotype = derive_genotype(alpha, alpha)
    assert genotype.normal[:2] == (("avg_pool_3x3", 1), ("skip_connect", 0))


@pytest.mark.parametrize("seed", range(20))
def test_derive_matches_a_brute_force_reference(seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    scale = random.Random(seed).choice([0.01, 1.0, 5.0])
    alpha_normal = scale * torch.randn(14, 8, generator=generator, dtype=torch.float64)
    alpha_reduce = scale * torch.randn(14, 8, generator=generator, dtype=torch.float64)
    genotype = derive_genotype(alpha_normal.float().requires_grad_(), alpha_reduce)
    assert list(genotype.normal) == reference_derive(alpha_normal.float().double(), 4)
    assert list(genotype.reduce) == reference_derive(alpha_reduce, 4)


@pytest.mark.parametrize(("steps", "multiplier", "concat"), [(2, 2, (2, 3)), (3, 1, (4,))])
def test_derive_other_sizes(steps: int, multiplier: int, concat: tuple[int, ...]) -> None:
    rows = steps * (steps + 3) // 2
    generator = torch.Generator().manual_seed(steps)
    alpha = torch.randn(rows, 8, generator=generator, dtype=torch.float64)
    genotype = derive_genotype(alpha, alpha, steps=steps, multiplier=multiplier)
    assert genotype.steps == steps
    assert genotype.normal_concat == genotype.reduce_concat == concat
    assert list(genotype.normal) == reference_derive(alpha, steps)


@pytest.mark.parametrize(
    ("alpha_normal", "alpha_reduce", "message"),
    [
        (torch.zeros(13, 8), torch.zeros(14, 8), r"alpha_normal: expected shape \(14, 8\)"),
        (torch.zeros(14, 8), torch.zeros(14, 7), r"alpha_reduce: expected shape \(14, 8\)"),
        (torch.zeros(112), torch.zeros(14, 8), r"alpha_normal: expected shape \(14, 8\)"),
        ([[0.0] * 8] * 14, torch.zeros(14, 8), "alpha_normal: expected a tensor"),
        (torch.zeros(14, 8), torch.full((14, 8), math.nan), "alpha_reduce: expected finite"),
    ],
)
def test_derive_rejects_bad_alphas(alpha_normal: Any, alpha_reduce: Any, message: str) -> None:
    with pytest.raises(GenotypeError, match=message):
        derive_genotype(alpha_normal, alpha_reduce)


def test_derive_rejects_bad_sizes() -> None:
    with pytest.raises(GenotypeError, match=r"multiplier: expected an int in 1\.\.steps=4, got 5"):
        derive_genotype(torch.zeros(14, 8), torch.zeros(14, 8), multiplier=5)
    with pytest.raises(GenotypeError, match="steps: expected an int >= 1, got 0"):
        derive_genotype(torch.zeros(0, 8), torch.zeros(0, 8), steps=0)


# Bad input names the field.


def fields_with(**changes: Any) -> dict[str, Any]:
    base = BUNDLED["darts_v2"]
    fields: dict[str, Any] = {
        "normal": list(base.normal),
        "normal_concat": list(base.normal_concat),
        "reduce": list(base.reduce),
        "reduce_concat": list(base.reduce_concat),
    }
    for name, value in changes.items():
        if callable(value):
            value = value(fields[name])
        fields[name] = value
    return fields


def replace_at(index: int, value: object) -> Any:
    return lambda items: [*items[:index], value, *items[index + 1 :]]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"normal": replace_at(3, ("conv_9x9", 1))},
            "genotype.normal[3]: unknown op 'conv_9x9'; expected one of none, max_pool_3x3, ",
        ),
        (
            {"reduce": replace_at(2, ("max_pool_3x3", 3))},
            "genotype.reduce[2]: input 3 out of range for intermediate node 1; "
            "expected 0 <= input < 3",
        ),
        ({"normal": replace_at(0, ("skip_connect", -1))}, "genotype.normal[0]: input -1"),
        ({"normal": replace_at(1, ("skip_connect", True))}, "genotype.normal[1][1]: expected an"),
        ({"normal": replace_at(1, ("skip_connect", 1.0))}, "genotype.normal[1][1]: expected an"),
        ({"normal": replace_at(0, (3, 0))}, "genotype.normal[0][0]: expected an op name"),
        ({"normal": replace_at(0, ("skip_connect",))}, "genotype.normal[0]: expected an [op"),
        ({"normal": "sep_conv_3x3"}, "genotype.normal: expected a list of [op, input] pairs"),
        (
            {"normal": lambda e: e[:7], "reduce": lambda e: e[:7]},
            "genotype.normal: expected an even, non-zero number of edges",
        ),
        ({"normal": [], "reduce": []}, "genotype.normal: expected an even, non-zero number"),
        ({"reduce": lambda e: e[:6]}, "genotype.reduce: expected 8 edges (as many as normal)"),
        ({"normal_concat": [2, 3, 4, 6]}, "genotype.normal_concat[3]: node 6 out of range"),
        ({"reduce_concat": [2, 2]}, "genotype.reduce_concat[1]: duplicate node 2"),
        ({"normal_concat": []}, "genotype.normal_concat: expected 1 to 6 distinct"),
        ({"normal_concat": [True]}, "genotype.normal_concat[0]: expected an int node index"),
        ({"reduce_concat": "2345"}, "genotype.reduce_concat: expected a list of node indices"),
    ],
)
def test_constructor_rejects_bad_fields(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Genotype(**fields_with(**changes))
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "genotype.json: expected an object with keys normal, normal_concat"),
        (
            {k: v for k, v in BUNDLED["pdarts"].to_json().items() if k != "reduce"},
            "genotype.json: missing key 'reduce'",
        ),
        ({**BUNDLED["pdarts"].to_json(), "steps": 4}, "genotype.json: unknown key 'steps'"),
        (
            {**BUNDLED["pdarts"].to_json(), "normal": [["none", 0], ["none", 1], ["none", "x"]]},
            "genotype.json: normal[2][1]: expected an int node index, got 'x'",
        ),
        ({**BUNDLED["pdarts"].to_json(), "reduce_concat": None}, "genotype.json: reduce_concat:"),
        (
            {**BUNDLED["pdarts"].to_json(), "reduce": {"0": ["none", 0]}},
            "genotype.json: reduce: expected a list",
        ),
    ],
)
def test_from_json_rejects_bad_structure(obj: Any, message: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Genotype.from_json(obj, source="genotype.json")
    assert message in str(info.value)


def test_loads_reports_the_line_of_corrupt_json() -> None:
    with pytest.raises(GenotypeError, match=r"trial\.json: invalid JSON at line 3, column"):
        Genotype.loads('{\n"normal": [],\n"reduce": ]\n}', source="trial.json")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("x = 1\n\nGenotype(normal=[\n", "cell.py: line 3: syntax error"),
        ("x = 1\n", "cell.py: no Genotype(...) call found"),
        (
            "Genotype(normal=[], normal_concat=range(2, 6), reduce=[])",
            "cell.py:1: Genotype.reduce_concat: missing argument",
        ),
        (
            DARTS_V2_TEXT.replace("reduce_concat=", "steps=4, reduce_concat="),
            "cell.py:1: Genotype.steps: unexpected argument",
        ),
        (
            "A = " + DARTS_V2_TEXT.replace("range(2, 6))", "range(2, n))"),
            "cell.py:1: A.reduce_concat: expected range() of ints",
        ),
        (
            DARTS_V2_TEXT.replace("range(2, 6))", "range(0, 1000000000))"),
            "cell.py:1: Genotype.reduce_concat: expected 1 to 6 distinct node indices",
        ),
        (
            DARTS_V2_TEXT.replace("('sep_conv_3x3', 0)", "('sep_conv_3x3', x)", 1),
            "cell.py:1: Genotype.normal: expected a list of ('op', input) pairs",
        ),
        (
            DARTS_V2_TEXT.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"),
            "cell.py:1: Genotype.normal[7]: input 5 out of range",
        ),
        (
            "Genotype(" + ", ".join(["[]"] * 5) + ")",
            "cell.py:1: Genotype: expected at most 4 arguments",
        ),
        (DARTS_V2_TEXT + "\n" + DARTS_V2_TEXT, "cell.py: 2 genotypes found; select one by name"),
    ],
)
def test_from_darts_text_rejects_bad_text(text: str, message: str) -> None:
    with pytest.raises(GenotypeError) as info:
        Genotype.from_darts_text(text, source="cell.py")
    assert message in str(info.value)


# load_genotype.


@pytest.mark.parametrize("key", list(BUNDLED))
def test_load_a_bundled_genotype(key: str) -> None:
    assert load_genotype(key) is BUNDLED[key]


def test_load_a_json_file(tmp_path: Path) -> None:
    path = tmp_path / "best.JSON"
    path.write_text(BUNDLED["pc_darts"].dumps(), encoding="utf-8")
    assert load_genotype(str(path)) == BUNDLED["pc_darts"]


def test_load_a_darts_file_with_one_genotype(tmp_path: Path) -> None:
    path = tmp_path / "searched.txt"
    path.write_text(BUNDLED["pdarts"].to_darts_text() + "\n", encoding="utf-8")
    assert load_genotype(str(path)) == BUNDLED["pdarts"]


def test_load_a_named_genotype_from_a_darts_file(tmp_path: Path) -> None:
    path = tmp_path / "genotypes.py"
    path.write_text(ORIGINAL_FILE, encoding="utf-8")
    assert load_genotype(f"{path}:PC_DARTS_cifar") == BUNDLED["pc_darts"]
    with pytest.raises(GenotypeError, match=re.escape(f"{path}: 5 genotypes found")):
        load_genotype(str(path))
    with pytest.raises(GenotypeError, match="no genotype named 'E2RNAS'"):
        load_genotype(f"{path}:E2RNAS")


def test_load_an_unknown_name_or_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GenotypeError) as info:
        load_genotype("foo")
    assert str(info.value) == (
        "GENOTYPE 'foo': not a bundled genotype (darts_v1, darts_v2, pc_darts, pdarts) "
        "and no such file"
    )
    missing = str(tmp_path / "missing.py")
    for spec in (missing, f"{missing}:DARTS", str(tmp_path)):
        with pytest.raises(GenotypeError, match=r"not a bundled genotype .* and no such file"):
            load_genotype(spec)


def test_load_corrupt_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "trial.json"
    path.write_text('{"normal": [\n["sep_conv_3x3", 0],,\n', encoding="utf-8")
    with pytest.raises(GenotypeError) as info:
        load_genotype(str(path))
    assert f"{path}: invalid JSON at line 2" in str(info.value)
    with pytest.raises(GenotypeError, match="a JSON file holds one genotype"):
        path.write_text(BUNDLED["pdarts"].dumps(), encoding="utf-8")
        load_genotype(f"{path}:PDARTS")
