"""Named attack suites: which attacks an evaluation runs, with which library and settings.

A suite is data: an ordered tuple of :class:`AttackSpec` (plus optional sweeps and the
symmetric-activation paper's samples). The engine (:mod:`robact_bench.evaluation.engine`) runs
every spec through its backend's adapter, scores every adversarial image on the *real* model
(``R`` passes for a random model) and keeps, per point, the worst case over attacks.

Rules the engine applies to every suite:

* On a random model every attack with ``eot=True`` runs on an :class:`~robact_bench.attacks.eot.EOTModel`
  (``K`` samples per gradient or query, batched); ``eot=False`` marks the non-adaptive
  reference numbers (what a paper that ignored the randomness would report).
* Specs with the same ``group`` form an AutoAttack-style cascade: each runs only on the points
  still robust after the previous ones, and the group's accuracy is cumulative. Specs without a
  group run on every point, so their accuracies are per attack.
* ``via="transfer"``/``"bpda"`` attack a surrogate model (:mod:`robact_bench.attacks.bpda`);
  such specs are skipped, with the reason recorded, on a model without a surrogate.
* ``when`` restricts a spec to random (``stochastic``) or deterministic models.

Register a suite with ``SUITES.add(name, Suite(...))``; ``robact-bench eval --suite NAME`` and
:func:`robact_bench.evaluate` look it up here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robact_bench.registry import Registry

BACKENDS = ("torchattacks", "autoattack", "art")
VIAS = ("model", "transfer", "bpda")
WHENS = ("always", "stochastic", "deterministic")
SWEEP_KINDS = ("eps", "steps")


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite.

    Attributes:
        name: Our name for it in results (``"pgd20"``, ``"apgd-ce"``, ``"square-eot"``).
        backend: ``torchattacks``, ``autoattack`` (pyautoattack or fra31's) or ``art``.
        attack: The library's attack: torchattacks/ART class name, or AutoAttack component.
        params: Library parameters (``steps``, ``n_queries``...); AutoAttack's ``version``
            (default ``standard``) chooses the settings the others override.
        group: Cascade name (AutoAttack style) or ``None`` (runs on every point).
        eot: On a random model, attack the EOT model (``K`` samples per gradient/query).
        via: ``model``, ``transfer`` (attack the surrogate, score the real model) or ``bpda``
            (forward through the real model, backward through the surrogate).
        when: ``always``, ``stochastic`` or ``deterministic``.
        reported: Its single-pass accuracy is the result's ``reported_acc`` (non-adaptive number).

    """

    name: str
    backend: str
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)
    group: str | None = None
    eot: bool = True
    via: str = "model"
    when: str = "always"
    reported: bool = False

    def __post_init__(self) -> None:
        for attr, allowed in (("backend", BACKENDS), ("via", VIAS), ("when", WHENS)):
            if getattr(self, attr) not in allowed:
                raise ValueError(f"AttackSpec {attr} must be one of {', '.join(allowed)}; got {getattr(self, attr)!r}")
        object.__setattr__(self, "params", dict(self.params))


@dataclass(frozen=True)
class SweepSpec:
    """Accuracy of one attack over a grid (the data of an accuracy-vs-eps or -vs-steps plot).

    Attributes:
        kind: ``eps`` (values multiply the evaluation's eps) or ``steps`` (absolute step counts,
            passed as the attack's ``steps``/``n_iter``).
        attack: The attack swept (run on every point, never cascaded).
        values: The grid.

    """

    kind: str
    attack: AttackSpec
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.kind not in SWEEP_KINDS:
            raise ValueError(f"sweep kind must be one of {', '.join(SWEEP_KINDS)}; got {self.kind!r}")
        object.__setattr__(self, "values", tuple(self.values))


@dataclass(frozen=True)
class Suite:
    """A named evaluation: attacks, sweeps and what it reproduces.

    Attributes:
        name: Registry name.
        description: One line shown by ``robact-bench list suites``.
        reproduces: The paper/table/protocol it follows, and what we chose where it is silent.
        attacks: Ordered attack specs.
        sweeps: Accuracy-vs-eps/steps sweeps run after the attacks.
        saf_samples: Run the symmetric-activation paper's adversarial/nonsense/noisy samples.

    """

    name: str
    description: str
    reproduces: str
    attacks: tuple[AttackSpec, ...] = ()
    sweeps: tuple[SweepSpec, ...] = ()
    saf_samples: bool = False


