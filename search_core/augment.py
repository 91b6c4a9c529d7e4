"""On-device batch augmentation for search (IV-B-2) and retraining (IV-B-3).

DARTS trains on a random H×W window of each image zero-padded by 4, mirrored with
probability 1/2, and the retrain adds Cutout of length 16 (IV-B-3). torchvision does this
one PIL image at a time on the host; here each is a few batched tensor ops on whatever device
the batch lives on, with the random draws taken on that device from a caller-owned
``torch.Generator``, so a step never waits for the host and a seed reproduces it. Nothing here
loops over samples in Python or reads a value back to the host.

The ImageNet transfer (IV-D-2) trains as DARTS does on ImageNet: torchvision's
RandomResizedCrop and flip, batched here by :func:`random_resized_crop_flip`, then its
ColorJitter, batched by :func:`color_jitter`: each image draws its own four factors and its
own order of the four adjustments, as torchvision draws them for each image it transforms,
and the adjustments are torchvision's float tensor ones (``transforms.v2.functional``'s
``adjust_*``) with a factor per image. The orders are followed without grouping the images
(which would read the group sizes back): at each position every image blends, with a factor
of 1 where its adjustment there is another, and the costly hue shift runs once for the whole
batch, between the blends before and after it in each image's order.

Each random transform has a deterministic twin that takes the draws as tensors
(:func:`crop_flip`, :func:`cutout_at`, :func:`resized_crop_flip`,
:func:`apply_color_jitter`), which is what the tests compare against references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F_nn

from search_core.errors import ConfigError


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 to float32 in [0, 1], on the same device."""
    if images_uint8.dtype != torch.uint8:
        raise TypeError(f"to_float expects uint8 images, got {images_uint8.dtype}")
    return images_uint8.to(torch.float32).div_(255.0)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean[c]) / std[c]`` per channel of an (N, C, H, W) batch."""
    channels = _check_batch(x, "normalize")[1]
    if not x.is_floating_point():
        raise TypeError(f"normalize expects floating-point images (see to_float), got {x.dtype}")
    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"normalize needs one mean and std per channel ({channels}), got "
            f"{len(mean)} and {len(std)}"
        )
    mean_t = _channel_vector(mean, x)
    std_t = _channel_vector(std, x)
    return (x - mean_t) / std_t


def crop_flip(
    x: torch.Tensor, padding: int, offsets: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Zero-pad by ``padding``, take each sample's H×W window at ``offsets``, mirror some.

    ``offsets`` is (N, 2) integer (dy, dx), each in [0, 2·padding] (not checked: that would
    read the values back to the host); ``flip`` is (N,) bool, True mirroring that sample's
    window left-right. One gather over the flattened padded planes does all samples.
    """
    n, channels, height, width = _check_batch(x, "crop_flip")
    _check_non_negative(padding, "padding")
    if offsets.shape != (n, 2) or flip.shape != (n,):
        raise ConfigError(
            f"crop_flip needs offsets of shape ({n}, 2) and flip of shape ({n},), got "
            f"{tuple(offsets.shape)} and {tuple(flip.shape)}"
        )
    padded = F_nn.pad(x, (padding, padding, padding, padding))
    padded_width = width + 2 * padding
    offsets = offsets.to(device=x.device, dtype=torch.long)
    rows = offsets[:, 0:1] + torch.arange(height, device=x.device)  # (N, H)
    cols = offsets[:, 1:2] + torch.arange(width, device=x.device)  # (N, W)
    cols = torch.where(flip.to(x.device).view(n, 1), cols.flip(1), cols)
    flat = rows.unsqueeze(2) * padded_width + cols.unsqueeze(1)  # (N, H, W)
    index = flat.view(n, 1, height * width).expand(n, channels, height * width)
    windows = padded.reshape(n, channels, -1).gather(2, index)
    return windows.view(n, channels, height, width)


