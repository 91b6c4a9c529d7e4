"""Writing output files whole: a reader sees the old file or the new one, never a part; and a
set of files as one directory, swapped in whole (:func:`replace_directory`)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any


def _shared_mode(path: Path, mode: int) -> None:
    umask = os.umask(0)
    os.umask(umask)
    path.chmod(mode & ~umask)


def replace_atomically(path: Path, write: Callable[[Path], object], private: bool = False) -> None:
    """Call ``write`` on a temporary path beside ``path``, then rename it over ``path``.

    The file gets the permissions a plain ``open`` would give it (0666 less the umask), not
    the owner-only mode of a temporary file, so reports and exports can be shared; a
    ``private`` file (one that holds a secret) is the owner's only (0600). The temporary
    file's name is unique to this writer, so two processes writing the same file never share
    one; it is removed when anything fails, and an OSError (a full disk) names ``path``, not
    the temporary file.
    """
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as handle:
        tmp = Path(handle.name)
    try:
        write(tmp)
        if private:
            tmp.chmod(0o600)
        else:
            _shared_mode(tmp, 0o666)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
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


def replace_directory(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write`` on a new temporary directory beside ``path``, then swap it in for
    ``path`` by renames: the old directory is renamed away, the new one to ``path``, the old
    one deleted. A reader sees the whole old set, no directory for an instant, or the whole
    new set, never a mix of the two. Whatever ``path`` held goes: callers check that it held
    only their own files.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    new = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.new-"))
    try:
        write(new)
        _shared_mode(new, 0o777)
        if not path.exists():
            new.rename(path)
            return
        old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
        path.rename(old / path.name)
        new.rename(path)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
