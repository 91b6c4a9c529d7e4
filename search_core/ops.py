"""The eight candidate operations of the DARTS search space (section IV-B-1).

Every convolution is ReLU-Conv-BN without bias; separable convolutions are applied twice;
dilated convolutions are depthwise-separable with dilation 2. The same builders make the
supernet's mixed ops (``affine=False`` batch norm, as DARTS) and the evaluation network
(``affine=True``), so the cost model in :mod:`search_core.cost` can count both from one place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format a network's 4-d weights take (``channels_last`` config key): with
    channels-last weights, convolutions and the ops after them run on NHWC activations."""
    return torch.channels_last if channels_last else torch.contiguous_format


def autocast_dtype(autocast: str) -> torch.dtype | None:
    """The dtype a network runs its cells in under autocast (``autocast`` config key)."""
    return {"none": None, "bf16": torch.bfloat16}[autocast]


class ReLUConvBN(nn.Sequential):
    """ReLU, a dense convolution without bias, batch norm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        affine: bool = True,
        track_stats: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_stats),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise (dilated) convolution, pointwise convolution, batch norm."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
        track_stats: bool = True,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(
                c_in,
                c_in,
                kernel,
                stride=stride,
                padding=padding,
                dilation=dilation,
                groups=c_in,
                bias=False,
            ),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_stats),
        )


class SepConv(nn.Sequential):
    """A separable convolution applied twice; only the first one strides."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        affine: bool = True,
        track_stats: bool = True,
    ) -> None:
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine, track_stats),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine, track_stats),
        )


class Zero(nn.Module):
    """The ``none`` op: zeros of the output shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the spatial size with two offset 1x1 stride-2 convolutions, concatenated."""

    def __init__(
        self, c_in: int, c_out: int, affine: bool = True, track_stats: bool = True
    ) -> None:
        super().__init__()
        if c_out % 2:
            raise ValueError(f"FactorizedReduce needs an even channel count, got {c_out}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine, track_running_stats=track_stats)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        # Odd sizes: the shifted branch sees one row/column less; pad it back so the two
        # halves agree (DARTS only ever used even sizes).
        shifted = x[:, :, 1:, 1:]
        if x.shape[-1] % 2:
            shifted = nn.functional.pad(shifted, (0, 1, 0, 1))
        out = torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1)
        normed: torch.Tensor = self.bn(out)
        return normed


OpBuilder = Callable[[int, int, bool, bool], nn.Module]


def _pool(kind: str, stride: int) -> nn.Module:
    if kind == "max":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)


def _skip(c: int, stride: int, affine: bool, track_stats: bool) -> nn.Module:
    if stride == 1:
        return nn.Identity()
    return FactorizedReduce(c, c, affine, track_stats)


OPS: dict[str, OpBuilder] = {
    "none": lambda c, stride, affine, track: Zero(stride),
    "max_pool_3x3": lambda c, stride, affine, track: _pool("max", stride),
    "avg_pool_3x3": lambda c, stride, affine, track: _pool("avg", stride),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda c, stride, affine, track: SepConv(c, c, 3, stride, 1, affine, track),
    "sep_conv_5x5": lambda c, stride, affine, track: SepConv(c, c, 5, stride, 2, affine, track),
    "dil_conv_3x3": lambda c, stride, affine, track: DilConv(c, c, 3, stride, 2, 2, affine, track),
    "dil_conv_5x5": lambda c, stride, affine, track: DilConv(c, c, 5, stride, 4, 2, affine, track),
}


def build_op(
    name: str, channels: int, stride: int, affine: bool, track_stats: bool = True
) -> nn.Module:
    """Build one candidate op on ``channels`` channels (input and output)."""
    return OPS[name](channels, stride, affine, track_stats)
