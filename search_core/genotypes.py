"""DARTS genotypes (section III-A): the discrete cell derived from alpha.

A cell has two inputs (nodes 0 and 1, the outputs of the two previous cells) and ``steps``
intermediate nodes; intermediate node ``i`` (0-based) may take input from any of nodes
``0 .. i+1``. The search relaxes the choice of operation on every such edge with the
architecture weights alpha, one row per edge and one column per entry of ``PRIMITIVES``.
:mod:`search_core.derive` derives the discrete cell from alpha by the DARTS rule. The cell
output concatenates the last ``multiplier`` nodes.

A `Genotype` is that discrete cell, for the normal and the reduction cell. It is read and
written as JSON (the project's format) and as the Python text of the original DARTS
``genotypes.py`` (parsed with `ast`, never evaluated), and has a canonical hash that identifies
the network it builds across trials.
"""

from __future__ import annotations

import hashlib
import json
import keyword
import numbers
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from search_core.errors import GenotypeError

__all__ = [
    "BUNDLED",
    "PRIMITIVES",
    "Edge",
    "Genotype",
    "load_genotype",
]

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

Edge = tuple[str, int]
"""One kept edge of a cell: (operation name, index of the input node)."""

_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_EDGE_FIELDS = ("normal", "reduce")


def _show(value: object, limit: int = 60) -> str:
    """The repr of a bad value, shortened so an error stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_index(value: object) -> int | None:
    """`value` as a node index, or None; bools are rejected although they are ints."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _check_edges(value: object, field: str) -> tuple[Edge, ...]:
    """Edges of one cell: [op, input] pairs, edge ``k`` belonging to intermediate node k // 2."""
    if not isinstance(value, list | tuple):
        raise GenotypeError(f"{field}: expected a list of [op, input] pairs, got {_show(value)}")
    edges: list[Edge] = []
    for k, item in enumerate(value):
        here = f"{field}[{k}]"
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise GenotypeError(f"{here}: expected an [op, input] pair, got {_show(item)}")
        op, raw_index = item
        if not isinstance(op, str):
            raise GenotypeError(f"{here}[0]: expected an op name (str), got {_show(op)}")
        if op not in PRIMITIVES:
            raise GenotypeError(
                f"{here}: unknown op {op!r}; expected one of {', '.join(PRIMITIVES)}"
            )
        index = _as_index(raw_index)
        if index is None:
            raise GenotypeError(f"{here}[1]: expected an int node index, got {_show(raw_index)}")
        node = k // 2
        if not 0 <= index < node + 2:
            raise GenotypeError(
                f"{here}: input {index} out of range for intermediate node {node}; "
                f"expected 0 <= input < {node + 2}"
            )
        edges.append((op, index))
    return tuple(edges)


def _check_concat(value: object, field: str, steps: int) -> tuple[int, ...]:
    """The nodes a cell concatenates: distinct indices of its ``steps + 2`` nodes."""
    if not isinstance(value, list | tuple | range):
        raise GenotypeError(f"{field}: expected a list of node indices, got {_show(value)}")
    n_nodes = steps + 2
    # Checked before iterating, so that a huge range() from a text file is never expanded.
    if not 0 < len(value) <= n_nodes:
        raise GenotypeError(
            f"{field}: expected 1 to {n_nodes} distinct node indices, got {_show(value)}"
        )
    nodes: list[int] = []
    for k, item in enumerate(value):
        index = _as_index(item)
        if index is None:
            raise GenotypeError(f"{field}[{k}]: expected an int node index, got {_show(item)}")
        if not 0 <= index < n_nodes:
            raise GenotypeError(
                f"{field}[{k}]: node {index} out of range; expected 0 <= node < {n_nodes}"
            )
        if index in nodes:
            raise GenotypeError(f"{field}[{k}]: duplicate node {index}; expected distinct nodes")
        nodes.append(index)
    return tuple(nodes)


def _check_fields(
    normal: object, normal_concat: object, reduce: object, reduce_concat: object, where: str
) -> tuple[tuple[Edge, ...], tuple[int, ...], tuple[Edge, ...], tuple[int, ...]]:
    """All four fields checked and turned into tuples; ``where`` prefixes every field name."""
    normal_edges = _check_edges(normal, f"{where}normal")
    reduce_edges = _check_edges(reduce, f"{where}reduce")
    if not normal_edges or len(normal_edges) % 2:
        raise GenotypeError(
            f"{where}normal: expected an even, non-zero number of edges "
            f"(two per intermediate node), got {len(normal_edges)}"
        )
    if len(reduce_edges) != len(normal_edges):
        raise GenotypeError(
            f"{where}reduce: expected {len(normal_edges)} edges (as many as normal), "
            f"got {len(reduce_edges)}"
        )
    steps = len(normal_edges) // 2
    return (
        normal_edges,
        _check_concat(normal_concat, f"{where}normal_concat", steps),
        reduce_edges,
        _check_concat(reduce_concat, f"{where}reduce_concat", steps),
    )


