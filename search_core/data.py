"""Datasets of section IV-A: whole in-distribution and OoD splits as uint8 tensors.

The paper searches on CIFAR-10 or CIFAR-100 and uses SVHN as the OoD set of L_ood (eq. 3);
any ImageFolder pair works the same way, and ``digits`` / ``digits-ood`` (scikit-learn's 8×8
digits 0-4 and 5-9, so the class sets are disjoint as C_in ∩ C_out = ∅ requires) run offline
on a CPU. :func:`split_halves` is the search split of IV-B-2: half of the training set for the
weights θ, half for the architecture α.

A split is loaded once into an :class:`ImageSet` whose uint8 images can move to the device
whole; conversion, normalisation and augmentation then happen there
(:mod:`search_core.augment`). CIFAR and SVHN are read by torchvision's own dataset classes
in :mod:`search_core.torchvision_sets`, imported only for them: the embedded digits load
without torchvision or scikit-learn being imported, which saves seconds in every trial.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from search_core.config import DATASET_NAMES, IMAGEFOLDER_PREFIX
from search_core.datapaths import dataset_path
from search_core.errors import ConfigError, DatasetError

__all__ = ["DATASET_NAMES", "IMAGEFOLDER_PREFIX", "ImageSet", "load_image_set", "split_halves"]
SPLITS: tuple[str, ...] = ("train", "test")

# The split of scikit-learn's digits is part of the dataset's definition, not of a search:
# every call and every trial sees the same train and test images whatever its seed.
_DIGITS_SPLIT_SEED = 0
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_IN_CLASSES = (0, 1, 2, 3, 4)
_DIGITS_OOD_CLASSES = (5, 6, 7, 8, 9)
_IMAGEFOLDER_DEFAULT_SIZE = 32
TORCHVISION_NAMES = ("cifar10", "cifar100", "svhn")  # read by search_core.torchvision_sets
_STATS_CHUNK = 4096


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split of a dataset, whole: uint8 images on the CPU, labels, normalisation constants.

    ``images`` is (N, C, H, W) uint8 with H == W; ``labels`` is (N,) int64 in
    0..num_classes-1. ``mean`` and ``std`` are per channel, in units of pixel/255 (for images
    already mapped to [0, 1] by :func:`search_core.augment.to_float`), and always those of the
    dataset's training split. ``eq=False``: comparing tensors field by field has no single
    truth value, so sets compare by identity.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str

    def __post_init__(self) -> None:
        prefix = f"dataset {self.name!r}:"
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise DatasetError(
                f"{prefix} images must be a 4-D uint8 tensor (N, C, H, W), got "
                f"{self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        n, channels, height, width = self.images.shape
        if height != width:
            raise DatasetError(f"{prefix} images must be square, got {height}×{width}")
        if self.labels.dtype != torch.int64 or self.labels.shape != (n,):
            raise DatasetError(
                f"{prefix} labels must be an int64 tensor of shape ({n},) to match the images, "
                f"got {self.labels.dtype} of shape {tuple(self.labels.shape)}"
            )
        if self.num_classes < 1:
            raise DatasetError(f"{prefix} num_classes must be at least 1, got {self.num_classes}")
        if n > 0:
            low, high = int(self.labels.min()), int(self.labels.max())
            if low < 0 or high >= self.num_classes:
                raise DatasetError(
                    f"{prefix} labels must lie in 0..{self.num_classes - 1}, found {low}..{high}"
                )
        if len(self.mean) != channels or len(self.std) != channels:
            raise DatasetError(
                f"{prefix} mean and std need one value per channel ({channels}), got "
                f"{len(self.mean)} and {len(self.std)}"
            )
        if not all(s > 0 for s in self.std):
            raise DatasetError(
                f"{prefix} every channel's std must be positive (constant images?), got {self.std}"
            )

    @property
    def in_channels(self) -> int:
        """Channels per image (3 for RGB, 1 for digits)."""
        return int(self.images.shape[1])

    @property
    def image_size(self) -> int:
        """Height (= width) of every image in pixels."""
        return int(self.images.shape[2])

    def __len__(self) -> int:
        return int(self.images.shape[0])


def load_image_set(
    name: str,
    split: str,
    root: str | Path = "data",
    download: bool = False,
    image_size: int | None = None,
    keep_aspect: bool = False,
) -> ImageSet:
    """Load one split of a dataset named in :data:`DATASET_NAMES` or ``imagefolder:<dir>``.

    ``root`` holds ``cifar-10-batches-py/``, ``cifar-100-python/`` or SVHN's
    ``train_32x32.mat`` / ``test_32x32.mat``; a relative ``imagefolder:`` directory is taken
    under it too. ``download`` fetches missing CIFAR/SVHN files (md5-checked by torchvision);
    the other sets ignore it. ``image_size`` resizes every image to that square size; None
    keeps each set's own size (32 for CIFAR, SVHN and ImageFolder, 8 for digits).
    ``keep_aspect`` resizes an ImageFolder image's shorter side to ``image_size`` and keeps
    the centre square (torchvision's Resize then CenterCrop, as ImageNet's pipelines do)
    instead of squeezing the whole image into the square; the other sets' images are square.
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size!r}")
    root_path = Path(root).expanduser().resolve()
    if name in ("digits", "digits-ood"):
        return _load_digits(name, split, image_size)
    if name in TORCHVISION_NAMES:
        # Imported here: torchvision costs seconds to import, and the digits need none of it.
        from search_core.torchvision_sets import load_torchvision

        return load_torchvision(name, split, root_path, download, image_size)
    if name.startswith(IMAGEFOLDER_PREFIX) and name != IMAGEFOLDER_PREFIX:
        return _load_imagefolder(name, split, root_path, image_size, keep_aspect)
    valid = ", ".join(repr(n) for n in DATASET_NAMES)
    raise DatasetError(
        f"dataset {name!r}: unknown dataset name (nothing looked up under {root_path}); "
        f"expected one of {valid} or 'imagefolder:<dir>'"
    )


