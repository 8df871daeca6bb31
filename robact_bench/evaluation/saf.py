"""Error rates on adversarial, nonsense and noisy samples over a strength grid (SAF paper, Sec. 5).

Zhao and Griffin, *Suppressing the Unusual: towards Robust CNNs using Symmetric Activation
Functions*, Section 5, Tables 2 (MNIST) and 4 (CIFAR-10). The samples come from
:mod:`robact_bench.attacks.saf`; pixels are in [0, 1], so the paper's ``255 * beta`` is
``beta`` here and ``beta = 0`` is the tables' "clean" column.

A model *rejects* an input (predicts the paper's "nonsense") when every class confidence is
below a threshold (the paper: 0.5). Confidences are ``exp(output)`` for a model ending with the
1-D RBF layer (:class:`~robact_bench.models.heads.RBFOutput`; unnormalized, each in (0, 1]) and
``softmax(logits)`` for any other model.

Error rates (our definitions):

* adversarial and noisy samples: an error when the argmax is wrong **or** the input is
  rejected; the rejection rate is reported on its own as well;
* nonsense samples: an error when the input is **not** rejected.

A random model (:func:`robact_bench.activations.is_stochastic`) is never scored on one pass:
``passes`` forward passes are made and a sample counts as correct only when it is correct on
every pass (``error``, the worst case); ``error_mean`` is the mean over passes of the per-pass
error rate. Its FGS gradients are taken through :class:`~robact_bench.attacks.eot.EOTModel`.

Example:
    >>> res = saf_error_rates(model, x_test, y_test, betas=saf_grid_for("mnist"))
    >>> res["adversarial"]["error"]          # one error rate per beta, Table 2's layout

"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from robact_bench.activations import is_stochastic
from robact_bench.attacks.common import check_inputs, model_device
from robact_bench.attacks.eot import EOTModel
from robact_bench.attacks.saf import apply_step, noisy_samples, nonsense_seed, saf_direction
from robact_bench.data import DATASETS
from robact_bench.data.families import CIFAR, MNIST
from robact_bench.models.heads import has_rbf_output
from robact_bench.training.losses import eval_mode

logger = logging.getLogger(__name__)

#: The strength grids of Tables 2 and 4 (on [0, 1] pixels; 0 is the "clean" column): the
#: ``saf_betas`` of the MNIST and CIFAR dataset families (:mod:`robact_bench.data.families`).
SAF_GRIDS: dict[str, tuple[float, ...]] = {"mnist": MNIST.saf_betas or (), "cifar10": CIFAR.saf_betas or ()}

DEFINITIONS: dict[str, str] = {
    "adversarial": "clip(x - beta * sign(grad_x L_h(x, l_max)), 0, 1), l_max = argmax over wrong classes "
    "l of ||grad_x L_h(x, l)||_1 (eq. 10); L_h = hybrid loss eq. 7 on the model's log-confidences",
    "nonsense": "i.i.d. N(0, 1) pixels mapped per image affinely onto [0, 1], then the adversarial step "
    "with every class a candidate for l_max; beta = 0 is the noise itself",
    "noisy": "clip(x + beta * N(0, 1), 0, 1), fresh noise for every beta; psnr = 20 log10(1 / beta) before clipping",
    "confidence": "exp(output) for a model with the final 1-D RBF layer (unnormalized), else softmax(logits)",
    "rejected": "max_i confidence_i < threshold (every class confidence below the threshold)",
    "error_adversarial_noisy": "argmax != label, or rejected",
    "error_nonsense": "not rejected",
    "passes": "error: an error on ANY of the passes (worst case); error_mean, rejected_mean: mean over "
    "passes of the per-pass rate; rejected: rejected on any pass",
    "plain_model_loss": "a model without an RBF output is attacked with L_h on log_softmax(logits) "
    "(our choice: the paper does not say)",
    "random_model_gradient": "EOTModel(model, k=eot_iter): gradient of L_h on the mean of k sampled "
    "outputs (for an RBF model the mean log-confidence)",
}


def saf_grid_for(dataset: str) -> tuple[float, ...]:
    """The paper's strength grid for a registered dataset: its ``DatasetInfo.saf_betas``.

    The MNIST family (``mnist``, ``mnist5k``, ``digits``) has Table 2's grid, the CIFAR family
    (``cifar10``, ``cifar100``, ``cifar10_sample``) Table 4's.

    Raises:
        ValueError: an unregistered dataset, or one whose family has no grid (give ``saf_betas``).

    """
    if dataset not in DATASETS:
        with_grid = [n for n in DATASETS.list() if DATASETS.get(n).saf_betas is not None]
        raise ValueError(
            f"no symmetric-activation strength grid for dataset {dataset!r}: not a registered dataset "
            f"(with a grid: {', '.join(with_grid)}); give saf_betas"
        )
    info = DATASETS.get(dataset)
    if info.saf_betas is None:
        raise ValueError(
            f"no symmetric-activation strength grid for dataset {info.name!r} (family {info.family.name}); "
            "give saf_betas"
        )
    return info.saf_betas


def saf_psnr(beta: float) -> float | None:
    """``20 log10(1 / beta)``, the tables' PSNR row for noise of standard deviation ``beta``; ``None`` at 0."""
    return None if beta == 0 else 20.0 * math.log10(1.0 / beta)


