"""Datasets of section IV-A: whole in-distribution and OoD splits as uint8 tensors.

The paper searches on CIFAR-10 or CIFAR-100 and uses SVHN as the OoD set of L_ood (eq. 3);
any ImageFolder pair works the same way, and ``digits`` / ``digits-ood`` (scikit-learn's 8×8
digits 0-4 and 5-9, so the class sets are disjoint as C_in ∩ C_out = ∅ requires) run offline
on a CPU. :func:`split_halves` is the search split of IV-B-2: half of the training set for the
weights θ, half for the architecture α.

A split is loaded once into an :class:`ImageSet` whose uint8 images can move to the device
whole; conversion, normalisation and augmentation then happen there
(:mod:`search_core.augment`). CIFAR and SVHN files are parsed by torchvision's own dataset
classes, CIFAR's pickled batches through :mod:`search_core.cifar`, which runs nothing a file
asks for; only their md5 check of local files is replaced by an existence check, so files in
the official format but with other content (re-packed copies, test fixtures) load, while a
download stays md5-checked by torchvision.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets, transforms
from torchvision.datasets import utils as tv_utils
from torchvision.transforms import functional as tv_functional

from search_core.cifar import BatchError, SafeCIFAR10, SafeCIFAR100
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
) -> ImageSet:
    """Load one split of a dataset named in :data:`DATASET_NAMES` or ``imagefolder:<dir>``.

    ``root`` holds ``cifar-10-batches-py/``, ``cifar-100-python/`` or SVHN's
    ``train_32x32.mat`` / ``test_32x32.mat``; a relative ``imagefolder:`` directory is taken
    under it too. ``download`` fetches missing CIFAR/SVHN files (md5-checked by torchvision);
    the other sets ignore it. ``image_size`` resizes every image to that square size; None
    keeps each set's own size (32 for CIFAR, SVHN and ImageFolder, 8 for digits).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {SPLITS}, got {split!r}")
    if image_size is not None and image_size < 1:
        raise ConfigError(f"image_size must be a positive number of pixels, got {image_size!r}")
    root_path = Path(root).expanduser().resolve()
    if name in ("digits", "digits-ood"):
        return _load_digits(name, split, image_size)
    if name in _TORCHVISION_SETS:
        return _load_torchvision(name, split, root_path, download, image_size)
    if name.startswith(IMAGEFOLDER_PREFIX) and name != IMAGEFOLDER_PREFIX:
        return _load_imagefolder(name, split, root_path, image_size)
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
# CIFAR and SVHN, parsed by torchvision


def _files_present(folder: Path, names: list[str]) -> bool:
    return all((folder / name).is_file() for name in names)


class _LocalSVHN(datasets.SVHN):  # type: ignore[misc]  # torchvision ships no type hints
    """torchvision's SVHN reader, checking that the split's .mat file exists instead of its md5."""

    def _check_integrity(self) -> bool:
        return _files_present(Path(self.root), [self.filename])


@dataclass(frozen=True)
class _TorchvisionSet:
    """Where a torchvision dataset keeps its files and how to read and fetch them."""

    folder: str  # under root; "" when the files lie directly in root
    files: dict[str, tuple[str, ...]]  # per split, every file torchvision opens
    expected: str  # the files in words, for messages
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    read: Callable[[Path, str], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]
    download: Callable[[Path, str], None]


