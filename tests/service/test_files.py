"""service/files.py on a real full disk (a 1 MiB tmpfs, ``small_fs``)."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import pytest

from service.files import write_json_atomically, write_text_atomically


def test_a_write_on_a_full_disk_names_the_file_and_leaves_nothing(small_fs: Any) -> None:
    root: Path = small_fs.root
    path = root / "sweep.json"
    write_json_atomically(path, {"status": "running"})
    small_fs.fill(free=0)
    with pytest.raises(OSError) as info:
        write_text_atomically(path, "x" * 200_000)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert '"running"' in path.read_text(encoding="utf-8")  # the old content, whole
    assert small_fs.temporary_files() == []
    assert sorted(p.name for p in root.iterdir()) == ["filler", "sweep.json"]
