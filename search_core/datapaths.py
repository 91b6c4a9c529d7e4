"""Which folder each dataset name reads: the one place that maps dataset names to paths.

CIFAR-10, CIFAR-100 and SVHN read (and download into) a folder under ``data_root``;
``imagefolder:<dir>`` reads ``<dir>``, taken under ``data_root`` when relative; ``digits`` and
``digits-ood`` come with scikit-learn and read nothing. :mod:`search_core.data` loads from these
folders, and the service checks them against its allowed data roots without importing torch.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["FILE_FOLDERS", "IMAGEFOLDER_PREFIX", "dataset_path", "reads_data_root"]

IMAGEFOLDER_PREFIX = "imagefolder:"
# The folder under data_root of each dataset stored in files ("": data_root itself).
FILE_FOLDERS: dict[str, str] = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "svhn": "",
}


def reads_data_root(name: str) -> bool:
    """Whether ``name`` is a dataset whose folder is ``data_root`` (not named by itself)."""
    return name in FILE_FOLDERS


def dataset_path(name: str, root: str | Path) -> Path | None:
    """The folder that loading ``name`` reads (and a download writes), ``~`` expanded but
    not resolved; None for a dataset that reads no file (or an unknown name)."""
    base = Path(root).expanduser()
    if name in FILE_FOLDERS:
        return base / FILE_FOLDERS[name]
    if name.startswith(IMAGEFOLDER_PREFIX) and name != IMAGEFOLDER_PREFIX:
        return base / Path(name.removeprefix(IMAGEFOLDER_PREFIX)).expanduser()
    return None
