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

import contextlib
import importlib
import io
import logging
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from robact_bench.attacks.backends import AttackRequest, LibraryAttack, register_attack, register_backend
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


_CHECKS_MARK = "flags_doc.md"  # every AutoAttack sanity-check message ends with "See flags_doc.md for details."


class _Capture(logging.Handler):
    """Collects AutoAttack's warnings (its sanity checks) while it runs."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def add(self, msg: str) -> None:
        msg = " ".join(msg.split()).removeprefix("Warning: ")
        if msg and msg not in self.messages:
            self.messages.append(msg)

    def emit(self, record: logging.LogRecord) -> None:
        self.add(record.getMessage())


@contextlib.contextmanager
def capture_checks() -> Iterator[_Capture]:
    r"""Collect AutoAttack's sanity-check messages from both backends, whatever the logging setup.

    pyautoattack reports its checks with ``logging.getLogger("auto-attack").warning``; fra31's
    ``autoattack`` prints them (its ``Logger.log``) or, without a logger, ``warnings.warn``\ s them.
    For the duration of the block the ``auto-attack`` logger is opened to WARNING (an
    application that silenced it keeps it silent: the records then stop at our handler), stdout
    is read for fra31's printed checks, and warnings carrying AutoAttack's ``flags_doc.md`` mark
    are taken (any other warning is issued again).
    """
    capture = _Capture()
    logger = logging.getLogger("auto-attack")
    level, propagate = logger.level, logger.propagate
    silenced = logger.getEffectiveLevel() > logging.WARNING
    logger.addHandler(capture)
    if silenced:
        logger.setLevel(logging.WARNING)
        logger.propagate = False
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(printed):
            warnings.simplefilter("always")
            yield capture
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
        logger.propagate = propagate
    for line in printed.getvalue().splitlines():
        if _CHECKS_MARK in line:
            capture.add(line)
    for w in caught:
        if _CHECKS_MARK in str(w.message):
            capture.add(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


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


#: what each component hands back on a random model (``strongest=True``), read in pyautoattack 0.2.0
STRONGEST = {
    "apgd-ce": "APGDAttack.perturb(best_loss=True): the highest-loss iterate over restarts, for every point",
    "apgd-dlr": "APGDAttack.perturb(best_loss=True): the highest-loss iterate over restarts, for every point",
    "apgd-t": "APGDAttack_targeted.attack_single_run per target class: each target's highest-loss iterate "
    "(x_best), every one a candidate",
    "square": "SquareAttack.attack_single_run: the lowest-margin image found (x_best), for every point",
    "fab": "FABAttack.perturb: adversarial images only (a minimum-norm attack keeps nothing for the other points)",
    "fab-t": "FABAttack.perturb: adversarial images only (a minimum-norm attack keeps nothing for the other points)",
}


def _seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _library_checks(mod: str, aa: Any, component: str, x: torch.Tensor, y: torch.Tensor, version: str) -> None:
    """AutoAttack's own sanity checks, called as its ``run_standard_evaluation`` calls them."""
    checks = importlib.import_module(f"{mod}.checks")
    if version != "rand":
        checks.check_randomized(aa.get_logits, x, y, bs=len(x), logger=aa.logger)
    n_cls = checks.check_range_output(aa.get_logits, x, logger=aa.logger)
    checks.check_dynamic(aa.model, x, False, logger=aa.logger)
    checks.check_n_classes(n_cls, [component], aa.apgd_targeted.n_target_classes, aa.fab.n_target_classes,
                           logger=aa.logger)  # fmt: skip


