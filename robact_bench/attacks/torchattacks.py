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

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robact_bench.attacks.backends import (
    AttackRequest,
    LibraryAttack,
    eps_fraction,
    get_attack,
    register_attack,
    register_backend,
    resolve_params,
)
from robact_bench.attacks.common import (
    AttackOutput,
    Timer,
    check_inputs,
    check_threat_model,
    library_version,
    model_device,
    project,
)
from robact_bench.registry import UnknownNameError


@dataclass(frozen=True)
class TorchattacksAttack(LibraryAttack):
    """A torchattacks attack: :class:`~robact_bench.attacks.backends.LibraryAttack` plus how to call it.

    Attributes:
        classes: The torchattacks class per norm (default: ``name`` for every norm in ``norms``).
        takes_eps: The class takes ``eps`` (CW does not: it minimizes the perturbation).
        project: Project its images onto the threat model (an attack not bounded by it, CW) and
            record how many moved.
        sequential_eot: The attack run instead with the library's own EOT loop when the evaluation's
            ``eot_mode`` is ``sequential`` (PGD: ``EOTPGD``, given ``eot_iter``).
        library_norm: The norm the library's attack works in whatever the threat model, recorded as
            ``record["norm"]`` (CW: ``L2``, projected onto an Linf ball); ``None``: the threat model's.

    """

    classes: dict[str, str] = field(default_factory=dict)
    takes_eps: bool = True
    project: bool = False
    sequential_eot: str | None = None
    library_norm: str | None = None

    def class_for(self, norm: str) -> str:
        """The torchattacks class that runs this attack in ``norm``."""
        return self.classes.get(norm, self.name)


def _supported() -> tuple[str, ...]:
    from robact_bench.attacks.backends import BACKENDS

    return BACKENDS.get("torchattacks").attack_names()


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
        attack: A registered torchattacks attack: ``FGSM``, ``PGD``, ``EOTPGD``, ``CW`` (see
            ``robact-bench list attacks``).
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
    try:
        spec = get_attack("torchattacks", attack)
    except UnknownNameError:
        raise ValueError(f"torchattacks attack must be one of {', '.join(_supported())}; got {attack!r}") from None
    if spec.name != attack:
        raise ValueError(f"torchattacks attack must be one of {', '.join(_supported())}; got {attack!r}")
    if not isinstance(spec, TorchattacksAttack):
        raise TypeError(f"torchattacks attack {attack!r} is a {type(spec).__name__}, not a TorchattacksAttack")
    check_inputs(x, y, eps, norm)
    if norm not in spec.norms:
        raise ValueError(f"torchattacks {attack} is an {'/'.join(spec.norms)} attack; got norm {norm!r}")
    ta = _import()
    full: dict[str, Any] = {"eps": float(eps)} if spec.takes_eps else {}
    full.update(resolve_params(spec, eps, params, f"torchattacks {attack}"))
    cls = spec.class_for(norm)
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
    if spec.project:
        x_adv, moved = project(x.cpu(), x_adv, eps, norm)
        extra = {"projected_to_threat_model": moved, "threat_model": {"norm": norm, "eps": float(eps)}}
    check_threat_model(x.cpu(), x_adv, eps, norm, f"torchattacks.{cls}")
    record = {
        "backend": "torchattacks",
        "backend_version": library_version("torchattacks"),
        "attack": cls,
        "norm": spec.library_norm or norm,
        "params": full,
        **extra,
        "seed": seed,
        "batch_size": batch_size,
        "seconds": round(t.seconds, 3),
    }
    return AttackOutput(name or attack.lower(), x_adv, None, record)


@register_backend("torchattacks", recorded=("torchattacks",), library="torchattacks",
                  description="Kim, Torchattacks, arXiv:2010.01950 (pip install --no-deps torchattacks==3.5.1)")
def run_torchattacks(req: AttackRequest) -> AttackOutput:
    """The engine's call: :func:`torchattacks_attack` with the request's settings.

    A sequential-EOT evaluation runs the attack's ``sequential_eot`` variant (PGD: ``EOTPGD`` with
    ``eot_iter = K``); an unbounded spec's default step (``alpha``) is eps/10 of the whole range.
    """
    spec = req.attack
    params = dict(req.params)
    if req.bound == "unbounded" and "alpha" in spec.defaults and "alpha" not in params:
        params["alpha"] = req.eps / 10
    attack = spec.name
    sequential = getattr(spec, "sequential_eot", None)
    if req.eot is not None and req.eot["mode"] == "sequential" and sequential is not None:
        attack, params = sequential, {**params, "eot_iter": req.eot["k"]}
    return torchattacks_attack(req.model, req.x, req.y, attack=attack, eps=req.eps, norm=req.norm, name=req.name,
                               batch_size=req.batch_size, seed=req.seed, **params)  # fmt: skip


_PGD_DEFAULTS = {"alpha": eps_fraction(0.25), "steps": 20, "random_start": True}
register_attack("torchattacks", TorchattacksAttack(
    "FGSM", paper="Goodfellow et al., Explaining and Harnessing Adversarial Examples, ICLR 2015",
    norms=("Linf",), single_step=True))  # fmt: skip
register_attack("torchattacks", TorchattacksAttack(
    "PGD", paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    defaults=_PGD_DEFAULTS, steps_param="steps", classes={"Linf": "PGD", "L2": "PGDL2"},
    sequential_eot="EOTPGD"), aliases=("PGDL2",))  # fmt: skip
register_attack("torchattacks", TorchattacksAttack(
    "EOTPGD", paper="Athalye et al., Synthesizing Robust Adversarial Examples, ICML 2018 (PGD with EOT)",
    norms=("Linf",), defaults={**_PGD_DEFAULTS, "eot_iter": 20}, steps_param="steps"))  # fmt: skip
register_attack("torchattacks", TorchattacksAttack(
    "CW", paper="Carlini and Wagner, Towards Evaluating the Robustness of Neural Networks, IEEE S&P 2017",
    defaults={"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01}, steps_param="steps", loss_maximizing=False,
    bounded_queries=False, takes_eps=False, project=True, library_norm="L2"))  # fmt: skip
