"""Scoring under randomness: repeated forward passes, never a single one for a random model."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robact_bench.attacks.common import model_device


@torch.no_grad()
def predict_passes(model: nn.Module, x: torch.Tensor, passes: int, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels of ``passes`` independent forward passes, shape ``(passes, N)`` (CPU).

    The model is put in ``eval()`` mode (BatchNorm statistics frozen; stochastic activations
    stay random) and restored afterwards.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1; got {passes}")
    was_training = model.training
    model.eval()
    device = model_device(model)
    try:
        out = torch.empty(passes, len(x), dtype=torch.long)
        for r in range(passes):
            for i in range(0, len(x), batch_size):
                out[r, i : i + batch_size] = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
    finally:
        model.train(was_training)
    return out


def fraction(flags: torch.Tensor) -> float:
    """Exact share of ``True`` entries (``int(sum) / n``; float32 means are off by ~1e-8)."""
    return int(flags.sum()) / flags.numel() if flags.numel() else float("nan")


@dataclass(frozen=True)
class Score:
    """Per-point correctness over repeated passes.

    Attributes:
        worst: Correct on *every* pass (the conservative robust flag).
        mean: Fraction of passes that were correct, per point.
        majority: The majority-vote prediction is correct.
        first: Correct on the first pass alone (what a single-pass evaluation would say).
        passes: Number of passes.

    """

    worst: torch.Tensor
    mean: torch.Tensor
    majority: torch.Tensor
    first: torch.Tensor
    passes: int


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int, batch_size: int = 500) -> Score:
    """Score ``model`` on ``(x, y)`` with ``passes`` forward passes (1 for deterministic models)."""
    preds = predict_passes(model, x, passes, batch_size)
    y = y.cpu()
    correct = preds == y.unsqueeze(0)
    n_classes = int(max(int(preds.max()), int(y.max())) + 1) if preds.numel() else 1
    votes = torch.zeros(len(y), n_classes, dtype=torch.long)
    votes.scatter_add_(1, preds.t(), torch.ones_like(preds.t()))
    return Score(
        worst=correct.all(0),
        mean=correct.double().mean(0),
        majority=votes.argmax(1) == y,
        first=correct[0],
        passes=passes,
    )


@torch.no_grad()
def measure_stochastic(model: nn.Module, x: torch.Tensor, passes: int = 5, tol: float = 1e-6) -> bool:
    """True when repeated ``eval()`` forward passes on ``x`` give different logits."""
    was_training = model.training
    model.eval()
    try:
        xb = x.to(model_device(model))
        first = model(xb)
        return any(float((model(xb) - first).abs().max()) > tol for _ in range(passes - 1))
    finally:
        model.train(was_training)