def _strongest(aa: Any, component: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """The component's strongest images for every point, through the library's own best-image outputs."""
    _seed_all(seed)
    if component in ("apgd-ce", "apgd-dlr"):
        a = aa.apgd
        a.loss, a.seed = ("ce" if component == "apgd-ce" else "dlr"), seed
        return [a.perturb(x, y, best_loss=True)]
    if component == "apgd-t":
        a = aa.apgd_targeted
        a.seed = seed
        a.init_hyperparam(x)
        out = []
        for target_class in range(2, a.n_target_classes + 2):
            with torch.no_grad():
                logits = a.model(x)
            if target_class > logits.shape[1]:
                raise ValueError(
                    f"APGD-T with {a.n_target_classes} target classes needs at least {a.n_target_classes + 1} "
                    f"classes; the model has {logits.shape[1]}"
                )
            a.y_target = logits.sort(dim=1)[1][:, -target_class]
            out += [a.attack_single_run(x, y)[0] for _ in range(a.n_restarts)]
        return out
    if component == "square":
        a = aa.square
        a.seed = seed
        a.init_hyperparam(x)
        return [a.attack_single_run(x, y)[1] for _ in range(a.n_restarts)]
    a = aa.fab
    a.targeted, a.seed = component == "fab-t", seed
    if component == "fab-t":
        a.n_restarts = 1
    return [a.perturb(x, y)]


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
    strongest: bool = False,
) -> list[AttackOutput]:
    """Run AutoAttack components one by one.

    Two modes:

    * ``strongest=False`` (deterministic models): AutoAttack's own cascade. Each component runs,
      through the library's ``run_standard_evaluation``, only on the points still robust;
      ``x_adv`` holds the adversarial images found so far and the clean image elsewhere, exactly
      as the library returns them.
    * ``strongest=True`` (random models): every component runs on every point and hands back its
      *strongest* image for each, never the clean image where its own single-pass check saw no
      success (:data:`STRONGEST`: APGD's highest-loss iterate, each APGD-T target's, Square's
      lowest-margin image). The library's sanity checks run as in ``run_standard_evaluation``.

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
        robust: Points to attack in the cascade (default: all); points outside are neither
            attacked nor robust. Ignored with ``strongest=True``.
        strongest: Return every component's strongest image per point (see above).

    Returns:
        One :class:`AttackOutput` per component, in order. Cascade: ``library_robust`` holds the
        library's per-point flags *after* that component (cumulative). Strongest: ``x_adv`` is
        the component's first strongest image, ``candidates`` the others (one per APGD-T target
        and restart), and ``library_robust`` the library's view of this component alone: clean
        and every image classified correctly by one forward pass of ``model``.
        ``record["library_checks"]`` holds AutoAttack's own sanity-check messages.

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
    if strongest:
        return [_strongest_output(mod, aa, c, x_cpu, y_cpu, eps=eps, norm=norm, version=version, seed=seed,
                                  batch_size=batch_size, device=device) for c in components]  # fmt: skip
    robust = torch.ones(len(x), dtype=torch.bool) if robust is None else robust.detach().cpu().bool().clone()
    x_adv = x_cpu.clone()
    outputs: list[AttackOutput] = []
    for component in components:
        idx = torch.nonzero(robust).flatten()
        with Timer() as t, capture_checks() as capture:
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
        record = _record(mod, aa, component, eps=eps, norm=norm, version=version, seed=seed, batch_size=batch_size,
                         points=len(idx), seconds=t.seconds, checks=capture.messages)  # fmt: skip
        record["keeps"] = "as the library returns: adversarial images, the clean image where none was found"
        outputs.append(AttackOutput(component, x_adv.clone(), robust.clone(), record))
    return outputs


def _record(mod: str, aa: Any, component: str, *, eps: float, norm: str, version: str, seed: int, batch_size: int,
            points: int, seconds: float, checks: list[str]) -> dict[str, Any]:  # fmt: skip
    return {
        "backend": mod,
        "backend_version": library_version(mod),
        "attack": component,
        "version": version,
        "norm": norm,
        "params": {"eps": float(eps), **_component_params(aa, component)},
        "seed": seed,
        "batch_size": batch_size,
        "points_attacked": points,
        "seconds": round(seconds, 3),
        "library_checks": list(checks),
    }


def _strongest_output(mod: str, aa: Any, component: str, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
                      version: str, seed: int, batch_size: int, device: torch.device) -> AttackOutput:  # fmt: skip
    """One component on every point, batch by batch, keeping its strongest images (random models)."""
    parts: list[list[torch.Tensor]] = []
    library = torch.ones(len(x), dtype=torch.bool)
    with Timer() as t, capture_checks() as capture:
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size].to(device).float()
            yb = y[i : i + batch_size].to(device).long()
            if i == 0:
                _library_checks(mod, aa, component, xb, yb, version)
            images = [im.detach().clamp(0.0, 1.0) for im in _strongest(aa, component, xb, yb, seed)]
            with torch.no_grad():
                ok = aa.get_logits(xb).argmax(1) == yb
                for im in images:
                    ok &= aa.get_logits(im).argmax(1) == yb
            library[i : i + batch_size] = ok.cpu()
            parts.append([im.cpu() for im in images])
    images = [torch.cat([p[j] for p in parts]) if parts else x.clone() for j in range(len(parts[0]) if parts else 1)]
    for im in images:
        check_threat_model(x, im, eps, norm, f"{mod}.{component}")
    record = _record(mod, aa, component, eps=eps, norm=norm, version=version, seed=seed, batch_size=batch_size,
                     points=len(x), seconds=t.seconds, checks=capture.messages)  # fmt: skip
    record["keeps"] = STRONGEST[component]
    record["candidates"] = len(images)
    return AttackOutput(component, images[0], library, record, tuple(images[1:]))


@dataclass(frozen=True)
class AutoAttackComponent(LibraryAttack):
    """An AutoAttack component: :class:`~robact_bench.attacks.backends.LibraryAttack` plus its EOT setting.

    Its parameters are the library's for the spec's ``version`` (``params["version"]``, default
    ``standard``); the spec's other parameters override them (:func:`autoattack_attack`'s ``params``).

    Attributes:
        eot_param: The component's own EOT loop count (APGD's ``eot_iter``): 1 under the engine's
            batched EOT (the model is the EOT model), K under sequential EOT; ``None``: it has none.

    """

    eot_param: str | None = None


@register_backend("autoattack", recorded=("pyautoattack", "autoattack"), library="pyautoattack",
                  description="Croce and Hein, ICML 2020: pyautoattack 0.2.0 or fra31's autoattack")  # fmt: skip
def run_autoattack(req: AttackRequest) -> AttackOutput:
    """The engine's call: one component through :func:`autoattack_attack`.

    Deterministic models run AutoAttack's cascade (``req.robust``: the points still robust), random
    ones every point keeping the strongest images. The component is seeded with the evaluation's
    seed, as the library seeds every component; steps (a sweep's) become ``n_iter``.
    """
    params = dict(req.params)
    version = params.pop("version", "standard")
    eot_param = getattr(req.attack, "eot_param", None)
    if req.eot is not None and eot_param is not None:
        params[eot_param] = 1 if req.eot["mode"] == "batched" else req.eot["k"]
    if "steps" in params:  # sweeps speak of steps; AutoAttack of n_iter
        params["n_iter"] = params.pop("steps")
    # AutoAttack seeds itself with one seed for every component, as the library does
    torch.manual_seed(req.eval_seed)
    start = req.robust if not req.stochastic else None
    (out,) = autoattack_attack(req.model, req.x, req.y, eps=req.eps, norm=req.norm, version=version,
                               seed=req.eval_seed, batch_size=req.batch_size,
                               backend=str(req.options.get("autoattack_backend", "auto")), attacks=[req.attack.name],
                               params=params, strongest=req.stochastic, robust=start)  # fmt: skip
    return AttackOutput(req.name, out.x_adv, out.library_robust, out.record, out.candidates)


_APGD = ("Croce and Hein, Reliable Evaluation of Adversarial Robustness with an Ensemble of Diverse "
         "Parameter-free Attacks, ICML 2020")
_FAB = "Croce and Hein, Minimally Distorted Adversarial Examples with a Fast Adaptive Boundary Attack, ICML 2020"
register_attack("autoattack", AutoAttackComponent("apgd-ce", paper=_APGD + " (APGD, cross-entropy)",
                                                  steps_param="n_iter", eot_param="eot_iter"))  # fmt: skip
register_attack("autoattack", AutoAttackComponent("apgd-dlr", paper=_APGD + " (APGD, DLR loss)",
                                                  steps_param="n_iter", eot_param="eot_iter"))  # fmt: skip
register_attack("autoattack", AutoAttackComponent("apgd-t", paper=_APGD + " (APGD, targeted DLR)",
                                                  steps_param="n_iter", eot_param="eot_iter"))  # fmt: skip
register_attack("autoattack", AutoAttackComponent("fab", paper=_FAB, steps_param="n_iter", loss_maximizing=False))
register_attack("autoattack", AutoAttackComponent("fab-t", paper=_FAB + " (targeted)", steps_param="n_iter",
                                                  loss_maximizing=False))  # fmt: skip
register_attack("autoattack", AutoAttackComponent(
    "square", paper="Andriushchenko et al., Square Attack, ECCV 2020", blackbox=True, steps_param="n_queries"))
