"""The resumable training state: one safetensors file, written atomically after every epoch.

The file holds every tensor needed to continue a run exactly where it stopped (model weights,
optimizer buffers, the global torch RNG, the batch-order RNG, CUDA RNGs and any
``torch.Generator`` owned by a module) and, in the safetensors header's metadata, a JSON
document with everything else (epoch, history, scheduler state, optimizer hyper-parameters,
early-stopping counters, the run's config fingerprint). One file, replaced by rename: a crash
leaves the previous epoch's complete state or the new one, never a mix. Nothing is unpickled
when it is read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save
from torch import nn

from robact_bench.fileio import atomic_write_bytes

FORMAT = "robact_bench.train_state/1"

__all__ = ["FORMAT", "TrainState", "load_train_state", "save_train_state", "state_header"]


@dataclass
class TrainState:
    """The loop's bookkeeping besides tensors.

    Attributes:
        epoch: Last completed epoch (0 before training).
        history: One row per completed epoch.
        best_val_loss: Lowest validation loss so far (``inf`` before the first).
        bad_epochs: Epochs since the best validation loss (early stopping's counter).
        stopped_early: Whether early stopping ended the run.

    """

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_val_loss: float = float("inf")
    bad_epochs: int = 0
    stopped_early: bool = False


def _module_generators(model: nn.Module) -> dict[str, torch.Generator]:
    gens = {n: getattr(m, "generator", None) for n, m in model.named_modules()}
    return {n: g for n, g in gens.items() if isinstance(g, torch.Generator)}


def save_train_state(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order_rng: torch.Generator,
    state: TrainState,
    fingerprint: str,
) -> Path:
    """Write the complete training state to ``path`` atomically; return the path."""
    tensors: dict[str, torch.Tensor] = {f"model.{k}": v for k, v in model.state_dict().items()}
    osd = optimizer.state_dict()
    extra: dict[str, dict[str, Any]] = {}
    for pid, entries in osd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{key}"] = value
            else:
                extra.setdefault(str(pid), {})[key] = value
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.order"] = order_rng.get_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    for name, gen in _module_generators(model).items():
        tensors[f"rng.module.{name}"] = gen.get_state()
    meta = {
        "format": FORMAT,
        "fingerprint": fingerprint,
        "epoch": state.epoch,
        "history": state.history,
        "best_val_loss": state.best_val_loss,
        "bad_epochs": state.bad_epochs,
        "stopped_early": state.stopped_early,
        "optimizer": {"param_groups": osd["param_groups"], "state_other": extra},
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    # JSON with Infinity/NaN allowed: ReduceLROnPlateau keeps inf, and Python reads it back exactly.
    blob = save(cpu, metadata={"format": FORMAT, "state": json.dumps(meta, allow_nan=True)})
    return atomic_write_bytes(path, blob)


def _read(path: Path, *, with_tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The JSON metadata (and, if asked, the tensors) of a training-state file."""
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            header = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()} if with_tensors else {}
    except (SafetensorError, OSError) as exc:
        raise ValueError(f"{path}: not a readable training-state file ({exc})") from None
    if header.get("format") != FORMAT or "state" not in header:
        raise ValueError(f"{path}: not a robact_bench training state (expected format {FORMAT!r})")
    return json.loads(header["state"]), tensors


def state_header(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A training-state file's JSON metadata (``epoch``, ``fingerprint``, ``history``...), tensors unread."""
    return _read(Path(path), with_tensors=False)[0]


def load_train_state(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    order_rng: torch.Generator,
    fingerprint: str,
) -> TrainState:
    """Restore everything :func:`save_train_state` wrote into the given objects.

    Raises:
        ValueError: not a train-state file, or one written by a run with another config.

    """
    p = Path(path)
    meta, tensors = _read(p, with_tensors=True)
    if meta["fingerprint"] != fingerprint:
        raise ValueError(
            f"{p}: this run was started with a different config; resume it with the same config "
            "or train into another --out"
        )
    model.load_state_dict({k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for pid, entries in meta["optimizer"]["state_other"].items():
        state.setdefault(int(pid), {}).update(entries)
    optimizer.load_state_dict({"state": state, "param_groups": meta["optimizer"]["param_groups"]})
    if scheduler is not None:
        scheduler.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    order_rng.set_state(tensors["rng.order"])
    if torch.cuda.is_available():
        keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
        cuda = [tensors[k] for k in keys]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    for name, gen in _module_generators(model).items():
        gen.set_state(tensors[f"rng.module.{name}"])
    return TrainState(
        epoch=int(meta["epoch"]),
        history=list(meta["history"]),
        best_val_loss=float(meta["best_val_loss"]),
        bad_epochs=int(meta["bad_epochs"]),
        stopped_early=bool(meta["stopped_early"]),
    )
