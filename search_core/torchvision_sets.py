"""CIFAR-10, CIFAR-100 and SVHN (section IV-A), parsed by torchvision's own dataset classes.

Split from :mod:`search_core.data`, which imports it only for these sets: torchvision costs
seconds to import, in every trial, and the embedded digits need none of it. CIFAR's pickled
batches are read through :mod:`search_core.cifar`, which runs nothing a file asks for; only
torchvision's md5 check of local files is replaced by an existence check, so files in the
official format but with other content (re-packed copies, test fixtures) load, while a
download stays md5-checked by torchvision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets
from torchvision.datasets import utils as tv_utils

from search_core.cifar import BatchError, SafeCIFAR10, SafeCIFAR100
from search_core.data import SPLITS, ImageSet, resize_images
from search_core.errors import DatasetError

__all__ = ["load_torchvision"]


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


def load_torchvision(
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
        images = resize_images(images, image_size)
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
