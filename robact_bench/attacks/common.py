"""What every attack adapter shares: input checks, threat-model checks, seeding, records."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import torch
from torch import nn

NORMS = ("Linf", "L2")


class ThreatModelViolation(RuntimeError):
    """An attack returned images outside [0, 1] or outside the eps-ball: its number is invalid."""


@dataclass(frozen=True)
class AttackOutput:
    """The result of one attack run through an adapter.

    Attributes:
        name: Our name for the run (e.g. ``"pgd20"``, ``"apgd-ce"``).
        x_adv: Adversarial images, in [0, 1], inside the threat model, on the CPU.
        library_robust: Per-point robustness as the *library* scored it, when it scores
            (AutoAttack does, with one forward pass); ``None`` otherwise.
        record: Backend, its version, every parameter, the seed and the wall time.
        candidates: Further images per point the attack produced (e.g. one per APGD-T target
            class on a random model), each of ``x_adv``'s shape; the evaluation scores every
            candidate and keeps, per point, the strongest.

    """

    name: str
    x_adv: torch.Tensor
    library_robust: torch.Tensor | None
    record: dict[str, Any] = field(default_factory=dict)
    candidates: tuple[torch.Tensor, ...] = ()


def library_version(dist: str) -> str:
    """Installed version of a distribution, or ``"unknown"``."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"


def check_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> None:
    """Validate attack inputs: NCHW images in [0, 1], one label each, a finite eps >= 0."""
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x.shape)}")
    if y.shape != (x.shape[0],):
        raise ValueError(f"need one label per image; got {tuple(y.shape)} for {x.shape[0]} images")
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(f"images must be in [0, 1]; got [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)}; got {norm!r}")
    if not (isinstance(eps, int | float) and math.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps must be a finite number >= 0; got {eps!r}")


def perturbation_norm(x: torch.Tensor, x_adv: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-image ``||x_adv - x||_p`` for ``p`` in {inf, 2}."""
    d = (x_adv - x).flatten(1)
    return d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)


def check_threat_model(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str, who: str) -> None:
    """Raise :class:`ThreatModelViolation` unless ``x_adv`` is in [0, 1] and within eps of ``x``."""
    if x_adv.shape != x.shape:
        raise ThreatModelViolation(f"{who} returned shape {tuple(x_adv.shape)}, expected {tuple(x.shape)}")
    if x_adv.numel() == 0:
        return
    if not torch.isfinite(x_adv).all():
        raise ThreatModelViolation(f"{who} returned non-finite images")
    if float(x_adv.min()) < 0.0 or float(x_adv.max()) > 1.0:
        raise ThreatModelViolation(f"{who} returned images outside [0, 1]")
    worst = float(perturbation_norm(x, x_adv, norm).max()) if len(x) else 0.0
    if worst > eps + 1e-6:
        raise ThreatModelViolation(f"{who} returned a {norm} perturbation of {worst:.6g} > eps = {eps:.6g}")


def project(x: torch.Tensor, x_adv: torch.Tensor, eps: float, norm: str) -> tuple[torch.Tensor, int]:
    """Project ``x_adv`` onto the threat model around ``x`` (and [0, 1]); count the images moved.

    For an attack that is not bounded by the threat model (Carlini-Wagner L2 minimizes the
    perturbation instead): Linf clips each pixel's perturbation to ``[-eps, eps]``; L2 rescales
    the perturbation to norm ``eps`` where it is larger. The projected image is then scored like
    any other: whether it still fools the model is measured, not assumed.
    """
    d = x_adv - x
    if norm == "Linf":
        d = d.clamp(-eps, eps)
    else:
        n = d.flatten(1).norm(dim=1).clamp_min(1e-12)
        d = d * (eps / n).clamp(max=1.0).view(-1, *([1] * (d.dim() - 1)))
    out = (x + d).clamp(0.0, 1.0)
    # L2: clamping to [0, 1] can only shrink the perturbation, so the ball still holds
    moved = int(((out - x_adv).flatten(1).abs().amax(1) > 0).sum()) if len(x) else 0
    return out, moved


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU for a parameter-free model)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


class Timer:
    """Context manager measuring wall-clock seconds into ``.seconds``."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._t0


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in ``eval()`` for the block and restore its previous mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)
