"""The training loop: seeded, device-agnostic, with a per-epoch history."""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robact_bench.activations.capped import drelu_modules
from robact_bench.training.config import TrainConfig
from robact_bench.training.losses import drelu_penalty_term
from robact_bench.training.recipes import RECIPES

log = logging.getLogger(__name__)


def _param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    caps = {id(m.m) for m in drelu_modules(model)}
    decay, no_decay, cap_params = [], [], []
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if id(p) in caps:
            cap_params.append(p)
        elif p.ndim <= 1:  # biases, norm scales, PReLU slopes
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr": cfg.lr},
        {"params": no_decay, "weight_decay": 0.0, "lr": cfg.lr},
    ]
    if cap_params:
        groups.append({"params": cap_params, "weight_decay": 0.0, "lr": cfg.drelu_lr or cfg.lr})
    return [g for g in groups if g["params"]]


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The optimizer of ``cfg`` over ``model``'s parameters (caps in their own group, no decay)."""
    groups = _param_groups(model, cfg)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.999))
    if cfg.optimizer == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)


def _cap_stats(model: nn.Module) -> dict[str, float]:
    caps = [m.m.detach().flatten() for m in drelu_modules(model)]
    if not caps:
        return {}
    c = torch.cat(caps)
    return {"m_min": float(c.min()), "m_mean": float(c.mean()), "m_max": float(c.max())}


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    progress: bool = True,
    desc: str = "train",
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``(x, y)`` with ``cfg``; return one history row per epoch.

    The device is the model's: move the model first (``model.to("cuda")``); batches follow it.
    Everything random (weights are the caller's; batch order, PGD starts, stochastic units) is
    drawn after ``torch.manual_seed(cfg.seed)``, so a CPU run repeats exactly.

    Args:
        model: The model to train.
        x: Training images in [0, 1], ``(N, C, H, W)``.
        y: Labels, ``(N,)``.
        cfg: The configuration.
        progress: Show a tqdm bar per epoch.
        desc: Label of the progress bar.

    Returns:
        Per-epoch rows: ``epoch``, ``loss``, ``penalty``, ``lr``, ``seconds`` and, for models
        with D-ReLU, the caps' ``m_min``/``m_mean``/``m_max``.

    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images (and at least one); got {len(x)} and {len(y)}")
    device = next(model.parameters()).device
    recipe = RECIPES.get(cfg.recipe)
    torch.manual_seed(cfg.seed)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    opt = build_optimizer(model, cfg)
    steps_per_epoch = (len(x) + cfg.batch_size - 1) // cfg.batch_size
    sched = None
    if cfg.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=cfg.epochs * steps_per_epoch
        )
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(x), generator=order_rng)
        total, total_pen, seen = 0.0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} {epoch}/{cfg.epochs}", disable=not progress, leave=False)
        for step in bar:
            idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss = recipe.loss(model, xb, yb, cfg)
            pen = drelu_penalty_term(model, cfg.drelu_lambda)
            opt.zero_grad(set_to_none=True)
            (loss + pen).backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += float(loss.detach()) * len(idx)
            total_pen += float(pen.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        row = {
            "epoch": epoch,
            "loss": total / seen,
            "penalty": total_pen / seen,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
            **_cap_stats(model),
        }
        history.append(row)
        log.info("%s epoch %d: %s", desc, epoch, {k: round(v, 5) for k, v in row.items()})
    model.eval()
    return history
