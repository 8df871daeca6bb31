"""Adapter for AutoAttack.

Croce and Hein, *Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks*, ICML 2020.

The reference code is fra31's ``autoattack`` (GitHub only). PyPI's ``pyautoattack`` 0.2.0
carries the same attack code with a keyword-only wrapper API; this adapter speaks both and
prefers ``pyautoattack``. Versions:

* ``standard``: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5,000 queries);
  100 iterations, 1 restart. For deterministic models.
* ``rand``: APGD-CE and APGD-DLR with EOT over 20 forward passes, 1 restart. For randomized
  models (no Square: AutoAttack has no EOT variant of it).
* ``plus``: APGD-CE, APGD-DLR, FAB, Square, APGD-T, FAB-T with 5 restarts.

Each component runs, as in AutoAttack, only on the points still robust after the previous ones;
the adapter calls the library's ``run_standard_evaluation`` once per component (the library's
own way of running one attack, cf. ``run_standard_evaluation_individual``), so it can report the
robust accuracy after each component and keep per-point flags. For a deterministic model the
flags equal those of one ``run_standard_evaluation`` call with the same seed (tested). For a
randomized model every component first re-checks the points with one forward pass, which can
only remove points (the conservative direction); AutoAttack filters on a single pass either way
(auto-attack issues #104 and #105), which is why our evaluation re-scores every adversarial
image with repeated passes.

Example:
    >>> outs = autoattack_attack(model, x, y, eps=0.1, version="standard", seed=0)
    >>> [o.name for o in outs]
    ['apgd-ce', 'apgd-t', 'fab-t', 'square']

"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
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
)

VERSIONS = ("standard", "rand", "plus")
BACKENDS = ("auto", "pyautoattack", "autoattack")


class _Capture(logging.Handler):
    """Collects AutoAttack's warnings (its sanity checks) while it runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if msg not in self.messages:
            self.messages.append(msg)


def _backend(name: str) -> tuple[str, Any]:
    if name not in BACKENDS:
        raise ValueError(f"AutoAttack backend must be one of {', '.join(BACKENDS)}; got {name!r}")
    order = ("pyautoattack", "autoattack") if name == "auto" else (name,)
    for mod in order:
        try:
            module = __import__(mod)
        except ImportError:
            continue
        return mod, module.AutoAttack
    raise ImportError(
        "AutoAttack is not installed: `pip install pyautoattack==0.2.0` (same attack code as "
        "fra31/auto-attack), or install fra31's `autoattack` from GitHub"
    )


COMPONENTS = ("apgd-ce", "apgd-dlr", "apgd-t", "fab", "fab-t", "square")


def _component_object(aa: Any, component: str) -> Any:
    if component in ("apgd-ce", "apgd-dlr"):
        return aa.apgd
    if component == "apgd-t":
        return aa.apgd_targeted
    if component in ("fab", "fab-t"):
        return aa.fab
    return aa.square


def _component_params(aa: Any, component: str) -> dict[str, Any]:
    if component in ("apgd-ce", "apgd-dlr"):
        keys: tuple[str, ...] = ("n_iter", "n_restarts", "eot_iter", "rho", "use_largereps")
    elif component == "apgd-t":
        keys = ("n_iter", "n_restarts", "n_target_classes", "eot_iter", "rho")
    elif component in ("fab", "fab-t"):
        keys = ("n_iter", "n_restarts", "n_target_classes", "alpha_max", "eta", "beta")
    else:
        keys = ("n_queries", "n_restarts", "p_init")
    a = _component_object(aa, component)
    params = {k: getattr(a, k) for k in keys if hasattr(a, k)}
    if component == "fab-t":
        params["n_restarts"] = 1  # AutoAttack sets this for fab-t when it runs it
    return {k: (float(v) if isinstance(v, float) else v) for k, v in params.items()}


