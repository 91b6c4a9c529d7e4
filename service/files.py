"""Writing output files whole: a reader sees the old file or the new one, never a part."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def replace_atomically(path: Path, write: Callable[[Path], object], private: bool = False) -> None:
    """Call ``write`` on a temporary path beside ``path``, then rename it over ``path``.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    the owner-only mode of a temporary file, so reports and exports can be shared; a
    ``private`` file (one that holds a secret) is the owner's only (0600).
    """
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        tmp = Path(handle.name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o600 if private else 0o666 & ~umask)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str, private: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole, creating its directory (0600 if ``private``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), private)


def write_json_atomically(path: Path, data: Mapping[str, Any], private: bool = False) -> None:
    """Write ``data`` as indented JSON with sorted keys to ``path`` whole (0600 if ``private``)."""
    write_text_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n", private)
