"""What the interop modules share: our checkpoints by path, and the input shape a spec implies."""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robact_bench.models import MODELS, ModelSpec
from robact_bench.models.checkpoint import checkpoint_paths, load_checkpoint

PathLike = str | os.PathLike[str]


def checkpoint_stem(path: PathLike) -> Path:
    """The checkpoint stem for a run folder (``<dir>/model``), a stem, or a ``.json``/``.safetensors`` path."""
    p = Path(path)
    return p / "model" if p.is_dir() else p


def load_ours(path: PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Load one of our checkpoints (safetensors + JSON; nothing is unpickled).

    Args:
        path: A run folder holding ``model.json`` + ``model.safetensors``, or the stem / either
            file of a checkpoint.
        device: Where to put the model.

    Returns:
        ``(model, spec, metadata)``; the model is in ``eval()`` mode.

    Raises:
        ValueError: no checkpoint there, or one that does not fit its architecture.

    """
    stem = checkpoint_stem(path)
    weights, meta = checkpoint_paths(stem)
    if not meta.is_file():
        raise ValueError(f"{path}: no robact_bench checkpoint there (expected {meta.name} and {weights.name})")
    return load_checkpoint(stem, device=device)


def spec_input_shape(spec: ModelSpec) -> tuple[int, int, int] | None:
    """``(in_chans, img_size, img_size)`` of a spec: its ``arch_kwargs``, else the architecture's defaults.

    Returns ``None`` when the architecture takes neither argument.
    """
    params = inspect.signature(MODELS.get(spec.arch)).parameters
    shape = []
    for key in ("in_chans", "img_size"):
        if key in spec.arch_kwargs:
            shape.append(int(spec.arch_kwargs[key]))
        elif key in params and isinstance(params[key].default, int):
            shape.append(int(params[key].default))
        else:
            return None
    return shape[0], shape[1], shape[1]