def _edges_text(edges: tuple[Edge, ...]) -> str:
    return "[" + ", ".join(f"({op!r}, {index})" for op, index in edges) + "]"


def _concat_text(concat: tuple[int, ...]) -> str:
    start = concat[0]
    if concat == tuple(range(start, start + len(concat))):
        return f"range({start}, {start + len(concat)})"
    return "[" + ", ".join(str(node) for node in concat) + "]"


@dataclass(frozen=True)
class Genotype:
    """The discrete normal and reduction cells; the same fields as DARTS's namedtuple.

    ``normal[2 * i]`` and ``normal[2 * i + 1]`` are the two edges into intermediate node ``i``
    (cell node ``i + 2``); ``normal_concat`` lists the cell nodes concatenated into the output.
    Lists are accepted and stored as tuples, so a genotype is hashable.
    """

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        checked = _check_fields(
            self.normal, self.normal_concat, self.reduce, self.reduce_concat, "genotype."
        )
        for name, value in zip(_FIELDS, checked, strict=True):
            object.__setattr__(self, name, value)

    @property
    def steps(self) -> int:
        """The number of intermediate nodes of each cell."""
        return len(self.normal) // 2

    # JSON, the project's format.

    def to_json(self) -> dict[str, Any]:
        """``{"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], ...}``."""
        return {
            "normal": [[op, index] for op, index in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, index] for op, index in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_json(cls, obj: Any, source: str = "genotype") -> Genotype:
        """A genotype from the parsed JSON object ``to_json`` writes; ``source`` names it."""
        expected = ", ".join(_FIELDS)
        if not isinstance(obj, dict):
            raise GenotypeError(
                f"{source}: expected an object with keys {expected}, got {type(obj).__name__}"
            )
        for key in obj:
            if key not in _FIELDS:
                raise GenotypeError(f"{source}: unknown key {_show(key)}; expected keys {expected}")
        for key in _FIELDS:
            if key not in obj:
                raise GenotypeError(f"{source}: missing key {key!r}; expected keys {expected}")
        checked = _check_fields(
            obj["normal"], obj["normal_concat"], obj["reduce"], obj["reduce_concat"], f"{source}: "
        )
        return cls(*checked)

    def dumps(self) -> str:
        """The JSON text of ``to_json``."""
        return json.dumps(self.to_json())

    @classmethod
    def loads(cls, text: str, source: str = "genotype") -> Genotype:
        """A genotype from JSON text; invalid JSON is reported with its line and column."""
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise GenotypeError(
                f"{source}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}"
            ) from None
        return cls.from_json(obj, source)

    # The Python text of DARTS's genotypes.py.

    def to_darts_text(self, name: str | None = None) -> str:
        """``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), ...)``.

        The text evaluates to DARTS's ``Genotype`` namedtuple unchanged; with ``name`` it is an
        assignment ``NAME = Genotype(...)`` to paste into DARTS's ``genotypes.py``.
        """
        call = (
            f"Genotype(normal={_edges_text(self.normal)}, "
            f"normal_concat={_concat_text(self.normal_concat)}, "
            f"reduce={_edges_text(self.reduce)}, "
            f"reduce_concat={_concat_text(self.reduce_concat)})"
        )
        if name is None:
            return call
        if not name.isidentifier() or keyword.iskeyword(name):
            raise GenotypeError(f"name: {name!r} is not a Python identifier; expected e.g. E2RNAS")
        return f"{name} = {call}"

    @classmethod
    def from_darts_text(
        cls, text: str, source: str = "genotype", name: str | None = None
    ) -> Genotype:
        """A genotype from DARTS-style Python text, parsed with `ast` and never evaluated.

        The text may be one ``Genotype(...)`` call or a whole ``genotypes.py`` (imports, the
        namedtuple, ``PRIMITIVES``, several ``NAME = Genotype(...)``, aliases ``A = B``).
        With several genotypes, ``name`` selects one by the name it is assigned to.
        """
        from search_core.darts_text import parse_darts_text  # it builds Genotypes

        return parse_darts_text(text, source, name)

    # Identity across trials.

    def canonical(self) -> Genotype:
        """The same network written one way: each node's two edges and the concat sorted."""

        def sort_nodes(edges: tuple[Edge, ...]) -> tuple[Edge, ...]:
            pairs = (
                sorted(edges[k : k + 2], key=lambda e: (e[1], e[0]))
                for k in range(0, len(edges), 2)
            )
            return tuple(edge for pair in pairs for edge in pair)

        return Genotype(
            normal=sort_nodes(self.normal),
            normal_concat=tuple(sorted(self.normal_concat)),
            reduce=sort_nodes(self.reduce),
            reduce_concat=tuple(sorted(self.reduce_concat)),
        )

    def genotype_hash(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON (sorted keys, no spaces)."""
        text = json.dumps(self.canonical().to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


# The published CIFAR-10 cells, quoted from the original repositories (data, not code),
# one intermediate node per line.
# fmt: off
BUNDLED: dict[str, Genotype] = {
    # quark0/darts, cnn/genotypes.py, DARTS_V1 (first-order DARTS; named DARTS in early commits).
    "darts_v1": Genotype(
        normal=(
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("skip_connect", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("skip_connect", 2), ("max_pool_3x3", 0),
            ("max_pool_3x3", 0), ("skip_connect", 2),
            ("skip_connect", 2), ("avg_pool_3x3", 0),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # quark0/darts, cnn/genotypes.py, DARTS_V2 (second-order DARTS; DARTS = DARTS_V2 there),
    # as also copied into PC-DARTS's and P-DARTS's genotypes.py.
    "darts_v2": Genotype(
        normal=(
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("skip_connect", 0), ("dil_conv_3x3", 2),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("max_pool_3x3", 0), ("max_pool_3x3", 1),
            ("skip_connect", 2), ("max_pool_3x3", 1),
            ("max_pool_3x3", 0), ("skip_connect", 2),
            ("skip_connect", 2), ("max_pool_3x3", 1),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # yuhuixu1993/PC-DARTS, genotypes.py, PC_DARTS_cifar.
    "pc_darts": Genotype(
        normal=(
            ("sep_conv_3x3", 1), ("skip_connect", 0),
            ("sep_conv_3x3", 0), ("dil_conv_3x3", 1),
            ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
            ("avg_pool_3x3", 0), ("dil_conv_3x3", 1),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("sep_conv_5x5", 1), ("max_pool_3x3", 0),
            ("sep_conv_5x5", 1), ("sep_conv_5x5", 2),
            ("sep_conv_3x3", 0), ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 2),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
    # chenxin061/pdarts, genotypes.py, PDARTS.
    "pdarts": Genotype(
        normal=(
            ("skip_connect", 0), ("dil_conv_3x3", 1),
            ("skip_connect", 0), ("sep_conv_3x3", 1),
            ("sep_conv_3x3", 1), ("sep_conv_3x3", 3),
            ("sep_conv_3x3", 0), ("dil_conv_5x5", 4),
        ),
        normal_concat=(2, 3, 4, 5),
        reduce=(
            ("avg_pool_3x3", 0), ("sep_conv_5x5", 1),
            ("sep_conv_3x3", 0), ("dil_conv_5x5", 2),
            ("max_pool_3x3", 0), ("dil_conv_3x3", 1),
            ("dil_conv_3x3", 1), ("dil_conv_5x5", 3),
        ),
        reduce_concat=(2, 3, 4, 5),
    ),
}
# fmt: on


def _split_name(spec: str) -> tuple[Path, str | None] | None:
    """``spec`` as (an existing file, an optional genotype name ``path.py:NAME``), or None."""
    path = Path(spec)
    if path.is_file():
        return path, None
    head, sep, tail = spec.rpartition(":")
    if sep and tail.isidentifier() and Path(head).is_file():
        return Path(head), tail
    return None


def load_genotype(spec: str) -> Genotype:
    """A genotype from a sweep's ``GENOTYPE`` value.

    ``spec`` is a name in `BUNDLED`; or a ``.json`` file in the project's format; or any other
    text file in DARTS's format, ``path.py:NAME`` selecting one of several genotypes in it.
    """
    if spec in BUNDLED:
        return BUNDLED[spec]
    found = _split_name(spec)
    if found is None:
        raise GenotypeError(
            f"GENOTYPE {spec!r}: not a bundled genotype ({', '.join(BUNDLED)}) and no such file"
        )
    path, name = found
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise GenotypeError(f"GENOTYPE {spec!r}: cannot read {path}: {err}") from None
    if path.suffix.lower() == ".json":
        if name is not None:
            raise GenotypeError(
                f"GENOTYPE {spec!r}: a JSON file holds one genotype; expected no ':{name}'"
            )
        return Genotype.loads(text, source=str(path))
    return Genotype.from_darts_text(text, source=str(path), name=name)
