"""Dataset loading: files written here in the official on-disk formats, read back exactly.

CIFAR batches are pickled dicts with the keys torchvision reads (``data``: (N, 3072) uint8,
the R, G and B planes of each image row-major one after another; ``labels`` or
``fine_labels``), SVHN is a MATLAB file with ``X`` (32, 32, 3, N) and ``y`` (N, 1) where 10
means the digit 0, ImageFolder is PNG files written by PIL. The official CIFAR files were
pickled by Python 2 and torchvision unpickles them with ``encoding="latin1"``, which turns their
keys into ``str``; so the keys written here are ``"data"``, not ``b"data"``, in protocol 2.
"""

from __future__ import annotations

import os
import pickle
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from sklearn.datasets import load_digits
from torchvision import datasets

from search_core.cifar import BatchError, SafeCIFAR10, SafeCIFAR100, read_batch
from search_core.data import DATASET_NAMES, ImageSet, load_image_set, split_halves
from search_core.errors import ConfigError, DatasetError

CIFAR10_TRAIN_SIZES = (3, 2, 4, 1, 2)  # five batches of different sizes, to check their order


def _pickle(path: Path, obj: object) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def write_cifar10(root: Path, seed: int = 0, n_test: int = 3) -> dict[str, np.ndarray]:
    """Write cifar-10-batches-py/ under root; returns the raw rows and labels of both splits."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rows, labels = [], []
    for i, size in enumerate(CIFAR10_TRAIN_SIZES, start=1):
        data = rng.integers(0, 256, (size, 3072), dtype=np.uint8)
        target = rng.integers(0, 10, size).tolist()
        _pickle(
            folder / f"data_batch_{i}",
            {
                "batch_label": f"batch {i}",
                "data": data,
                "labels": target,
                "filenames": ["x.png"] * size,
            },
        )
        rows.append(data)
        labels.extend(target)
    test_rows = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    test_labels = rng.integers(0, 10, n_test).tolist()
    _pickle(
        folder / "test_batch",
        {
            "batch_label": "test",
            "data": test_rows,
            "labels": test_labels,
            "filenames": ["x.png"] * n_test,
        },
    )
    _pickle(
        folder / "batches.meta",
        {
            "label_names": [f"class{k}" for k in range(10)],
            "num_cases_per_batch": 10000,
            "num_vis": 3072,
        },
    )
    return {
        "train_rows": np.concatenate(rows),
        "train_labels": np.array(labels),
        "test_rows": test_rows,
        "test_labels": np.array(test_labels),
    }


def write_cifar100(root: Path, n_train: int = 6, n_test: int = 4) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        fine = rng.integers(0, 100, n)
        fine[0] = 99  # the largest label must survive
        _pickle(
            folder / split,
            {
                "filenames": ["x.png"] * n,
                "batch_label": split,
                "fine_labels": fine.tolist(),
                "coarse_labels": (fine // 5).tolist(),
                "data": data,
            },
        )
        out[f"{split}_rows"], out[f"{split}_labels"] = data, fine
    _pickle(
        folder / "meta",
        {
            "fine_label_names": [f"f{k}" for k in range(100)],
            "coarse_label_names": [f"c{k}" for k in range(20)],
        },
    )
    return out


def write_svhn(root: Path, split: str, n: int = 7, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8)
    y = rng.integers(1, 11, (n, 1)).astype(np.uint8)
    y[0, 0] = 10  # SVHN's digit 0
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(root / f"{split}_32x32.mat", {"X": X, "y": y})
    return X, y


# ---------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100


def test_cifar10_round_trips_every_pixel_and_label(tmp_path: Path) -> None:
    raw = write_cifar10(tmp_path)
    train = load_image_set("cifar10", "train", root=tmp_path)
    test = load_image_set("cifar10", "test", root=tmp_path)

    assert train.images.shape == (sum(CIFAR10_TRAIN_SIZES), 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    # One row is the R plane, then G, then B, each 32 rows of 32 pixels.
    for set_, rows, labels in (
        (train, raw["train_rows"], raw["train_labels"]),
        (test, raw["test_rows"], raw["test_labels"]),
    ):
        for i in range(len(rows)):
            for c in range(3):
                for h in (0, 7, 31):
                    for w in (0, 19, 31):
                        assert set_.images[i, c, h, w] == rows[i, c * 1024 + h * 32 + w]
        assert torch.equal(set_.images, torch.from_numpy(rows.reshape(-1, 3, 32, 32)))
        assert set_.labels.tolist() == labels.tolist()
    assert train.num_classes == 10 and train.name == "cifar10"
    assert train.in_channels == 3 and train.image_size == 32 and len(test) == 3
    assert train.mean == (0.4914, 0.4822, 0.4465) and train.std == (0.2470, 0.2435, 0.2616)


def test_cifar10_known_image_bytes(tmp_path: Path) -> None:
    raw = write_cifar10(tmp_path)
    rows = raw["test_rows"]
    rows[1] = 0
    rows[1, 0 * 1024 + 1 * 32 + 2] = 200  # red, row 1, column 2
    rows[1, 1 * 1024 + 5 * 32 + 7] = 100  # green, row 5, column 7
    rows[1, 2 * 1024 + 31 * 32 + 0] = 50  # blue, row 31, column 0
    folder = tmp_path / "cifar-10-batches-py"
    _pickle(folder / "test_batch", {"data": rows, "labels": raw["test_labels"].tolist()})

    image = load_image_set("cifar10", "test", root=tmp_path).images[1]
    expected = torch.zeros(3, 32, 32, dtype=torch.uint8)
    expected[0, 1, 2], expected[1, 5, 7], expected[2, 31, 0] = 200, 100, 50
    assert torch.equal(image, expected)


def test_cifar100_reads_fine_labels(tmp_path: Path) -> None:
    raw = write_cifar100(tmp_path)
    for split in ("train", "test"):
        loaded = load_image_set("cifar100", split, root=str(tmp_path))
        rows = raw[f"{split}_rows"]
        assert torch.equal(loaded.images, torch.from_numpy(rows.reshape(-1, 3, 32, 32)))
        assert loaded.images[0, 2, 3, 4] == rows[0, 2 * 1024 + 3 * 32 + 4]
        assert loaded.labels.tolist() == raw[f"{split}_labels"].tolist()
        assert loaded.num_classes == 100
        assert loaded.mean == (0.5071, 0.4865, 0.4409)


def test_cifar_image_size_resizes(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    loaded = load_image_set("cifar10", "test", root=tmp_path, image_size=16)
    assert loaded.images.shape == (3, 3, 16, 16) and loaded.images.dtype == torch.uint8
    same = load_image_set("cifar10", "test", root=tmp_path, image_size=32)
    assert same.images.shape == (3, 3, 32, 32)


def test_missing_cifar_folder_names_dataset_path_and_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_image_set("cifar10", "train", root=tmp_path)
    message = str(info.value)
    assert "'cifar10'" in message and str(tmp_path.resolve()) in message
    assert "cifar-10-batches-py/" in message and "data_batch_1..5" in message
    assert "download=true" in message


def test_missing_cifar_file_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3") as info:
        load_image_set("cifar10", "train", root=tmp_path)
    assert "'cifar10'" in str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in str(info.value)
    # The test split does not need the training batches.
    assert len(load_image_set("cifar10", "test", root=tmp_path)) == 3


def test_missing_cifar_meta_is_named(tmp_path: Path) -> None:
    write_cifar100(tmp_path)
    (tmp_path / "cifar-100-python" / "meta").unlink()
    with pytest.raises(DatasetError, match="no meta under") as info:
        load_image_set("cifar100", "test", root=tmp_path)
    assert "'cifar100'" in str(info.value)


def test_corrupt_cifar_batch_is_named(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_4"
    bad.write_bytes(b"this is not a pickle")
    with pytest.raises(DatasetError) as info:
        load_image_set("cifar10", "train", root=tmp_path)
    assert "'cifar10'" in str(info.value) and str(bad) in str(info.value)


def test_cifar_batch_without_labels_is_reported(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    _pickle(folder / "test_batch", {"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(DatasetError, match="'labels'") as info:
        load_image_set("cifar10", "test", root=tmp_path)
    assert "'cifar10'" in str(info.value) and str(folder / "test_batch") in str(info.value)


def test_cifar_labels_out_of_range_are_rejected(tmp_path: Path) -> None:
    write_cifar10(tmp_path)
    _pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch",
        {"data": np.zeros((2, 3072), np.uint8), "labels": [3, 10]},
    )
    with pytest.raises(DatasetError, match=r"'cifar10'.*0\.\.9"):
        load_image_set("cifar10", "test", root=tmp_path)


class _RunsACommand:
    """A pickle whose loading would run a shell command (what a hostile batch file does)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (self.command,))


