"""Training losses as pure functions.

No device moves, no optimizer steps, no mode changes beyond those documented.

* :func:`natural_loss`: cross-entropy on clean data.
* :func:`pgd_at_loss`: the mixed adversarial-training loss of *Robustness through Random
  Activation: Adversarial Training with Bernoulli Rectified Linear Units*, eq. 1:
  ``alpha * L(x) + (1 - alpha) * L(x*)`` with ``x*`` from PGD-k (``alpha = 0`` is Madry et
  al.'s PGD-AT, ``alpha = 0.5`` Goodfellow et al.'s mix).
* :func:`drelu_penalty_term`: ``lambda * sum_i m_i^2`` of *Dynamic-Max-Value ReLU*, eq. 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations.capped import drelu_penalty
from robact_bench.attacks.pgd import pgd_linf


def natural_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``model(x)``."""
    return F.cross_entropy(model(x), y)


def pgd_at_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    clean_weight: float = 0.0,
    random_start: bool = True,
) -> torch.Tensor:
    """``clean_weight * CE(x) + (1 - clean_weight) * CE(x*)``, ``x*`` = PGD-k(x) (eq. 1).

    The adversarial examples are crafted with the model in ``eval()`` mode (BatchNorm uses its
    running statistics; stochastic activations stay random) and the mode is restored before the
    loss is computed.
    """
    if not 0.0 <= clean_weight <= 1.0:
        raise ValueError(f"clean_weight must be in [0, 1]; got {clean_weight}")
    was_training = model.training
    model.eval()
    try:
        x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=steps, random_start=random_start)
    finally:
        model.train(was_training)
    loss = (1.0 - clean_weight) * F.cross_entropy(model(x_adv), y)
    if clean_weight > 0:
        loss = loss + clean_weight * F.cross_entropy(model(x), y)
    return loss


def drelu_penalty_term(model: nn.Module, lam: float) -> torch.Tensor:
    """``lam * sum_i m_i^2`` over every D-ReLU cap of ``model`` (0 when ``lam == 0``)."""
    if lam < 0:
        raise ValueError(f"the D-ReLU penalty weight lambda must be >= 0; got {lam}")
    if lam == 0:
        return torch.zeros((), device=next(model.parameters()).device)
    return lam * drelu_penalty(model)
