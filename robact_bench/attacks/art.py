"""Adapter for the Adversarial Robustness Toolbox (ART).

Nicolae et al., *Adversarial Robustness Toolbox v1.0.0*, arXiv:1807.01069
(https://arxiv.org/abs/1807.01069).

``adversarial-robustness-toolbox`` 1.20.1 imports ``packaging`` without declaring it, and its
``AutoAttack`` also imports ``multiprocess``, which it doesn't declare either. Install all three:
``pip install adversarial-robustness-toolbox==1.20.1 packaging multiprocess``.
ART works on numpy ``float32`` arrays. Labels go in as class indices ``(N,)``, and each attack
one-hot encodes them itself. ART's ``PyTorchClassifier`` switches the model to ``eval()`` for
every prediction and gradient. Our stochastic activations (BReLU, ...) stay random in ``eval()``,
so a randomized model is still randomized under ART; a unit that is random only in training
mode (Dropout) is switched off there unless the model goes through
:func:`robact_bench.interop.art.to_art_classifier`. ART has no EOT for randomness inside the
network.

Supported attacks (ART class, parameters with their defaults here; ``eps`` and ``norm`` always):

* ``PGD`` (``ProjectedGradientDescent``): Madry et al., *Towards Deep Learning Models Resistant
  to Adversarial Attacks*, ICLR 2018 (https://arxiv.org/abs/1706.06083). Linf, L2.
  ``eps_step`` (eps/4), ``max_iter`` (20), ``num_random_init`` (1), ``targeted`` (False).
* ``Square`` (``SquareAttack``): Andriushchenko et al., *Square Attack: a query-efficient
  black-box adversarial attack via random search*, ECCV 2020 (https://arxiv.org/abs/1912.00049).
  Linf, L2. ``max_iter`` (1000), ``p_init`` (0.8), ``nb_restarts`` (1).
* ``AutoAttack``: **ART's own** ``AutoAttack``, *not* the reference implementation of Croce &
  Hein, ICML 2020 (https://arxiv.org/abs/2003.01690; for that one use
  :mod:`robact_bench.attacks.autoattack`). Its default list: APGD-CE and APGD-DLR (100 iterations,
  5 restarts each), DeepFool, Square (5000 iterations, 5 restarts), all untargeted, with no FAB.
  Linf, L2. ``eps_step`` (eps/4). Square only runs on the points that are still robust when it
  starts, and on the CPU it's slow: minutes for a few dozen points.

Every ART attack also gets ``batch_size`` (this function's argument). PGD and Square get
``verbose=False``. Everything passed to ART goes into ``record["params"]``, with the Linf norm
written as ``"inf"``.

Input range: images in [0, 1], ``(N, C, H, W)``. ART clips to ``clip_values=(0, 1)``. ART can
return points slightly outside the eps-ball: AutoAttack accepts a perturbation up to
``eps / (1 - 1e-4)``, and float32 rounding adds a bit more. So the result is projected (clamped to
the eps-ball, then to [0, 1]) before the threat-model check. The largest change this makes goes
into ``record["projection"]``. It is 0 when ART stayed inside the ball.

Example:
    >>> out = art_attack(model, x, y, attack="PGD", eps=0.1, max_iter=20, seed=0)
    >>> out.x_adv.shape == x.shape
    True

"""

from __future__ import annotations

