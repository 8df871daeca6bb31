"""The training loop: seeded, device-agnostic, validated each epoch, resumable bit for bit.

``train_model`` trains in place. With a validation split it reports clean and robust accuracy
and the validation loss each epoch (which ReduceLROnPlateau and early stopping watch). With a
``state_path`` it writes the complete training state after every epoch (see
:mod:`robact_bench.training.state`), and with ``resume=True`` it continues from that file: on
the CPU the final weights are bit-identical to an uninterrupted run with the same seed.

**Several processes.** Under ``torchrun`` (:mod:`robact_bench.distributed`) the loop trains
with :class:`~torch.nn.parallel.DistributedDataParallel` (gloo on the CPU, nccl on CUDA):
``cfg.batch_size`` is the global batch, each of the ``W`` ranks takes ``batch_size / W`` images
of it from a :class:`~torch.utils.data.DistributedSampler` (seeded with ``cfg.seed``, reshuffled
each epoch), gradients are averaged by DDP, and only rank 0 writes the state file and calls
``on_epoch_end``. Every rank seeds the global RNG with ``cfg.seed`` (attack starts and random
activations draw the same stream on different images), so all ranks consume it alike and rank
0's saved state resumes every rank exactly. The history's losses are averaged over all ranks.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robact_bench import distributed
from robact_bench.activations import is_stochastic
from robact_bench.activations.capped import drelu_modules
from robact_bench.attacks.pgd import pgd_linf
from robact_bench.training.config import TrainConfig
from robact_bench.training.losses import drelu_penalty_term, eval_mode
from robact_bench.training.recipes import RECIPES, RecipeContext
from robact_bench.training.state import TrainState, load_train_state, save_train_state

log = logging.getLogger(__name__)

VAL_PASSES_STOCHASTIC = 5  # validation of a random model averages this many forward passes
EpochCallback = Callable[[list[dict[str, float]]], None]


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
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> Any:
    """The learning-rate scheduler of ``cfg`` (``None`` for ``none``)."""
    if cfg.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=[g["lr"] for g in opt.param_groups], total_steps=cfg.epochs * steps_per_epoch
        )
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="min", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    return None


def _cap_stats(model: nn.Module) -> dict[str, float]:
    caps = [m.m.detach().flatten() for m in drelu_modules(model)]
    if not caps:
        return {}
    c = torch.cat(caps)
    return {"m_min": float(c.min()), "m_mean": float(c.mean()), "m_max": float(c.max())}


def validate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: TrainConfig, *, batch_size: int = 500
) -> dict[str, float]:
    """Validation loss (cross-entropy + D-ReLU penalty), clean accuracy and, if asked, PGD accuracy.

    Monitoring numbers for training (model selection, early stopping, the training log), not
    an evaluation: the robust accuracy uses the model's own PGD (``cfg.eps``, ``cfg.step_size``,
    ``max(cfg.steps, 1)`` steps), without EOT. A stochastic model is scored as the mean over
    several forward passes, never one.
    """
    device = next(model.parameters()).device
    passes = VAL_PASSES_STOCHASTIC if is_stochastic(model) else 1
    robust = cfg.val_robust and cfg.eps > 0
    loss_sum, correct, correct_adv = 0.0, 0, 0
    with eval_mode(model):
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            x_adv = None
            if robust:
                x_adv = pgd_linf(model, xb, yb, eps=cfg.eps, step_size=cfg.step_size, steps=max(cfg.steps, 1))
            with torch.no_grad():
                for _ in range(passes):
                    logits = model(xb)
                    loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
                    correct += int((logits.argmax(1) == yb).sum())
                    if x_adv is not None:
                        correct_adv += int((model(x_adv).argmax(1) == yb).sum())
    n = len(x) * passes
    penalty = float(drelu_penalty_term(model, cfg.drelu_lambda).detach())
    row = {"val_loss": loss_sum / n + penalty, "val_acc": correct / n}
    if robust:
        row["val_robust_acc"] = correct_adv / n
    return row


def train_model(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    *,
    val: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool = True,
    desc: str = "train",
    state_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    fingerprint: str = "",
    on_epoch_end: EpochCallback | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place on ``(x, y)`` with ``cfg``; return one history row per epoch.

    The device is the model's: move the model first (``model.to("cuda")``); batches follow it.
    Everything random (weights are the caller's; batch order, attack starts, stochastic units)
    is drawn after ``torch.manual_seed(cfg.seed)``, so a CPU run repeats exactly.

    Args:
        model: The model to train.
        x: Training images in [0, 1], ``(N, C, H, W)``.
        y: Labels, ``(N,)``.
        cfg: The configuration.
        val: Validation images and labels (never the test set); needed by ``plateau`` and
            early stopping.
        progress: Show a tqdm bar per epoch.
        desc: Label of the progress bar.
        state_path: Write the full training state here after every epoch (atomically).
        resume: Continue from ``state_path`` if it exists (else start fresh).
        fingerprint: The run's config fingerprint, stored in the state and checked on resume.
        on_epoch_end: ``callback(history)`` after each epoch's state is written (the history
            holds every epoch so far, earlier sessions' included when resumed).

    Returns:
        Per-epoch rows: ``epoch``, ``loss``, ``penalty``, ``lr``, ``seconds`` (training only);
        with a validation split ``val_loss``, ``val_acc`` (and ``val_robust_acc``) and
        ``val_seconds``; for models with D-ReLU the caps' ``m_min``/``m_mean``/``m_max``.

    """
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as images (and at least one); got {len(x)} and {len(y)}")
    if val is None and (cfg.scheduler == "plateau" or cfg.early_stopping_patience is not None):
        raise ValueError("scheduler plateau and early stopping need validation data (val=...)")
    device = next(model.parameters()).device
    recipe = RECIPES.get(cfg.recipe)
    if recipe.check is not None:
        recipe.check(model)
    ctx = RecipeContext(train_mean=x.mean(0, keepdim=True).to(device))
    torch.manual_seed(cfg.seed)
    order_rng = torch.Generator().manual_seed(cfg.seed)
    opt = build_optimizer(model, cfg)
    world = distributed.world_size()
    if cfg.batch_size % world:
        raise ValueError(f"batch_size {cfg.batch_size} is the global batch: it must split evenly over {world} ranks")
    sampler = _sampler(len(x), cfg.seed) if world > 1 else None
    local_batch = cfg.batch_size // world
    n_local = len(sampler) if sampler is not None else len(x)
    steps_per_epoch = (n_local + local_batch - 1) // local_batch
    sched = build_scheduler(opt, cfg, steps_per_epoch)
    writer = distributed.is_main()
    progress = progress and writer
    state = TrainState()
    if resume and state_path is not None and Path(state_path).is_file():
        state = load_train_state(
            state_path, model=model, optimizer=opt, scheduler=sched, order_rng=order_rng, fingerprint=fingerprint
        )
        log.info("%s: resumed after epoch %d", desc, state.epoch)
    trained = _ddp(model) if world > 1 else model  # DDP broadcasts rank 0's weights to every rank
    model.train()
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        if state.stopped_early:
            break
        t0 = time.perf_counter()
        if sampler is not None:
            sampler.set_epoch(epoch)
            perm = torch.tensor(list(sampler), dtype=torch.long)
        else:
            perm = torch.randperm(len(x), generator=order_rng)
        total, total_pen, seen = 0.0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"{desc} {epoch}/{cfg.epochs}", disable=not progress, leave=False)
        for step in bar:
            idx = perm[step * local_batch : (step + 1) * local_batch]
            xb, yb = x[idx].to(device), y[idx].to(device)
            loss = recipe.loss(trained, xb, yb, cfg, ctx)
            pen = drelu_penalty_term(model, cfg.drelu_lambda)
            opt.zero_grad(set_to_none=True)
            (loss + pen).backward()
            opt.step()
            if cfg.scheduler == "onecycle":
                sched.step()
            total += float(loss.detach()) * len(idx)
            total_pen += float(pen.detach()) * len(idx)
            seen += len(idx)
            bar.set_postfix(loss=f"{total / seen:.4f}")
        if world > 1:  # the epoch's loss over every rank's images
            total, total_pen, n_seen = distributed.sum_over_ranks([total, total_pen, seen], device)
            seen = int(n_seen)
        row: dict[str, float] = {
            "epoch": epoch,
            "loss": total / seen,
            "penalty": total_pen / seen,
            "lr": opt.param_groups[0]["lr"],
            "seconds": time.perf_counter() - t0,
            **_cap_stats(model),
        }
        if val is not None:
            t1 = time.perf_counter()
            row.update(validate(model, *val, cfg))
            row["val_seconds"] = time.perf_counter() - t1
            bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k in ("loss", "val_acc", "val_robust_acc")})
            _after_validation(row, cfg, sched, state)
        bar.close()
        state.epoch = epoch
        state.history.append(row)
        if state_path is not None and writer:
            save_train_state(
                state_path, model=model, optimizer=opt, scheduler=sched, order_rng=order_rng, state=state,
                fingerprint=fingerprint,
            )  # fmt: skip
        log.info("%s epoch %d: %s", desc, epoch, {k: round(v, 5) for k, v in row.items()})
        if on_epoch_end is not None and writer:
            on_epoch_end(state.history)
    model.eval()
    return state.history


def _sampler(n: int, seed: int) -> torch.utils.data.DistributedSampler:
    """The share of ``range(n)`` of this rank, reshuffled each epoch (padded so every rank has as many)."""
    return torch.utils.data.DistributedSampler(range(n), shuffle=True, seed=seed, drop_last=False)


def _ddp(model: nn.Module) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel on its own device."""
    device = next(model.parameters()).device
    ids = [device] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def _after_validation(row: dict[str, float], cfg: TrainConfig, sched: Any, state: TrainState) -> None:
    """Step ReduceLROnPlateau and the early-stopping counter on the epoch's validation loss."""
    val_loss = row["val_loss"]
    if cfg.scheduler == "plateau":
        sched.step(val_loss)
    if math.isfinite(val_loss) and val_loss < state.best_val_loss:
        state.best_val_loss, state.bad_epochs = val_loss, 0
    else:
        state.bad_epochs += 1
    patience = cfg.early_stopping_patience
    if patience is not None and state.bad_epochs >= patience:
        state.stopped_early = True
        row["stopped_early"] = 1.0
        log.info("early stopping after epoch %d (no lower validation loss for %d epochs)", row["epoch"], patience)