def saf_confidences(out: torch.Tensor, rbf: bool) -> torch.Tensor:
    """Class confidences from a model's output: ``exp(out)`` when ``rbf``, else ``softmax(out)``."""
    return out.exp() if rbf else F.softmax(out, dim=1)


def is_rejected(conf: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-row flag: every class confidence is strictly below ``threshold``."""
    return conf.amax(1) < threshold


@torch.no_grad()
def _passes(
    model: nn.Module, x: torch.Tensor, passes: int, threshold: float, rbf: bool, batch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and rejection flags of ``passes`` forward passes, each ``(passes, N)`` on the CPU."""
    device = model_device(model)
    pred = torch.empty(passes, len(x), dtype=torch.long)
    rej = torch.empty(passes, len(x), dtype=torch.bool)
    with eval_mode(model):
        for r in range(passes):
            for i in range(0, len(x), batch_size):
                out = model(x[i : i + batch_size].to(device))
                pred[r, i : i + batch_size] = out.argmax(1).cpu()
                rej[r, i : i + batch_size] = is_rejected(saf_confidences(out, rbf), threshold).cpu()
    return pred, rej


def _share(flags: torch.Tensor) -> float | None:
    """Exact share of ``True`` entries; ``None`` (JSON null) when there are none to count."""
    return int(flags.sum()) / flags.numel() if flags.numel() else None


def _check_number(value: float, name: str, low: float, high: float) -> None:
    if isinstance(value, bool) or not (isinstance(value, int | float) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}]; got {value}")


def _check_count(value: int, name: str, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}; got {value!r}")