@pytest.mark.parametrize("where", ["whole-file", "inside-data", "meta"])
def test_a_batch_that_would_run_code_is_refused_and_nothing_runs(
    tmp_path: Path, where: str
) -> None:
    write_cifar10(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    marker = tmp_path / "ran"
    evil = _RunsACommand(f"touch {marker}")
    if where == "whole-file":
        target, content = folder / "data_batch_2", evil
    elif where == "inside-data":
        target, content = folder / "data_batch_2", {"data": evil, "labels": [1]}
    else:
        target, content = folder / "batches.meta", {"label_names": [evil]}
    _pickle(target, content)
    with pytest.raises(DatasetError) as info:
        load_image_set("cifar10", "train", root=tmp_path)
    message = str(info.value)
    assert "\n" not in message and "'cifar10'" in message and str(target) in message
    assert f"refused to load {os.system.__module__}.system" in message
    assert "nothing in the file was run" in message
    assert not marker.exists()


class _TorchvisionCIFAR10(datasets.CIFAR10):  # type: ignore[misc]
    """torchvision's own reader (its pickle.load), only the md5 checks of the fixture skipped."""

    # check_integrity(path, None) only checks that the file exists.
    meta: ClassVar[dict[str, object]] = {**datasets.CIFAR10.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


class _TorchvisionCIFAR100(datasets.CIFAR100):  # type: ignore[misc]
    meta: ClassVar[dict[str, object]] = {**datasets.CIFAR100.meta, "md5": None}

    def _check_integrity(self) -> bool:
        return True


@pytest.mark.parametrize("train", [True, False])
def test_safe_cifar_reads_what_torchvisions_own_loader_reads(tmp_path: Path, train: bool) -> None:
    write_cifar10(tmp_path)
    write_cifar100(tmp_path)
    pairs = ((SafeCIFAR10, _TorchvisionCIFAR10), (SafeCIFAR100, _TorchvisionCIFAR100))
    for safe_class, reference_class in pairs:
        safe = safe_class(str(tmp_path), train=train)
        reference = reference_class(str(tmp_path), train=train, download=False)
        assert isinstance(safe, reference_class.__mro__[1])  # a torchvision dataset object
        assert safe.data.dtype == reference.data.dtype == np.uint8
        assert np.array_equal(safe.data, reference.data)
        assert safe.targets == reference.targets
        assert safe.classes == reference.classes
        assert safe.class_to_idx == reference.class_to_idx
        assert len(safe) == len(reference)
        image, label = safe[len(safe) - 1]
        ref_image, ref_label = reference[len(reference) - 1]
        assert label == ref_label and image.tobytes() == ref_image.tobytes()


def test_the_batch_unpickler_builds_plain_data_and_arrays_only(tmp_path: Path) -> None:
    path = tmp_path / "batch"
    plain = {"a": [1, 2.5, "x", b"\x00\xff"], "b": np.arange(6, dtype=np.int64).reshape(2, 3)}
    for protocol in (2, 4):
        path.write_bytes(pickle.dumps(plain, protocol=protocol))
        loaded = read_batch(path)
        assert loaded["a"] == plain["a"] and np.array_equal(loaded["b"], plain["b"])
    path.write_bytes(pickle.dumps(Counter("ab"), protocol=2))
    with pytest.raises(BatchError, match=r"refused to load collections\.Counter"):
        read_batch(path)


# ---------------------------------------------------------------------------------------------
# SVHN


def test_svhn_round_trips_and_maps_10_to_0(tmp_path: Path) -> None:
    X, y = write_svhn(tmp_path, "train")
    loaded = load_image_set("svhn", "train", root=tmp_path)
    assert loaded.images.shape == (7, 3, 32, 32)
    for i in range(7):
        for c in range(3):
            assert np.array_equal(loaded.images[i, c].numpy(), X[:, :, c, i])
    assert loaded.images[3, 1, 4, 9] == X[4, 9, 1, 3]  # (N, C, H, W) vs MATLAB's (H, W, C, N)
    assert loaded.labels.tolist() == (y[:, 0] % 10).tolist()
    assert loaded.labels[0] == 0
    assert loaded.num_classes == 10 and loaded.mean == (0.4377, 0.4438, 0.4728)


def test_svhn_missing_split_file_is_named(tmp_path: Path) -> None:
    write_svhn(tmp_path, "train")
    with pytest.raises(DatasetError) as info:
        load_image_set("svhn", "test", root=tmp_path)
    message = str(info.value)
    assert "'svhn'" in message and "test_32x32.mat" in message and str(tmp_path) in message


def test_corrupt_svhn_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "test_32x32.mat"
    bad.write_bytes(b"\x00" * 300)
    with pytest.raises(DatasetError) as info:
        load_image_set("svhn", "test", root=tmp_path)
    assert "'svhn'" in str(info.value) and str(bad) in str(info.value)


def test_svhn_file_without_images_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "train_32x32.mat"
    scipy.io.savemat(bad, {"y": np.ones((2, 1), np.uint8)})
    with pytest.raises(DatasetError) as info:
        load_image_set("svhn", "train", root=tmp_path)
    assert "'svhn'" in str(info.value) and str(bad) in str(info.value)


# ---------------------------------------------------------------------------------------------
# ImageFolder


def _write_png(path: Path, pixels: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path)


def write_folder(root: Path, seed: int = 3) -> dict[str, list[tuple[np.ndarray, int]]]:
    """Two classes, 32×32 RGB PNGs; returns (H, W, 3) pixels and label in ImageFolder order."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[np.ndarray, int]]] = {}
    for split, per_class in (("train", 3), ("test", 2)):
        out[split] = []
        for label, cls in enumerate(("ant", "bee")):  # sorted, as ImageFolder numbers them
            for k in range(per_class):
                pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                _write_png(root / split / cls / f"{k}.png", pixels)
                out[split].append((pixels, label))
    return out


def test_imagefolder_round_trips_pngs(tmp_path: Path) -> None:
    written = write_folder(tmp_path / "pets")
    for split in ("train", "test"):
        loaded = load_image_set("imagefolder:pets", split, root=tmp_path)
        assert loaded.images.shape == (len(written[split]), 3, 32, 32)
        for i, (pixels, label) in enumerate(written[split]):
            assert np.array_equal(loaded.images[i].permute(1, 2, 0).numpy(), pixels)
            assert loaded.labels[i] == label
        assert loaded.num_classes == 2
    train_pixels = np.stack([p for p, _ in written["train"]]).astype(np.float64) / 255
    expected_mean = train_pixels.mean(axis=(0, 1, 2))
    expected_std = train_pixels.std(axis=(0, 1, 2))
    test = load_image_set(f"imagefolder:{tmp_path / 'pets'}", "test", root="/nonexistent")
    np.testing.assert_allclose(test.mean, expected_mean, rtol=1e-9)
    np.testing.assert_allclose(test.std, expected_std, rtol=1e-9)


def test_imagefolder_converts_to_rgb_and_resizes(tmp_path: Path) -> None:
    write_folder(tmp_path / "pets")
    gray = np.arange(40 * 20, dtype=np.uint32).reshape(40, 20).astype(np.uint8)
    _write_png(tmp_path / "pets" / "train" / "bee" / "gray.png", gray, mode="L")
    loaded = load_image_set("imagefolder:pets", "train", root=tmp_path, image_size=16)
    assert loaded.images.shape == (7, 3, 16, 16) and loaded.image_size == 16
    gray_index = 6  # bee/0.png, bee/1.png, bee/2.png, bee/gray.png after the three ants
    image = loaded.images[gray_index]
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_imagefolder_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no train/ under") as info:
        load_image_set("imagefolder:nowhere", "train", root=tmp_path)
    assert "'imagefolder:nowhere'" in str(info.value)
    assert str(tmp_path / "nowhere") in str(info.value)

    (tmp_path / "empty" / "train" / "ant").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images found") as info:
        load_image_set("imagefolder:empty", "train", root=tmp_path)
    assert str(tmp_path / "empty" / "train") in str(info.value)

    write_folder(tmp_path / "broken")
    bad = tmp_path / "broken" / "train" / "ant" / "1.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError) as info:
        load_image_set("imagefolder:broken", "train", root=tmp_path)
    assert str(bad) in str(info.value)


def test_imagefolder_class_mismatch_between_splits(tmp_path: Path) -> None:
    write_folder(tmp_path / "pets")
    _write_png(tmp_path / "pets" / "test" / "cat" / "0.png", np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="same class folders"):
        load_image_set("imagefolder:pets", "test", root=tmp_path)


# ---------------------------------------------------------------------------------------------
# digits


def test_digits_are_read_from_the_shipped_file_as_load_digits_gives_them() -> None:
    import subprocess
    import sys

    from search_core.data import _digits_arrays

    values, targets = _digits_arrays()
    reference = load_digits()
    np.testing.assert_array_equal(values, reference.data)
    np.testing.assert_array_equal(targets, reference.target)
    assert values.dtype == np.float64 and targets.dtype == np.int64
    # A search on the digits imports neither scikit-learn nor torchvision (seconds each, in
    # every trial).
    probe = (
        "import sys; import search_core.search; from search_core.data import load_image_set; "
        "load_image_set('digits', 'train'); "
        "print([m for m in ('sklearn', 'torchvision') if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def test_digits_and_digits_ood_have_disjoint_classes() -> None:
    reference = load_digits()
    original = {}  # image bytes -> original digits (duplicates across classes would show here)
    for row, target in zip(reference.data, reference.target, strict=True):
        pixels = np.floor(row * 255 / 16 + 0.5).astype(np.uint8).tobytes()
        original.setdefault(pixels, set()).add(int(target))
    for name, first in (("digits", 0), ("digits-ood", 5)):
        for split in ("train", "test"):
            loaded = load_image_set(name, split)
            assert loaded.num_classes == 5 and set(loaded.labels.tolist()) == set(range(5))
            for image, label in zip(loaded.images, loaded.labels, strict=True):
                assert original[image.numpy().tobytes()] == {int(label) + first}


def test_digits_split_sizes_stratified_and_fixed() -> None:
    counts = np.bincount(load_digits().target)
    for name, classes in (("digits", range(5)), ("digits-ood", range(5, 10))):
        train, test = load_image_set(name, "train"), load_image_set(name, "test")
        assert len(train) + len(test) == counts[list(classes)].sum()
        test_counts = torch.bincount(test.labels, minlength=5).numpy()
        assert np.abs(test_counts - 0.2 * counts[list(classes)]).max() <= 0.5
        again = load_image_set(name, "test")
        assert torch.equal(test.images, again.images) and torch.equal(test.labels, again.labels)
        # Together the two splits are exactly the class set's images, each once.
        pixels = np.floor(load_digits().data * 255 / 16 + 0.5).astype(np.uint8)
        in_set = np.isin(load_digits().target, list(classes))
        whole = Counter(row.tobytes() for row in pixels[in_set])
        loaded = Counter(i.numpy().tobytes() for i in torch.cat((train.images, test.images)))
        assert loaded == whole


def test_digits_values_and_stats() -> None:
    train = load_image_set("digits", "train")
    test = load_image_set("digits", "test")
    assert train.images.shape[1:] == (1, 8, 8) and train.images.dtype == torch.uint8
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(torch.unique(train.images).tolist()) <= allowed
    assert int(train.images.min()) == 0 and int(train.images.max()) == 255
    pixels = train.images.numpy().astype(np.float64) / 255
    np.testing.assert_allclose(train.mean, [pixels.mean()], rtol=1e-9)
    np.testing.assert_allclose(train.std, [pixels.std()], rtol=1e-9)
    assert test.mean == train.mean and test.std == train.std  # the train split's constants
    bigger = load_image_set("digits", "train", image_size=32)
    assert bigger.images.shape[1:] == (1, 32, 32) and bigger.image_size == 32


# ---------------------------------------------------------------------------------------------
# names, splits, ImageSet, split_halves


def test_unknown_name_lists_valid_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as info:
        load_image_set("cifar11", "train", root=tmp_path)
    message = str(info.value)
    assert "'cifar11'" in message and str(tmp_path) in message
    for name in DATASET_NAMES:
        assert repr(name) in message
    assert "imagefolder:<dir>" in message


def test_bad_split_and_image_size_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"split.*'val'"):
        load_image_set("digits", "val")
    with pytest.raises(ConfigError, match="image_size"):
        load_image_set("digits", "train", image_size=0)


def test_image_set_rejects_inconsistent_fields() -> None:
    images = torch.zeros(2, 1, 4, 4, dtype=torch.uint8)
    labels = torch.tensor([0, 1])
    ok = ImageSet(images, labels, 2, (0.5,), (0.2,), "toy")
    assert ok.in_channels == 1 and ok.image_size == 4 and len(ok) == 2
    with pytest.raises(DatasetError, match="uint8"):
        ImageSet(images.float(), labels, 2, (0.5,), (0.2,), "toy")
    with pytest.raises(DatasetError, match="labels"):
        ImageSet(images, labels.int(), 2, (0.5,), (0.2,), "toy")
    with pytest.raises(DatasetError, match="one value per channel"):
        ImageSet(images, labels, 2, (0.5, 0.5), (0.2, 0.2), "toy")
    with pytest.raises(DatasetError, match="square"):
        ImageSet(torch.zeros(2, 1, 4, 5, dtype=torch.uint8), labels, 2, (0.5,), (0.2,), "toy")


def test_split_halves_is_darts_split() -> None:
    weights, arch = split_halves(10, 0.5)
    assert weights.tolist() == [0, 1, 2, 3, 4] and arch.tolist() == [5, 6, 7, 8, 9]
    weights, arch = split_halves(7, 0.3)  # floor(2.1) = 2
    assert weights.tolist() == [0, 1] and arch.tolist() == [2, 3, 4, 5, 6]
    assert weights.dtype == torch.int64


@pytest.mark.parametrize("portion", [0.0, 1.0, -0.1, 1.5])
def test_split_halves_rejects_portion_outside_unit_interval(portion: float) -> None:
    with pytest.raises(ConfigError, match="train_portion"):
        split_halves(10, portion)


def test_split_halves_rejects_an_empty_half() -> None:
    with pytest.raises(ConfigError, match="train_portion"):
        split_halves(1, 0.5)


def test_the_sets_sent_to_torchvision_are_the_ones_it_reads() -> None:
    from search_core.data import TORCHVISION_NAMES
    from search_core.torchvision_sets import _TORCHVISION_SETS

    assert set(TORCHVISION_NAMES) == set(_TORCHVISION_SETS)
    assert set(TORCHVISION_NAMES) <= set(DATASET_NAMES)