SUITES: Registry[Suite] = Registry("attack suite")


def get_suite(name: str) -> Suite:
    """The registered suite ``name`` (unknown names raise with the closest matches)."""
    return SUITES.get(SUITES.resolve(name))


def list_suites(pattern: str = "*") -> list[str]:
    """Registered suite names matching a glob pattern."""
    return SUITES.list(pattern)


def _aa(name: str, version: str, group: str = "autoattack", when: str = "always", **params: Any) -> AttackSpec:
    return AttackSpec(name, "autoattack", name, {"version": version, **params}, group=group, when=when)


_STANDARD = tuple(_aa(c, "standard") for c in ("apgd-ce", "apgd-t", "fab-t", "square"))
_RAND = tuple(_aa(c, "rand") for c in ("apgd-ce", "apgd-dlr"))
_PGD20 = AttackSpec("pgd20", "torchattacks", "PGD", {"steps": 20})
# the non-adaptive reference on a random model: what an evaluation that ignores the randomness reports
_PGD20_NOEOT = AttackSpec("pgd20-noeot", "torchattacks", "PGD", {"steps": 20}, eot=False, when="stochastic")

SUITES.add(
    "standard",
    Suite(
        "standard",
        "AutoAttack standard: APGD-CE, APGD-T, FAB-T, Square (5,000 queries), cascaded",
        "Croce and Hein, ICML 2020, version='standard' (RobustBench's number); through pyautoattack. "
        "On a random model every component attacks the batched EOT model.",
        _STANDARD,
    ),
)
SUITES.add(
    "rand",
    Suite(
        "rand",
        "AutoAttack rand: APGD-CE and APGD-DLR with EOT over K = 20 samples, cascaded (+ PGD-20 without EOT)",
        "Croce and Hein, ICML 2020, version='rand' (for randomized defenses). EOT is batched "
        "(the library's eot_iter loop is set to 1 and the model is the EOT model with K = eot_iter); "
        "every image is then scored on R fresh passes, worst case. On a random model PGD-20 without "
        "EOT runs too: the non-adaptive number the EOT attacks must not exceed.",
        (*_RAND, _PGD20_NOEOT),
    ),
)
SUITES.add(
    "brelu_paper",
    Suite(
        "brelu_paper",
        "FGSM, PGD-20 and CW (Linf-projected) as in the BReLU paper; accuracy vs PGD steps",
        "Robustness through Random Activation (BReLU), Section 4.2 and Figure 4 left: FGSM, PGD-20, "
        "CW at one eps (0.0314 on CIFAR-10). The paper gives no step size, CW settings or step grid: "
        "ours are PGD step eps/4 with a random start, torchattacks' CW defaults (c 1, kappa 0, 50 Adam "
        "steps, lr 0.01) projected onto the Linf ball, steps 1-50. EOT on random models (the paper used none).",
        (
            AttackSpec("fgsm", "torchattacks", "FGSM"),
            _PGD20,
            AttackSpec("cw", "torchattacks", "CW", {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01}),
        ),
        sweeps=(SweepSpec("steps", AttackSpec("pgd", "torchattacks", "PGD"), (1, 2, 5, 10, 20, 50)),),
    ),
)
SUITES.add(
    "drelu_paper",
    Suite(
        "drelu_paper",
        "FGSM, PGD-20, APGD-CE, APGD-DLR, CW-L2 (Linf-projected), Square, each on every point; APGD-CE vs eps",
        "Dynamic-Max-Value ReLU, Section 5.3 and Figures 25-27 (accuracy under APGD-CE vs the bound). "
        "The paper names no library or settings: ours are torchattacks FGSM/PGD-20 (step eps/4)/CW "
        "(projected onto the Linf ball), AutoAttack's APGD (100 iterations, 1 restart) and Square "
        "(5,000 queries), each alone on every point; eps grid 0.25-4 x eps.",
        (
            AttackSpec("fgsm", "torchattacks", "FGSM"),
            _PGD20,
            AttackSpec("apgd-ce", "autoattack", "apgd-ce", {"version": "standard"}),
            AttackSpec("apgd-dlr", "autoattack", "apgd-dlr", {"version": "standard"}),
            AttackSpec("cw", "torchattacks", "CW", {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01}),
            AttackSpec("square", "autoattack", "square", {"version": "standard"}),
        ),
        sweeps=(
            SweepSpec(
                "eps",
                AttackSpec("apgd-ce", "autoattack", "apgd-ce", {"version": "standard"}),
                (0.25, 0.5, 1.0, 2.0, 4.0),
            ),
        ),
    ),
)
SUITES.add(
    "saf_paper",
    Suite(
        "saf_paper",
        "adversarial (one FGS step, eq. 10), nonsense and noisy samples over the paper's beta grid",
        "Suppressing the Unusual (symmetric activations), Section 5, Tables 2 and 4: error rates "
        "over beta; a model rejects an input when every class confidence is below 0.5.",
        saf_samples=True,
    ),
)
SUITES.add(
    "adaptive",
    Suite(
        "adaptive",
        "our strongest: AutoAttack cascade (EOT on random models, Square-EOT), BPDA transfer, "
        "PGD-20, FGSM, the non-EOT reference, and eps/steps sweeps for the gradient-masking checks",
        "Deterministic models: AutoAttack standard, then a BPDA transfer attack (APGD-CE on the "
        "surrogate: capped activations uncapped) when the model has one, PGD-20 and FGSM. Random models: "
        "APGD-CE, APGD-DLR, APGD-T (3 target classes) and Square (1,000 queries) cascaded on the batched "
        "EOT model, APGD-CE transferred from the expected-value surrogate, EOT PGD-20, EOT FGSM, and PGD-20 "
        "without EOT (the non-adaptive reference). Every image is scored on R passes; a point is robust "
        "only if every attack failed. Sweeps (not part of the headline): PGD-20 at 0.5-8 x eps and PGD at "
        "1-50 steps, the data of the gradient-masking checks (docs/gradient-masking.md).",
        (
            *(_aa(c, "standard", when="deterministic") for c in ("apgd-ce", "apgd-t", "fab-t", "square")),
            *(_aa(c, "rand", when="stochastic") for c in ("apgd-ce", "apgd-dlr")),
            _aa("apgd-t", "rand", when="stochastic", n_target_classes=3),
            _aa("square", "rand", when="stochastic", n_queries=1000),
            AttackSpec("apgd-ce-transfer", "autoattack", "apgd-ce", {"version": "standard"}, via="transfer"),
            _PGD20,
            AttackSpec("fgsm", "torchattacks", "FGSM"),
            _PGD20_NOEOT,
        ),
        sweeps=(
            SweepSpec("eps", _PGD20, (0.5, 1.0, 2.0, 4.0, 8.0)),
            SweepSpec("steps", AttackSpec("pgd", "torchattacks", "PGD"), (1, 5, 20, 50)),
        ),
    ),
)
SUITES.add(
    "art",
    Suite(
        "art",
        "ART's PGD-20 and Square (1,000 queries), each on every point: a second library's numbers",
        "A cross-library check of the torchattacks/AutoAttack numbers through the Adversarial "
        "Robustness Toolbox (PyTorchClassifier; PGD step eps/4 with one random start; Square p_init 0.8). "
        "ART's own AutoAttack is available to the adapter but is not fra31's and is never reported as AutoAttack.",
        (
            AttackSpec("art-pgd20", "art", "PGD", {"max_iter": 20}),
            AttackSpec("art-square", "art", "Square", {"max_iter": 1000}),
        ),
    ),
)
SUITES.add(
    "basic",
    Suite(
        "basic",
        "the main job's protocol: PGD-7 as trained (reported, no EOT), PGD-20, AutoAttack standard or rand",
        "How the seed papers report (PGD with the training attack's settings, one pass, no EOT), then "
        "PGD-20 and AutoAttack (standard for deterministic, rand for random models), scored on R passes.",
        (
            AttackSpec("pgd7_reported", "torchattacks", "PGD", {"steps": 7}, eot=False, reported=True),
            _PGD20,
            *(_aa(c, "standard", when="deterministic") for c in ("apgd-ce", "apgd-t", "fab-t", "square")),
            *(_aa(c, "rand", when="stochastic") for c in ("apgd-ce", "apgd-dlr")),
        ),
    ),
)
