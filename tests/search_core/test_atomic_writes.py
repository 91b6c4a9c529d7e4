"""The search's checkpoint and text writes on a real full disk (a 1 MiB tmpfs, ``small_fs``):
an OSError that names the file, the old content kept whole, no temporary file left."""

from __future__ import annotations

import errno
import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from search_core.search import load_checkpoint, save_atomic, write_atomic


def test_a_checkpoint_on_a_full_disk_fails_cleanly(small_fs: Any) -> None:
    root: Path = small_fs.root
    path = root / "checkpoint.pt"
    save_atomic({"w": torch.arange(4.0)}, path)
    small_fs.fill(free=0)
    with pytest.raises(OSError) as info:
        save_atomic({"w": torch.zeros(100_000)}, path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(4.0))  # the old one, whole
    assert small_fs.temporary_files() == []
    with pytest.raises(OSError) as info:
        write_atomic(root / "metrics.jsonl", "x" * 100_000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(root / "metrics.jsonl")
    assert not (root / "metrics.jsonl").exists()
    assert small_fs.temporary_files() == []


def test_concurrent_writers_never_share_a_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    texts = [f"{i}\n" * 20_000 for i in range(8)]
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            for _ in range(5):
                write_atomic(path, text)
        except BaseException as exc:  # collected: a thread's error must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert path.read_text(encoding="utf-8") in texts  # one writer's whole text
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
