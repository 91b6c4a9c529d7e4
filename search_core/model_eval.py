"""The discrete evaluation network of a genotype (section IV-B-3), and its exact size.

The structure is DARTS's CIFAR network: a 3x3 convolution stem, ``layers`` cells with
reduction at 1/3 and 2/3 of the depth, each cell preprocessing its two inputs, applying the
genotype's eight ops and concatenating its intermediate nodes; global average pooling and a
linear classifier; an auxiliary head after the 2/3 reduction for training only. Drop-path
regularises the ops (not identities) during training.

:func:`count_params_m` and :func:`count_flops_m` count the *built* network: parameters
without the auxiliary head, and multiply-accumulates measured on a real forward by
``torch.utils.flop_counter`` (which reports 2 FLOPs per multiply-accumulate). These are the
units of the bounds L and F (docs/ARCHITECTURE.md).

:class:`ImageNetNetwork` is DARTS's ImageNet network of the same cells (the transfer of
section IV-D-2, Table V): a stem of three stride-2 convolutions, 7x7 average pooling, its own
auxiliary head; the two counts apply to it unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from search_core.errors import GenotypeError
from search_core.genotypes import PRIMITIVES, Genotype
from search_core.layout import (
    MIN_IMAGENET_INPUT_SIZE,
    CellSpec,
    cell_layout,
    edge_inputs,
    imagenet_cell_layout,
    reduced,
    reduction_indices,
)
from search_core.ops import FactorizedReduce, ReLUConvBN, build_op


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability ``drop_prob``, rescaling the survivors."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x / keep * mask


class EvalCell(nn.Module):
    """A cell with the genotype's fixed ops."""

    def __init__(self, genotype: Genotype, spec: CellSpec) -> None:
        super().__init__()
        c = spec.channels
        if spec.reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(spec.c_prev_prev, c)
        else:
            self.preprocess0 = ReLUConvBN(spec.c_prev_prev, c, 1, 1, 0)
        self.preprocess1 = ReLUConvBN(spec.c_prev, c, 1, 1, 0)
        edges = genotype.reduce if spec.reduction else genotype.normal
        self.concat = genotype.reduce_concat if spec.reduction else genotype.normal_concat
        self.inputs = tuple(index for _, index in edges)
        self.ops = nn.ModuleList(
            build_op(name, c, 2 if spec.reduction and index < 2 else 1, affine=True)
            for name, index in edges
        )
        self.identity = tuple(isinstance(op, nn.Identity) for op in self.ops)
        self.reduction = spec.reduction
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and not self.identity[k]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            assert total is not None
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier on the 2/3-depth features (training only)."""

    def __init__(self, channels: int, num_classes: int, resolution: int) -> None:
        super().__init__()
        # DARTS's head pools an 8x8 map with a 5x5 window, stride 3, to 2x2; other input
        # sizes pool adaptively to the same 2x2.
        pool: nn.Module
        if resolution == 8:
            pool = nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False)
        else:
            pool = nn.AdaptiveAvgPool2d(2)
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            pool,
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class EvalNetwork(nn.Module):
    """The network a genotype describes; forward returns (logits, auxiliary logits or None)."""

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int = 10,
        layers: int = 20,
        init_channels: int = 36,
        input_size: int = 32,
        in_channels: int = 3,
        auxiliary: bool = False,
        stem_multiplier: int = 3,
    ) -> None:
        super().__init__()
        check_fits(genotype, layers)
        self.drop_path_prob = 0.0
        multiplier = _multiplier(genotype)
        specs = cell_layout(layers, init_channels, input_size, stem_multiplier, multiplier)
        c_stem = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem)
        )
        self.cells = nn.ModuleList(EvalCell(genotype, spec) for spec in specs)
        self.aux_index = reduction_indices(layers)[1]
        c_last = multiplier * specs[-1].channels
        self.auxiliary: AuxiliaryHead | None = None
        if auxiliary:
            aux_spec = specs[self.aux_index]
            res = (aux_spec.resolution + 1) // 2
            self.auxiliary = AuxiliaryHead(multiplier * aux_spec.channels, num_classes, res)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = s1 = self.stem(x)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary is not None and self.training:
                aux_logits = self.auxiliary(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits


class ImageNetAuxiliaryHead(nn.Module):
    """DARTS's ImageNet auxiliary classifier on the 2/3-depth features (training only).

    As DARTS trained it: its second convolution is followed by no batch norm (a typo in
    DARTS's code that its published runs kept). A 7x7 map (224-pixel images) is pooled with a
    5x5 window, stride 2, to 2x2; other sizes pool adaptively to the same 2x2.
    """

    def __init__(self, channels: int, num_classes: int, resolution: int) -> None:
        super().__init__()
        pool: nn.Module
        if resolution == 7:
            pool = nn.AvgPool2d(5, stride=2, padding=0, count_include_pad=False)
        else:
            pool = nn.AdaptiveAvgPool2d(2)
        # Not in place on its input, which the next cells (or the classifier) still read.
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            pool,
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.classifier(self.features(x).flatten(1))
        return logits


class ImageNetNetwork(nn.Module):
    """DARTS's ImageNet network of a genotype, the mobile setting of the transfer (IV-D-2,
    Table V): 14 cells of C=48 on 224x224 images; forward returns (logits, aux logits or None).

    Two stems halve the image three times before the cells: ``stem0`` is conv 3x3 stride 2 to
    C/2, BN, ReLU, conv 3x3 stride 2 to C, BN (s0, input/4); ``stem1`` is ReLU, conv 3x3
    stride 2, BN (s1, input/8), so the first cell reduces s0 as a cell after a reduction
    does. Cells as :class:`EvalNetwork`'s, then average pooling over the whole last map (7x7 at
    224 pixels) and the linear classifier.
    """

    def __init__(
        self,
        genotype: Genotype,
        num_classes: int = 1000,
        layers: int = 14,
        init_channels: int = 48,
        input_size: int = 224,
        in_channels: int = 3,
        auxiliary: bool = False,
    ) -> None:
        super().__init__()
        check_fits(genotype, layers)
        if input_size < MIN_IMAGENET_INPUT_SIZE:
            raise GenotypeError(
                f"input_size={input_size}: the ImageNet network halves the image five times; "
                f"expected at least {MIN_IMAGENET_INPUT_SIZE} pixels"
            )
        self.drop_path_prob = 0.0
        multiplier = _multiplier(genotype)
        c = init_channels
        self.stem0 = nn.Sequential(
            nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        self.stem1 = nn.Sequential(
            nn.ReLU(inplace=False),  # s0 is the first cell's input too
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(c),
        )
        specs = imagenet_cell_layout(layers, c, input_size, multiplier)
        self.cells = nn.ModuleList(EvalCell(genotype, spec) for spec in specs)
        self.aux_index = reduction_indices(layers)[1]
        self.auxiliary: ImageNetAuxiliaryHead | None = None
        if auxiliary:
            aux_spec = specs[self.aux_index]
            res = reduced(aux_spec.resolution)
            self.auxiliary = ImageNetAuxiliaryHead(multiplier * aux_spec.channels, num_classes, res)
        last = specs[-1]
        size = reduced(last.resolution) if last.reduction else last.resolution
        self.global_pooling = nn.AvgPool2d(size)
        self.classifier = nn.Linear(multiplier * last.channels, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        s0 = self.stem0(x)
        s1 = self.stem1(s0)
        aux_logits = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary is not None and self.training:
                aux_logits = self.auxiliary(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, aux_logits


def _multiplier(genotype: Genotype) -> int:
    """Nodes a cell concatenates, the same in both kinds of cell."""
    multiplier = len(genotype.normal_concat)
    if len(genotype.reduce_concat) != multiplier:
        raise GenotypeError(
            f"genotype: normal_concat has {multiplier} nodes and reduce_concat "
            f"{len(genotype.reduce_concat)}; the network needs the same number in both"
        )
    return multiplier


def check_fits(genotype: Genotype, layers: int) -> None:
    """Raise a clear error if the genotype's cells cannot form a network of ``layers``."""
    if layers < 3:
        raise GenotypeError(
            f"layers={layers}: an evaluation network needs at least 3 cells "
            "(reduction cells sit at 1/3 and 2/3 of the depth)"
        )


