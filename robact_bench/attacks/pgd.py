"""A minimal L-inf PGD used *inside training*.

Adversarial training needs the input gradient of the model as it is being trained, without an
attack library switching its mode.

Evaluation never uses this: evaluation numbers come from the reference libraries through the
adapters (:mod:`robact_bench.attacks.torchattacks`, :mod:`robact_bench.attacks.autoattack`).

PGD: Madry et al., *Towards Deep Learning Models Resistant to Adversarial Attacks*, ICLR 2018.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def pgd_linf(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    step_size: float,
    steps: int,
    random_start: bool = True,
    loss_fn: LossFn | None = None,
    generator: torch.Generator | None = None,
    x_init: torch.Tensor | None = None,
) -> torch.Tensor:
    """L-inf projected gradient ascent on ``loss_fn(model(x'), y)``; returns ``x'`` (detached).

    Args:
        model: The model, in whatever train/eval mode the caller chose.
        x: Images in [0, 1], ``(N, C, H, W)``.
        y: Targets passed to ``loss_fn`` (labels for cross-entropy).
        eps: L-inf radius, in [0, 1] pixel units.
        step_size: Step of each signed-gradient update.
        steps: Number of updates (0 returns the random start, or ``x``).
        random_start: Start from a uniform point in the eps-ball (Madry et al.).
        loss_fn: ``loss_fn(logits, y) -> scalar`` to maximize; default summed cross-entropy.
        generator: Optional RNG for the random start.
        x_init: Explicit starting point (projected onto the eps-ball and [0, 1]); replaces the
            random start (TRADES starts at ``x + 0.001 * N(0, 1)``).

    Returns:
        Adversarial images with ``||x' - x||_inf <= eps`` and ``0 <= x' <= 1``.

    """
    if eps < 0 or step_size < 0 or steps < 0:
        raise ValueError(f"eps, step_size and steps must be >= 0; got {eps}, {step_size}, {steps}")
    loss_fn = loss_fn or (lambda logits, t: F.cross_entropy(logits, t, reduction="sum"))
    x = x.detach()
    x_adv = x.clone()
    if x_init is not None:
        x_adv = torch.min(torch.max(x_init.detach(), x - eps), x + eps).clamp_(0.0, 1.0)
    elif random_start and eps > 0:
        noise = torch.empty_like(x).uniform_(-eps, eps, generator=generator)
        x_adv = (x + noise).clamp_(0.0, 1.0)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        with torch.enable_grad():
            loss = loss_fn(model(x_adv), y)
            (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - eps), x + eps).clamp_(0.0, 1.0)
    return x_adv.detach()
