"""Checks computed from a model and its evaluation data, each with a name and a reason.

Issue-level scope today: D-ReLU saturation and the stochastic declaration/measurement match.
Every check returns a JSON-ready dict ``{"name", "passed", "reason", "value", ...}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from robact_bench.activations import is_stochastic
from robact_bench.activations.capped import drelu_modules
from robact_bench.attacks.common import model_device
from robact_bench.evaluation.stochastic import measure_stochastic


@torch.no_grad()
def drelu_saturation(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> dict[str, Any] | None:
    """Share of D-ReLU inputs on ``x`` that reach their cap; ``None`` if the model has no D-ReLU.

    A D-ReLU whose cap is never reached computes a plain ReLU: the model is then a ReLU network
    and its numbers say nothing about D-ReLU (observed with the paper's m = 100 in short runs).
    """
    mods = drelu_modules(model)
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
    caps = torch.cat([m.m.detach().flatten().cpu() for m in mods])
    return {
        "name": "drelu_saturation",
        "passed": share > 0.0,
        "value": share,
        "reason": (
            "share of D-ReLU inputs on the evaluation images that reach the cap m; "
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
