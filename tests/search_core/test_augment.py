"""On-device augmentation against plain per-sample references (pad, slice, flip, fill) and,
for the colour jitter, torchvision's own ``transforms.v2.functional.adjust_*`` image by image."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F_nn
from torchvision.transforms.v2 import functional as tv_functional

from search_core.augment import (
    JitterParameters,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_color_jitter,
    color_jitter,
    crop_flip,
    cutout,
    cutout_at,
    jitter_parameters,
    normalize,
    random_crop_flip,
    to_float,
)
from search_core.errors import ConfigError


def _batch(n: int = 6, c: int = 3, h: int = 7, w: int = 9, seed: int = 0) -> torch.Tensor:
    # Non-square and continuous-valued, so a swapped axis or a wrong window cannot go unseen.
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=generator) + 0.5


def _reference_crop_flip(
    x: torch.Tensor, padding: int, offsets: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    _, _, h, w = x.shape
    out = []
    for i in range(x.shape[0]):
        padded = F_nn.pad(x[i], (padding, padding, padding, padding))
        dy, dx = int(offsets[i, 0]), int(offsets[i, 1])
        window = padded[:, dy : dy + h, dx : dx + w]
        out.append(torch.flip(window, dims=[-1]) if bool(flip[i]) else window)
    return torch.stack(out)


def _reference_cutout(x: torch.Tensor, length: int, centres: torch.Tensor) -> torch.Tensor:
    # DARTS's Cutout: np.clip(y - length // 2, 0, h) ... mask[y1:y2, x1:x2] = 0.
    _, _, h, w = x.shape
    out = x.clone()
    for i in range(x.shape[0]):
        cy, cx = int(centres[i, 0]), int(centres[i, 1])
        y1, y2 = min(max(cy - length // 2, 0), h), min(max(cy + length // 2, 0), h)
        x1, x2 = min(max(cx - length // 2, 0), w), min(max(cx + length // 2, 0), w)
        out[i, :, y1:y2, x1:x2] = 0
    return out


def _windows(image: torch.Tensor, padding: int) -> list[tuple[int, int, bool, torch.Tensor]]:
    """Every window random_crop_flip may return for one image: (dy, dx, flipped, window)."""
    _, h, w = image.shape
    padded = F_nn.pad(image, (padding, padding, padding, padding))
    found = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            window = padded[:, dy : dy + h, dx : dx + w]
            found.append((dy, dx, False, window))
            found.append((dy, dx, True, torch.flip(window, dims=[-1])))
    return found


def _identify(sample: torch.Tensor, image: torch.Tensor, padding: int) -> tuple[int, int, bool]:
    matches = [
        (dy, dx, f) for dy, dx, f, win in _windows(image, padding) if torch.equal(win, sample)
    ]
    assert len(matches) == 1, "output is not exactly one window of the padded image"
    return matches[0]


def test_to_float_maps_uint8_to_unit_interval() -> None:
    images = torch.tensor([0, 1, 128, 255], dtype=torch.uint8).view(1, 1, 2, 2)
    out = to_float(images)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.flatten(), torch.tensor([0.0, 1 / 255, 128 / 255, 1.0]))
    with pytest.raises(TypeError, match="uint8"):
        to_float(out)


def test_normalize_matches_hand_computation() -> None:
    x = _batch(n=2, c=3, h=2, w=2)
    mean, std = (0.1, 0.5, 0.9), (0.2, 0.25, 4.0)
    out = normalize(x, mean, std)
    for c in range(3):
        torch.testing.assert_close(out[:, c], (x[:, c] - mean[c]) / std[c])
    with pytest.raises(ConfigError, match="one mean and std per channel"):
        normalize(x, mean[:2], std[:2])
    with pytest.raises(TypeError, match="floating"):
        normalize(torch.zeros(1, 3, 2, 2, dtype=torch.uint8), mean, std)


@pytest.mark.parametrize("padding", [0, 1, 4])
def test_crop_flip_matches_reference_loop(padding: int) -> None:
    x = _batch(n=8)
    generator = torch.Generator().manual_seed(padding)
    offsets = torch.randint(0, 2 * padding + 1, (8, 2), generator=generator)
    offsets[0] = torch.tensor([0, 2 * padding])  # both extremes appear
    offsets[1] = torch.tensor([2 * padding, 0])
    flip = torch.tensor([True, False, True, True, False, False, True, False])
    out = crop_flip(x, padding, offsets, flip)
    assert out.shape == x.shape
    assert torch.equal(out, _reference_crop_flip(x, padding, offsets, flip))


def test_crop_flip_keeps_uint8_and_centre_is_identity() -> None:
    x = (torch.arange(2 * 3 * 5 * 5) % 256).to(torch.uint8).view(2, 3, 5, 5)
    centre = torch.full((2, 2), 4)
    no_flip = torch.zeros(2, dtype=torch.bool)
    assert torch.equal(crop_flip(x, 4, centre, no_flip), x)
    flipped = crop_flip(x, 4, centre, torch.ones(2, dtype=torch.bool))
    assert flipped.dtype == torch.uint8 and torch.equal(flipped, x.flip(-1))


def test_crop_flip_rejects_bad_shapes() -> None:
    x = _batch(n=3)
    with pytest.raises(ConfigError, match="offsets of shape"):
        crop_flip(x, 2, torch.zeros(3, 3, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="padding"):
        crop_flip(x, -1, torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ConfigError, match="batch of images"):
        crop_flip(x[0], 2, torch.zeros(3, 2, dtype=torch.long), torch.zeros(3, dtype=torch.bool))


def test_random_crop_flip_is_reproducible_and_only_returns_windows() -> None:
    x = _batch(n=64, c=2, h=5, w=6)
    padding = 2
    first = random_crop_flip(x, padding, True, torch.Generator().manual_seed(7))
    again = random_crop_flip(x, padding, True, torch.Generator().manual_seed(7))
    other = random_crop_flip(x, padding, True, torch.Generator().manual_seed(8))
    assert torch.equal(first, again) and not torch.equal(first, other)
    draws = [_identify(first[i], x[i], padding) for i in range(64)]
    assert {f for _, _, f in draws} == {False, True}
    assert {dy for dy, _, _ in draws} == set(range(5))  # every offset shows up in 64 draws
    assert {dx for _, dx, _ in draws} == set(range(5))


def test_random_crop_flip_without_flip_never_mirrors() -> None:
    x = _batch(n=32, c=1, h=4, w=4)
    out = random_crop_flip(x, 1, False, torch.Generator().manual_seed(0))
    assert all(not _identify(out[i], x[i], 1)[2] for i in range(32))


def test_random_crop_flip_padding_zero() -> None:
    x = _batch(n=32)
    assert torch.equal(random_crop_flip(x, 0, False, None), x)
    out = random_crop_flip(x, 0, True, torch.Generator().manual_seed(0))
    mirrored = [torch.equal(out[i], x[i].flip(-1)) for i in range(32)]
    kept = [torch.equal(out[i], x[i]) for i in range(32)]
    assert all(m != k for m, k in zip(mirrored, kept, strict=True))
    assert 0 < sum(mirrored) < 32


@pytest.mark.parametrize("length", [0, 1, 4, 5, 16])
def test_cutout_at_matches_reference_loop(length: int) -> None:
    x = _batch(n=6, h=8, w=10)
    centres = torch.tensor([[0, 0], [7, 9], [3, 4], [0, 9], [7, 0], [4, 5]])
    out = cutout_at(x, length, centres)
    assert torch.equal(out, _reference_cutout(x, length, centres))


def test_cutout_zeroes_one_clipped_square_and_nothing_else() -> None:
    x = _batch(n=40, c=3, h=6, w=6)  # values ≥ 0.5, so every zero comes from cutout
    length = 4
    out = cutout(x, length, torch.Generator().manual_seed(3))
    assert torch.equal(out, cutout(x, length, torch.Generator().manual_seed(3)))
    centres_seen = set()
    for i in range(40):
        zero = out[i] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[1], zero[2])
        assert torch.equal(out[i][~zero], x[i][~zero])
        candidates = [
            (cy, cx)
            for cy in range(6)
            for cx in range(6)
            if torch.equal(
                _reference_cutout(x[i : i + 1], length, torch.tensor([[cy, cx]]))[0], out[i]
            )
        ]
        assert len(candidates) == 1, "zeroed region is not one centred, clipped square"
        centres_seen.add(candidates[0])
    assert len(centres_seen) > 10  # centres are spread over the image, not fixed


def test_cutout_length_zero_and_negative() -> None:
    x = _batch(n=2)
    assert torch.equal(cutout(x, 0, None), x)
    with pytest.raises(ConfigError, match="cutout length"):
        cutout(x, -2, None)


# -- colour jitter ---------------------------------------------------------------------------

# torchvision's ColorJitter forward: fn_idx 0..3 name these, each skipped when its factor is None.
TV_ADJUST = (
    tv_functional.adjust_brightness,
    tv_functional.adjust_contrast,
    tv_functional.adjust_saturation,
    tv_functional.adjust_hue,
)
CPU = torch.device("cpu")


def _colour_batch(n: int = 24, seed: int = 0) -> torch.Tensor:
    """RGB images in [0, 1] with the hard cases of HSV: grey pixels, black, white, one
    channel at the max (each branch of the hue), and ties between two channels."""
    x = torch.rand(n, 3, 5, 7, generator=torch.Generator().manual_seed(seed))
    x[0] = x[0, :1]  # a grey image: hue and saturation 0, contrast's mean its own
    x[1, :, 0] = 0.0
    x[1, :, 1] = 1.0
    x[2, 0, 0] = x[2, 1, 0]  # red ties green at some pixels
    x[3, 1, 0] = x[3, 2, 0]
    return x


def _reference_jitter(x: torch.Tensor, draws: JitterParameters) -> torch.Tensor:
    factors = (draws.brightness, draws.contrast, draws.saturation, draws.hue)
    out = []
    for i in range(x.shape[0]):
        image = x[i]
        for adjustment in draws.order[i].tolist():
            factor = factors[adjustment]
            if factor is not None:
                image = TV_ADJUST[adjustment](image, float(factor[i]))
        out.append(image)
    return torch.stack(out)


@pytest.mark.parametrize(
    ("adjust", "reference", "low", "high"),
    [
        (adjust_brightness, tv_functional.adjust_brightness, 0.0, 2.5),
        (adjust_contrast, tv_functional.adjust_contrast, 0.0, 2.5),
        (adjust_saturation, tv_functional.adjust_saturation, 0.0, 2.5),
        (adjust_hue, tv_functional.adjust_hue, -0.5, 0.5),
    ],
)
def test_each_batched_adjustment_is_torchvision_image_by_image(
    adjust: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor, float], torch.Tensor],
    low: float,
    high: float,
) -> None:
    x = _colour_batch()
    factor = low + (high - low) * torch.rand(24, generator=torch.Generator().manual_seed(1))
    factor[:3] = torch.tensor([low, high, (low + high) / 2])  # both ends and the middle
    got = adjust(x, factor)
    expected = torch.stack([reference(x[i], float(factor[i])) for i in range(24)])
    # 1e-5 for the hue as well: its hue, sector and fraction are computed as torchvision's,
    # bit for bit, so only the last roundings of v·s·(weight) differ (a few float32 ulps, seen
    # up to 2e-7); the blends differ by the rounding of one multiply-add.
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "strengths",
    [(0.4, 0.4, 0.4, 0.2), (0.9, 0.9, 0.9, 0.5), (0.4, 0.0, 0.4, 0.0), (0.0, 0.0, 0.0, 0.3)],
)
def test_color_jitter_is_torchvision_in_the_drawn_order_with_the_drawn_factors(
    strengths: tuple[float, float, float, float],
) -> None:
    x = _colour_batch(n=64)
    draws = jitter_parameters(64, *strengths, torch.Generator().manual_seed(5), CPU)
    assert len({tuple(row) for row in draws.order.tolist()}) > 12  # many orders are tested
    got = color_jitter(x, *strengths, torch.Generator().manual_seed(5))
    torch.testing.assert_close(got, _reference_jitter(x, draws), atol=1e-5, rtol=0)
    torch.testing.assert_close(apply_color_jitter(x, draws), got, atol=0, rtol=0)


def test_color_jitter_is_reproducible_from_its_generator() -> None:
    x = _colour_batch()
    first = color_jitter(x, 0.4, 0.4, 0.4, 0.2, torch.Generator().manual_seed(3))
    again = color_jitter(x, 0.4, 0.4, 0.4, 0.2, torch.Generator().manual_seed(3))
    other = color_jitter(x, 0.4, 0.4, 0.4, 0.2, torch.Generator().manual_seed(4))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_zero_strengths_are_the_identity_and_draw_nothing() -> None:
    x = _colour_batch()
    generator = torch.Generator().manual_seed(0)
    state = generator.get_state()
    assert color_jitter(x, 0.0, 0.0, 0.0, 0.0, generator) is x
    assert torch.equal(generator.get_state(), state)
    draws = jitter_parameters(24, 0.0, 0.0, 0.0, 0.0, generator, CPU)
    assert draws[1:] == (None, None, None, None)
    assert torch.equal(apply_color_jitter(x, draws), x)
    # factors of 1 and a shift of 0 leave the images as they are (the hue to its rounding)
    ones, zeros = torch.ones(24), torch.zeros(24)
    for adjust in (adjust_brightness, adjust_contrast, adjust_saturation):
        assert torch.equal(adjust(x, ones), x)
    torch.testing.assert_close(adjust_hue(x, zeros), x, atol=1e-6, rtol=0)


def test_jitter_factors_lie_in_their_ranges_and_images_stay_in_unit_range() -> None:
    n = 4000
    draws = jitter_parameters(n, 0.4, 1.5, 0.0, 0.2, torch.Generator().manual_seed(0), CPU)
    assert draws.brightness is not None and draws.contrast is not None and draws.hue is not None
    assert draws.saturation is None  # strength 0: skipped, as torchvision's None
    for factor, (low, high) in ((draws.brightness, (0.6, 1.4)), (draws.contrast, (0.0, 2.5))):
        assert low <= float(factor.min()) < low + 0.01 and high - 0.01 < float(factor.max()) <= high
    assert -0.2 <= float(draws.hue.min()) < -0.19 and 0.19 < float(draws.hue.max()) <= 0.2
    assert torch.equal(draws.order.sort(dim=1).values, torch.arange(4).expand(n, 4))
    assert len({tuple(row) for row in draws.order.tolist()}) == 24  # every order is drawn
    out = color_jitter(_colour_batch(n=256), 0.9, 0.9, 0.9, 0.5, torch.Generator().manual_seed(1))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


@pytest.mark.parametrize(
    ("strengths", "message"),
    [
        ((-0.1, 0.4, 0.4, 0.2), "brightness must be a strength >= 0, got -0.1"),
        ((0.4, float("nan"), 0.4, 0.2), "contrast must be a strength >= 0, got nan"),
        ((0.4, 0.4, -1.0, 0.2), "saturation must be a strength >= 0"),
        ((0.4, 0.4, 0.4, 0.6), "hue must be at most 0.5"),
    ],
)
def test_bad_jitter_strengths_name_the_argument(
    strengths: tuple[float, float, float, float], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        color_jitter(_colour_batch(n=4), *strengths, None)


def test_jitter_needs_rgb_images_and_one_factor_per_image() -> None:
    with pytest.raises(ConfigError, match="RGB images"):
        color_jitter(torch.rand(2, 1, 4, 4), 0.4, 0.4, 0.4, 0.2, None)
    with pytest.raises(ConfigError, match="one factor per image"):
        adjust_contrast(_colour_batch(n=4), torch.ones(3))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augment_on_cuda_matches_cpu() -> None:
    x = _batch(n=16, h=32, w=32)
    offsets = torch.randint(0, 9, (16, 2), generator=torch.Generator().manual_seed(0))
    flip = torch.arange(16) % 3 == 0
    centres = torch.randint(0, 32, (16, 2), generator=torch.Generator().manual_seed(1))
    gpu = x.cuda()
    torch.testing.assert_close(
        crop_flip(gpu, 4, offsets.cuda(), flip.cuda()).cpu(), crop_flip(x, 4, offsets, flip)
    )
    torch.testing.assert_close(cutout_at(gpu, 16, centres.cuda()).cpu(), cutout_at(x, 16, centres))
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.testing.assert_close(normalize(gpu, mean, std).cpu(), normalize(x, mean, std))
    generator = torch.Generator(device="cuda").manual_seed(0)
    out = random_crop_flip(gpu, 4, True, generator)
    assert out.device == gpu.device and out.shape == gpu.shape
    assert cutout(gpu, 16, generator).device == gpu.device


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_color_jitter_on_cuda_matches_cpu_and_reproduces() -> None:
    x = _colour_batch(n=64)
    draws = jitter_parameters(64, 0.4, 0.4, 0.4, 0.2, torch.Generator().manual_seed(0), CPU)
    on_cuda = JitterParameters(*(None if t is None else t.cuda() for t in draws))
    torch.testing.assert_close(
        apply_color_jitter(x.cuda(), on_cuda).cpu(), apply_color_jitter(x, draws), atol=1e-5, rtol=0
    )
    first = color_jitter(x.cuda(), 0.4, 0.4, 0.4, 0.2, torch.Generator("cuda").manual_seed(2))
    again = color_jitter(x.cuda(), 0.4, 0.4, 0.4, 0.2, torch.Generator("cuda").manual_seed(2))
    assert first.device.type == "cuda" and torch.equal(first, again)