def _read_cifar(
    cls: type[Any],
) -> Callable[[Path, str], tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    def read(root: Path, split: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        dataset = cls(str(root), train=split == "train")
        # torchvision keeps CIFAR as (N, H, W, C); ImageSet is (N, C, H, W).
        return dataset.data.transpose(0, 3, 1, 2), np.asarray(dataset.targets)

    return read


def _download_cifar(cls: type[Any]) -> Callable[[Path, str], None]:
    def download(root: Path, split: str) -> None:
        tv_utils.download_and_extract_archive(
            cls.url, str(root), filename=cls.filename, md5=cls.tgz_md5
        )

    return download


def _read_svhn(root: Path, split: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    # torchvision already returns (N, C, H, W) and maps SVHN's label 10 to the digit 0.
    dataset = _LocalSVHN(str(root), split=split, download=False)
    return dataset.data, dataset.labels


def _download_svhn(root: Path, split: str) -> None:
    url, filename, md5 = datasets.SVHN.split_list[split]
    tv_utils.download_url(url, str(root), filename, md5)


def _cifar_files(cls: type[Any]) -> dict[str, tuple[str, ...]]:
    meta = cls.meta["filename"]
    return {
        "train": (*(n for n, _ in cls.train_list), meta),
        "test": (*(n for n, _ in cls.test_list), meta),
    }


_TORCHVISION_SETS: dict[str, _TorchvisionSet] = {
    "cifar10": _TorchvisionSet(
        folder=datasets.CIFAR10.base_folder,
        files=_cifar_files(datasets.CIFAR10),
        expected="data_batch_1..5, test_batch and batches.meta",
        num_classes=10,
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2470, 0.2435, 0.2616),
        read=_read_cifar(SafeCIFAR10),
        download=_download_cifar(datasets.CIFAR10),
    ),
    "cifar100": _TorchvisionSet(
        folder=datasets.CIFAR100.base_folder,
        files=_cifar_files(datasets.CIFAR100),
        expected="train, test and meta",
        num_classes=100,
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        read=_read_cifar(SafeCIFAR100),
        download=_download_cifar(datasets.CIFAR100),
    ),
    "svhn": _TorchvisionSet(
        folder="",
        files={split: (datasets.SVHN.split_list[split][1],) for split in SPLITS},
        expected="the official SVHN file",
        num_classes=10,
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        read=_read_svhn,
        download=_download_svhn,
    ),
}

_FIX = "set data_root to the folder that holds it, or download=true on a machine with internet"


def _load_torchvision(
    name: str, split: str, root: Path, download: bool, image_size: int | None
) -> ImageSet:
    spec = _TORCHVISION_SETS[name]
    folder = root / spec.folder
    needed = spec.files[split]
    if download and not _files_present(folder, list(needed)):
        try:
            spec.download(root, split)
        except (OSError, RuntimeError, ValueError) as exc:
            raise DatasetError(
                f"dataset {name!r}: download into {root} failed ({type(exc).__name__}: {exc}); "
                "check the machine's internet access, or copy the files there by hand"
            ) from exc
    _check_present(name, root, folder, spec, needed)
    try:
        data, targets = spec.read(root, split)
    except ImportError as exc:
        raise DatasetError(
            f"dataset {name!r}: reading {folder / needed[0]} needs a package that is not "
            f"installed ({exc}); install scipy (torchvision reads .mat files with it)"
        ) from exc
    except BatchError as exc:
        raise DatasetError(_unreadable_message(name, exc.path, exc.reason)) from None
    except Exception as exc:  # any parse failure of a file in the wrong format lands here
        where = folder / needed[0] if len(needed) == 1 else folder
        reason = f"{type(exc).__name__}: {exc}"
        raise DatasetError(_unreadable_message(name, where, reason)) from exc
    if data.dtype != np.uint8 or data.ndim != 4:
        raise DatasetError(
            f"dataset {name!r}: files under {folder} hold {data.dtype} pixels of shape "
            f"{data.shape}; expected uint8 images in the official format ({spec.expected})"
        )
    images = torch.from_numpy(np.ascontiguousarray(data))
    labels = torch.from_numpy(np.asarray(targets, dtype=np.int64).reshape(-1))
    if image_size is not None:
        images = _resize(images, image_size)
    return ImageSet(images, labels, spec.num_classes, spec.mean, spec.std, name)


def _check_present(
    name: str, root: Path, folder: Path, spec: _TorchvisionSet, needed: tuple[str, ...]
) -> None:
    if spec.folder and not folder.is_dir():
        raise DatasetError(
            f"dataset {name!r}: no {spec.folder}/ under {root} (expected {spec.expected}); {_FIX}"
        )
    missing = [n for n in needed if not (folder / n).is_file()]
    if missing:
        raise DatasetError(
            f"dataset {name!r}: no {', '.join(missing)} under {folder} "
            f"(expected {spec.expected}); {_FIX}"
        )


def _unreadable_message(name: str, where: Path, reason: str) -> str:
    return (
        f"dataset {name!r}: cannot read {where} ({reason}); expected the official file "
        "format; delete the damaged files and copy or download them again"
    )


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


def _load_digits(name: str, split: str, image_size: int | None) -> ImageSet:
    from sklearn.datasets import load_digits  # imported here: only this set needs scikit-learn

    bunch = load_digits()
    values = np.asarray(bunch.data, dtype=np.float64).reshape(-1, 1, 8, 8)
    targets = np.asarray(bunch.target, dtype=np.int64)
    # Pixels are counts 0..16 of an 8x8 grid of 4x4 blocks; spread them over 0..255.
    pixels = np.floor(values * 255.0 / 16.0 + 0.5).astype(np.uint8)
    classes = _DIGITS_IN_CLASSES if name == "digits" else _DIGITS_OOD_CLASSES
    in_set = np.isin(targets, classes)
    is_test = _digits_split(targets)

    def part(test: bool) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = in_set & (is_test == test)
        images = torch.from_numpy(pixels[chosen])
        if image_size is not None:
            images = _resize(images, image_size)
        labels = torch.from_numpy(targets[chosen] - classes[0])
        return images, labels

    train_images, train_labels = part(test=False)
    mean, std = _channel_stats(train_images)
    images, labels = (train_images, train_labels) if split == "train" else part(test=True)
    return ImageSet(images, labels, len(classes), mean, std, name)


# ---------------------------------------------------------------------------------------------
# ImageFolder pairs


def _load_imagefolder(name: str, split: str, root: Path, image_size: int | None) -> ImageSet:
    directory = dataset_path(name, root)
    assert directory is not None  # load_image_set sends only imagefolder: names here
    size = _IMAGEFOLDER_DEFAULT_SIZE if image_size is None else image_size
    train_images, train_labels, classes = _read_folder(name, directory, "train", size)
    mean, std = _channel_stats(train_images)
    if split == "train":
        return ImageSet(train_images, train_labels, len(classes), mean, std, name)
    images, labels, test_classes = _read_folder(name, directory, "test", size)
    if test_classes != classes:
        raise DatasetError(
            f"dataset {name!r}: {directory / 'test'} has class folders {test_classes} but "
            f"{directory / 'train'} has {classes}; expected the same class folders in both"
        )
    return ImageSet(images, labels, len(classes), mean, std, name)


def _read_folder(
    name: str, directory: Path, split: str, size: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    split_dir = directory / split
    expected = (
        "train/ and test/, each with one folder of images per class; set data_root or the "
        "imagefolder path to the folder that holds them"
    )
    if not split_dir.is_dir():
        raise DatasetError(f"dataset {name!r}: no {split}/ under {directory} (expected {expected})")
    to_tensor = transforms.Compose([transforms.Resize((size, size)), transforms.PILToTensor()])
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


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
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
