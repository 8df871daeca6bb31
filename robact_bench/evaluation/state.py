"""Resumable evaluation: finished units (clean pass, each attack, each sweep point) on disk.

One JSON file, rewritten atomically (temporary file + rename) after every finished unit: a kill
at any moment leaves either the previous complete file or the new one (and perhaps a temporary
file, which is never read; resuming removes those of the state file's folder). Per-point flags are
stored as strings of ``0``/``1`` in point order. The file carries a fingerprint of the model's
weights, the evaluation config, the suite and the points; ``resume`` refuses a file whose
fingerprint differs, so finished work is only reused for exactly the same evaluation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robact_bench.fileio import atomic_write_json, read_json, remove_stale_temps

FORMAT = "robact_bench.eval_state/1"


def flags_to_str(flags: torch.Tensor) -> str:
    """``tensor([True, False])`` -> ``"10"``."""
    return "".join("1" if bool(b) else "0" for b in flags.flatten().tolist())


def str_to_flags(text: str) -> torch.Tensor:
    """Inverse of :func:`flags_to_str`."""
    return torch.tensor([c == "1" for c in text], dtype=torch.bool)


def model_fingerprint(model: nn.Module) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of the model's state dict."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().to("cpu").contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def eval_fingerprint(model: nn.Module, config: Mapping[str, Any], indices: list[int]) -> str:
    """Fingerprint of one evaluation: model weights, config (suite and every option) and points."""
    payload = json.dumps({"model": model_fingerprint(model), "config": config, "indices": indices}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class EvalState:
    """Finished units of one evaluation, persisted after each one (``path=None``: in memory only)."""

    def __init__(self, path: str | os.PathLike[str] | None, fingerprint: str, *, resume: bool) -> None:
        self.path = Path(path) if path is not None else None
        self.fingerprint = fingerprint
        self.units: dict[str, dict[str, Any]] = {}
        if self.path is not None and self.path.exists():
            if not resume:
                raise ValueError(f"{self.path} exists: pass resume to continue it, or remove it to start over")
            data = read_json(self.path)
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise ValueError(f"{self.path}: not a robact_bench evaluation state (expected format {FORMAT!r})")
            if data.get("fingerprint") != fingerprint:
                raise ValueError(
                    f"{self.path} belongs to a different evaluation (model weights, options, suite or points "
                    "changed): remove it to start over"
                )
            self.units = dict(data.get("units", {}))
        if self.path is not None and resume:
            # a killed run's temporary files (``.<name>.<token>.tmp``, never read) in this folder only
            remove_stale_temps(self.path.parent)

    def get(self, name: str) -> dict[str, Any] | None:
        """The stored unit ``name``, or ``None`` if it has not finished."""
        return self.units.get(name)

    def put(self, name: str, unit: dict[str, Any]) -> None:
        """Record a finished unit and write the file atomically."""
        self.units[name] = unit
        if self.path is not None:
            atomic_write_json(self.path, {"format": FORMAT, "fingerprint": self.fingerprint, "units": self.units})