def saf_error_rates(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    betas: Sequence[float],
    threshold: float = 0.5,
    n_nonsense: int = 1000,
    passes: int = 10,
    eot_iter: int = 20,
    seed: int = 0,
    batch_size: int = 500,
    a1: float = 1.0,
    a2: float = 1.0,
    a3: float = 0.0,
    p: float = 2.0,
    progress: bool = False,
) -> dict[str, Any]:
    """Error and rejection rates on the paper's three kinds of sample, one value per ``beta``.

    * adversarial: :func:`~robact_bench.attacks.saf.saf_fgs` on ``(x, y)`` (one eq. 10 step);
    * nonsense: ``n_nonsense`` noise images (:func:`~robact_bench.attacks.saf.nonsense_seed`)
      plus the same step with every class a candidate;
    * noisy: ``clip(x + beta * N(0, 1), 0, 1)``, fresh noise for every ``beta``.

    Error: adversarial and noisy samples are errors when the argmax is wrong or the input is
    rejected (every confidence ``< threshold``); nonsense samples are errors when they are not
    rejected. A random model is scored with ``passes`` forward passes and a sample is correct
    only when it is correct on every pass (``error``; ``error_mean`` averages the per-pass rates);
    a deterministic model is scored once (``passes`` is then recorded as 1).

    The FGS direction does not depend on ``beta``: it is computed once per kind and stepped to
    every strength. Everything is seeded (a CPU ``torch.Generator(seed)`` for the noise, the
    global RNG forked and seeded for the model's own randomness, restored afterwards), so the
    result is reproducible bit for bit for a deterministic model on the same machine.

    Args:
        model: Images in, logits (or RBF log-confidences) out.
        x: Clean images in [0, 1], ``(N, C, H, W)``.
        y: Labels ``(N,)``.
        betas: Strengths (see :data:`SAF_GRIDS`, :func:`saf_grid_for`).
        threshold: Rejection threshold on the confidences, in [0, 1].
        n_nonsense: Number of nonsense samples (0 skips them; their rates are then ``None``).
        passes: Forward passes per sample for a random model.
        eot_iter: EOT samples per gradient for a random model.
        seed: Seed of every random draw.
        batch_size: Images per forward pass (EOT draws ``eot_iter`` times as many).
        a1: Hybrid loss weight (MNIST 1, CIFAR-10 1).
        a2: Hybrid loss weight (MNIST 1, CIFAR-10 1).
        a3: Hybrid loss weight (MNIST 0, CIFAR-10 1/9).
        p: Order of the hybrid loss's errors.
        progress: Show a tqdm bar.

    Returns:
        A JSON-ready dict: ``betas``, ``psnr``, ``threshold``, ``n_examples``, ``n_nonsense``,
        ``passes``, ``stochastic``, ``confidence`` (``"rbf"`` or ``"softmax"``),
        ``adversarial`` and ``noisy`` (``error``, ``error_mean``, ``rejected``,
        ``rejected_mean``: lists over ``betas``), ``nonsense`` (``error``, ``error_mean``),
        ``params`` and ``definitions``.

    """
    check_inputs(x, y, 0.0, "Linf")
    if len(x) == 0:
        raise ValueError("need at least one image")
    betas = [float(b) for b in betas]
    if not betas:
        raise ValueError("betas must not be empty")
    for b in betas:
        _check_number(b, "beta", 0.0, 1.0)
    _check_number(threshold, "threshold", 0.0, 1.0)
    _check_count(n_nonsense, "n_nonsense", 0)
    _check_count(passes, "passes", 1)
    _check_count(eot_iter, "eot_iter", 1)
    _check_count(batch_size, "batch_size", 1)

    rbf = has_rbf_output(model)
    stochastic = is_stochastic(model)
    passes_used = passes if stochastic else 1
    attack_model: nn.Module = EOTModel(model, k=eot_iter, max_batch=batch_size) if stochastic else model
    step_kw = {"a1": a1, "a2": a2, "a3": a3, "p": p, "batch_size": batch_size}
    y = y.cpu()
    device = model_device(model)
    cuda = [device.index or 0] if device.type == "cuda" else []
    gen = torch.Generator().manual_seed(seed)
    any_step = any(b > 0 for b in betas)

    def rates(bad: torch.Tensor) -> tuple[float | None, float | None]:
        """(worst case over passes, mean over passes) of a ``(passes, N)`` error flag."""
        return _share(bad.any(0)), _share(bad)

    result: dict[str, Any] = {
        kind: {"error": [], "error_mean": [], "rejected": [], "rejected_mean": []} for kind in ("adversarial", "noisy")
    }
    result["nonsense"] = {"error": [], "error_mean": []}

    def score_labelled(kind: str, samples: torch.Tensor) -> None:
        pred, rej = _passes(model, samples, passes_used, threshold, rbf, batch_size)
        err, err_mean = rates((pred != y.unsqueeze(0)) | rej)
        rj, rj_mean = rates(rej)
        for key, val in (("error", err), ("error_mean", err_mean), ("rejected", rj), ("rejected_mean", rj_mean)):
            result[kind][key].append(val)

    bar = tqdm(total=3 * len(betas), desc="saf samples", disable=not progress, leave=False)
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        noise = nonsense_seed(n_nonsense, tuple(x.shape[1:]), generator=gen).to(x)

        direction = saf_direction(attack_model, x, y, **step_kw)[0] if any_step else None
        for b in betas:
            score_labelled("adversarial", apply_step(x, direction, b) if b > 0 else x)
            bar.update()

        ns_direction = saf_direction(attack_model, noise, None, **step_kw)[0] if any_step and n_nonsense else None
        for b in betas:
            samples = apply_step(noise, ns_direction, b) if b > 0 and n_nonsense else noise
            _, rej = _passes(model, samples, passes_used, threshold, rbf, batch_size)
            err, err_mean = rates(~rej)
            result["nonsense"]["error"].append(err)
            result["nonsense"]["error_mean"].append(err_mean)
            bar.update()

        for b in betas:
            score_labelled("noisy", noisy_samples(x, b, generator=gen))
            bar.update()
    bar.close()

    for kind in ("adversarial", "nonsense", "noisy"):
        logger.info("saf %s error over betas %s: %s", kind, betas, result[kind]["error"])
    return {
        "betas": betas,
        "psnr": [saf_psnr(b) for b in betas],
        "threshold": float(threshold),
        "n_examples": len(x),
        "n_nonsense": n_nonsense,
        "passes": passes_used,
        "stochastic": stochastic,
        "confidence": "rbf" if rbf else "softmax",
        **result,
        "params": {
            "a1": float(a1),
            "a2": float(a2),
            "a3": float(a3),
            "p": float(p),
            "eot_iter": eot_iter if stochastic else None,
            "passes_requested": passes,
            "seed": seed,
            "batch_size": batch_size,
        },
        "definitions": dict(DEFINITIONS),
    }
