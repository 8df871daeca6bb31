"""The symmetric-activation paper's evaluation samples: FGS adversarial, nonsense and noisy.

Zhao and Griffin, *Suppressing the Unusual: towards Robust CNNs using Symmetric Activation
Functions*, Section 5, eq. 10 (after Goodfellow et al., *Explaining and Harnessing Adversarial
Examples*, ICLR 2015). Pixels are in [0, 1] here, so the paper's ``255 * beta`` is ``beta``.

* :func:`saf_fgs`: one fast-gradient-sign step of size ``beta`` that *lowers* the hybrid loss
  (eq. 7) of the wrong class ``l_max`` whose input gradient has the largest L1 norm,
  ``X' = clip(X - beta * sign(grad_X L_h(X, l_max)), 0, 1)``.
* :func:`nonsense_seed`: the pure-noise images the nonsense samples start from.
* :func:`noisy_samples`: clean images plus Gaussian noise of standard deviation ``beta``.

Norm: L-inf (``||X' - X||_inf <= beta``). Input range [0, 1], shape ``(N, C, H, W)``.

Which loss, for which model (our choices, the paper names only the robust models' loss):

* A model that ends with the paper's 1-D RBF layer
  (:class:`~robact_bench.models.heads.RBFOutput`) returns log-confidences ``log y = -z^2``;
  they go straight into :func:`~robact_bench.training.losses.hybrid_loss`.
* Any other model (a plain softmax CNN) returns logits; ``log_softmax(logits)`` are its
  log-confidences for the same loss (the paper does not say which loss attacks its plain CNN).
* A random model should be passed wrapped in :class:`~robact_bench.attacks.eot.EOTModel`: the
  loss is then taken on the mean of ``K`` sampled outputs (for an RBF model the mean of the
  log-confidences), and every candidate class's gradient uses the same ``K`` draws.

Example:
    >>> x_adv = saf_fgs(model, x, y, beta=0.1)                  # adversarial, MNIST weights
    >>> noise = nonsense_seed(100, (1, 28, 28), generator=torch.Generator().manual_seed(0))
    >>> x_ns = saf_fgs(model, noise, None, beta=0.1)            # nonsense: every class a target
    >>> x_noisy = noisy_samples(x, 0.1, generator=torch.Generator().manual_seed(0))

"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.attacks.backends import AttackRequest, LibraryAttack, register_attack, register_backend
from robact_bench.attacks.common import (
    AttackOutput,
    Timer,
    check_inputs,
    check_threat_model,
    eval_mode,
    library_version,
    model_device,
)

# Layering note: the hybrid loss lives with the training losses, one layer above ``attacks``.
from robact_bench.models.heads import has_rbf_output, hybrid_loss


def _check_beta(beta: float, what: str = "beta") -> None:
    if isinstance(beta, bool) or not (isinstance(beta, int | float) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"{what} must be a finite number >= 0; got {beta!r}")


def _check_images(x: torch.Tensor, y: torch.Tensor | None, beta: float) -> None:
    labels = y if y is not None else torch.zeros(x.shape[0], dtype=torch.long)
    check_inputs(x, labels, beta, "Linf")


def log_confidences(model: nn.Module, out: torch.Tensor) -> torch.Tensor:
    """The log-confidences of ``model``'s output ``out``: as is for an RBF output, else ``log_softmax``."""
    return out if has_rbf_output(model) else F.log_softmax(out, dim=1)