def random_crop_flip(
    x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """DARTS's RandomCrop(H, padding) and RandomHorizontalFlip, for a whole batch at once.

    Offsets are uniform on [0, 2·padding]², flips are fair coins (never, when ``flip`` is
    False). ``generator`` must live on ``x``'s device; None uses torch's default one there.
    """
    n = _check_batch(x, "random_crop_flip")[0]
    _check_non_negative(padding, "padding")
    if padding == 0 and not flip:
        return x
    offsets = torch.randint(
        0, 2 * padding + 1, (n, 2), generator=generator, device=x.device, dtype=torch.long
    )
    if flip:
        flips = torch.randint(0, 2, (n,), generator=generator, device=x.device) == 1
    else:
        flips = torch.zeros(n, dtype=torch.bool, device=x.device)
    return crop_flip(x, padding, offsets, flips)


def resized_crop_flip(
    x: torch.Tensor, size: int, boxes: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Each sample's window resized to ``size``x``size`` (bilinear), mirrored where ``flip``.

    ``boxes`` is (N, 4) integer (top, left, height, width), each window inside its image;
    ``flip`` is (N,) bool. The same as torchvision's ``resized_crop`` (antialias off) then
    ``hflip``, sample by sample: output pixel i of a window of side w at x0 reads the input
    at x0 + (i + 1/2)·w/size - 1/2, clamped to the window (``interpolate``'s rule with
    ``align_corners=False``); one ``grid_sample`` does all samples.
    """
    n, _, height, width = _check_batch(x, "resized_crop_flip")
    if boxes.shape != (n, 4) or flip.shape != (n,):
        raise ConfigError(
            f"resized_crop_flip needs boxes of shape ({n}, 4) and flip of shape ({n},), got "
            f"{tuple(boxes.shape)} and {tuple(flip.shape)}"
        )
    boxes = boxes.to(device=x.device, dtype=x.dtype)
    top, left, box_h, box_w = boxes.unbind(1)
    steps = (torch.arange(size, device=x.device, dtype=x.dtype) + 0.5) / size
    ys = top[:, None] + steps * box_h[:, None] - 0.5
    ys = torch.minimum(torch.maximum(ys, top[:, None]), (top + box_h - 1)[:, None])
    xs = left[:, None] + steps * box_w[:, None] - 0.5
    xs = torch.minimum(torch.maximum(xs, left[:, None]), (left + box_w - 1)[:, None])
    xs = torch.where(flip.to(x.device).view(n, 1), xs.flip(1), xs)
    # grid_sample's coordinates (align_corners=False): pixel p is at (2p + 1)/side - 1.
    grid_y = ((2 * ys + 1) / height - 1).view(n, size, 1).expand(n, size, size)
    grid_x = ((2 * xs + 1) / width - 1).view(n, 1, size).expand(n, size, size)
    grid = torch.stack((grid_x, grid_y), dim=3)
    return F_nn.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop_flip(
    x: torch.Tensor,
    size: int,
    generator: torch.Generator | None,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> torch.Tensor:
    """torchvision's RandomResizedCrop(size) and RandomHorizontalFlip for a whole batch.

    As its ``get_params``: up to ten draws of an area (a ``scale`` fraction of the image's)
    and a log-uniform aspect ``ratio``, the first window that fits kept at a uniform place;
    where none fits, the centre window of the image's aspect clamped to ``ratio``. The ten
    draws are taken at once for every sample. ``generator`` must live on ``x``'s device.
    """
    n, _, height, width = _check_batch(x, "random_resized_crop_flip")
    tries, device = 10, x.device

    def uniform(low: float, high: float, shape: tuple[int, ...]) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, device=device)

    area = height * width * uniform(scale[0], scale[1], (n, tries))
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1]), (n, tries)))
    box_w = torch.round(torch.sqrt(area * aspect))
    box_h = torch.round(torch.sqrt(area / aspect))
    fits = (box_w > 0) & (box_w <= width) & (box_h > 0) & (box_h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # the first that fits
    found = fits.any(dim=1)
    in_ratio = width / height
    if in_ratio < min(ratio):
        fallback_w, fallback_h = width, round(width / min(ratio))
    elif in_ratio > max(ratio):
        fallback_w, fallback_h = round(height * max(ratio)), height
    else:
        fallback_w, fallback_h = width, height
    box_w = torch.where(found, box_w.gather(1, first).squeeze(1), float(fallback_w))
    box_h = torch.where(found, box_h.gather(1, first).squeeze(1), float(fallback_h))

    def place(side: int, box: torch.Tensor, fallback: int) -> torch.Tensor:
        # min(): a draw just below 1 times side - box + 1 may round up to it in float32
        start = torch.floor(uniform(0.0, 1.0, (n,)) * (side - box + 1))
        return torch.where(found, torch.minimum(start, side - box), float((side - fallback) // 2))

    top, left = place(height, box_h, fallback_h), place(width, box_w, fallback_w)
    flips = torch.randint(0, 2, (n,), generator=generator, device=device) == 1
    boxes = torch.stack((top, left, box_h, box_w), dim=1).to(torch.long)
    return resized_crop_flip(x, size, boxes, flips)


# torchvision's ColorJitter numbers its adjustments so (``fn_idx``): the values in ``order``.
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)


class JitterParameters(NamedTuple):
    """One ColorJitter draw per image: what torchvision's ``ColorJitter.get_params`` returns
    for one image, for each image of a batch.

    ``order`` is (N, 4) integer, row i the adjustments of image i in the order they apply
    (:data:`BRIGHTNESS` ... :data:`HUE`); each factor is (N,), or None for an adjustment of
    strength 0, which torchvision skips.
    """

    order: torch.Tensor
    brightness: torch.Tensor | None
    contrast: torch.Tensor | None
    saturation: torch.Tensor | None
    hue: torch.Tensor | None


def jitter_parameters(
    n: int,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None,
    device: torch.device,
) -> JitterParameters:
    """ColorJitter's draws for ``n`` images, on ``device`` from ``generator`` (which lives there).

    As torchvision's ``ColorJitter``: brightness, contrast and saturation factors uniform on
    [max(0, 1 - v), 1 + v], the hue shift uniform on [-h, h], and a uniformly random order of
    the four (the argsort of four uniform draws, torchvision's ``randperm(4)`` for every image
    at once). All eight draws per image are taken whatever the strengths, so a seed gives the
    same orders and the same uniforms whichever adjustments are on.
    """
    strengths = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    for name, value in (*strengths.items(), ("hue", hue)):
        if not value >= 0:  # written so, NaN fails too
            raise ConfigError(f"color_jitter {name} must be a strength >= 0, got {value!r}")
    if hue > 0.5:
        raise ConfigError(f"color_jitter hue must be at most 0.5 (half the circle), got {hue!r}")
    keys = torch.rand((n, 4), generator=generator, device=device)
    unit = torch.rand((n, 4), generator=generator, device=device)
    ranges = [(max(0.0, 1.0 - v), 1.0 + v) for v in strengths.values()] + [(-hue, hue)]
    factors = [
        low + (high - low) * unit[:, k] if high > low else None
        for k, (low, high) in enumerate(ranges)
    ]
    order = keys.argsort(dim=1, stable=True)
    return JitterParameters(order, factors[0], factors[1], factors[2], factors[3])


def color_jitter(
    x: torch.Tensor,
    brightness: float,
    contrast: float,
    saturation: float,
    hue: float,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """torchvision's ColorJitter(brightness, contrast, saturation, hue) on each image of a batch.

    ``x`` is an RGB batch of floats in [0, 1], not yet normalised (torchvision jitters the
    image before ToTensor and Normalize); draws as :func:`jitter_parameters`, taken from
    ``generator`` on ``x``'s device. All strengths 0 return ``x`` and draw nothing.
    """
    n = _check_batch(x, "color_jitter")[0]
    if brightness == contrast == saturation == hue == 0:
        return x
    draws = jitter_parameters(n, brightness, contrast, saturation, hue, generator, x.device)
    return apply_color_jitter(x, draws)


def apply_color_jitter(x: torch.Tensor, draws: JitterParameters) -> torch.Tensor:
    """The adjustments of ``draws`` on each image of ``x`` (RGB floats in [0, 1]), in its order.

    The same as torchvision's ColorJitter forward with these factors and this ``fn_idx``,
    image by image. The hue shift costs about ten blends, so each image's adjustments run as
    those before its hue shift, the shift, and those after it: one shift of the whole batch,
    and the blends position by position around it (:func:`_blend_positions`).
    """
    n = _check_rgb(x, "apply_color_jitter")
    if draws.order.shape != (n, 4):
        raise ConfigError(
            f"apply_color_jitter needs an order of shape ({n}, 4), got {tuple(draws.order.shape)}"
        )
    order = draws.order.to(x.device)
    if draws.hue is None:
        return _blend_positions(x, draws, order, torch.ones_like(order, dtype=torch.bool))
    hue_at = (order == HUE).to(torch.uint8).argmax(dim=1, keepdim=True)  # (N, 1)
    positions = torch.arange(4, device=x.device)
    x = _blend_positions(x, draws, order, positions < hue_at, range(3))
    x = adjust_hue(x, draws.hue)
    return _blend_positions(x, draws, order, positions > hue_at, range(1, 4))


def _blend_positions(
    x: torch.Tensor,
    draws: JitterParameters,
    order: torch.Tensor,
    active: torch.Tensor,
    positions: range = range(4),
) -> torch.Tensor:
    """Brightness, contrast and saturation at each of ``positions`` of the images' orders,
    where ``active`` (N, 4) holds.

    All three blend the image with a partner (black, the mean of its grayscale, its
    grayscale) and clamp to [0, 1], so a position is one blend of the batch, each image with
    its own partner and factor: a factor of 1 where its adjustment there is inactive, off or
    the hue shift, which leaves it as it is (x·1 + t·0 = x, and the clamp keeps [0, 1]).
    """
    blend_factors = (draws.brightness, draws.contrast, draws.saturation)
    if all(factor is None for factor in blend_factors):
        return x
    ones = torch.ones(order.shape[0], device=x.device, dtype=x.dtype)
    by_adjustment = torch.stack(
        [ones if f is None else f.to(device=x.device, dtype=x.dtype) for f in blend_factors]
        + [ones],  # the hue shift's column: no blend
        dim=1,
    )
    by_position = torch.where(active, by_adjustment.gather(1, order), 1.0)  # (N, 4)
    needs_grey = draws.contrast is not None or draws.saturation is not None
    for position in positions:
        ratio = by_position[:, position].view(-1, 1, 1, 1)
        partner = torch.zeros_like(ratio)  # black, brightness's
        if needs_grey:
            here = order[:, position].view(-1, 1, 1, 1)
            grey = _grayscale(x)
            mean = grey.mean(dim=(1, 2, 3), keepdim=True)
            partner = torch.where(
                here == SATURATION, grey, torch.where(here == CONTRAST, mean, 0.0)
            )
        x = _blend(x, partner, ratio)
    return x


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image i times factor[i], clamped to [0, 1]: torchvision's ``adjust_brightness`` (a blend
    with black) for each image of an (N, C, H, W) float batch; ``factor`` is (N,)."""
    return (x * _per_image(factor, x)).clamp_(0.0, 1.0)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image i blended with the mean of its grayscale by factor[i], clamped to [0, 1]:
    torchvision's ``adjust_contrast`` for each image of an RGB float batch."""
    _check_rgb(x, "adjust_contrast")
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, _per_image(factor, x))


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image i blended with its grayscale by factor[i], clamped to [0, 1]: torchvision's
    ``adjust_saturation`` for each image of an RGB float batch."""
    _check_rgb(x, "adjust_saturation")
    return _blend(x, _grayscale(x), _per_image(factor, x))


def adjust_hue(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Image i with factor[i] (in [-0.5, 0.5], of the circle) added to its hue: torchvision's
    ``adjust_hue`` (RGB to HSV, shift H modulo 1, back to RGB) for each image of an RGB
    float batch in [0, 1]."""
    _check_rgb(x, "adjust_hue")
    hue, saturation, value = _rgb_to_hsv(x)
    hue = (hue + _per_image(factor, x).view(-1, 1, 1)).remainder(1.0)
    return _hsv_to_rgb(hue, saturation, value)


def _per_image(factor: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if factor.shape != (x.shape[0],):
        raise ConfigError(
            f"need one factor per image ({x.shape[0]},), got shape {tuple(factor.shape)}"
        )
    return factor.to(device=x.device, dtype=x.dtype).view(-1, 1, 1, 1)


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    # torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma, as PIL's "L"); (N, 1, H, W).
    red, green, blue = x.unbind(1)
    return red.mul(0.2989).add_(green, alpha=0.587).add_(blue, alpha=0.114).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    # x·r + other·(1 - r), as torchvision's _blend, in one pass over x
    return torch.addcmul(other * (1.0 - ratio), x, ratio).clamp_(0.0, 1.0)


def _rgb_to_hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue in [0, 1), saturation and value of each pixel, each (N, H, W), by Pillow's rule as
    torchvision's ``_rgb_to_hsv``: grey pixels (max = min) get hue and saturation 0."""
    red, green, blue = x.unbind(1)
    high = torch.maximum(torch.maximum(red, green), blue)
    low = torch.minimum(torch.minimum(red, green), blue)
    span = high - low
    grey = span == 0
    saturation = span / torch.where(grey, 1.0, high)
    # Distances from the max in units of the span; any divisor for grey pixels, all zero.
    span = torch.where(grey, 1.0, span)
    dist_r, dist_g, dist_b = (high - red) / span, (high - green) / span, (high - blue) / span
    hue = torch.where(
        high == red,
        dist_b - dist_g,
        torch.where(high == green, 2.0 + dist_r - dist_b, 4.0 + dist_g - dist_r),
    )
    return (hue * (1.0 / 6.0) + 1.0).fmod(1.0), saturation, high


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB of (N, H, W) hue, saturation and value: Pillow's HSV to RGB (and
    torchvision's ``_hsv_to_rgb``) in closed form.

    Pillow picks v, p = v(1 - s), q = v(1 - sf) or t = v(1 - s(1 - f)) for each channel by
    the hue's sector i = ⌊6h⌋ (f = 6h - i); that is v - v·s·clamp(min(k, 4 - k), 0, 1) with
    k = (n + 6h) mod 6 and n = 5, 3, 1 for red, green, blue (the "alternative" HSV to RGB of
    Wikipedia's HSL and HSV article), and takes a few elementwise passes where torchvision's
    table lookup gathers with an int64 index per pixel. k is formed as (n + i) mod 6 + f, so
    that f is torchvision's to the last bit.
    """
    sixths = hue * 6.0
    sector = torch.floor(sixths)
    fraction = (sixths - sector).unsqueeze(1)
    offsets = torch.arange(5, 0, -2, device=hue.device, dtype=hue.dtype).view(1, 3, 1, 1)
    k = (sector.unsqueeze(1) + offsets).remainder_(6.0).add_(fraction)
    weight = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    return value.unsqueeze(1) - (value * saturation).unsqueeze(1) * weight


def cutout_at(x: torch.Tensor, length: int, centres: torch.Tensor) -> torch.Tensor:
    """Zero, in every channel of sample i, the square of side ``length`` centred at centres[i].

    ``centres`` is (N, 2) integer (cy, cx). As DARTS's Cutout, the square covers rows
    cy - ⌊length/2⌋ … cy + ⌊length/2⌋ - 1 (and likewise columns), clipped at the borders; an
    odd ``length`` therefore zeroes a side of length - 1, exactly as DARTS does.
    """
    n, _, height, width = _check_batch(x, "cutout_at")
    _check_non_negative(length, "cutout length")
    if centres.shape != (n, 2):
        raise ConfigError(f"cutout_at needs centres of shape ({n}, 2), got {tuple(centres.shape)}")
    half = length // 2
    centres = centres.to(device=x.device, dtype=torch.long)
    ys = torch.arange(height, device=x.device)
    xs = torch.arange(width, device=x.device)
    in_rows = (ys >= centres[:, 0:1] - half) & (ys < centres[:, 0:1] + half)  # (N, H)
    in_cols = (xs >= centres[:, 1:2] - half) & (xs < centres[:, 1:2] + half)  # (N, W)
    square = in_rows.unsqueeze(2) & in_cols.unsqueeze(1)  # (N, H, W)
    return x.masked_fill(square.unsqueeze(1), 0)


def cutout(x: torch.Tensor, length: int, generator: torch.Generator | None) -> torch.Tensor:
    """DARTS's Cutout for a whole batch: centres uniform over the pixels, one square each.

    ``generator`` must live on ``x``'s device; None uses torch's default one there.
    """
    n, _, height, width = _check_batch(x, "cutout")
    _check_non_negative(length, "cutout length")
    if length == 0:
        return x
    cy = torch.randint(0, height, (n, 1), generator=generator, device=x.device)
    cx = torch.randint(0, width, (n, 1), generator=generator, device=x.device)
    return cutout_at(x, length, torch.cat((cy, cx), dim=1))


def _check_batch(x: torch.Tensor, where: str) -> tuple[int, int, int, int]:
    if x.dim() != 4:
        raise ConfigError(
            f"{where} expects a batch of images (N, C, H, W), got shape {tuple(x.shape)}"
        )
    n, channels, height, width = x.shape
    return n, channels, height, width


def _check_rgb(x: torch.Tensor, where: str) -> int:
    n, channels, _, _ = _check_batch(x, where)
    if channels != 3:
        raise ConfigError(f"{where} expects RGB images (3 channels), got {channels} channels")
    return n


def _check_non_negative(value: int, field: str) -> None:
    if value < 0:
        raise ConfigError(f"{field} must be a non-negative number of pixels, got {value!r}")


def _channel_vector(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    # Built on the host and copied without blocking: a plain torch.tensor(..., device=cuda)
    # would synchronise the stream.
    vector = torch.tensor(list(values), dtype=like.dtype).view(1, -1, 1, 1)
    return vector.to(like.device, non_blocking=True)
