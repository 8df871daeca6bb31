"""The attack backends and their attacks: each one registration, read by everything else.

A *backend* is an adapter over one attack library (torchattacks, AutoAttack, ART, the
symmetric-activation paper's sample): the names its records carry in ``record["backend"]``,
and one function, ``run(request) -> AttackOutput``, that the evaluation engine calls for every
attack of that backend. An *attack* is one attack of a backend's library, registered with its
defaults and its **traits**: what the engine and the checks of
:mod:`robact_bench.evaluation.masking` need to know about it (one step or many, gradient-free,
which parameter counts its iterations, whether it maximizes a loss, whether its queries stay in
the threat model).

Everything reads from these registries: :class:`~robact_bench.attacks.suites.AttackSpec`
validates its ``backend`` and ``attack`` here and exposes the traits; the engine dispatches on
:attr:`Backend.run`; the masking checks read the traits of a recorded attack
(:func:`record_attack`); the entry schema's list of backends is :func:`recorded_backends`; and
``robact-bench list attacks`` prints :func:`attack_rows`.

Adding an attack of a library that already has a backend is one call (and its test)::

    register_attack("torchattacks", TorchattacksAttack(
        "MIFGSM", paper="Dong et al., Boosting Adversarial Attacks with Momentum, CVPR 2018",
        norms=("Linf",), defaults={"alpha": eps_fraction(0.25), "steps": 10, "decay": 1.0},
        steps_param="steps"))

Adding a backend is :func:`register_backend` on its ``run`` function, then its attacks
(``docs/extending.md``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robact_bench.attacks.common import NORMS, AttackOutput
from robact_bench.registry import Registry, UnknownNameError

__all__ = [
    "BACKENDS",
    "AttackRequest",
    "Backend",
    "LibraryAttack",
    "attack_rows",
    "backend_of_record",
    "eps_fraction",
    "get_attack",
    "record_attack",
    "recorded_backends",
    "register_attack",
    "register_backend",
    "resolve_params",
]

#: parameters that count iterations, read from a record whose attack is not registered
GENERIC_STEP_PARAMS = ("steps", "n_iter", "max_iter")


@dataclass(frozen=True)
class EpsFraction:
    """A default that is a fraction of the attack's eps (e.g. PGD's step ``eps / 4``)."""

    fraction: float

    def __call__(self, eps: float) -> float:
        return float(eps) * self.fraction

    def __repr__(self) -> str:
        return f"{self.fraction:g} x eps"


def eps_fraction(fraction: float) -> EpsFraction:
    """A parameter default of ``fraction * eps`` (``eps_fraction(0.25)``: a quarter of eps)."""
    return EpsFraction(float(fraction))


@dataclass(frozen=True)
class LibraryAttack:
    """One attack of a backend's library, with its defaults and traits.

    Attributes:
        name: The library's name for it (torchattacks/ART class, AutoAttack component); records
            carry it in ``record["attack"]``.
        paper: The attack's paper, one line.
        norms: The threat models it supports.
        defaults: Parameter defaults, in the order they are recorded; a default may be
            :func:`eps_fraction` (a fraction of eps). A value passed in is cast to the default's type.
        fixed: Parameters always passed with these values, not settable.
        single_step: One gradient step (FGSM): the check ``single_step_beats_multi_step`` compares it
            with the multi-step attacks.
        blackbox: Score-based, never asks for a gradient (Square): not recorded by the query
            recorder; the check ``blackbox_beats_whitebox`` compares it with the white-box attacks.
        steps_param: The parameter counting its iterations (``steps``, ``n_iter``, ``max_iter``,
            ``n_queries``): steps sweeps set it and the checks read it from the record.
        loss_maximizing: Its queries climb the loss; ``False`` for minimum-norm searches (CW, FAB),
            whose loss traces say nothing about an incomplete optimization.
        bounded_queries: Its queries stay inside the threat model; ``False`` when they may leave it
            (CW minimizes the perturbation; its result is projected).

    """

    name: str
    paper: str = ""
    norms: tuple[str, ...] = NORMS
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    single_step: bool = False
    blackbox: bool = False
    steps_param: str | None = None
    loss_maximizing: bool = True
    bounded_queries: bool = True

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an attack needs a name")
        bad = [n for n in self.norms if n not in NORMS]
        if bad or not self.norms:
            raise ValueError(f"attack {self.name}: norms must be among {', '.join(NORMS)}; got {self.norms!r}")
        object.__setattr__(self, "norms", tuple(self.norms))
        object.__setattr__(self, "defaults", dict(self.defaults))
        object.__setattr__(self, "fixed", dict(self.fixed))
        if self.single_step and self.blackbox:
            raise ValueError(f"attack {self.name}: a single-step attack follows a gradient, it is not black-box")

    def traits(self) -> list[str]:
        """The traits that differ from the defaults, as short words (``robact-bench list attacks``)."""
        out = []
        if self.single_step:
            out.append("single-step")
        if self.blackbox:
            out.append("black-box")
        if self.steps_param:
            out.append(f"steps={self.steps_param}")
        if not self.loss_maximizing:
            out.append("minimum-norm")
        if not self.bounded_queries:
            out.append("unbounded-queries")
        return out


@dataclass(frozen=True)
class AttackRequest:
    """Everything the engine hands a backend's ``run`` for one attack on one chunk of points.

    Attributes:
        model: The module to attack (the model, its surrogate, the EOT model or fixed draws),
            possibly behind the query recorder.
        x: Images in [0, 1], ``(N, C, H, W)``, on the CPU.
        y: Labels ``(N,)``.
        attack: The registered attack.
        name: Our name for the run (the spec's name).
        eps: The radius (the whole input range for an unbounded spec).
        norm: ``Linf`` or ``L2``.
        params: The spec's parameters with the engine's overrides (a steps sweep's value).
        seed: The chunk's seed.
        batch_size: Images per library call.
        eval_seed: The evaluation's seed (AutoAttack reseeds every component with one seed).
        eot: The EOT record (``{"mode": "batched"|"sequential", "k": ...}``) or ``None``.
        bound: ``eps`` or ``unbounded`` (the spec's bound).
        stochastic: The model is random (AutoAttack then keeps every component's strongest images).
        robust: Cascade: the points still robust (deterministic models), else ``None``.
        options: The evaluation's options (``EvalConfig.to_dict()``: e.g. ``autoattack_backend``).

    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    attack: LibraryAttack
    name: str
    eps: float
    norm: str
    params: Mapping[str, Any]
    seed: int
    batch_size: int
    eval_seed: int = 0
    eot: Mapping[str, Any] | None = None
    bound: str = "eps"
    stochastic: bool = False
    robust: torch.Tensor | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class Backend:
    """One attack library's adapter.

    Attributes:
        name: Registry name, the ``backend`` of an :class:`~robact_bench.attacks.suites.AttackSpec`.
        run: ``run(request) -> AttackOutput``: the engine's call for every attack of this backend.
        recorded: The names its records carry in ``record["backend"]`` (the first is what it writes
            now; later ones are what older results hold); the entry schema accepts every one.
        library: The distribution whose version is recorded (``pip install`` name).
        description: One line.
        attacks: Its registered attacks (add with :meth:`add_attack`, which keeps their order).

    """

    name: str
    run: Callable[[AttackRequest], AttackOutput]
    recorded: tuple[str, ...]
    library: str
    description: str = ""
    attacks: Registry[LibraryAttack] = field(default_factory=lambda: Registry("attack"))
    _order: list[str] = field(default_factory=list, repr=False)

    def add_attack(self, attack: LibraryAttack, *, aliases: tuple[str, ...] = ()) -> None:
        """Register ``attack`` (a name or alias may be registered once)."""
        self.attacks.add(attack.name, attack, aliases=aliases)
        self._order.append(attack.name)

    def remove_attack(self, name: str) -> LibraryAttack:
        """Unregister the attack ``name`` (tests clean up with it)."""
        attack = self.attacks.remove(name)
        self._order.remove(attack.name)
        return attack

    def attack_names(self) -> tuple[str, ...]:
        """The library names of its attacks, in registration order."""
        return tuple(self._order)


BACKENDS: Registry[Backend] = Registry("attack backend")


RunFn = Callable[[AttackRequest], AttackOutput]


def register_backend(name: str, *, recorded: tuple[str, ...], library: str, description: str = "",
                     attacks: Sequence[LibraryAttack] = ()) -> Callable[[RunFn], RunFn]:  # fmt: skip
    """Decorator registering ``run`` as backend ``name`` (see :class:`Backend` for the arguments).

    ``attacks`` registers the backend's attacks at once (more may follow with :func:`register_attack`).

    Example:
        >>> @register_backend("noise", recorded=("noise",), library="robact_bench",
        ...                   attacks=[LibraryAttack("sign", norms=("Linf",), blackbox=True)])
        ... def run_noise(req: AttackRequest) -> AttackOutput: ...

    """
    if not recorded:
        raise ValueError(f"backend {name!r} needs the name its records carry (recorded=...)")
    taken = {r: b for b in BACKENDS for r in BACKENDS.get(b).recorded}
    clash = [r for r in recorded if r in taken]
    if clash:
        raise ValueError(f"backend {name!r}: records named {clash[0]!r} already belong to backend {taken[clash[0]]!r}")

    def deco(run: RunFn) -> RunFn:
        backend = Backend(name, run, tuple(recorded), library, description, Registry(f"{name} attack"))
        for attack in attacks:
            backend.add_attack(attack)
        BACKENDS.add(name, backend)
        return run

    return deco


def register_attack(backend: str, attack: LibraryAttack, *, aliases: tuple[str, ...] = ()) -> LibraryAttack:
    """Register ``attack`` under ``backend`` (names are case-insensitive; ``aliases``: other recorded names)."""
    BACKENDS.get(backend).add_attack(attack, aliases=aliases)
    return attack


def get_attack(backend: str, attack: str) -> LibraryAttack:
    """The attack ``attack`` of backend ``backend`` (unknown names raise with the closest matches)."""
    return BACKENDS.get(backend).attacks.get(attack)


def backend_of_record(recorded: str) -> str | None:
    """The backend whose records carry ``recorded`` as ``record["backend"]``, or ``None``."""
    for name in BACKENDS:
        if recorded in BACKENDS.get(name).recorded:
            return name
    return None


def record_attack(record: Mapping[str, Any]) -> LibraryAttack | None:
    """The registered attack an attack record (``AttackRecord.record``) was made by, or ``None``."""
    backend = backend_of_record(str(record.get("backend", "")))
    if backend is None:
        return None
    try:
        return get_attack(backend, str(record.get("attack", "")))
    except UnknownNameError:
        return None


def recorded_backends() -> list[str]:
    """Every backend name a record may carry, in registry order (the entry schema's ``backend`` enum)."""
    return [r for name in BACKENDS for r in BACKENDS.get(name).recorded]


def resolve_params(attack: LibraryAttack, eps: float, params: Mapping[str, Any], who: str) -> dict[str, Any]:
    """The attack's defaults with ``params`` over them, each cast to its default's type, then ``fixed``.

    Raises ``TypeError`` (one line) for a parameter the attack does not take.
    """
    rest = dict(params)
    out: dict[str, Any] = {}
    for key, default in attack.defaults.items():
        value = default(eps) if isinstance(default, EpsFraction) else default
        out[key] = type(value)(rest.pop(key)) if key in rest else value
    if rest:
        raise TypeError(f"{who} does not take {sorted(rest)}")
    return {**out, **attack.fixed}


def attack_rows() -> list[tuple[str, str, str, str]]:
    """``(backend, attack, traits, paper)`` for every registered attack: backends by name, attacks in order."""
    rows = []
    for name in BACKENDS:
        backend = BACKENDS.get(name)
        for key in backend.attack_names():
            a = backend.attacks.get(key)
            rows.append((name, a.name, ",".join([*a.traits(), "/".join(a.norms)]), a.paper))
    return rows


# the shipped adapters register themselves on import
for _module in ("torchattacks", "autoattack", "art", "saf"):
    importlib.import_module(f"robact_bench.attacks.{_module}")
