"""What can be checked about an evaluation before it starts: a bad suite fails before any training.

:func:`check_runnable` answers, from the :class:`~robact_bench.evaluation.config.EvalConfig`
alone (no model, no data), the questions an evaluation would otherwise answer only after the
models are trained: does every selected attack exist, is its library installed, does it run at
the threat model, is there a headline attack for each kind of model (deterministic, random) so
the result has a robust accuracy to publish, and does the dataset have the symmetric-activation
paper's beta grid when the suite needs it. ``robact-bench run`` asks it for every board before it
trains anything, ``robact-bench eval`` before it attacks.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Collection

from robact_bench.attacks.backends import get_attack
from robact_bench.attacks.suites import AttackSpec, get_suite
from robact_bench.evaluation.config import EvalConfig

__all__ = ["KINDS", "QUICK_ATTACKS", "check_runnable", "quick_attacks"]

#: the two kinds of model a suite's ``when`` tells apart
KINDS = ("deterministic", "random")
#: what ``robact-bench run --quick`` runs of a suite: the first of these it has
QUICK_ATTACKS = ("pgd20", "fgsm", "pgd20-noeot")

# backend -> (modules, any of which is enough; how to install one)
_LIBRARIES: dict[str, tuple[tuple[str, ...], str]] = {
    "torchattacks": (("torchattacks",), "pip install --no-deps torchattacks==3.5.1"),
    "art": (("art",), "pip install adversarial-robustness-toolbox==1.20.1 packaging multiprocess"),
    "autoattack": (("pyautoattack", "autoattack"), "pip install pyautoattack==0.2.0"),
}


def _runs_on(spec: AttackSpec, kind: str) -> bool:
    return spec.when == "always" or (spec.when == "stochastic") == (kind == "random")


def _norms(spec: AttackSpec, cfg: EvalConfig, kinds: Collection[str]) -> tuple[str, ...]:
    """The threat models of the attack ``spec`` runs as, from the registry.

    Under sequential EOT on a random model that is the library's own EOT variant where it has one
    (torchattacks' PGD: ``EOTPGD``).
    """
    attack = get_attack(spec.backend, spec.attack)
    variant = getattr(attack, "sequential_eot", None)
    if cfg.eot_mode == "sequential" and spec.eot and variant and "random" in kinds:
        attack = get_attack(spec.backend, variant)
    return attack.norms


def quick_attacks(suite: str) -> tuple[str, ...]:
    """The attacks of ``suite`` a ``--quick`` smoke run keeps: those of :data:`QUICK_ATTACKS` it has."""
    names = {a.name for a in get_suite(suite).attacks}
    return tuple(a for a in QUICK_ATTACKS if a in names)


def check_runnable(
    cfg: EvalConfig, *, kinds: Collection[str] = KINDS, saf_betas: tuple[float, ...] | None = None,
    dataset: str = "", need_headline: bool = True,
) -> None:  # fmt: skip
    """Raise a one-line ``ValueError`` when ``cfg`` cannot give a result for ``kinds`` of model.

    Args:
        cfg: The evaluation.
        kinds: The kinds of model it will see (:data:`KINDS`).
        saf_betas: The dataset's beta grid (``DatasetInfo.saf_betas``), needed by a suite with
            the symmetric-activation paper's samples unless ``cfg.saf_betas`` gives one.
        dataset: The dataset's name, for the message.
        need_headline: The result must have a robust accuracy (a leaderboard entry needs one;
            ``robact-bench eval`` of the ``saf_paper`` suite, which has only error rates, does not).

    Raises:
        ValueError: an attack the suite does not have; a selected attack whose library is not
            installed, or that does not take the threat model; no headline attack (one that runs
            on the model itself) for one of ``kinds`` when ``need_headline``; a missing beta grid.

    """
    suite = get_suite(cfg.suite)
    names = [a.name for a in suite.attacks]
    unknown = sorted(set(cfg.attacks or ()) - set(names))
    if unknown:
        have = ", ".join(dict.fromkeys(names)) or "none"
        raise ValueError(f"suite {suite.name} has no attack {', '.join(unknown)}; it has {have}")
    chosen = [a for a in suite.attacks if cfg.attacks is None or a.name in cfg.attacks]
    chosen = [a for a in chosen if any(_runs_on(a, k) for k in kinds)]
    for backend in dict.fromkeys(a.backend for a in chosen):
        if backend not in _LIBRARIES:
            continue
        modules, install = _LIBRARIES[backend]
        if backend == "autoattack" and cfg.autoattack_backend != "auto":
            modules = (cfg.autoattack_backend,)
        if not any(importlib.util.find_spec(m) is not None for m in modules):
            users = ", ".join(a.name for a in chosen if a.backend == backend)
            raise ValueError(
                f"suite {suite.name}: {users} need {' or '.join(modules)}, which is not installed ({install})"
            )
    if cfg.norm != "Linf":
        linf = [a.name for a in chosen if cfg.norm not in _norms(a, cfg, kinds)]
        if linf:
            raise ValueError(
                f"suite {suite.name}: {', '.join(dict.fromkeys(linf))} (Linf only) cannot run at the {cfg.norm} "
                "threat model; select other attacks or another suite"
            )
    for kind in kinds if need_headline else ():
        if not any(_runs_on(a, kind) and a.role == "headline" and a.via == "model" for a in chosen):
            selected = " of those selected" if cfg.attacks is not None else ""
            raise ValueError(
                f"suite {suite.name} runs no attack{selected} on a {kind} model itself, so it gives no robust "
                "accuracy to report; choose a suite (robact-bench list suites) or attacks that do"
            )
    if suite.saf_samples and cfg.saf_betas is None and saf_betas is None:
        raise ValueError(
            f"suite {suite.name} needs the symmetric-activation paper's beta grid, and dataset "
            f"{dataset or '?'} has none: give saf_betas"
        )
