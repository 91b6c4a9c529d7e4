"""DARTS-style Python genotype text (the original ``genotypes.py`` files), read with `ast`
and never evaluated: one ``Genotype(...)`` call or a whole file of ``NAME = Genotype(...)``
assignments and aliases, each argument a literal (lists of ``('op', input)`` pairs, lists of
node indices or ``range(a, b)``), checked like the JSON form.
"""

from __future__ import annotations

import ast

from search_core.errors import GenotypeError
from search_core.genotypes import _EDGE_FIELDS, _FIELDS, Genotype, _as_index, _check_fields, _show

__all__ = ["parse_darts_text"]


def parse_darts_text(text: str, source: str = "genotype", name: str | None = None) -> Genotype:
    """See `Genotype.from_darts_text`."""
    try:
        tree = ast.parse(text, filename=source)
    except SyntaxError as err:
        raise GenotypeError(f"{source}: line {err.lineno}: syntax error: {err.msg}") from None
    calls, named = _find_genotype_calls(tree)
    if name is not None:
        if name not in named:
            available = ", ".join(named) or "none"
            raise GenotypeError(
                f"{source}: no genotype named {name!r}; available names: {available}"
            )
        return _genotype_from_call(named[name], f"{source}:{named[name].lineno}: {name}.")
    if not calls:
        raise GenotypeError(f"{source}: no Genotype(...) call found")
    if len(calls) > 1:
        available = ", ".join(named) or "none (they are not assigned to names)"
        raise GenotypeError(
            f"{source}: {len(calls)} genotypes found; select one by name: {available}"
        )
    (call,) = calls
    label = next((key for key, value in named.items() if value is call), "Genotype")
    return _genotype_from_call(call, f"{source}:{call.lineno}: {label}.")


def _is_genotype_call(node: ast.AST) -> bool:
    """``Genotype(...)`` or ``module.Genotype(...)``."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Name) and func.id == "Genotype") or (
        isinstance(func, ast.Attribute) and func.attr == "Genotype"
    )


def _find_genotype_calls(tree: ast.Module) -> tuple[list[ast.Call], dict[str, ast.Call]]:
    """Every ``Genotype(...)`` call in source order, and the names bound to them.

    ``NAME = Genotype(...)`` binds a name; ``ALIAS = NAME`` binds another to the same call, as
    in DARTS's ``DARTS = DARTS_V2``. A name assigned twice keeps its last value, as in Python.
    """
    calls: list[ast.Call] = []
    named: dict[str, ast.Call] = {}
    for node in ast.walk(tree):
        if _is_genotype_call(node):
            assert isinstance(node, ast.Call)
            calls.append(node)
    calls.sort(key=lambda call: (call.lineno, call.col_offset))
    assignments = [node for node in ast.walk(tree) if isinstance(node, ast.Assign | ast.AnnAssign)]
    assignments.sort(key=lambda node: (node.lineno, node.col_offset))
    for assign in assignments:
        targets = assign.targets if isinstance(assign, ast.Assign) else [assign.target]
        value = assign.value
        if isinstance(value, ast.Call) and _is_genotype_call(value):
            bound: ast.Call | None = value
        elif isinstance(value, ast.Name):
            bound = named.get(value.id)
        else:
            bound = None
        for target in targets:
            if isinstance(target, ast.Name):
                if bound is None:
                    named.pop(target.id, None)
                else:
                    named[target.id] = bound
    return calls, named


def _literal(node: ast.expr, field: str, expected: str) -> object:
    """The value of a literal (lists, tuples, strings, numbers); anything else is refused."""
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise GenotypeError(
            f"{field}: expected {expected}, got {_show(ast.unparse(node))}"
        ) from None


def _concat_value(node: ast.expr, field: str) -> object:
    """A concat as written in DARTS files: ``range(a, b)``, ``list(range(a, b))`` or a list."""
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "list"
        and len(node.args) == 1
        and not node.keywords
    ):
        node = node.args[0]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
        args = [_literal(arg, field, "range() of ints") for arg in node.args]
        ints = [_as_index(arg) for arg in args]
        if node.keywords or not 1 <= len(args) <= 3 or any(i is None for i in ints):
            raise GenotypeError(
                f"{field}: expected range() of ints, got {_show(ast.unparse(node))}"
            )
        try:
            return range(*(i for i in ints if i is not None))
        except ValueError as err:
            raise GenotypeError(f"{field}: {err}; got {_show(ast.unparse(node))}") from None
    return _literal(node, field, "range(a, b) or a list of node indices")


def _genotype_from_call(call: ast.Call, where: str) -> Genotype:
    """The genotype a ``Genotype(...)`` call would build, read from its literal arguments."""
    given: dict[str, ast.expr] = {}
    if len(call.args) > len(_FIELDS):
        raise GenotypeError(
            f"{where.rstrip('.')}: expected at most {len(_FIELDS)} arguments "
            f"({', '.join(_FIELDS)}), got {len(call.args)}"
        )
    for field, arg in zip(_FIELDS, call.args, strict=False):
        given[field] = arg
    for kw in call.keywords:
        if kw.arg is None or kw.arg not in _FIELDS:
            raise GenotypeError(
                f"{where}{kw.arg or '**'}: unexpected argument; expected {', '.join(_FIELDS)}"
            )
        if kw.arg in given:
            raise GenotypeError(f"{where}{kw.arg}: given twice")
        given[kw.arg] = kw.value
    values: dict[str, object] = {}
    for field in _FIELDS:
        if field not in given:
            raise GenotypeError(f"{where}{field}: missing argument")
        if field in _EDGE_FIELDS:
            values[field] = _literal(
                given[field], f"{where}{field}", "a list of ('op', input) pairs"
            )
        else:
            values[field] = _concat_value(given[field], f"{where}{field}")
    checked = _check_fields(
        values["normal"], values["normal_concat"], values["reduce"], values["reduce_concat"], where
    )
    return Genotype(*checked)
