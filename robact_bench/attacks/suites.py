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
:func:`robact_bench.evaluate` look it up here. A spec's ``backend`` and ``attack`` name a
registration of :mod:`robact_bench.attacks.backends` (``robact-bench list attacks``), whose traits
the spec exposes (:attr:`AttackSpec.single_step`, :attr:`~AttackSpec.blackbox`, :attr:`~AttackSpec.steps`,
:attr:`~AttackSpec.needs_surrogate`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from robact_bench.attacks.backends import BACKENDS as BACKEND_REGISTRY
from robact_bench.attacks.backends import LibraryAttack, get_attack
from robact_bench.registry import Registry, UnknownNameError

VIAS = ("model", "transfer", "bpda")
WHENS = ("always", "stochastic", "deterministic")
ROLES = ("headline", "diagnostic")
DRAWS = ("random", "fixed")
BOUNDS = ("eps", "unbounded")
SWEEP_KINDS = ("eps", "steps")


@dataclass(frozen=True)
class AttackSpec:
    """One attack of a suite.

    Attributes:
        name: Our name for it in results (``"pgd20"``, ``"apgd-ce"``, ``"square-eot"``).
        backend: A registered backend (:data:`robact_bench.attacks.backends.BACKENDS`):
            ``torchattacks``, ``autoattack`` (pyautoattack or fra31's), ``art`` or ``saf``.
        attack: One of the backend's registered attacks: torchattacks/ART class name, or
            AutoAttack component (``robact-bench list attacks``).
        params: Library parameters (``steps``, ``n_queries``...); AutoAttack's ``version``
            (default ``standard``) chooses the settings the others override.
        group: Cascade name (AutoAttack style) or ``None`` (runs on every point).
        eot: On a random model, attack the EOT model (``K`` samples per gradient/query).
        via: ``model``, ``transfer`` (attack the surrogate, score the real model) or ``bpda``
            (forward through the real model, backward through the surrogate).
        when: ``always``, ``stochastic`` or ``deterministic``.
        reported: Its accuracy is the result's ``reported_acc`` (the non-adaptive number).
        role: ``headline`` (its images count in the worst case per point) or ``diagnostic``
            (an indicator of attack failure only, e.g. an attack without a bound).
        draws: ``random`` (the model as it is) or ``fixed``: the attack sees the random model with
            its random draws fixed (:class:`~robact_bench.attacks.record.FixedDraws`), and its
            images are scored on the real model (Carlini et al., 2019).
        bound: ``eps`` (the evaluation's threat model) or ``unbounded``: the whole input range
            (Linf eps 1, L2 the diameter of the image cube): Pintor et al.'s unconstrained attack.

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
    role: str = "headline"
    draws: str = "random"
    bound: str = "eps"

    def __post_init__(self) -> None:
        backends = BACKEND_REGISTRY.list()
        for attr, allowed in (("backend", backends), ("via", VIAS), ("when", WHENS), ("role", ROLES),
                              ("draws", DRAWS), ("bound", BOUNDS)):  # fmt: skip
            if getattr(self, attr) not in allowed:
                raise ValueError(f"AttackSpec {attr} must be one of {', '.join(allowed)}; got {getattr(self, attr)!r}")
        try:
            get_attack(self.backend, self.attack)
        except UnknownNameError as err:
            raise ValueError(f"AttackSpec {self.name}: {err}") from None
        object.__setattr__(self, "params", dict(self.params))
        if self.role == "diagnostic" and self.reported:
            raise ValueError(f"AttackSpec {self.name}: a diagnostic attack cannot be the reported number")

    @property
    def library_attack(self) -> LibraryAttack:
        """The registered attack (its defaults and traits)."""
        return get_attack(self.backend, self.attack)

    @property
    def single_step(self) -> bool:
        """One gradient step (FGSM, the symmetric-activation paper's FGS)."""
        return self.library_attack.single_step

    @property
    def blackbox(self) -> bool:
        """A score-based attack that never asks for a gradient (Square)."""
        return self.library_attack.blackbox

    @property
    def steps_param(self) -> str | None:
        """The parameter counting the attack's iterations (what a steps sweep sets), or ``None``."""
        return self.library_attack.steps_param

    @property
    def steps(self) -> int | None:
        """The iterations it runs: 1, or its ``steps_param`` from ``params`` or the registered default.

        ``None`` when the library's settings decide (AutoAttack's version) or it has no such parameter.
        """
        a = self.library_attack
        if a.single_step:
            return 1
        if a.steps_param is None:
            return None
        value = self.params.get(a.steps_param, a.defaults.get(a.steps_param))
        return None if value is None else int(value)

    @property
    def needs_surrogate(self) -> bool:
        """It attacks a surrogate (``via`` transfer or BPDA): skipped on a model without one."""
        return needs_surrogate(self.via)

    @property
    def unbounded_queries(self) -> bool:
        """The library's queries may leave the threat model (CW minimizes the perturbation; its result is projected)."""
        return not self.library_attack.bounded_queries


def needs_surrogate(via: str) -> bool:
    """A ``via`` that attacks a surrogate model (``transfer``, ``bpda``) rather than the model itself."""
    return via != "model"


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
        if self.kind == "steps" and self.attack.steps_param is None:
            raise ValueError(f"a steps sweep needs an attack with a steps parameter; {self.attack.attack} has none")
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
_CW = {"c": 1.0, "kappa": 0.0, "steps": 50, "lr": 0.01}
#: Pintor et al.'s unconstrained attack: PGD without a bound (the whole input range), EOT on a random model
#: PGD-20 on the random model with its random draws fixed, scored on the real model (Carlini et al., 2019)
_PGD20_FIXED = AttackSpec(
    "pgd20-fixed", "torchattacks", "PGD", {"steps": 20}, eot=False, when="stochastic", draws="fixed"
)
_UNBOUNDED = AttackSpec("pgd50-unbounded", "torchattacks", "PGD", {"steps": 50}, role="diagnostic",
                        bound="unbounded")  # fmt: skip
SUITES.add(
    "adaptive",
    Suite(
        "adaptive",
        "our strongest: AutoAttack (EOT and every component on every point on random models), BPDA transfer, "
        "PGD-20, FGSM, CW, the seed papers' protocols, the non-EOT references, fixed-draw PGD, and the "
        "indicators of attack failure (unbounded PGD, eps/steps sweeps)",
        "Deterministic models: AutoAttack standard (cascaded, as the library runs it), APGD-DLR and Square "
        "(5,000 queries) each on every point (the D-ReLU paper's protocol), a BPDA transfer attack (APGD-CE on "
        "the surrogate: capped activations uncapped) when the model has one, PGD-20, FGSM, CW (Linf-projected; "
        "the BReLU paper's protocol) and the symmetric-activation paper's one-step FGS sample (eq. 10). Random "
        "models: APGD-CE, APGD-DLR, APGD-T (3 target classes) and Square (1,000 queries) on the batched EOT "
        "model, each on every point and keeping its strongest image, APGD-CE transferred from the "
        "expected-value surrogate, EOT PGD-20, FGSM, CW and FGS, the BReLU paper's protocol without EOT "
        "(PGD-20, FGSM, CW), and PGD-20 on the model with its random draws fixed. Every image of a random model "
        "is chosen among an attack's candidates on R passes and scored on R fresh ones. Diagnostics (not in "
        "the headline): PGD-50 without a bound, PGD-20 at 0.5-8 x eps and PGD at 1-50 steps "
        "(docs/gradient-masking.md).",
        (
            *(_aa(c, "standard", when="deterministic") for c in ("apgd-ce", "apgd-t", "fab-t", "square")),
            AttackSpec("apgd-dlr", "autoattack", "apgd-dlr", {"version": "standard"}, when="deterministic"),
            AttackSpec("square-alone", "autoattack", "square", {"version": "standard"}, when="deterministic"),
            *(_aa(c, "rand", when="stochastic") for c in ("apgd-ce", "apgd-dlr")),
            _aa("apgd-t", "rand", when="stochastic", n_target_classes=3),
            _aa("square", "rand", when="stochastic", n_queries=1000),
            AttackSpec("apgd-ce-transfer", "autoattack", "apgd-ce", {"version": "standard"}, via="transfer"),
            _PGD20,
            AttackSpec("fgsm", "torchattacks", "FGSM"),
            AttackSpec("cw", "torchattacks", "CW", _CW),
            AttackSpec("saf-fgs", "saf", "FGS"),
            _PGD20_NOEOT,
            AttackSpec("fgsm-noeot", "torchattacks", "FGSM", eot=False, when="stochastic"),
            AttackSpec("cw-noeot", "torchattacks", "CW", _CW, eot=False, when="stochastic"),
            _PGD20_FIXED,
            _UNBOUNDED,
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
