"""Scoring under randomness: repeated forward passes, never a single one for a random model.

Everything is counted: an image scored on ``R`` passes gets the integer number of passes that
classified it correctly, ``0..R``. The three scoring rules the field uses for a random model are
functions of that count (:data:`RULES`), so one stored integer per point gives all three, and
every comparison of two numbers is a comparison of integers:

* ``expected``: ``count / R``, the mean over passes: the expected single-pass accuracy
  (Tramèr et al., NeurIPS 2020, report one pass of the final point; Dbouk and Shanbhag, ICML 2022,
  the exact expectation). This is the rule that is comparable with a deterministic model's one
  pass, and the rule our rankings use.
* ``majority``: ``2 * count > R``, more than half of the passes right (Croce et al., ICML 2022:
  robust if the share of correct passes is above 0.5). Ties (exactly half) are not a majority.
* ``all_right``: ``count == R``, every pass right: an attacker who may query the model R times
  and wins with one wrong answer (the harshest rule in use).

For a deterministic model ``R = 1`` and the three rules coincide.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from robact_bench.attacks.common import model_device

RULES: tuple[str, ...] = ("expected", "majority", "all_right")
"""The scoring rules, in the order tables show them."""

RULE_DOC: Mapping[str, str] = {
    "expected": "mean over the R passes of whether the pass is right (expected single-pass accuracy)",
    "majority": "more than half of the R passes right",
    "all_right": "all R passes right (an attacker who may query R times)",
}


@torch.no_grad()
def predict_passes(model: nn.Module, x: torch.Tensor, passes: int, batch_size: int = 500) -> torch.Tensor:
    """Predicted labels of ``passes`` independent forward passes, shape ``(passes, N)`` (CPU).

    The model is put in ``eval()`` mode (BatchNorm statistics frozen; stochastic activations
    stay random) and restored afterwards. The ``passes * N`` images (pass-major: pass 0's N
    points, then pass 1's, ...) go through the model in batches of ``batch_size``, so a few
    points with many passes still fill whole batches; every image of a batch is its own draw.
    """
    if passes < 1:
        raise ValueError(f"passes must be >= 1; got {passes}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    was_training = model.training
    model.eval()
    device = model_device(model)
    n = len(x)
    try:
        out = torch.empty(passes * n, dtype=torch.long)
        x_dev = x.to(device)
        for i in range(0, passes * n, batch_size):
            flat = torch.arange(i, min(i + batch_size, passes * n), device=device)
            out[i : i + len(flat)] = model(x_dev[flat % n]).argmax(1).cpu()
    finally:
        model.train(was_training)
    return out.view(passes, n)


def correct_counts(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int, batch_size: int = 500
) -> torch.Tensor:
    """Per point, how many of ``passes`` forward passes classify ``x`` as ``y``: int64, ``(N,)``, in ``0..passes``."""
    preds = predict_passes(model, x, passes, batch_size)
    return (preds == y.cpu().unsqueeze(0)).sum(0)


def fraction(flags: torch.Tensor) -> float:
    """Exact share of ``True`` entries (``int(sum) / n``; float32 means are off by ~1e-8)."""
    return int(flags.sum()) / flags.numel() if flags.numel() else float("nan")


def rule_values(counts: torch.Tensor, passes: int, rule: str) -> torch.Tensor:
    """Per-point value of ``rule`` (a float64 tensor in [0, 1]; 0/1 for ``majority`` and ``all_right``)."""
    c = counts.long()
    if rule == "expected":
        return c.double() / passes
    if rule == "majority":
        return (2 * c > passes).double()
    if rule == "all_right":
        return (c == passes).double()
    raise ValueError(f"scoring rule must be one of {', '.join(RULES)}; got {rule!r}")


def rule_accuracy(counts: torch.Tensor, passes: int, rule: str) -> float:
    """Accuracy under ``rule``: exact rational arithmetic on the integer counts, then one division."""
    c = counts.long()
    n = c.numel()
    if n == 0:
        return float("nan")
    if rule == "expected":
        return int(c.sum()) / (n * passes)
    return int(rule_values(c, passes, rule).sum()) / n


def rule_accuracies(counts: torch.Tensor, passes: int) -> dict[str, float]:
    """``{rule: accuracy}`` for every rule of :data:`RULES`."""
    return {rule: rule_accuracy(counts, passes, rule) for rule in RULES}


@dataclass(frozen=True)
class Score:
    """Per-point correctness counts over repeated passes.

    Attributes:
        counts: Correct passes per point (int64, ``0..passes``).
        passes: Number of passes R.

    """

    counts: torch.Tensor
    passes: int

    @property
    def worst(self) -> torch.Tensor:
        """Correct on *every* pass (the ``all_right`` rule)."""
        return self.counts == self.passes

    @property
    def mean(self) -> torch.Tensor:
        """Fraction of passes that were correct, per point (the ``expected`` rule)."""
        return self.counts.double() / self.passes

    @property
    def majority(self) -> torch.Tensor:
        """More than half of the passes correct (the ``majority`` rule)."""
        return 2 * self.counts > self.passes


def score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, passes: int, batch_size: int = 500) -> Score:
    """Score ``model`` on ``(x, y)`` with ``passes`` forward passes (1 for deterministic models)."""
    return Score(correct_counts(model, x, y, passes, batch_size), passes)


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