def saf_direction(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    *,
    a1: float = 1.0,
    a2: float = 1.0,
    a3: float = 0.0,
    p: float = 2.0,
    candidates: Sequence[int] | None = None,
    batch_size: int = 500,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The eq. 10 step direction ``-sign(grad_X L_h(X, l_max))`` and the chosen class ``l_max``.

    ``l_max = argmax_l ||grad_X L_h(X, l)||_1`` over the candidate classes minus the true class
    (``y=None``: no class is excluded, as for nonsense samples). Ties go to the lowest class
    index. The direction does not depend on ``beta``, so one call serves a whole strength grid:
    ``clip(x + beta * direction, 0, 1)`` is :func:`saf_fgs`'s output.

    Cost: one forward pass and one backward pass per candidate class, per batch.

    Args:
        model: Images in, logits (or RBF log-confidences) out; put in ``eval()`` for the call.
        x: Images in [0, 1], ``(N, C, H, W)``.
        y: True labels ``(N,)`` (excluded from the candidates), or ``None``.
        a1: Weight of the hybrid loss's normalized log term.
        a2: Weight of the target class's p-order error.
        a3: Weight of the other classes' p-order errors.
        p: Order of the errors.
        candidates: Classes that may be ``l_max`` (default: all classes of the output).
        batch_size: Images per forward pass.

    Returns:
        ``(direction, l_max)``: ``direction`` in {-1, 0, 1} with ``x``'s shape, dtype and
        device; ``l_max`` a ``(N,)`` long tensor on the CPU.

    """
    _check_images(x, y, 0.0)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    device = model_device(model)
    direction = torch.empty_like(x)
    l_max = torch.empty(len(x), dtype=torch.long)
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].detach().to(device).requires_grad_(True)
            with torch.enable_grad():
                log_conf = log_confidences(model, model(xb))
                n_classes = log_conf.shape[1]
                classes = list(range(n_classes)) if candidates is None else [int(c) for c in candidates]
                if not classes or min(classes) < 0 or max(classes) >= n_classes:
                    raise ValueError(f"candidates must be classes in [0, {n_classes}); got {candidates!r}")
                best = torch.full((len(xb),), -math.inf, device=device, dtype=log_conf.dtype)
                best_grad = torch.zeros_like(xb)
                best_cls = torch.full((len(xb),), -1, device=device, dtype=torch.long)
                yb = y[i : i + batch_size].to(device) if y is not None else None
                for k, cls in enumerate(classes):
                    target = torch.full((len(xb),), cls, device=device, dtype=torch.long)
                    loss = hybrid_loss(log_conf, target, a1=a1, a2=a2, a3=a3, p=p, reduction="none").sum()
                    (grad,) = torch.autograd.grad(loss, xb, retain_graph=k < len(classes) - 1)
                    norm = grad.abs().flatten(1).sum(1)
                    if yb is not None:
                        norm = norm.masked_fill(yb == cls, -math.inf)
                    better = norm > best
                    best = torch.where(better, norm, best)
                    best_cls = torch.where(better, target, best_cls)
                    best_grad = torch.where(better.view(-1, *[1] * (xb.ndim - 1)), grad, best_grad)
            if bool((best_cls < 0).any()):
                raise ValueError("no candidate class other than the true label for some image")
            direction[i : i + batch_size] = (-best_grad.sign()).to(direction)
            l_max[i : i + batch_size] = best_cls.cpu()
    return direction, l_max


def apply_step(x: torch.Tensor, direction: torch.Tensor, beta: float) -> torch.Tensor:
    """``clip(x + beta * direction, 0, 1)``, checked against the L-inf beta-ball and [0, 1]."""
    _check_beta(beta)
    if beta == 0:
        return x.detach().clone()
    x_adv = (x.detach() + beta * direction).clamp_(0.0, 1.0)
    check_threat_model(x, x_adv, beta, "Linf", "saf_fgs")
    return x_adv


def saf_fgs(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor | None,
    *,
    beta: float,
    a1: float = 1.0,
    a2: float = 1.0,
    a3: float = 0.0,
    p: float = 2.0,
    candidates: Sequence[int] | None = None,
    batch_size: int = 500,
) -> torch.Tensor:
    """One FGS step of the symmetric-activation paper (eq. 10) towards the easiest wrong class.

    ``X' = clip(X - beta * sign(grad_X L_h(X, l_max)), 0, 1)`` with
    ``l_max = argmax_{l != y} ||grad_X L_h(X, l)||_1`` (:func:`saf_direction`). Adversarial
    samples pass the true labels ``y``; nonsense samples pass ``y=None`` (every class is a
    candidate) and start from :func:`nonsense_seed`.

    Args:
        model: Images in, logits (or RBF log-confidences) out. Wrap a random model in
            :class:`~robact_bench.attacks.eot.EOTModel`.
        x: Images in [0, 1], ``(N, C, H, W)``.
        y: True labels ``(N,)``, or ``None`` for nonsense samples.
        beta: Step size in [0, 1] pixel units (the paper's ``255 * beta`` on 0..255 pixels);
            ``0`` returns a copy of ``x`` without any forward pass.
        a1: Hybrid loss weight (MNIST 1, CIFAR-10 1).
        a2: Hybrid loss weight (MNIST 1, CIFAR-10 1).
        a3: Hybrid loss weight (MNIST 0, CIFAR-10 1/9).
        p: Order of the hybrid loss's errors (the paper: 2).
        candidates: Classes that may be ``l_max`` (default: all).
        batch_size: Images per forward pass.

    Returns:
        Images with ``||X' - X||_inf <= beta`` and ``0 <= X' <= 1``, on ``x``'s device.

    Example:
        >>> x_adv = saf_fgs(model, x, y, beta=0.05, a3=1 / 9)   # CIFAR-10 weights

    """
    _check_beta(beta)
    _check_images(x, y, beta)
    if beta == 0:
        return x.detach().clone()
    direction, _ = saf_direction(model, x, y, a1=a1, a2=a2, a3=a3, p=p, candidates=candidates, batch_size=batch_size)
    return apply_step(x, direction, beta)


def nonsense_seed(n: int, shape: Sequence[int], *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` pure-noise images: i.i.d. ``N(0, 1)`` pixels, each image mapped affinely onto [0, 1].

    The paper's nonsense samples start from "stationary Gaussian noise, shifted and scaled to
    cover the range 0~255". Our reading: every image's own minimum goes to 0 and its maximum to
    1 (an affine map, so the noise stays Gaussian-shaped with no clipped pixels; the pixel
    standard deviation is about ``1 / (max - min)`` of ``n_pixels`` normals, ~0.16 for 784).

    Args:
        n: Number of images.
        shape: Shape of one image, ``(C, H, W)``.
        generator: CPU ``torch.Generator`` (default: the global RNG).

    Returns:
        ``(n, *shape)`` float32 images on the CPU, each spanning exactly [0, 1].

    """
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}")
    noise = torch.randn(n, *shape, generator=generator)
    flat = noise.flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    out = ((flat - lo) / (hi - lo).clamp_min(1e-12)).clamp_(0.0, 1.0)
    return out.view(n, *shape)


def noisy_samples(x: torch.Tensor, beta: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """``clip(x + beta * N(0, 1), 0, 1)``: stationary Gaussian noise of standard deviation ``beta``.

    Before clipping the mean squared error is ``beta^2``, so the paper's PSNR row is
    ``20 log10(1 / beta)``. The noise is drawn on the CPU (the same numbers on every device).

    Args:
        x: Images in [0, 1].
        beta: Noise standard deviation in [0, 1] pixel units; ``0`` returns a copy of ``x``.
        generator: CPU ``torch.Generator`` (default: the global RNG).

    Returns:
        Noisy images in [0, 1] with ``x``'s shape, dtype and device.

    """
    _check_beta(beta)
    if x.numel() and (float(x.min()) < 0.0 or float(x.max()) > 1.0):
        raise ValueError(f"images must be in [0, 1]; got [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    if beta == 0:
        return x.detach().clone()
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    return (x.detach() + beta * noise.to(x.device)).clamp_(0.0, 1.0)


def saf_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "Linf",
    name: str | None = None,
    batch_size: int = 500,
    seed: int = 0,
    **params: float,
) -> AttackOutput:
    """The symmetric-activation paper's adversarial sample (eq. 10) as an attack of a suite: ``beta = eps``.

    Args:
        model: Images in, logits (or RBF log-confidences) out; a random model wrapped in
            :class:`~robact_bench.attacks.eot.EOTModel`.
        x: Images in [0, 1], ``(N, C, H, W)``.
        y: True labels ``(N,)``.
        eps: The Linf bound, used as the step ``beta``.
        norm: ``Linf`` (the paper's sample is a signed step).
        name: Our name for the run (default ``"saf-fgs"``).
        batch_size: Images per forward pass.
        seed: Recorded; the sample is deterministic for a deterministic model.
        **params: The hybrid loss's ``a1``, ``a2``, ``a3`` and ``p`` (default the paper's MNIST
            weights 1, 1, 0 and p = 2).

    Returns:
        :class:`~robact_bench.attacks.common.AttackOutput` with the samples and every parameter.

    """
    if norm != "Linf":
        raise ValueError(f"the symmetric-activation paper's FGS sample is an Linf step; got norm {norm!r}")
    weights = {"a1": 1.0, "a2": 1.0, "a3": 0.0, "p": 2.0}
    unknown = sorted(set(params) - set(weights))
    if unknown:
        raise TypeError(f"saf-fgs does not take {unknown}; it takes {', '.join(weights)}")
    weights.update({k: float(v) for k, v in params.items()})
    with Timer() as t:
        x_adv = saf_fgs(model, x, y, beta=float(eps), batch_size=batch_size, **weights).cpu()
    check_threat_model(x.cpu(), x_adv, eps, norm, "saf.FGS")
    record = {
        "backend": "robact_bench",
        "backend_version": library_version("robact_bench"),
        "attack": "FGS",
        "norm": norm,
        "params": {"eps": float(eps), **weights},
        "seed": seed,
        "batch_size": batch_size,
        "seconds": round(t.seconds, 3),
        "reference": "Zhao and Griffin, Suppressing the Unusual, eq. 10: one signed step towards the wrong class "
        "whose hybrid-loss gradient has the largest L1 norm",
    }
    return AttackOutput(name or "saf-fgs", x_adv, None, record)


@register_backend("saf", recorded=("robact_bench",), library="robact_bench",
                  description="the symmetric-activation paper's FGS sample (Zhao and Griffin, eq. 10), ours")
def run_saf(req: AttackRequest) -> AttackOutput:
    """The engine's call: :func:`saf_attack` with the request's settings, the RNG seeded with the chunk's seed."""
    torch.manual_seed(req.seed)
    return saf_attack(req.model, req.x, req.y, eps=req.eps, norm=req.norm, name=req.name, batch_size=req.batch_size,
                      seed=req.seed, **req.params)  # fmt: skip


register_attack("saf", LibraryAttack(
    "FGS", paper="Zhao and Griffin, Suppressing the Unusual: towards Robust CNNs using Symmetric Activation "
    "Functions, eq. 10", norms=("Linf",), single_step=True))  # fmt: skip