def count_params_m(net: nn.Module) -> float:
    """Trainable parameters in millions, the auxiliary head excluded."""
    total = 0
    for name, p in net.named_parameters():
        if not name.startswith("auxiliary."):
            total += p.numel()
    return total / 1e6


def count_flops_m(net: nn.Module, input_size: int, in_channels: int = 3) -> float:
    """Multiply-accumulates (millions) of one inference on one image, counted on a forward."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    x = torch.zeros(1, in_channels, input_size, input_size, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net(x)
    net.train(was_training)
    return counter.get_total_flops() / 2 / 1e6


def inherit_supernet_weights(
    net: EvalNetwork, genotype: Genotype, supernet_state: dict[str, torch.Tensor]
) -> int:
    """Start ``net`` from a trained supernet of the same depth and width (the proxy's fine-tune).

    Each op the genotype keeps takes the weights of the same op on the same edge of the
    supernet; the stem, the cells' input preprocessing and the classifier take theirs.
    Batch-norm scales and shifts, which the supernet does not learn (affine=False), keep
    their identity initialisation. A P-DARTS supernet builds only the ops its masks
    (``op_mask_normal``, ``op_mask_reduce`` in its state) keep, so an op's place on an edge is
    counted among those. Returns the number of tensors copied; raises :class:`GenotypeError`
    if a shape disagrees (a supernet of another size).
    """
    rows = {edge: e for e, edge in enumerate(edge_inputs(genotype.steps))}
    masks = [supernet_state.get(name) for name in ("op_mask_normal", "op_mask_reduce")]

    def place(op_name: str, e: int, reduction: bool) -> int:
        mask = masks[1 if reduction else 0]
        built = [
            o
            for o, p in enumerate(PRIMITIVES)
            if p != "none" and (mask is None or bool(mask[e, o]))
        ]
        o = PRIMITIVES.index(op_name)
        if o not in built:
            raise GenotypeError(
                f"supernet weights: edge {e} of the supernet does not search {op_name!r}; "
                "the genotype is not one this supernet derives"
            )
        return built.index(o)

    copied = 0
    with torch.no_grad():
        for name, param in net.named_parameters():
            source = name
            parts = name.split(".")
            if parts[0] == "cells" and parts[2] == "ops":
                cell = net.cells[int(parts[1])]
                assert isinstance(cell, EvalCell)
                k = int(parts[3])
                edges = genotype.reduce if cell.reduction else genotype.normal
                op_name, j = edges[k]
                e = rows[(k // 2, j)]
                position = place(op_name, e, cell.reduction)
                source = ".".join(
                    ["cells", parts[1], "ops", str(e), "ops", str(position), *parts[4:]]
                )
            if source not in supernet_state:
                continue  # batch-norm affine parameters, the auxiliary head
            tensor = supernet_state[source]
            if tensor.shape != param.shape:
                raise GenotypeError(
                    f"supernet weights: '{source}' has shape {tuple(tensor.shape)} but the "
                    f"network needs {tuple(param.shape)}; the proxy must have the search's "
                    "layers and init_channels"
                )
            param.copy_(tensor)
            copied += 1
    return copied
