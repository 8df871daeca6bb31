"""Run the evaluation protocol on one model and return an :class:`EvalResult`.

Protocol (every number from a reference library, every image of a random model scored on R
forward passes):

1. Clean accuracy: one pass (deterministic) or R passes (mean, majority vote, worst case).
2. ``pgd{k}_reported``: torchattacks PGD with the training attack's settings, no EOT, scored on
   one pass too: the non-adaptive number the seed papers report.
3. ``pgd20``: torchattacks PGD-20 (deterministic) or EOTPGD-20 with K = ``eot_iter``.
4. AutoAttack through pyautoattack: ``standard`` for deterministic models, ``rand`` (EOT 20)
   for random ones.

A point is robust only if every attack failed on it (worst case per point).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from robact_bench.activations import is_stochastic
from robact_bench.attacks.autoattack import autoattack_attack
from robact_bench.attacks.common import AttackOutput
from robact_bench.attacks.torchattacks import torchattacks_attack
from robact_bench.data import balanced_subset
from robact_bench.evaluation.config import EvalConfig
from robact_bench.evaluation.diagnostics import drelu_saturation, stochastic_check
from robact_bench.evaluation.result import AttackRecord, EvalResult
from robact_bench.evaluation.stochastic import fraction, score
from robact_bench.fileio import environment

log = logging.getLogger(__name__)


def _record(out: AttackOutput, s_worst: torch.Tensor, s_first: torch.Tensor, cumulative: bool) -> AttackRecord:
    lib = None if out.library_robust is None else fraction(out.library_robust)
    return AttackRecord(
        name=out.name,
        accuracy=fraction(s_worst),
        single_pass_accuracy=fraction(s_first),
        library_accuracy=lib,
        cumulative=cumulative,
        record=out.record,
    )


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    cfg: EvalConfig,
    *,
    model_name: str,
    title: str = "",
    dataset: str = "",
    split: str = "test",
    spec: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    progress: bool = True,
    quick: bool = False,
) -> EvalResult:
    """Evaluate ``model`` on ``n_examples`` class-balanced points of ``(x, y)``.

    The points are chosen by :func:`~robact_bench.data.balanced_subset`.

    Args:
        model: Model taking images in [0, 1] and returning logits (any device).
        x: Images of the split, ``(N, C, H, W)`` in [0, 1].
        y: Labels ``(N,)``.
        cfg: Evaluation configuration.
        model_name: Identifier stored in the result.
        title: Human-readable description.
        dataset: Dataset name; ``split`` the split.
        split: Split name.
        spec: Model spec dictionary, stored as is.
        training: Training metadata, stored as is.
        progress: Show progress bars.
        quick: Mark the result as a smoke run.

    Returns:
        The :class:`EvalResult`.

    """
    t0 = time.perf_counter()
    idx = balanced_subset(y, cfg.n_examples)
    xs, ys = x[idx].contiguous(), y[idx].contiguous()
    stochastic = is_stochastic(model)
    passes = cfg.passes if stochastic else 1
    model.eval()
    torch.manual_seed(cfg.seed)
    diagnostics = [stochastic_check(model, xs[: min(len(xs), 64)])]
    sat = drelu_saturation(model, xs, cfg.batch_size)
    if sat is not None:
        diagnostics.append(sat)
    for d in diagnostics:
        if not d["passed"]:
            warnings.warn(f"{model_name}: check {d['name']} failed ({d['value']}): {d['reason']}", stacklevel=2)

    clean = score(model, xs, ys, passes, cfg.batch_size)
    step = cfg.pgd_step_size or cfg.eps / 4
    version = cfg.autoattack_version
    if version == "auto":
        version = "rand" if stochastic else "standard"

    def pgd(name: str, alpha: float, steps: int, eot: bool) -> list[AttackOutput]:
        extra = {"eot_iter": cfg.eot_iter} if eot else {}
        attack = "EOTPGD" if eot else "PGD"
        return [
            torchattacks_attack(
                model, xs, ys, attack=attack, eps=cfg.eps, name=name, alpha=alpha, steps=steps,
                batch_size=cfg.batch_size, seed=cfg.seed, **extra,
            )
        ]  # fmt: skip

    reported = f"pgd{cfg.reported_steps}_reported"
    runs: list[tuple[str, Callable[[], list[AttackOutput]]]] = [
        (reported, lambda: pgd(reported, cfg.reported_step_size or cfg.eps / 4, cfg.reported_steps, False)),
        (f"pgd{cfg.pgd_steps}", lambda: pgd(f"pgd{cfg.pgd_steps}", step, cfg.pgd_steps, stochastic)),
        (
            f"autoattack-{version}",
            lambda: autoattack_attack(
                model, xs, ys, eps=cfg.eps, norm=cfg.norm, version=version, seed=cfg.seed,
                batch_size=cfg.batch_size, backend=cfg.autoattack_backend, attacks=cfg.autoattack_attacks,
            ),
        ),
    ]  # fmt: skip
    records: list[AttackRecord] = []
    robust = clean.worst.clone()
    reported_acc = float("nan")
    autoattack_acc = float("nan")
    bar = tqdm(runs, desc=f"attacks {model_name}", disable=not progress, leave=False)
    for label, run in bar:
        bar.set_postfix_str(label)
        outputs = run()
        for out in outputs:
            s = score(model, out.x_adv, ys, passes, cfg.batch_size)
            flags = s.worst if out.library_robust is None else s.worst & out.library_robust
            rec = _record(out, flags, s.first, cumulative=out.library_robust is not None)
            records.append(rec)
            robust &= flags
            log.info("%s %s: %.4f (library %s)", model_name, out.name, rec.accuracy, rec.library_accuracy)
        if label == reported:
            reported_acc = records[-1].single_pass_accuracy
        if label.startswith("autoattack"):
            autoattack_acc = fraction(outputs[-1].library_robust)
    bar.close()
    return EvalResult(
        model_name=model_name,
        title=title or model_name,
        dataset=dataset,
        split=split,
        threat_model=cfg.norm,
        eps=float(cfg.eps),
        n_examples=len(idx),
        indices=tuple(int(i) for i in idx),
        stochastic=stochastic,
        passes=passes,
        eot_iter=cfg.eot_iter if stochastic else None,
        clean_acc=float(clean.mean.double().mean()),
        clean_acc_majority=fraction(clean.majority),
        clean_acc_worst=fraction(clean.worst),
        reported_acc=reported_acc,
        autoattack_acc=autoattack_acc,
        autoattack_version=version,
        robust_acc=fraction(robust),
        attacks=tuple(records),
        robust_flags=tuple(bool(b) for b in robust),
        diagnostics=tuple(diagnostics),
        model=dict(spec or {}),
        training=dict(training or {}),
        eval_config=cfg.to_dict(),
        environment=environment(),
        wall_time_s=time.perf_counter() - t0,
        quick=quick,
    )
