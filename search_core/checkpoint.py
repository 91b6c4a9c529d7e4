"""Checkpoint files of searches and evaluations: written whole, read safely, RNGs included.

A checkpoint is a dict of states serialised with ``torch.save`` into a temporary file of its
writer alone that then replaces the old one (removed on failure), so a kill leaves either the
old or the whole new file; it is read with ``weights_only=True`` (tensors and plain
containers, never code). Every random generator a run
draws from is saved in it, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from search_core.errors import CheckpointError


def _replace_whole(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Call ``write`` on a temporary file of this writer alone beside ``path``, then rename it
    over ``path``, so that ``path`` holds either the old or the whole new content.

    The temporary file is removed when anything fails, and an OSError (a full disk) names
    ``path``. The file gets the permissions a plain ``open`` would give it.
    """
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` so that ``path`` holds either the old or the whole new checkpoint.

    torch serialises into memory and the bytes are written here, so a full disk is the
    OSError it is: torch's own writer reports a failed write as a RuntimeError that hides it.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _replace_whole(path, lambda handle: handle.write(buffer.getbuffer()))


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) so that ``path`` holds either the old or the whole new content."""
    _replace_whole(path, lambda handle: handle.write(text.encode("utf-8")))


def generator_states(
    sample_gen: torch.Generator, device_gen: torch.Generator, device: torch.device
) -> dict[str, torch.Tensor]:
    """Every random state a run draws from, for its checkpoint."""
    states = {
        "sample_gen": sample_gen.get_state(),
        "device_gen": device_gen.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if device.type == "cuda":  # drop-path and dropout draw from the device's default generator
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def restore_generators(
    state: dict[str, Any],
    sample_gen: torch.Generator,
    device_gen: torch.Generator,
    device: torch.device,
) -> None:
    """Put back what :func:`generator_states` saved (KeyError if a state is missing)."""
    sample_gen.set_state(state["sample_gen"])
    device_gen.set_state(state["device_gen"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"], device)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only``); any damage is one clear error."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: corrupt or unreadable checkpoint ({type(exc).__name__}); "
            "delete it to start over, or use another --out"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: not a checkpoint (expected a dict of states)")
    return state
