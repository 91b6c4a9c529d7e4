"""Reading YAML from users: sweep files, ``--config`` files and ``--set`` values.

PyYAML's ``safe_load`` is safe from code execution, not from size: anchors and aliases let a
few hundred bytes stand for a structure of billions of nodes (an "alias bomb"), and deep
nesting overflows the recursion of whatever walks the result. :func:`load_yaml` therefore
refuses anchors and aliases (a sweep file never needs them), and any document of more than
:data:`MAX_NODES` nodes or :data:`MAX_DEPTH` levels, before anything is built.

It also reads numbers as YAML 1.2 does: PyYAML follows YAML 1.1, whose float pattern needs a
dot, so ``1e-3`` or ``2E5`` would come back as strings and be refused as bounds.

A sweep sent as JSON (:func:`load_json`) keeps the same bounds: Python's parser recurses once
per level, so 100,000 brackets, well within a request's size, end in a RecursionError.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from service.errors import SweepSyntaxError

__all__ = [
    "MAX_DEPTH",
    "MAX_NODES",
    "excerpt",
    "load_json",
    "load_yaml",
    "read_yaml",
    "yaml_problem",
]

MAX_NODES = 10_000  # a sweep file has tens; the largest grid the service allows, a few thousand
MAX_DEPTH = 32  # a sweep file nests four levels deep
_TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels; a sweep file nests four"
_FLOAT_12 = re.compile(
    r"""^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z
    |^[-+]?\.(?:inf|Inf|INF)\Z
    |^\.(?:nan|NaN|NAN)\Z""",
    re.VERBOSE,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader without anchors or aliases, with a budget of nodes and depth."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None,
                None,
                "anchors and aliases (&name, *name) are not allowed in a sweep file; "
                "write the values out",
                event.start_mark,
            )
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_NODES} values; a sweep file has far fewer",
                event.start_mark,
            )  # fmt: skip
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
                )
            node = super().compose_node(parent, index)
            assert node is not None  # a peeked event always composes to a node
            return node
        finally:
            self._depth -= 1


# YAML 1.2's floats ("1e-3", "2E5") in place of YAML 1.1's, which need a dot.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_12, list("-+0123456789."))


def yaml_problem(error: yaml.YAMLError) -> str:
    """Where and what a YAML error is, on one line."""
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return where + (error.problem or error.context or "cannot parse")
    return " ".join(str(error).split())


def read_yaml(text: str) -> Any:
    """The value of the YAML document ``text``; yaml.YAMLError (see :func:`yaml_problem`)
    for malformed text, anchors, aliases and documents over the size limits."""
    loader = _Loader(text)
    try:
        return loader.get_single_data()
    except RecursionError:  # flow collections nest without compose_node's count
        raise yaml.YAMLError(
            f"nested deeper than Python can follow ({MAX_DEPTH} allowed)"
        ) from None
    finally:
        loader.dispose()


def load_yaml(text: str, source: str) -> Any:
    """The value of the YAML document ``text``; SweepSyntaxError naming ``source``, the line
    and the problem otherwise."""
    try:
        return read_yaml(text)
    except yaml.YAMLError as error:
        raise SweepSyntaxError(f"{source}: malformed YAML: {yaml_problem(error)}") from None


def load_json(text: str, source: str) -> Any:
    """The value of the JSON document ``text``, within :data:`MAX_DEPTH` levels and
    :data:`MAX_NODES` values; SweepSyntaxError naming ``source`` and the problem otherwise."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise SweepSyntaxError(f"{source}: malformed JSON ({error})") from None
    except RecursionError:
        raise SweepSyntaxError(f"{source}: JSON {_TOO_DEEP}") from None
    nodes = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:  # iterative: the check must not recurse either
        value, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise SweepSyntaxError(f"{source}: JSON {_TOO_DEEP}")
        if nodes > MAX_NODES:
            raise SweepSyntaxError(
                f"{source}: JSON of more than {MAX_NODES} values; a sweep file has far fewer"
            )
        children = value.values() if isinstance(value, dict) else value
        if isinstance(value, dict | list):
            stack.extend((child, depth + 1) for child in children)
    return data


def excerpt(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, for error messages that echo input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-2:]}"
