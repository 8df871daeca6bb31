"""Checkpoints: weights in safetensors, everything else in a JSON file beside them.

``<stem>.safetensors`` holds the tensors of ``model.state_dict()``; ``<stem>.json`` holds the
:class:`~robact_bench.models.ModelSpec` (architecture and activation *names*), the dataset,
recipe, seed and package versions. Loading rebuilds the architecture from our registry by name
and copies tensors into it; nothing is ever unpickled, so a checkpoint cannot run code.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from robact_bench.fileio import atomic_write_bytes, atomic_write_json, package_versions, read_json
from robact_bench.models import ModelSpec

FORMAT = "robact_bench.checkpoint/1"

__all__ = ["FORMAT", "check_state_dict", "checkpoint_paths", "load_checkpoint", "save_checkpoint", "weights_sha256"]


def weights_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a checkpoint's weights file (a stem, ``.safetensors`` or ``.json`` path)."""
    weights, _ = checkpoint_paths(path)
    h = hashlib.sha256()
    with open(weights, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Return ``(weights, metadata)`` paths for a stem, a ``.safetensors`` or a ``.json`` path."""
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    spec: ModelSpec,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Save ``model``'s weights (safetensors) and ``spec`` + ``metadata`` (JSON), atomically.

    The JSON file records the weights file's SHA-256 (``weights_sha256``), which
    :func:`load_checkpoint` checks, so a published ``model.json`` names exactly one weights file.

    Args:
        path: Stem (``runs/x/model``) or ``.safetensors`` path.
        model: The model; its state dict must be fully initialized.
        spec: How to rebuild it.
        metadata: Extra JSON-serializable information (dataset, recipe, seed, history...).

    Returns:
        The weights path.

    """
    weights, meta_path = checkpoint_paths(path)
    state = model.state_dict()
    lazy = [k for k, v in state.items() if isinstance(v, nn.parameter.UninitializedTensorMixin)]
    if lazy:
        raise ValueError(f"cannot save uninitialized (lazy) tensors {lazy}: run one forward pass first")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    blob = save(tensors, metadata={"format": FORMAT})
    atomic_write_bytes(weights, blob)
    atomic_write_json(
        meta_path,
        {
            "format": FORMAT,
            "weights": weights.name,
            "weights_sha256": hashlib.sha256(blob).hexdigest(),
            "spec": spec.to_dict(),
            "versions": package_versions(),
            "metadata": metadata or {},
        },
    )
    return weights


def load_checkpoint(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """Rebuild a model from a checkpoint written by :func:`save_checkpoint`.

    Args:
        path: Stem, ``.safetensors`` or ``.json`` path.
        device: Where to put the model.

    Returns:
        ``(model, spec, metadata)``; the model is in ``eval()`` mode.

    Raises:
        ValueError: missing files, a weights file whose SHA-256 is not the one its JSON file
            records, a weights file that is not safetensors (pickle checkpoints are refused),
            or tensors whose names, shapes or dtypes do not fit the architecture.

    """
    weights, meta_path = checkpoint_paths(path)
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{meta_path}: not a robact_bench checkpoint (expected format {FORMAT!r})")
    spec = ModelSpec.from_dict(meta.get("spec", {}))
    if not weights.is_file():
        raise ValueError(f"{weights}: weights file not found")
    try:
        tensors = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise ValueError(
            f"{weights}: not a safetensors file ({exc}); pickle checkpoints (.pt/.pth) are "
            "refused because loading them can run code"
        ) from None
    recorded = meta.get("weights_sha256")
    if recorded is not None and recorded != (actual := weights_sha256(weights)):
        raise ValueError(f"{weights}: SHA-256 {actual} is not the {recorded} that {meta_path.name} records")
    model = spec.build()
    check_state_dict(tensors, model, spec, source=str(weights))
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), spec, meta.get("metadata", {})


def _listed(names: list[str], limit: int = 5) -> str:
    return f"{names[:limit]}{'...' if len(names) > limit else ''}"


def check_state_dict(tensors: Mapping[Any, Any], model: nn.Module, spec: ModelSpec, *, source: str) -> None:
    """Check that ``tensors`` fit ``model``'s state dict exactly: names, shapes, dtypes, plain tensors.

    Used by :func:`load_checkpoint` and by :func:`robact_bench.models.convert.convert_state_dict`,
    so a checkpoint of ours and a converted state dict pass the same checks.

    Args:
        tensors: Name -> tensor, as read from a file.
        model: A freshly built model (``spec.build()``).
        spec: Its spec, for the message.
        source: The file the tensors came from, for the message.

    Raises:
        ValueError: one line, ``<source>: tensors do not fit <arch / act>: ...``, naming the
            missing and unexpected names, or each tensor whose shape or dtype is not the
            expected one (``name (got shape)/dtype (expected shape/dtype)``).

    """
    fit = f"{source}: tensors do not fit {spec.describe()}"
    not_names = sorted(repr(k) for k in tensors if not isinstance(k, str))
    if not_names:
        raise ValueError(f"{fit}: names must be strings; got {_listed(not_names)}")
    not_tensors = [f"{k} ({type(v).__name__})" for k, v in tensors.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise ValueError(f"{fit}: not tensors: {'; '.join(not_tensors[:5])}{'...' if len(not_tensors) > 5 else ''}")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{fit}: missing {_listed(missing)}, unexpected {_listed(unexpected)}")
    bad = [
        f"{k} {tuple(tensors[k].shape)}/{tensors[k].dtype} (expected {tuple(v.shape)}/{v.dtype})"
        for k, v in expected.items()
        if tensors[k].shape != v.shape or tensors[k].dtype != v.dtype
    ]
    if bad:
        raise ValueError(f"{fit}: {'; '.join(bad[:5])}{'...' if len(bad) > 5 else ''}")
    strange = [f"{k} ({t.layout})" for k, t in tensors.items() if t.layout != torch.strided]
    if strange:
        raise ValueError(f"{fit}: not dense tensors: {'; '.join(strange[:5])}")
