"""Adapter for torchattacks.

Kim, *Torchattacks: A PyTorch Repository for Adversarial Attacks*, arXiv:2010.01950.

``torchattacks`` declares torchvision and an old ``requests`` it never imports: install it with
``pip install --no-deps torchattacks==3.5.1``. It takes images in [0, 1] and puts the model in
``eval()`` for the attack (our stochastic activations stay random in ``eval()``).

Supported attacks (torchattacks class, parameters with their defaults here):

* ``FGSM``: Goodfellow et al., *Explaining and Harnessing Adversarial Examples*, ICLR 2015.
  Linf. ``eps``.
* ``PGD``: Madry et al., ICLR 2018. Linf (torchattacks ``PGD``) or L2 (``PGDL2``). ``eps``,
  ``alpha`` (eps/4), ``steps`` (20), ``random_start`` (True).
* ``EOTPGD``: PGD whose gradient is summed over ``eot_iter`` forward passes (Expectation over
  Transformation, Athalye et al., ICML 2018), a Python loop of passes. Linf. As PGD plus
  ``eot_iter`` (20). The engine's batched EOT (:mod:`robact_bench.attacks.eot`) runs plain
  ``PGD`` on an EOT model instead.
* ``CW``: Carlini and Wagner, *Towards Evaluating the Robustness of Neural Networks*, IEEE S&P
  2017. L2, unbounded (it minimizes the perturbation; torchattacks has no binary search over
  ``c``). ``c`` (1), ``kappa`` (0), ``steps`` (50), ``lr`` (0.01). Its images are projected
  onto the threat model (``eps`` in ``norm``) before they are returned, and the number moved is
  recorded: a CW example that needs more than ``eps`` counts only as far as its projection fools
  the model.

Example:
    >>> out = torchattacks_attack(model, x, y, attack="PGD", eps=0.1, steps=20, seed=0)
    >>> out.x_adv.shape == x.shape
    True

"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robact_bench.attacks.common import (
    AttackOutput,
    Timer,
    check_inputs,
    check_threat_model,
    library_version,
    model_device,
    project,
)

SUPPORTED = ("FGSM", "PGD", "EOTPGD", "CW")
LINF_ONLY = ("FGSM", "EOTPGD")


def _import() -> Any:
    try:
        import torchattacks
    except ImportError:
        raise ImportError(
            "torchattacks is not installed; install it with "
            "`pip install --no-deps torchattacks==3.5.1` (it never imports the torchvision it declares)"
        ) from None
    return torchattacks


def torchattacks_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: str = "PGD",
    eps: float,
    norm: str = "Linf",
    name: str | None = None,
    batch_size: int = 500,
    seed: int = 0,
    **params: Any,
) -> AttackOutput:
    """Run one torchattacks attack over ``(x, y)`` in batches.

    Args:
        model: Model taking images in [0, 1] and returning logits.
        x: Images in [0, 1], ``(N, C, H, W)`` (any device; results come back on the CPU).
        y: Labels ``(N,)``.
        attack: ``FGSM``, ``PGD``, ``EOTPGD`` or ``CW``.
        eps: Radius of the threat model.
        norm: ``Linf`` or ``L2`` (``PGD`` becomes ``PGDL2``; ``CW`` is projected onto it).
        name: Our name for this run (default: the attack name in lower case).
        batch_size: Images per call.
        seed: ``torch.manual_seed`` before the first batch (random starts, stochastic units).
        **params: Attack parameters (``alpha``, ``steps``, ``random_start``, ``eot_iter``;
            ``c``, ``kappa``, ``steps``, ``lr`` for CW).

    Returns:
        :class:`AttackOutput` with the adversarial images and a record of every parameter.

    """
    if attack not in SUPPORTED:
        raise ValueError(f"torchattacks attack must be one of {', '.join(SUPPORTED)}; got {attack!r}")
    check_inputs(x, y, eps, norm)
    if norm != "Linf" and attack in LINF_ONLY:
        raise ValueError(f"torchattacks {attack} is an Linf attack; got norm {norm!r}")
    ta = _import()
    full: dict[str, Any] = {} if attack == "CW" else {"eps": float(eps)}
    if attack in ("PGD", "EOTPGD"):
        full["alpha"] = float(params.pop("alpha", eps / 4))
        full["steps"] = int(params.pop("steps", 20))
        full["random_start"] = bool(params.pop("random_start", True))
    if attack == "EOTPGD":
        full["eot_iter"] = int(params.pop("eot_iter", 20))
    if attack == "CW":
        full["c"] = float(params.pop("c", 1.0))
        full["kappa"] = float(params.pop("kappa", 0.0))
        full["steps"] = int(params.pop("steps", 50))
        full["lr"] = float(params.pop("lr", 0.01))
    if params:
        raise TypeError(f"torchattacks {attack} does not take {sorted(params)}")
    cls = "PGDL2" if attack == "PGD" and norm == "L2" else attack
    atk = getattr(ta, cls)(model, **full)
    device = model_device(model)
    torch.manual_seed(seed)
    outs = []
    with Timer() as t:
        for i in range(0, len(x), batch_size):
            xb, yb = x[i : i + batch_size].to(device), y[i : i + batch_size].to(device)
            outs.append(atk(xb, yb).detach().cpu())
    x_adv = torch.cat(outs) if outs else x.clone()
    extra: dict[str, Any] = {}
    if attack == "CW":
        x_adv, moved = project(x.cpu(), x_adv, eps, norm)
        extra = {"projected_to_threat_model": moved, "threat_model": {"norm": norm, "eps": float(eps)}}
    check_threat_model(x.cpu(), x_adv, eps, norm, f"torchattacks.{cls}")
    record = {
        "backend": "torchattacks",
        "backend_version": library_version("torchattacks"),
        "attack": cls,
        "norm": "L2" if attack == "CW" else norm,
        "params": full,
        **extra,
        "seed": seed,
        "batch_size": batch_size,
        "seconds": round(t.seconds, 3),
    }
    return AttackOutput(name or attack.lower(), x_adv, None, record)