import contextlib
import importlib
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robact_bench.attacks.backends import (
    BACKENDS,
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

_INSTALL = "pip install adversarial-robustness-toolbox==1.20.1 packaging multiprocess"


@dataclass(frozen=True)
class ArtAttack(LibraryAttack):
    """An ART evasion attack: :class:`~robact_bench.attacks.backends.LibraryAttack` plus its ART class.

    Attributes:
        art_class: The class in ``art.attacks.evasion`` (``ProjectedGradientDescent``).
        requires: Modules its ``generate`` imports that ART does not declare (checked before the work).

    """

    art_class: str = ""
    requires: tuple[str, ...] = ()


def _supported() -> tuple[str, ...]:
    return BACKENDS.get("art").attack_names()


def _import(module: str) -> Any:
    """Import an ART module, with a one-line message when ART (or its undeclared ``packaging``) is missing."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"ART is not usable here ({err}); install it with `{_INSTALL}`") from None


def art_classifier(
    model: nn.Module,
    input_shape: tuple[int, ...],
    nb_classes: int,
    *,
    clip_values: tuple[float, float] = (0.0, 1.0),
    device: str | torch.device | None = None,
) -> Any:
    """Wrap ``model`` in an ART ``PyTorchClassifier``.

    The classifier uses the cross-entropy loss. Its ``device_type`` is ``"gpu"`` when the device
    is CUDA and ``"cpu"`` otherwise. ART moves the model to its device (in place) and takes a GPU
    device from ``torch.cuda.current_device()``, so the classifier is built with ``device`` as the
    current CUDA device: a model on ``cuda:1`` stays on ``cuda:1``.

    Args:
        model: Model taking images in [0, 1] and returning logits.
        input_shape: Shape of one input, e.g. ``(1, 28, 28)``.
        nb_classes: Number of classes (logits).
        clip_values: Smallest and largest pixel value (default ``(0.0, 1.0)``).
        device: Where ART runs the model (default: the model's device).

    Returns:
        The ART classifier. It calls ``model.train(False)`` on every prediction and gradient.

    """
    classification = _import("art.estimators.classification")
    dev = torch.device(device) if device is not None else model_device(model)
    with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
        return classification.PyTorchClassifier(
            model=model,
            loss=nn.CrossEntropyLoss(),
            input_shape=tuple(input_shape),
            nb_classes=int(nb_classes),
            clip_values=(float(clip_values[0]), float(clip_values[1])),
            device_type="gpu" if dev.type == "cuda" else "cpu",
        )


def _params(attack: ArtAttack, eps: float, norm: str, batch_size: int, params: dict[str, Any]) -> dict[str, Any]:
    """Everything passed to the ART class except the estimator, with the Linf norm as ``"inf"``."""
    full: dict[str, Any] = {"norm": "inf" if norm == "Linf" else 2, "eps": float(eps)}
    full.update(resolve_params(attack, eps, params, f"ART {attack.name}"))
    full["batch_size"] = int(batch_size)
    return full


def art_attack(
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
    """Run one ART evasion attack over ``(x, y)``.

    Args:
        model: Model taking images in [0, 1] and returning logits. Its training mode is restored
            afterwards.
        x: Images in [0, 1], ``(N, C, H, W)`` (any device; results come back on the CPU).
        y: Labels ``(N,)``.
        attack: ``PGD``, ``Square`` or ``AutoAttack`` (ART's own, not Croce & Hein's).
        eps: Radius of the threat model.
        norm: ``"Linf"`` or ``"L2"``.
        name: Our name for this run (default ``"art-"`` + the attack name in lower case).
        batch_size: Images per ART batch, passed to the ART attack.
        seed: ``random.seed``, ``np.random.seed`` and ``torch.manual_seed`` before the run. ART
            draws from the global RNGs: numpy for random starts and Square's proposals, and
            Python's ``random`` for some of Square's L2 proposals.
        **params: Attack parameters (``eps_step``, ``max_iter``, ``num_random_init``,
            ``targeted``, ``p_init``, ``nb_restarts``).

    Returns:
        :class:`AttackOutput` with the adversarial images (float32, CPU) and a record of every
        parameter passed to ART.

    """
    try:
        spec = get_attack("art", attack)
    except UnknownNameError:
        spec = None
    if not isinstance(spec, ArtAttack) or spec.name != attack:
        raise ValueError(f"ART attack must be one of {', '.join(_supported())}; got {attack!r}")
    check_inputs(x, y, eps, norm)
    if norm not in spec.norms:
        raise ValueError(f"ART {attack} is an {'/'.join(spec.norms)} attack; got norm {norm!r}")
    full = _params(spec, eps, norm, batch_size, dict(params))
    evasion = _import("art.attacks.evasion")
    for module in spec.requires:  # e.g. ART's AutoAttack.generate imports multiprocess: fail before the work
        _import(module)
    x_cpu = x.detach().cpu().float()
    projection = 0.0
    was_training = model.training
    with Timer() as t:
        if len(x):
            device = model_device(model)
            model.eval()
            try:
                with torch.no_grad():
                    nb_classes = int(model(x_cpu[:1].to(device)).shape[-1])
                clf = art_classifier(model, tuple(x_cpu.shape[1:]), nb_classes)
                cls = getattr(evasion, spec.art_class)
                art_kwargs = {**full, "norm": np.inf if norm == "Linf" else 2}
                atk = cls(clf, **art_kwargs)
                random.seed(seed)
                np.random.seed(seed)
                torch.manual_seed(seed)
                x_np = atk.generate(x_cpu.numpy(), y=y.detach().cpu().numpy().astype(np.int64))
            finally:
                model.train(was_training)
            raw = torch.from_numpy(np.asarray(x_np, dtype=np.float32)).reshape(x_cpu.shape)
            x_adv, _ = project(x_cpu, raw, eps, norm)
            projection = float((x_adv - raw).abs().max())
        else:
            x_adv = x_cpu.clone()
    check_threat_model(x_cpu, x_adv, eps, norm, f"art.{attack}")
    record = {
        "backend": "adversarial-robustness-toolbox",
        "backend_version": library_version("adversarial-robustness-toolbox"),
        "attack": attack,
        "norm": norm,
        "params": full,
        "seed": seed,
        "batch_size": batch_size,
        "seconds": round(t.seconds, 3),
        "projection": projection,
    }
    return AttackOutput(name or f"art-{attack.lower()}", x_adv, None, record)


@register_backend(
    "art",
    recorded=("adversarial-robustness-toolbox", "art"),  # "art": the short name the entry schema accepted too
    library="adversarial-robustness-toolbox",
    description=f"Nicolae et al., Adversarial Robustness Toolbox, arXiv:1807.01069 ({_INSTALL})",
)
def run_art(req: AttackRequest) -> AttackOutput:
    """The engine's call: :func:`art_attack` with the request's settings."""
    return art_attack(req.model, req.x, req.y, attack=req.attack.name, eps=req.eps, norm=req.norm, name=req.name,
                      batch_size=req.batch_size, seed=req.seed, **req.params)  # fmt: skip


register_attack("art", ArtAttack(
    "PGD", paper="Madry et al., Towards Deep Learning Models Resistant to Adversarial Attacks, ICLR 2018",
    defaults={"eps_step": eps_fraction(0.25), "max_iter": 20, "num_random_init": 1, "targeted": False},
    fixed={"verbose": False}, steps_param="max_iter", art_class="ProjectedGradientDescent"))  # fmt: skip
register_attack("art", ArtAttack(
    "Square", paper="Andriushchenko et al., Square Attack, ECCV 2020",
    defaults={"max_iter": 1000, "p_init": 0.8, "nb_restarts": 1}, fixed={"verbose": False}, blackbox=True,
    steps_param="max_iter", art_class="SquareAttack"))  # fmt: skip
register_attack("art", ArtAttack(
    "AutoAttack", paper="ART's own AutoAttack (APGD-CE, APGD-DLR, DeepFool, Square), not Croce and Hein's",
    defaults={"eps_step": eps_fraction(0.25)}, art_class="AutoAttack", requires=("multiprocess",)))  # fmt: skip
