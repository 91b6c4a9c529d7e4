"""CIFAR-10 and CIFAR-100's python batches, read without running anything the files ask for.

The official batches are Python pickles, and a pickle may name any importable callable (a
``__reduce__`` returning ``os.system`` is enough), so unpickling a batch from a directory
someone else can write runs their code. A batch holds only dicts, lists, strings, bytes,
numbers and numpy arrays: :class:`BatchUnpickler` builds those and refuses every global but
the three a numpy array needs (``_reconstruct``, ``ndarray``, ``dtype``, under numpy 1's and
numpy 2's module names) and ``_codecs.encode`` restricted to latin-1 (how Python 3 writes
bytes at protocol 2), so a refused file stops the load before any of it runs.

:class:`SafeCIFAR10` and :class:`SafeCIFAR100` are torchvision's dataset classes (same
attributes: ``data`` as (N, 32, 32, 3) uint8, ``targets``, ``classes``, ``class_to_idx``)
filled from batches read this way; torchvision's own ``pickle.load`` is never called. They
check that the split's files exist, not their md5s, so re-packed copies and test fixtures load.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from torchvision import datasets
from torchvision.datasets.vision import VisionDataset

__all__ = ["BatchError", "BatchUnpickler", "SafeCIFAR10", "SafeCIFAR100", "read_batch"]


def _latin1_bytes(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol 2 uses it for ``bytes``: latin-1 only, nothing else."""
    if encoding != "latin1" or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(
            f"refused _codecs.encode with encoding {encoding!r}; only latin1 text is read"
        )
    return text.encode("latin1")


# The function numpy's arrays pickle through, found without naming numpy's private modules.
_RECONSTRUCT = np.zeros(0).__reduce__()[0]
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 1 (the official files)
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,  # numpy 2
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_bytes,
}
_HELD = "dicts, lists, strings, bytes, numbers and numpy arrays"


class BatchError(Exception):
    """A CIFAR file that cannot be read: its ``path`` and the ``reason`` in words."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class BatchUnpickler(pickle.Unpickler):
    """An unpickler that builds plain data and numpy arrays and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: a CIFAR batch holds only {_HELD}, so "
                "nothing else is loaded and nothing in the file was run"
            ) from None


def read_batch(path: Path) -> Any:
    """Unpickle one CIFAR file with :class:`BatchUnpickler` (Python 2's ``str`` as latin-1);
    BatchError names the file and why it was refused or could not be read."""
    try:
        with path.open("rb") as handle:
            return BatchUnpickler(handle, encoding="latin1").load()
    except OSError:
        raise
    except Exception as exc:  # whatever a damaged or hostile pickle made the unpickler raise
        raise BatchError(path, f"{type(exc).__name__}: {exc}") from None


def _images_batch(path: Path) -> tuple[np.ndarray[Any, Any], list[int]]:
    entry = read_batch(path)
    labels = None
    if isinstance(entry, dict):
        labels = entry.get("labels", entry.get("fine_labels"))
    if labels is None or "data" not in entry:
        found = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        wanted = "'data' and 'labels' or 'fine_labels'"
        raise BatchError(path, f"expected a pickled dict with {wanted}, found {found}")
    data = entry["data"]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        shape = getattr(data, "shape", type(data).__name__)
        raise BatchError(path, f"expected 'data' as an (N, 3072) array, found {shape}")
    if not isinstance(labels, list | np.ndarray) or len(labels) != len(data):
        raise BatchError(path, f"expected one label per image ({len(data)})")
    return data, [int(label) for label in labels]


def _class_names(path: Path, key: str) -> list[str]:
    entry = read_batch(path)
    names = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(names, list):
        found = sorted(map(str, entry)) if isinstance(entry, dict) else type(entry).__name__
        raise BatchError(path, f"expected a pickled dict with {key!r}, found {found}")
    return [str(name) for name in names]


class _SafeCIFAR:
    """What both safe classes share: filling torchvision's attributes from safe reads."""

    base_folder: ClassVar[str]
    train_list: ClassVar[list[list[str]]]
    test_list: ClassVar[list[list[str]]]
    meta: ClassVar[dict[str, Any]]

    def _fill(self, root: str, train: bool) -> None:
        folder = Path(root, self.base_folder)
        listed = self.train_list if train else self.test_list
        batches = [_images_batch(folder / name) for name, _md5 in listed]
        rows = np.vstack([data for data, _labels in batches])
        # A row is the R, G and B planes one after another; torchvision keeps (N, H, W, C).
        self.data = rows.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        self.targets = [label for _data, labels in batches for label in labels]
        self.classes = _class_names(folder / self.meta["filename"], self.meta["key"])
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}


class SafeCIFAR10(_SafeCIFAR, datasets.CIFAR10):  # type: ignore[misc]  # torchvision: no hints
    """torchvision's CIFAR-10 dataset, read by :func:`read_batch`, files checked to exist."""

    meta: ClassVar[dict[str, Any]] = {**datasets.CIFAR10.meta, "md5": None}

    def __init__(self, root: str, train: bool = True) -> None:
        VisionDataset.__init__(self, root)
        self.train = train
        self._fill(root, train)


class SafeCIFAR100(_SafeCIFAR, datasets.CIFAR100):  # type: ignore[misc]  # torchvision: no hints
    """torchvision's CIFAR-100 dataset (fine labels), read by :func:`read_batch`."""

    meta: ClassVar[dict[str, Any]] = {**datasets.CIFAR100.meta, "md5": None}

    def __init__(self, root: str, train: bool = True) -> None:
        VisionDataset.__init__(self, root)
        self.train = train
        self._fill(root, train)
