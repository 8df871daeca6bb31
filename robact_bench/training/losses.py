"""Training losses as pure functions.

No device moves, no optimizer steps; adversarial examples are crafted with the model in
``eval()`` mode (BatchNorm uses its running statistics, stochastic activations stay random) and
the caller's mode is restored before the training forward pass.

* :func:`natural_loss`: cross-entropy on clean data.
* :func:`pgd_at_loss`: the mixed adversarial-training loss of *Robustness through Random
  Activation: Adversarial Training with Bernoulli Rectified Linear Units*, eq. 1:
  ``alpha * L(x) + (1 - alpha) * L(x*)`` with ``x*`` from PGD-k (``alpha = 0`` is Madry et
  al.'s PGD-AT, ICLR 2018).
* :func:`fast_at_loss`: FGSM from a uniform random start with step ``1.25 * eps``, Wong, Rice
  and Kolter, *Fast is better than free: Revisiting adversarial training*, ICLR 2020.
* :func:`trades_loss`: Zhang et al., *Theoretically Principled Trade-off between Robustness and
  Accuracy*, ICML 2019: ``CE(f(x), y) + beta * KL``, with the KL term as in the authors'
  reference code (``KL(p(x) || p(x*))``, ``reduction="batchmean"``; ``x*`` from PGD on the same
  KL, started at ``x + 0.001 * N(0, 1)``).
* :func:`hybrid_loss`, :func:`nonsense_loss`, :func:`saf_loss`: *Suppressing the Unusual:
  towards Robust CNNs using Symmetric Activation Functions* (Zhao and Griffin), eq. 7 and
  Section 4.3 (random training and mean training). They take the log-confidences returned by a
  model with the paper's final 1-D RBF layer (:class:`~robact_bench.models.heads.RBFOutput`).
* :func:`drelu_penalty_term`: ``lambda * sum_i m_i^2`` of *Dynamic-Max-Value ReLU*, eq. 1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations.capped import drelu_penalty
from robact_bench.attacks.common import eval_mode
from robact_bench.attacks.pgd import pgd_linf
from robact_bench.models.heads import hybrid_loss


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

    Cost per batch: ``steps`` forward-backward passes for the attack, one for the adversarial
    loss, and one more forward (whose backward is shared) when ``clean_weight > 0``.
    """
    if not 0.0 <= clean_weight <= 1.0:
        raise ValueError(f"clean_weight must be in [0, 1]; got {clean_weight}")
    with eval_mode(model):
        x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=steps, random_start=random_start)
    loss = (1.0 - clean_weight) * F.cross_entropy(model(x_adv), y)
    if clean_weight > 0:
        loss = loss + clean_weight * F.cross_entropy(model(x), y)
    return loss


def fast_at_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, step_size: float) -> torch.Tensor:
    """Cross-entropy on one FGSM step from a uniform random start (Wong et al., 2020).

    ``x* = clip(x + delta + step_size * sign(grad))`` with ``delta ~ U(-eps, eps)``, projected
    onto the eps-ball and [0, 1]; Wong et al. use ``step_size = 1.25 * eps``. Cost per batch: two
    forward-backward passes.
    """
    with eval_mode(model):
        x_adv = pgd_linf(model, x, y, eps=eps, step_size=step_size, steps=1, random_start=True)
    return F.cross_entropy(model(x_adv), y)


def _kl_sum(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """``sum_n KL(target_n || softmax(logits_n))`` (the attack's objective in TRADES)."""
    return F.kl_div(F.log_softmax(logits, dim=1), target_probs, reduction="sum")


def trades_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    beta: float,
    eps: float,
    step_size: float,
    steps: int,
) -> torch.Tensor:
    """TRADES: ``CE(f(x), y) + beta * KL(p(x) || p(x*)) / N`` (Zhang et al., ICML 2019).

    ``x*`` maximizes the same KL inside the L-inf eps-ball (``steps`` signed-gradient steps from
    ``x + 0.001 * N(0, 1)``), crafted in ``eval()`` mode against the clean prediction computed
    once. ``beta = 0`` skips the attack and is natural training, step for step.

    Cost per batch: one forward (clean target) + ``steps`` forward-backward passes for the
    attack, then two forward passes (clean and adversarial) sharing one backward.
    """
    if beta < 0:
        raise ValueError(f"TRADES beta must be >= 0; got {beta}")
    if beta == 0:
        return natural_loss(model, x, y)
    with eval_mode(model):
        with torch.no_grad():
            p_clean = F.softmax(model(x), dim=1)
        x_start = x + 0.001 * torch.randn_like(x)
        x_adv = pgd_linf(
            model, x, p_clean, eps=eps, step_size=step_size, steps=steps, loss_fn=_kl_sum, x_init=x_start
        )
    logits = model(x)
    kl = F.kl_div(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1), reduction="batchmean")
    return F.cross_entropy(logits, y) + beta * kl


def nonsense_loss(log_conf: torch.Tensor, *, p: float = 2.0, reduction: str = "mean") -> torch.Tensor:
    """``sum_i y_i^p``: low confidence in every class, for inputs that belong to none.

    The paper trains its nonsense samples towards a *nonsense* prediction; a model without a
    nonsense class does that by driving every class confidence towards 0 (the rejection rule
    of its Section 5: all confidences below a threshold).
    """
    per = log_conf.exp().pow(p).sum(1)
    return per.mean() if reduction == "mean" else per


def saf_loss(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    train_mean: torch.Tensor,
    delta: float,
    fraction: float,
    mean_copies: int,
    mean_sigma: float,
    a1: float = 1.0,
    a2: float = 1.0,
    a3: float = 0.0,
    p: float = 2.0,
    nonsense_weight: float = 1.0,
) -> torch.Tensor:
    """Random training + mean training with the hybrid loss (symmetric-activation paper, 4.3).

    * Random training: the first ``round(fraction * N)`` images of the (shuffled) batch get
      uniform noise in ``[-delta, delta]`` per pixel (clipped to [0, 1]).
    * Mean training: ``mean_copies`` copies of the training-set mean image, each with Gaussian
      noise of standard deviation ``mean_sigma`` (clipped), trained towards low confidence in
      every class (:func:`nonsense_loss`, weight ``nonsense_weight``).

    All images go through the model in one forward pass; the loss is the sum of the per-image
    losses divided by the number of images.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1]; got {fraction}")
    k = round(fraction * len(x))
    noisy = (x[:k] + torch.empty_like(x[:k]).uniform_(-delta, delta)).clamp(0.0, 1.0)
    batch = [noisy, x[k:]]
    if mean_copies > 0:
        base = train_mean.to(x).expand(mean_copies, *x.shape[1:])
        batch.append((base + mean_sigma * torch.randn_like(base)).clamp(0.0, 1.0))
    out = model(torch.cat(batch))
    real = hybrid_loss(out[: len(x)], y, a1=a1, a2=a2, a3=a3, p=p, reduction="none").sum()
    fake = nonsense_loss(out[len(x) :], p=p, reduction="none").sum() if mean_copies > 0 else out.new_zeros(())
    return (real + nonsense_weight * fake) / len(out)


def drelu_penalty_term(model: nn.Module, lam: float) -> torch.Tensor:
    """``lam * sum_i m_i^2`` over every D-ReLU cap of ``model`` (0 when ``lam == 0``)."""
    if lam < 0:
        raise ValueError(f"the D-ReLU penalty weight lambda must be >= 0; got {lam}")
    if lam == 0:
        return torch.zeros((), device=next(model.parameters()).device)
    return lam * drelu_penalty(model)