def autoattack_attack(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    eps: float,
    norm: str = "Linf",
    version: str = "standard",
    seed: int = 0,
    batch_size: int = 500,
    backend: str = "auto",
    attacks: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    robust: torch.Tensor | None = None,
) -> list[AttackOutput]:
    """Run AutoAttack components one by one, each on the points still robust.

    Args:
        model: Model taking images in [0, 1] and returning logits.
        x: Images in [0, 1], ``(N, C, H, W)``.
        y: Labels ``(N,)``.
        eps: Radius of the threat model.
        norm: ``Linf`` or ``L2``.
        version: ``standard``, ``rand`` or ``plus``: the settings of every component.
        seed: AutoAttack's seed (every component reseeds with it, as in the library).
        batch_size: Images per attack call.
        backend: ``auto`` (pyautoattack, else autoattack), ``pyautoattack`` or ``autoattack``.
        attacks: The components to run, in order, with the version's settings: any of
            ``apgd-ce``, ``apgd-dlr``, ``apgd-t``, ``fab``, ``fab-t``, ``square``; ``None`` runs
            the version's own list.
        params: Settings overriding the version's, applied to every component that has them
            (e.g. ``{"eot_iter": 1}``, ``{"n_queries": 1000}``); unknown names are an error.
        robust: Points to attack (default: all); points outside are neither attacked nor robust.

    Returns:
        One :class:`AttackOutput` per component, in order. ``library_robust`` holds the
        library's per-point flags *after* that component (cumulative), ``x_adv`` the adversarial
        images found so far (the clean image where none was found).

    """
    if version not in VERSIONS:
        raise ValueError(f"AutoAttack version must be one of {', '.join(VERSIONS)}; got {version!r}")
    check_inputs(x, y, eps, norm)
    mod, AutoAttack = _backend(backend)
    device = model_device(model)
    if mod == "pyautoattack":
        aa = AutoAttack(model, eps=float(eps), norm=norm, version=version, seed=seed, device=device)
    else:
        aa = AutoAttack(model, norm=norm, eps=float(eps), version=version, seed=seed, device=device, verbose=False)
    components = list(aa.attacks_to_run) if attacks is None else list(attacks)
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown or not components:
        raise ValueError(f"AutoAttack components are {', '.join(COMPONENTS)}; got {components}")
    for key, value in (params or {}).items():
        objs = [_component_object(aa, c) for c in components if hasattr(_component_object(aa, c), key)]
        if not objs:
            raise TypeError(f"no AutoAttack component among {components} has a setting {key!r}")
        for obj in objs:
            setattr(obj, key, value)
    x_cpu, y_cpu = x.detach().cpu(), y.detach().cpu()
    robust = torch.ones(len(x), dtype=torch.bool) if robust is None else robust.detach().cpu().bool().clone()
    x_adv = x_cpu.clone()
    outputs: list[AttackOutput] = []
    capture = _Capture()
    aa_logger = logging.getLogger("auto-attack")
    aa_logger.addHandler(capture)
    try:
        for component in components:
            idx = torch.nonzero(robust).flatten()
            seen = len(capture.messages)
            with Timer() as t:
                if len(idx):
                    aa.attacks_to_run = [component]
                    xs, ys = x_cpu[idx].to(device), y_cpu[idx].to(device)
                    if mod == "pyautoattack":
                        xa, ya = aa.run_standard_evaluation(xs, ys, batch_size=batch_size)
                    else:
                        xa, ya = aa.run_standard_evaluation(xs, ys, bs=batch_size, return_labels=True)
                    broken = ya.cpu() != y_cpu[idx]
                    robust[idx[broken]] = False
                    x_adv[idx[broken]] = xa.detach().cpu()[broken]
            check_threat_model(x_cpu, x_adv, eps, norm, f"{mod}.{component}")
            record = {
                "backend": mod,
                "backend_version": library_version(mod),
                "attack": component,
                "version": version,
                "norm": norm,
                "params": {"eps": float(eps), **_component_params(aa, component)},
                "seed": seed,
                "batch_size": batch_size,
                "points_attacked": len(idx),
                "seconds": round(t.seconds, 3),
                "library_checks": capture.messages[seen:],
            }
            outputs.append(AttackOutput(component, x_adv.clone(), robust.clone(), record))
    finally:
        aa_logger.removeHandler(capture)
    return outputs
