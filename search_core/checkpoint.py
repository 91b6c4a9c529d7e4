"""Checkpoint files of searches and evaluations: written whole, read safely, RNGs included.

A checkpoint is a dict of states written with ``torch.save`` to a temporary file that then
replaces the old one, so a kill leaves either the old or the whole new file; it is read with
``weights_only=True`` (tensors and plain containers, never code). Every random generator a run
draws from is saved in it, so a resumed run draws what an uninterrupted one would.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from search_core.errors import CheckpointError


def save_atomic(state: dict[str, Any], path: Path) -> None:
    """``torch.save`` so that ``path`` holds either the old or the whole new checkpoint."""
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` so that ``path`` holds either the old or the whole new content."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


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
