"""The ImageNet transfer (IV-D-2, Table V): network, sizes, images and recipe.

References are independent of the code under test: a brute-force sum over the network's
modules for its parameters, forward hooks that multiply out every convolution's and linear
layer's shape for its multiply-adds, DARTS's published 4.7 M parameters (Table V: 4.72 M),
torchvision's own ``resized_crop``, ``hflip`` and test transform (Resize then CenterCrop of the
PIL image), and DARTS's ImageNet settings as printed in its script (its ColorJitter's
strengths among them, applied after the crop and before normalisation as in its transform).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from sweepkit import write_image_folder
from torch import nn
from torchvision import transforms
from torchvision.transforms import functional as tv_functional

from search_core.augment import (
    color_jitter,
    normalize,
    random_resized_crop_flip,
    resized_crop_flip,
    to_float,
)
from search_core.data import ImageSet
from search_core.errors import ConfigError, GenotypeError
from search_core.eval_config import build_network, eval_from_mapping, eval_preset
from search_core.evaluate import make_optimizer, make_schedule, train_step
from search_core.genotypes import BUNDLED
from search_core.imagenet import COLOR_JITTER, ResizedCropData, load_imagenet_sets, stored_size
from search_core.model_eval import ImageNetNetwork, count_flops_m, count_params_m
from search_core.search import DeviceData

SIZE = 224


def brute_force_params(net: nn.Module) -> int:
    """Every parameter of every module outside the auxiliary head, counted once."""
    aux = {id(m) for m in net.auxiliary.modules()} if net.auxiliary is not None else set()
    return sum(
        p.numel() for m in net.modules() if id(m) not in aux for p in m.parameters(recurse=False)
    )


def hooked_macs(net: nn.Module, size: int) -> int:
    """k·k·C_in/groups·C_out·H_out·W_out per convolution, in·out per linear layer."""
    total = 0

    def conv(module: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Conv2d)
        kh, kw = module.kernel_size
        per_output = kh * kw * module.in_channels // module.groups
        total += per_output * out.shape[1] * out.shape[2] * out.shape[3]

    def linear(module: nn.Module, _: Any, out: torch.Tensor) -> None:
        nonlocal total
        assert isinstance(module, nn.Linear)
        total += module.in_features * module.out_features

    handles = [
        m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else linear)
        for m in net.modules()
        if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return total


@pytest.fixture(scope="module", params=sorted(BUNDLED))
def built(request: pytest.FixtureRequest) -> tuple[str, ImageNetNetwork]:
    torch.manual_seed(0)
    return request.param, ImageNetNetwork(BUNDLED[request.param], auxiliary=True)


# -- the network -----------------------------------------------------------------------------


def test_params_are_a_brute_force_sum_without_the_auxiliary_head(
    built: tuple[str, ImageNetNetwork],
) -> None:
    _, net = built
    assert net.auxiliary is not None
    assert count_params_m(net) * 1e6 == pytest.approx(brute_force_params(net), abs=0.5)
    with_head = sum(p.numel() for p in net.parameters())
    assert with_head > brute_force_params(net)  # the head exists and was left out


def test_multiply_adds_are_the_hooked_convolutions_and_linear_layers(
    built: tuple[str, ImageNetNetwork],
) -> None:
    _, net = built
    assert count_flops_m(net, SIZE) * 1e6 == pytest.approx(hooked_macs(net, SIZE), abs=0.5)


def test_darts_v2_has_darts_published_imagenet_size() -> None:
    net = ImageNetNetwork(BUNDLED["darts_v2"])
    # DARTS's paper: 4.7 M; E2RNAS's Table V: 4.72 M. Its 574 M multiply-adds counted more
    # than convolutions and linear layers (quark0/darts#46 counts 523-545 M by other tools).
    assert round(count_params_m(net), 2) == 4.72
    assert 500 < count_flops_m(net, SIZE) < 574


def test_1000_logits_at_224_and_the_auxiliary_head_in_training() -> None:
    net = ImageNetNetwork(BUNDLED["darts_v2"], auxiliary=True)
    feature_sizes: list[int] = []
    net.stem0.register_forward_hook(lambda m, i, out: feature_sizes.append(out.shape[-1]))
    net.stem1.register_forward_hook(lambda m, i, out: feature_sizes.append(out.shape[-1]))
    net.train()
    logits, aux = net(torch.randn(2, 3, SIZE, SIZE))
    assert logits.shape == (2, 1000) and aux is not None and aux.shape == (2, 1000)
    assert feature_sizes == [56, 28]  # s0 at 1/4, s1 at 1/8 of the image
    assert isinstance(net.global_pooling, nn.AvgPool2d) and net.global_pooling.kernel_size == 7
    net.eval()
    with torch.no_grad():
        logits, aux = net(torch.randn(1, 3, SIZE, SIZE))
    assert logits.shape == (1, 1000) and aux is None


def test_too_small_an_image_is_refused() -> None:
    with pytest.raises(GenotypeError, match="input_size=16"):
        ImageNetNetwork(BUNDLED["darts_v2"], input_size=16)


# -- the recipe --------------------------------------------------------------------------------


def test_imagenet_preset_is_darts_imagenet_recipe() -> None:
    c = eval_preset("imagenet")
    assert (c.network, c.image_size, c.layers, c.init_channels) == ("imagenet", 224, 14, 48)
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (
        250,
        128,
        0.1,
        0.9,
        3e-5,
    )
    assert (c.lr_gamma, c.label_smoothing, c.auxiliary, c.auxiliary_weight) == (
        0.97,
        0.1,
        True,
        0.4,
    )
    assert (c.grad_clip, c.cutout, c.drop_path) == (5.0, 0, 0.0)
    assert isinstance(build_network(BUNDLED["darts_v2"], c, 1000, 224, 3), ImageNetNetwork)


def test_the_learning_rate_falls_by_097_each_epoch() -> None:
    config = eval_preset("imagenet")
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], config.lr)
    schedule = make_schedule(optimizer, config)
    seen = []
    for _ in range(4):
        seen.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert seen == pytest.approx([0.1 * 0.97**e for e in range(4)], rel=1e-12)


def test_the_training_loss_is_darts_label_smoothed_cross_entropy() -> None:
    config = eval_preset("imagenet", {"image_size": 32, "layers": 3, "init_channels": 4})
    torch.manual_seed(0)
    net = build_network(BUNDLED["darts_v2"], config, num_classes=5, input_size=32, in_channels=3)
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    data = DeviceData(
        ImageSet(images, labels, 5, (0.5,) * 3, (0.25,) * 3, "fixed"), torch.device("cpu"), False
    )
    index = torch.arange(6)
    x, y = data.batch(index, None)
    net.train()
    logits, aux = net(x)
    assert aux is not None

    def darts_smooth(z: torch.Tensor) -> torch.Tensor:
        # DARTS's CrossEntropyLabelSmooth: targets (1 - ε)·onehot + ε/K, mean over the batch.
        eps, classes = 0.1, z.shape[1]
        targets = torch.zeros_like(z).scatter_(1, y.unsqueeze(1), 1)
        targets = (1 - eps) * targets + eps / classes
        return (-targets * torch.log_softmax(z, dim=1)).mean(0).sum()

    expected = darts_smooth(logits) + 0.4 * darts_smooth(aux)
    loss, _ = train_step(net, make_optimizer(net, config), data, index, config, None)
    torch.testing.assert_close(loss, expected.detach(), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"network": "resnet"}, "network"),
        ({"network": "imagenet", "image_size": 16}, "image_size"),
        ({"image_size": 224}, "image_size"),  # the cifar network takes the dataset's size
        ({"lr_gamma": 1.5}, "lr_gamma"),
        ({"label_smoothing": 1.0}, "label_smoothing"),
    ],
)
def test_bad_values_name_the_field(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError, match=f"^{field}: "):
        eval_from_mapping(changes)


# -- the images ------------------------------------------------------------------------------


def _images(n: int = 5, side: int = 12, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, side, side, generator=generator)


@pytest.mark.parametrize("size", [5, 8, 20])  # down-, same- and up-sampling of the windows
def test_resized_crop_flip_is_torchvision_resized_crop_then_hflip(size: int) -> None:
    x = _images()
    boxes = torch.tensor([[0, 0, 12, 12], [2, 3, 8, 6], [4, 1, 5, 9], [7, 7, 5, 5], [0, 5, 3, 7]])
    flip = torch.tensor([False, True, False, True, True])
    got = resized_crop_flip(x, size, boxes, flip)
    for i in range(len(x)):
        top, left, h, w = boxes[i].tolist()
        expected = tv_functional.resized_crop(x[i], top, left, h, w, [size, size], antialias=False)
        if flip[i]:
            expected = tv_functional.hflip(expected)
        torch.testing.assert_close(got[i], expected, atol=1e-5, rtol=0)


def test_random_resized_crops_stay_inside_and_the_whole_image_is_a_plain_resize() -> None:
    x = _images(n=64)
    generator = torch.Generator().manual_seed(3)
    out = random_resized_crop_flip(x, 6, generator)
    assert out.shape == (64, 3, 6, 6)
    # Bilinear weights are convex: every output lies within its image's range.
    assert (out.amin(dim=(1, 2, 3)) >= x.amin(dim=(1, 2, 3)) - 1e-6).all()
    assert (out.amax(dim=(1, 2, 3)) <= x.amax(dim=(1, 2, 3)) + 1e-6).all()
    again = random_resized_crop_flip(x, 6, torch.Generator().manual_seed(3))
    assert torch.equal(out, again)
    # Scale and ratio fixed at 1: the whole image, mirrored or not.
    whole = random_resized_crop_flip(x, 6, generator, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    resized = tv_functional.resize(x, [6, 6], antialias=False)
    for i in range(len(x)):
        match_plain = torch.allclose(whole[i], resized[i], atol=1e-5)
        match_flip = torch.allclose(whole[i], tv_functional.hflip(resized[i]), atol=1e-5)
        assert match_plain or match_flip


def test_training_batches_are_cropped_then_jittered_as_darts_then_normalised() -> None:
    assert COLOR_JITTER == (0.4, 0.4, 0.4, 0.2)  # DARTS's ColorJitter(0.4, 0.4, 0.4, 0.2)
    side, size = stored_size(32), 32
    pixels = torch.randint(0, 256, (6, 3, side, side), generator=torch.Generator().manual_seed(0))
    images = ImageSet(
        pixels.to(torch.uint8), torch.arange(6) % 2, 2, (0.5, 0.4, 0.3), (0.2, 0.3, 0.25), "fixed"
    )
    index = torch.tensor([4, 0, 2])
    jittered, labels = ResizedCropData(images, torch.device("cpu"), size).batch(
        index, torch.Generator().manual_seed(9)
    )
    plain, _ = ResizedCropData(images, torch.device("cpu"), size, jitter=(0, 0, 0, 0)).batch(
        index, torch.Generator().manual_seed(9)
    )
    # DARTS's order from one generator: crop and flip, jitter, then Normalize.
    generator = torch.Generator().manual_seed(9)
    crops = random_resized_crop_flip(to_float(images.images[index]), size, generator)
    expected = normalize(color_jitter(crops, *COLOR_JITTER, generator), images.mean, images.std)
    assert torch.equal(jittered, expected) and torch.equal(labels, images.labels[index])
    assert torch.equal(plain, normalize(crops, images.mean, images.std))  # the same crops
    assert not torch.allclose(jittered, plain, atol=0.05)
    # The test transform is not jittered.
    centre, _ = ResizedCropData(images, torch.device("cpu"), size).batch(index, None, False)
    window = tv_functional.center_crop(to_float(images.images[index]), [size, size])
    assert torch.equal(centre, normalize(window, images.mean, images.std))


def test_test_images_go_through_darts_test_transform(tmp_path: Path) -> None:
    write_image_folder(tmp_path / "in", 2, {"train": 2, "test": 2})
    write_image_folder(tmp_path / "ood", 1, {"train": 1, "test": 2})
    config = eval_preset(
        "imagenet",
        {
            "image_size": 32,
            "dataset": f"imagefolder:{tmp_path / 'in'}",
            "ood_dataset": f"imagefolder:{tmp_path / 'ood'}",
        },
    )
    train, test, ood = load_imagenet_sets(config)
    side = stored_size(32)
    assert side == 37 and stored_size(224) == 256
    assert train.images.shape == (4, 3, side, side)
    assert test.images.shape == (4, 3, 32, 32) and ood.images.shape == (2, 3, 32, 32)
    darts_test = transforms.Compose(
        [transforms.Resize(side), transforms.CenterCrop(32), transforms.PILToTensor()]
    )
    for i, path in enumerate(sorted((tmp_path / "in" / "test").rglob("*.png"))):
        assert torch.equal(test.images[i], darts_test(Image.open(path).convert("RGB")))