def split_halves(n: int, portion: float) -> tuple[torch.Tensor, torch.Tensor]:
    """DARTS's search split (IV-B-2): indices ``[0, ⌊portion·n⌋)`` for θ, the rest for α.

    No shuffle, exactly as DARTS: the two halves are fixed, and batches are drawn at random
    inside each by the caller.
    """
    if not 0.0 < portion < 1.0:
        raise ConfigError(f"train_portion must lie strictly between 0 and 1, got {portion!r}")
    cut = math.floor(portion * n)
    if cut == 0 or cut == n:
        raise ConfigError(
            f"train_portion={portion!r} of {n} training images leaves one half empty; "
            "use more images or a train_portion nearer 0.5"
        )
    indices = torch.arange(n)
    return indices[:cut], indices[cut:]


# ---------------------------------------------------------------------------------------------
# scikit-learn's digits


def _digits_split(targets: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A stratified 80/20 split of all digits: True where an image belongs to the test split."""
    rng = np.random.default_rng(_DIGITS_SPLIT_SEED)
    is_test = np.zeros(len(targets), dtype=bool)
    for digit in np.unique(targets):
        members = np.flatnonzero(targets == digit)
        n_test = round(_DIGITS_TEST_FRACTION * len(members))
        is_test[rng.permutation(members)[:n_test]] = True
    return is_test


@functools.cache
def _digits_arrays() -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """scikit-learn's digits as ``(values (1797, 64), targets (1797,))``, what its
    ``load_digits()`` returns, read from the file the package ships (``digits.csv.gz``: 64
    pixel counts and the digit per row) without importing scikit-learn, whose import alone
    costs seconds in every trial; through ``load_digits`` where that file is not found."""
    spec = importlib.util.find_spec("sklearn")
    shipped = (
        Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if spec is not None and spec.origin is not None
        else None
    )
    if shipped is None or not shipped.is_file():
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return np.asarray(bunch.data, dtype=np.float64), np.asarray(bunch.target, dtype=np.int64)
    table = np.loadtxt(shipped, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def _load_digits(name: str, split: str, image_size: int | None) -> ImageSet:
    data, targets = _digits_arrays()
    values = data.reshape(-1, 1, 8, 8)
    # Pixels are counts 0..16 of an 8x8 grid of 4x4 blocks; spread them over 0..255.
    pixels = np.floor(values * 255.0 / 16.0 + 0.5).astype(np.uint8)
    classes = _DIGITS_IN_CLASSES if name == "digits" else _DIGITS_OOD_CLASSES
    in_set = np.isin(targets, classes)
    is_test = _digits_split(targets)

    def part(test: bool) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = in_set & (is_test == test)
        images = torch.from_numpy(pixels[chosen])
        if image_size is not None:
            images = resize_images(images, image_size)
        labels = torch.from_numpy(targets[chosen] - classes[0])
        return images, labels

    train_images, train_labels = part(test=False)
    mean, std = _channel_stats(train_images)
    images, labels = (train_images, train_labels) if split == "train" else part(test=True)
    return ImageSet(images, labels, len(classes), mean, std, name)


# ---------------------------------------------------------------------------------------------
# ImageFolder pairs


def _load_imagefolder(
    name: str, split: str, root: Path, image_size: int | None, keep_aspect: bool
) -> ImageSet:
    directory = dataset_path(name, root)
    assert directory is not None  # load_image_set sends only imagefolder: names here
    size = _IMAGEFOLDER_DEFAULT_SIZE if image_size is None else image_size
    train_images, train_labels, classes = _read_folder(name, directory, "train", size, keep_aspect)
    mean, std = _channel_stats(train_images)
    if split == "train":
        return ImageSet(train_images, train_labels, len(classes), mean, std, name)
    images, labels, test_classes = _read_folder(name, directory, "test", size, keep_aspect)
    if test_classes != classes:
        raise DatasetError(
            f"dataset {name!r}: {directory / 'test'} has class folders {test_classes} but "
            f"{directory / 'train'} has {classes}; expected the same class folders in both"
        )
    return ImageSet(images, labels, len(classes), mean, std, name)


def _read_folder(
    name: str, directory: Path, split: str, size: int, keep_aspect: bool = False
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    split_dir = directory / split
    expected = (
        "train/ and test/, each with one folder of images per class; set data_root or the "
        "imagefolder path to the folder that holds them"
    )
    if not split_dir.is_dir():
        raise DatasetError(f"dataset {name!r}: no {split}/ under {directory} (expected {expected})")
    from torchvision import datasets, transforms

    resize: list[Any] = (
        [transforms.Resize(size), transforms.CenterCrop(size)]
        if keep_aspect
        else [transforms.Resize((size, size))]
    )
    to_tensor = transforms.Compose([*resize, transforms.PILToTensor()])
    try:
        folder = datasets.ImageFolder(str(split_dir), transform=to_tensor)
    except FileNotFoundError as exc:  # no class folders, or no image in them
        raise DatasetError(
            f"dataset {name!r}: no images found under {split_dir} ({exc}); expected {expected}"
        ) from exc
    images = torch.empty(len(folder), 3, size, size, dtype=torch.uint8)
    labels = torch.empty(len(folder), dtype=torch.int64)
    for i in range(len(folder)):
        try:
            images[i], labels[i] = folder[i]
        except (OSError, ValueError) as exc:  # PIL: unreadable or truncated image
            raise DatasetError(
                f"dataset {name!r}: cannot read image {folder.samples[i][0]} "
                f"({type(exc).__name__}: {exc}); expected an image file PIL can open; "
                "replace or delete it"
            ) from exc
    return images, labels, list(folder.classes)


# ---------------------------------------------------------------------------------------------
# helpers


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    from torchvision.transforms import functional as tv_functional

    resized: torch.Tensor = tv_functional.resize(images, [size, size], antialias=True)
    return resized


def _channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (population) of uint8 images, in units of pixel/255."""
    channels = images.shape[1]
    total = torch.zeros(channels, dtype=torch.float64)
    total_sq = torch.zeros(channels, dtype=torch.float64)
    for start in range(0, images.shape[0], _STATS_CHUNK):  # bounded memory for big folders
        chunk = images[start : start + _STATS_CHUNK].to(torch.float64) / 255.0
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = max(images.shape[0] * images.shape[2] * images.shape[3], 1)
    mean = total / count
    std = (total_sq / count - mean.square()).clamp_min(0.0).sqrt()
    return tuple(mean.tolist()), tuple(std.tolist())
