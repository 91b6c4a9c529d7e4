"""Macro structure shared by the supernet and the evaluation network (section IV-B-1).

A network is a stem, ``layers`` cells with reduction cells at 1/3 and 2/3 of the depth (the
channel count doubles there), global pooling and a linear classifier, as DARTS's CIFAR
networks (and its ImageNet network, section IV-D-2's transfer: :func:`imagenet_cell_layout`).
:func:`cell_layout` lists each cell's channels and input resolution; the model
builders and the cost model read the same list, so the counted network and the modelled one
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CellSpec:
    """One cell: its input channels, own width, type and input resolution."""

    index: int
    c_prev_prev: int
    c_prev: int
    channels: int
    reduction: bool
    reduction_prev: bool
    resolution: int  # spatial size of the cell's (preprocessed) inputs


def reduction_indices(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells: 1/3 and 2/3 of the depth (DARTS's rule)."""
    return (layers // 3, 2 * layers // 3)


MIN_INPUT_SIZE = 4
"""The smallest image a network of two reduction cells halves twice (4 -> 2 -> 1); below it a
reduction halves nothing and the counted size describes no real network."""

MIN_IMAGENET_INPUT_SIZE = 32
"""The same for the ImageNet network, whose stem halves the image three times first
(32 -> 16 -> 8 -> 4, then 2 and 1 in the reduction cells)."""


def reduced(size: int) -> int:
    """Spatial size after a stride-2 op with 'same' padding."""
    return (size + 1) // 2


def cell_layout(
    layers: int,
    init_channels: int,
    input_size: int,
    stem_multiplier: int = 3,
    multiplier: int = 4,
    stem_reduces: bool = False,
) -> list[CellSpec]:
    """The cells of a DARTS CIFAR network, in order.

    ``input_size`` is the size of the stem's output. ``stem_reduces`` says that the stem's
    second output (the first cell's s1) is half the size of its first (s0), as the ImageNet
    stem's: the first cell then reduces s0 as a cell after a reduction does.
    """
    c_curr = stem_multiplier * init_channels
    c_pp, c_p, c = c_curr, c_curr, init_channels
    size = input_size
    cells: list[CellSpec] = []
    reduction_prev = stem_reduces
    reductions = reduction_indices(layers)
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        cells.append(CellSpec(i, c_pp, c_p, c, reduction, reduction_prev, size))
        if reduction:
            size = reduced(size)
        c_pp, c_p = c_p, multiplier * c
        reduction_prev = reduction
    return cells


def imagenet_cell_layout(
    layers: int, init_channels: int, input_size: int, multiplier: int = 4
) -> list[CellSpec]:
    """The cells of DARTS's ImageNet network (mobile setting): after a stem of three
    stride-2 convolutions whose last two outputs, of ``init_channels`` each, feed the first
    cell (s0 at input/4, s1 at input/8)."""
    stem_size = reduced(reduced(reduced(input_size)))
    return cell_layout(layers, init_channels, stem_size, 1, multiplier, stem_reduces=True)


def edge_inputs(steps: int) -> list[tuple[int, int]]:
    """(node, input state) of every edge of a cell in alpha's row order."""
    return [(node, j) for node in range(steps) for j in range(node + 2)]
