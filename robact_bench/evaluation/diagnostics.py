"""Measurements on a model and its evaluation points, each with a name and a reason.

D-ReLU saturation, the stochastic declaration/measurement match, exactly-zero input gradients
and unstable predictions (Pintor et al., NeurIPS 2022). Every function returns a JSON-ready dict
``{"name", "passed", "reason", "value", ...}``; the masking checks
(:mod:`robact_bench.evaluation.masking`) judge them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robact_bench.activations import is_stochastic
from robact_bench.activations.capped import capped_modules
from robact_bench.attacks.common import model_device
from robact_bench.attacks.record import FixedDraws
from robact_bench.evaluation.stochastic import measure_stochastic


@torch.no_grad()
def drelu_saturation(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> dict[str, Any] | None:
    """Share of capped-ReLU inputs on ``x`` that reach their cap; ``None`` if the model has none.

    A D-ReLU (or S-ReLU) whose cap is never reached computes a plain ReLU: the model is then a
    ReLU network and its numbers say nothing about the cap (observed with the D-ReLU paper's
    m = 100 in short runs).
    """
    mods = capped_modules(model)
    if not mods:
        return None
    hits = [0] * len(mods)
    totals = [0] * len(mods)
    max_pre = [float("-inf")] * len(mods)

    def hook(i: int) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def fn(mod: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            pre = inputs[0]
            hits[i] += int(mod.at_cap(pre).sum())
            totals[i] += pre.numel()
            max_pre[i] = max(max_pre[i], float(pre.max()))

        return fn

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(mods)]
    was_training = model.training
    model.eval()
    try:
        device = model_device(model)
        for i in range(0, len(x), batch_size):
            model(x[i : i + batch_size].to(device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    share = sum(hits) / max(1, sum(totals))
    caps = torch.cat([m.caps() for m in mods])
    return {
        "name": "drelu_saturation",
        "passed": share > 0.0,
        "value": share,
        "reason": (
            "share of capped-ReLU (D-ReLU, S-ReLU) inputs on the evaluation images that reach the cap m; "
            "0 means the cap never acts and the model is a plain ReLU network"
        ),
        "max_preactivation": max(max_pre),
        "m_min": float(caps.min()),
        "m_mean": float(caps.mean()),
        "m_max": float(caps.max()),
    }


def stochastic_check(model: nn.Module, x: torch.Tensor) -> dict[str, Any]:
    """Compare the declared randomness (activation attribute) with a measurement (5 passes)."""
    declared = is_stochastic(model)
    measured = measure_stochastic(model, x)
    return {
        "name": "stochastic_declaration",
        "passed": declared == measured,
        "value": {"declared": declared, "measured": measured},
        "reason": (
            "a model declared deterministic must give identical logits on repeated eval() "
            "passes, and a model declared random must not"
        ),
    }


def input_gradients(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 500) -> dict[str, Any]:
    """Exactly-zero input gradients of the cross-entropy loss on the evaluation points.

    A point whose loss gradient is exactly zero gives a gradient attack nowhere to go: capped
    activations that saturate (D-ReLU at its cap), a softmax that rounds to one-hot, or a
    non-differentiable step inside the model. One forward/backward pass per point (one random
    draw on a random model). AutoAttack's APGD warns about the same thing (``check_zero_gradients``).

    Returns:
        ``{"name": "input_gradients", "value": share of points whose gradient is all zeros,
        "zero_entries": share of exactly-zero gradient entries, "points": n, ...}``. The
        masking verdict (:mod:`robact_bench.evaluation.masking`) judges it.

    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    zero_points = 0
    zero_entries = 0
    entries = 0
    try:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device).clone().requires_grad_(True)
            loss = torch.nn.functional.cross_entropy(model(xb), y[i : i + batch_size].to(device), reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            flat = grad.detach().flatten(1)
            zero_points += int((flat.abs().sum(1) == 0).sum())
            zero_entries += int((flat == 0).sum())
            entries += flat.numel()
    finally:
        model.train(was_training)
    return {
        "name": "input_gradients",
        "passed": True,
        "value": zero_points / max(1, len(x)),
        "zero_entries": zero_entries / max(1, entries),
        "points": len(x),
        "reason": "share of evaluation points whose cross-entropy gradient w.r.t. the input is exactly zero",
    }


#: Pintor et al.'s number of random points per input
UNSTABLE_SAMPLES = 100
#: Pintor et al.'s noise box: uniform in +-4/255 per pixel (half of their eps = 8/255)
UNSTABLE_HALF_WIDTH = 4 / 255


def unstable_predictions(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
                         samples: int = UNSTABLE_SAMPLES, seed: int = 0, batch_size: int = 500,
                         fixed_draws: bool = False) -> dict[str, Any]:  # fmt: skip
    """Pintor et al.'s *unstable predictions*: how much the loss moves under small uniform noise.

    Per point, the mean over ``samples`` noisy copies of ``|L(x + d) - L(x)| / |L(x)|`` (a zero
    reference loss is replaced by 1; capped at 1), with ``L`` the cross-entropy and ``d`` uniform
    per pixel in ``[-h, h]``, ``h = min(4/255, eps / 2)`` (Pintor et al.'s box, 4/255 at their
    eps 8/255; half the bound when the bound is smaller), the noisy image clipped to [0, 1].
    Beside it, how much of that change the gradient does *not* explain:
    ``mean |L(x + d) - L(x) - grad L(x) . d| / mean |L(x + d) - L(x)|`` (near 0 on a locally
    smooth surface, above 1 when the loss jumps in ways no gradient step can follow).

    Pass a random model wrapped in :class:`~robact_bench.attacks.eot.EOTModel` with
    ``fixed_draws=True``: its draws are then fixed (:class:`~robact_bench.attacks.record.FixedDraws`,
    the same draws for ``x`` and every noisy copy), so with enough EOT samples the numbers measure
    the expected loss the EOT attacks climb, not the model's own noise (Pintor et al. average their
    EOT attack's loss the same way).

    Returns:
        ``{"name": "unstable_predictions", "value": the largest per-point change, "per_point": [...],
        "unexplained": [...], "half_width", "samples", "fixed_draws", ...}``.

    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    half = min(UNSTABLE_HALF_WIDTH, eps / 2)
    net = FixedDraws(model, seed) if fixed_draws else model
    gen = torch.Generator().manual_seed(seed)
    per_point: list[float] = []
    unexplained: list[float] = []
    try:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            xa = xb.clone().requires_grad_(True)
            ref_t = F.cross_entropy(net(xa), yb, reduction="none")
            (grad,) = torch.autograd.grad(ref_t.sum(), xa)
            ref = ref_t.detach()
            denom = torch.where(ref.abs() == 0, torch.ones_like(ref), ref.abs())
            total, moved, residual = torch.zeros_like(ref), torch.zeros_like(ref), torch.zeros_like(ref)
            with torch.no_grad():
                for _ in range(samples):
                    xn = (xb + (torch.rand(xb.shape, generator=gen).to(device) * 2 - 1) * half).clamp(0.0, 1.0)
                    change = F.cross_entropy(net(xn), yb, reduction="none") - ref
                    total += change.abs() / denom
                    moved += change.abs()
                    residual += (change - (grad * (xn - xb)).flatten(1).sum(1)).abs()
            per_point += (total / samples).clamp(max=1.0).cpu().tolist()
            unexplained += (residual / moved.clamp_min(1e-12)).cpu().tolist()
    finally:
        model.train(was_training)
    return {
        "name": "unstable_predictions",
        "passed": True,
        "value": max(per_point) if per_point else 0.0,
        "per_point": [round(v, 6) for v in per_point],
        "unexplained": [round(v, 6) for v in unexplained],
        "half_width": half,
        "samples": samples,
        "fixed_draws": fixed_draws,
        "reason": "mean relative change of the cross-entropy under uniform noise of half-width min(4/255, eps/2) "
        "(Pintor et al., NeurIPS 2022), and the share of it the gradient does not explain; a random model is "
        "measured on its EOT average with the draws fixed",
    }
