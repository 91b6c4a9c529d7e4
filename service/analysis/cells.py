"""A genotype's cells as diagrams: the data step (:func:`cell_diagram_info`, plain values
that the tests compare with the genotype) and the drawing step (:func:`cell_diagram`, a plotly
figure), as in :mod:`~service.analysis.plotdata` and :mod:`~service.analysis.figures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import plotly.graph_objects as go  # type: ignore[import-untyped, unused-ignore]

from search_core.genotypes import Genotype
from service.errors import ConfigError

__all__ = ["CellDiagramInfo", "DiagramEdge", "DiagramNode", "cell_diagram", "cell_diagram_info"]

_EDGE_COLOUR = "#444"
_OUTPUT_COLOUR = "#9aa5b1"


class DiagramNode(NamedTuple):
    name: str  # "c_{k-2}", "c_{k-1}", "0", "1", ..., "c_{k}"
    x: float
    y: float


class DiagramEdge(NamedTuple):
    source: str
    target: str
    op: str  # "" for the edges into the concatenated output c_{k}


class CellDiagramInfo(NamedTuple):
    """One cell as a DAG: inputs left, intermediate nodes in the middle, the output right."""

    which: str  # "normal" or "reduce"
    nodes: tuple[DiagramNode, ...]
    edges: tuple[DiagramEdge, ...]  # the kept operations, two per intermediate node
    outputs: tuple[DiagramEdge, ...]  # the concatenated nodes into c_{k}


def _as_genotype(genotype: Genotype | Mapping[str, Any] | str) -> Genotype:
    if isinstance(genotype, Genotype):
        return genotype
    if isinstance(genotype, str):
        return Genotype.loads(genotype)
    return Genotype.from_json(dict(genotype))


def _node_name(index: int) -> str:
    """Cell node ``index``: 0 and 1 are the two previous cells, 2.. the intermediate nodes."""
    return ("c_{k-2}", "c_{k-1}")[index] if index < 2 else str(index - 2)


def cell_diagram_info(
    genotype: Genotype | Mapping[str, Any] | str, which: str = "normal"
) -> CellDiagramInfo:
    """The nodes (with positions) and labelled edges of the normal or the reduction cell.

    ``genotype`` is a `Genotype`, its JSON object or its JSON text.
    """
    if which not in ("normal", "reduce"):
        raise ConfigError(f"which: got {which!r}; expected 'normal' or 'reduce'")
    cell = _as_genotype(genotype)
    edges = cell.normal if which == "normal" else cell.reduce
    concat = cell.normal_concat if which == "normal" else cell.reduce_concat
    steps = cell.steps
    # Intermediate nodes zig-zag so that edges skipping a node do not run through it.
    nodes = [DiagramNode("c_{k-2}", 0.0, 1.0), DiagramNode("c_{k-1}", 0.0, -1.0)]
    nodes += [DiagramNode(str(i), i + 1.0, 0.35 * (-1) ** i) for i in range(steps)]
    nodes.append(DiagramNode("c_{k}", float(steps + 1), 0.0))
    return CellDiagramInfo(
        which=which,
        nodes=tuple(nodes),
        edges=tuple(
            DiagramEdge(_node_name(index), str(k // 2), op) for k, (op, index) in enumerate(edges)
        ),
        outputs=tuple(DiagramEdge(_node_name(index), "c_{k}", "") for index in concat),
    )


def cell_diagram(genotype: Genotype | Mapping[str, Any] | str, which: str = "normal") -> go.Figure:
    """The normal or reduction cell as a DAG of plotly shapes and annotations, one arrow per
    edge labelled with its operation."""
    info = cell_diagram_info(genotype, which)
    where = {node.name: (node.x, node.y) for node in info.nodes}
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[node.x for node in info.nodes],
            y=[node.y for node in info.nodes],
            mode="markers",
            marker={"size": 1, "opacity": 0},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    for edge in (*info.edges, *info.outputs):
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        fig.add_annotation(
            x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y",
            text="", showarrow=True, arrowhead=2, arrowsize=1.2, arrowwidth=1.4,
            standoff=18, startstandoff=18,
            arrowcolor=_OUTPUT_COLOUR if not edge.op else _EDGE_COLOUR,
        )  # fmt: skip
        if edge.op:
            fig.add_annotation(
                x=x0 + 0.55 * (x1 - x0), y=y0 + 0.55 * (y1 - y0), text=edge.op, showarrow=False,
                font={"size": 10, "color": "#1f3b73"}, bgcolor="rgba(255,255,255,0.85)",
            )  # fmt: skip
    for node in info.nodes:
        is_cell = node.name.startswith("c_")
        fig.add_shape(
            type="rect" if is_cell else "circle",
            x0=node.x - 0.22, x1=node.x + 0.22, y0=node.y - 0.14, y1=node.y + 0.14,
            fillcolor="#cfe3f7" if is_cell else "#fde8c8", line={"color": "#555"},
        )  # fmt: skip
        fig.add_annotation(x=node.x, y=node.y, text=node.name, showarrow=False)
    fig.update_layout(
        title=f"{which} cell",
        xaxis={"visible": False, "range": [-0.5, len(info.nodes) - 1.5]},
        yaxis={"visible": False, "range": [-1.4, 1.4]},
        height=320,
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        plot_bgcolor="white",
    )
    return fig
